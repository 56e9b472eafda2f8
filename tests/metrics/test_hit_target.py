"""The hit-target check: achieved against target within max(0.5 pp, block / mean prompt length)."""

from __future__ import annotations

import pytest

from structbench.engines.counters import HIT_TOKENS, QUERY_TOKENS
from structbench.metrics import CellInfo, CellRuntime, SummaryOptions, summarize_cell
from structbench.metrics.cache import IdealCache
from structbench.metrics.hit_target import CLIENT, SERVER, HitTarget
from structbench.metrics.serialize import cell_to_dict
from structbench.records import CallRecord


def _rec(i: int, prompt: int = 1000, cached: int | None = 250, warmup: bool = False) -> CallRecord:
    return CallRecord(
        "c",
        "e",
        "hit-t30",
        f"hit/r{i}",
        0,
        0,
        "answer",
        "none",
        warmup=warmup,
        t_sent=float(i),
        t_done=i + 0.5,
        prompt_tokens=prompt,
        cached_tokens=cached,
    )


def _counters(hits: float, queries: float) -> tuple[tuple[str, float], ...]:
    return ((HIT_TOKENS, hits), (QUERY_TOKENS, queries))


INFO = CellInfo("c", "e", "hit-t30", "prefix_hit", target_hit_rate=0.3, input_len=1000)


def test_the_check_uses_the_server_counters_and_the_block_tolerance() -> None:
    runtime = CellRuntime(
        status="complete",
        metrics_before=_counters(1000, 2000),
        metrics_after=_counters(1000 + 2 * 256, 2000 + 2 * 1000),
        ideal=IdealCache(2, 2000, 616, 128, 512, "model tokenizer (m)"),
        cache_block_size=128,
        cache_block_source="server (/metrics vllm:cache_config_info)",
    )
    # A primer (warm-up) is outside every figure, mean prompt length included.
    recs = [_rec(0, prompt=400, cached=0, warmup=True), _rec(1), _rec(2)]
    h = summarize_cell(INFO, runtime, recs, {}, SummaryOptions(bootstrap=0)).hit_target
    assert h is not None
    assert (h.achieved, h.achieved_source) == (pytest.approx(0.256), SERVER)
    assert (h.theoretical, h.ideal) == (pytest.approx(0.308), pytest.approx(0.256))
    assert h.mean_prompt_len == 1000 and h.tolerance == pytest.approx(0.128)
    assert h.error == pytest.approx(-0.044) and h.passed is True
    d = cell_to_dict(summarize_cell(INFO, runtime, recs, {}, SummaryOptions(bootstrap=0)))["hit_target"]
    assert isinstance(d, dict)
    assert d["passed"] is True and d["block_source"] == "server (/metrics vllm:cache_config_info)"
    assert d["tolerance"] == pytest.approx(0.128) and d["target"] == 0.3


def test_without_counters_the_client_rate_is_judged() -> None:
    runtime = CellRuntime(status="complete", cache_block_size=16, cache_block_source="vLLM default")
    h = summarize_cell(INFO, runtime, [_rec(1, cached=100)], {}, SummaryOptions(bootstrap=0)).hit_target
    assert h is not None and (h.achieved, h.achieved_source) == (pytest.approx(0.1), CLIENT)
    # 16 / 1000 = 1.6 pp: a 20 pp miss fails.
    assert h.tolerance == pytest.approx(0.016) and h.passed is False


@pytest.mark.parametrize(
    ("achieved", "block", "mean_len", "passed"),
    [
        (0.304, 1, 1000.0, True),  # the 0.5 pp floor: a page size of 1 is not zero tolerance
        (0.306, 1, 1000.0, False),
        (0.30 - 0.016, 16, 1000.0, True),  # exactly on the block edge
        (0.30 - 0.017, 16, 1000.0, False),
        (0.30 + 0.017, 16, 1000.0, False),  # above the target is a miss too
        (None, 16, 1000.0, None),  # nothing reported: no verdict
        (0.3, None, 1000.0, None),  # no block size: no tolerance
    ],
)
def test_tolerance_is_the_larger_of_half_a_point_and_one_block(
    achieved: float | None, block: int | None, mean_len: float, passed: bool | None
) -> None:
    h = HitTarget(0.3, 1000, achieved, SERVER, block_size=block, mean_prompt_len=mean_len)
    assert h.passed is passed


def test_cells_without_a_target_have_no_check() -> None:
    s = summarize_cell(CellInfo("c", "e", "t"), CellRuntime(), [_rec(1)], {}, SummaryOptions(bootstrap=0))
    assert s.hit_target is None and "hit_target" not in cell_to_dict(s)
