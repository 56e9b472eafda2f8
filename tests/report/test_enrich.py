"""Ideal hit rate and roofline added to summarized cells, from hand-built records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from structbench.cache import chatml_render
from structbench.ir import Message
from structbench.metrics import CellInfo, CellSummary, Latency
from structbench.metrics.cell import CacheStats
from structbench.records import CallRecord
from structbench.report.enrich import (
    APPROX_LABEL,
    PromptCounter,
    approximate_counter,
    cell_ideal,
    counters_by_engine,
    enrich_cells,
)
from structbench.report.model_facts import EngineModel, RunModels, run_models
from structbench.stats import describe


def _rec(cell: str, engine: str, t: float, user: str, warmup: bool = False) -> CallRecord:
    prompt = (Message("system", "manual"), Message("user", user))
    return CallRecord(cell, engine, "t", f"i{t}", 0, 0, "g", "none", warmup=warmup, t_sent=t, prompt=prompt)


def _chars() -> PromptCounter:
    # One token per character of "system|user" content: easy to count by hand.
    return PromptCounter(lambda ms: "|".join(m.content for m in ms), lambda s: [ord(c) for c in s], "chars")


def test_cell_ideal_counts_in_send_order_and_seeds_with_warmup() -> None:
    # "manual|ab" (9), "manual|ac" (9): the second shares "manual|a" = 8 tokens.
    recs = [_rec("c", "e", 2.0, "ac"), _rec("c", "e", 1.0, "ab")]
    ideal = cell_ideal(recs, _chars(), 1)
    assert (ideal.prompts, ideal.prompt_tokens, ideal.covered_tokens) == (2, 18, 8)
    assert ideal.covered_block_tokens == 8  # min(8, 9 - 1)
    # A warm-up with the same prompt first covers the measured "ab" whole but isn't counted.
    warm = [_rec("c", "e", 0.5, "ab", warmup=True), *recs]
    seeded = cell_ideal(warm, _chars(), 1)
    assert (seeded.prompts, seeded.covered_tokens) == (2, 9 + 8)
    assert seeded.covered_block_tokens == 8 + 8  # the last token is always computed
    # Blocks of 4: 8 covered -> at most 8 (len - 1) -> 8 is two whole blocks.
    assert cell_ideal(recs, _chars(), 4).covered_block_tokens == 8
    unsent = [CallRecord("c", "e", "t", "x", 0, 0, "g", "none")]
    assert cell_ideal(unsent, _chars(), 1).prompt_tokens == 0


def test_approximate_counter_renders_chatml() -> None:
    c = approximate_counter()
    assert c.label == APPROX_LABEL
    assert c.render([Message("user", "hi")]) == chatml_render([Message("user", "hi")])
    a, b = c.tokenize("a b"), c.tokenize("a c")
    assert a[:2] == b[:2] and a[2] != b[2]


def _cell(cell: str, engine: str, client: float | None, tpot_ms: float) -> CellSummary:
    info = CellInfo(cell, engine, "t")
    return CellSummary(
        info, "complete", cache=CacheStats(client_hit_rate=client), latency=Latency(tpot=describe([tpot_ms]))
    )


def test_enrich_cells_vllm_blocks_and_of_ideal(tmp_path: Path) -> None:
    long_user = "question " * 40
    recs = [_rec("v.c", "v", float(i), long_user + str(i)) for i in range(4)]
    models = RunModels({"v": EngineModel("v", "vllm", (str(tmp_path / "absent"),))})
    (cell,) = enrich_cells([_cell("v.c", "v", 0.5, 10.0)], recs, models)
    cache = cell.cache
    assert cache.ideal_tokenizer == APPROX_LABEL
    assert cache.ideal_basis == "blocks of 16"
    assert cache.ideal_hit_rate is not None and cache.ideal_token_hit_rate is not None
    assert 0.5 < cache.ideal_hit_rate <= cache.ideal_token_hit_rate < 1
    assert cache.client_of_ideal == pytest.approx(0.5 / cache.ideal_hit_rate)
    assert cache.server_of_ideal is None
    assert cell.roofline is None  # no GPU, no config
    d = cell.to_dict()
    assert d["ideal_cache_hit_rate"] == cache.ideal_hit_rate and d["roofline"] is None
    assert d["client_cache_of_ideal"] == cache.client_of_ideal


def test_enrich_cells_model_tokenizer_and_roofline(tmp_path: Path) -> None:
    from structbench.engines.embedded.checkpoint import smollm2_checkpoint

    ckpt = smollm2_checkpoint()
    manifest = {
        "hardware": {"gpus": [{"index": 0, "name": "NVIDIA H200"}]},
        "engines": {"s": {"kind": "sglang", "model": "/nowhere/smollm2", "extra": {}}},
        "spec": {"suite": {"engines": [{"kind": "sglang", "name": "s", "launch": {"model": str(ckpt)}}]}},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    models = run_models(tmp_path)
    assert models.engines["s"].local_dir() == ckpt  # found through the spec's launch model
    recs = [_rec("s.c", "s", 1.0, "What is 2+2?"), _rec("s.c", "s", 2.0, "What is 3+3?")]
    (cell,) = enrich_cells([_cell("s.c", "s", None, 4.0)], recs, models)
    assert cell.cache.ideal_tokenizer == f"model tokenizer ({ckpt.name})"
    assert cell.cache.ideal_basis == "tokens"
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(ckpt))
    texts = [
        tok.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in r.prompt],
            tokenize=False,
            add_generation_prompt=True,
        )
        for r in recs
    ]
    ids = [tok.encode(t, add_special_tokens=False) for t in texts]
    shared = next(i for i, (a, b) in enumerate(zip(*ids, strict=False)) if a != b)
    expected = min(shared, len(ids[1]) - 1) / (len(ids[0]) + len(ids[1]))
    assert cell.cache.ideal_hit_rate == pytest.approx(expected)
    roof = cell.roofline
    assert roof is not None and roof.gpu.name == "H200"
    # bf16 SmolLM2 (~134.5M params, 269 MB) on 4.8 TB/s: ~17,800 tok/s per sequence.
    assert roof.limit_tok_s == pytest.approx(4.8e12 / (roof.model.params * 2))
    assert roof.fraction == pytest.approx(250 / roof.limit_tok_s)


def test_completions_engines_count_the_plain_text_prompt() -> None:
    counters = counters_by_engine({"o": EngineModel("o", "openai", (), None, "completions")})
    assert counters["o"].render([Message("user", "hi")]) == "user: hi\n\nassistant:"
    assert counters["o"].label.endswith("completions text")
