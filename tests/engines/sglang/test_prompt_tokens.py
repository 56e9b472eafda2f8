"""What an SGLang engine says it prefills and caches, for the ideal prefix-cache hit rate."""

from __future__ import annotations

from pathlib import Path

import pytest

from structbench.engines.registry import EngineEnv
from structbench.engines.sglang.engine import SglangEngine
from structbench.engines.sglang.templates import SMOLLM2_TEMPLATE
from structbench.ir import Message
from structbench.spec.engines import SglangEngineSpec

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")


def _folder(tmp_path: Path) -> Path:
    words = ["[UNK]", "<|im_end|>", "<|im_start|>system", "<|im_start|>user", "<|im_start|>assistant", "hi"]
    tk = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]")
    )
    tk.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", eos_token="[UNK]")
    out = tmp_path / "tiny-model"
    fast.save_pretrained(str(out))
    return out


def _started(tmp_path: Path, mode: str) -> SglangEngine:
    spec = SglangEngineSpec(name=f"sglang-{mode}", url="http://127.0.0.1:1", mode=mode)  # type: ignore[arg-type]
    engine = SglangEngine(spec, EngineEnv(tmp_path))
    # What start() learns from the server: its model folder and the role template.
    engine._model_path, engine._template = str(_folder(tmp_path)), SMOLLM2_TEMPLATE
    return engine


@pytest.mark.parametrize("mode", ["program", "generate"])
def test_sglang_caches_its_stop_string_and_in_program_mode_its_fork_prefixes(
    tmp_path: Path, mode: str
) -> None:
    found = _started(tmp_path, mode).prompt_tokens()
    assert found is not None and found.label == "model tokenizer (tiny-model)"
    msgs = (Message("system", "hi"), Message("user", "hi"))
    assert found.render(msgs).endswith("<|im_start|>assistant\n")
    # The template's stop string "<|im_end|>", not the tokenizer's EOS ("[UNK]", 0).
    assert found.stop_ids == (1,)
    if mode == "generate":  # per-call /generate: every prefill is a recorded call
        assert found.fork_prefix is None
    else:  # the interpreter prefills the text so far, without the generation prompt
        assert found.fork_prefix is not None
        assert found.fork_prefix(msgs) == found.render(msgs).removesuffix("<|im_start|>assistant\n")


def test_no_template_or_tokenizer_yet_means_no_prompt_tokens(tmp_path: Path) -> None:
    engine = _started(tmp_path, "program")
    engine._model_path = "/nonexistent/model"
    assert engine.prompt_tokens() is None
    engine._template = None
    assert engine.prompt_tokens() is None
