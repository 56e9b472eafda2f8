"""The served model's tokenizer for the ideal prefix-cache rate: found locally, or None."""

from __future__ import annotations

from pathlib import Path

import pytest

from structbench.engines.openai_wire import completion_prompt
from structbench.engines.tokenize import prompt_tokens
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
    render, tokenize, label = found
    text = render([Message("user", "hi there")])
    assert text.strip() == "<user> hi there <assistant>"
    assert list(tokenize(text)) == [1, 4, 5, 3]
    assert label == "model tokenizer (tiny-model)"


def test_engine_renderer_wins_and_missing_folders_give_none(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    found = prompt_tokens([str(folder)], completion_prompt)
    assert found is not None and found[0]([Message("user", "hi")]) == "user: hi\n\nassistant:"
    assert prompt_tokens(["/nonexistent/model", ""]) is None
