"""The run header names each engine's kernels and KV capacity when its server said them."""

from __future__ import annotations

from structbench.metrics import EngineRow, RunInfo, RunSummary
from structbench.report.tables import header_rows


def test_engine_header_shows_kernels_and_kv_tokens() -> None:
    facts = (("attention_backend", "FLASH_ATTN"), ("grammar_backend", "auto"), ("kv_cache_tokens", "121936"))
    engines = (
        EngineRow("vllm", "vllm", "./models/qwen-hf", "0.26.0", extra=(("cache", "on"), *facts)),
        EngineRow("emb", "embedded", "smollm2", "1.0"),
    )
    rows = dict(header_rows(RunSummary(run=RunInfo("r", "s", engines=engines), cells=())))
    assert rows["Engines"] == (
        "vllm: vllm qwen-hf (0.26.0) [attention FLASH_ATTN, grammar auto, KV 121,936 tokens]; "
        "emb: embedded smollm2 (1.0)"
    )
