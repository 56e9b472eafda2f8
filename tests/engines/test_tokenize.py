"""The served model's tokenizer for the ideal prefix-cache rate: found locally, or None."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from structbench.engines.openai_wire import completion_prompt
from structbench.engines.tokenize import end_of_turn_ids, prompt_tokens
from structbench.ir import Message

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

TEMPLATE = (
    "{% for m in messages %}<{{ m.role }}> {{ m.content }} {% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def _folder(tmp_path: Path) -> Path:
    words = ["[UNK]", "<user>", "<system>", "<assistant>", "hi", "there", "user:", "assistant:", "system:"]
    tk = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]")
    )
    tk.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]")
    fast.chat_template = TEMPLATE
    out = tmp_path / "tiny-model"
    fast.save_pretrained(str(out))
    return out


def test_local_tokenizer_renders_with_its_chat_template(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    found = prompt_tokens(["/nonexistent/model", str(folder)])
    assert found is not None
    text = found.render([Message("user", "hi there")])
    assert text.strip() == "<user> hi there <assistant>"
    assert list(found.tokenize(text)) == [1, 4, 5, 3]
    assert found.label == "model tokenizer (tiny-model)"
    # This template writes nothing after an answer, and the tokenizer has no EOS token.
    assert found.stop_ids == () and found.fork_prefix is None


def test_engine_renderer_wins_and_missing_folders_give_none(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    found = prompt_tokens([str(folder)], completion_prompt)
    assert found is not None and found.render([Message("user", "hi")]) == "user: hi\n\nassistant:"
    assert prompt_tokens(["/nonexistent/model", ""]) is None


def test_end_of_turn_is_the_template_marker_else_eos() -> None:
    vocab = {"<end>": 7, "<eos>": 9}

    def encode(text: str) -> list[int]:
        return [vocab.get(w, 0) for w in text.split()]

    def marked(msgs: Sequence[Message]) -> str:
        return "".join(f"<{m.role}> {m.content} <end>\n" for m in msgs)

    def plain(msgs: Sequence[Message]) -> str:
        return "".join(f"<{m.role}> {m.content} " for m in msgs)

    def strict(msgs: Sequence[Message]) -> str:
        raise ValueError("conversations must start with a system message")

    assert end_of_turn_ids(marked, encode, 9) == (7,)  # the marker wins over EOS
    assert end_of_turn_ids(plain, encode, 9) == (9,)
    assert end_of_turn_ids(strict, encode, 9) == (9,)
    assert end_of_turn_ids(plain, encode, None) == ()
    # A marker of several tokens is not one end-of-turn token: EOS instead.
    assert end_of_turn_ids(lambda ms: marked(ms).replace("<end>", "<end> <eos>"), encode, 9) == (9,)


def test_the_tokenizer_folder_gives_its_end_of_turn_token(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    fast = transformers.PreTrainedTokenizerFast.from_pretrained(str(folder))
    fast.chat_template = TEMPLATE.replace("{{ m.content }} ", "{{ m.content }} <system> ")
    fast.save_pretrained(str(folder))
    found = prompt_tokens([str(folder)])
    assert found is not None and found.stop_ids == (2,)  # "<system>", what ends each turn here
