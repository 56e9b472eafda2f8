"""The hit-target table: one row per prefix_hit cell, in both report formats."""

from __future__ import annotations

from structbench.metrics import CellInfo, CellSummary, HitTarget, RunInfo, RunSummary
from structbench.metrics.hit_target import CLIENT, SERVER
from structbench.report.hit_target import TITLE, hit_target_table
from structbench.report.html import render_html
from structbench.report.markdown import render_markdown


def _cell(task: str, target: float, achieved: float | None, source: str = SERVER) -> CellSummary:
    h = HitTarget(
        target,
        1024,
        achieved,
        source if achieved is not None else None,
        theoretical=target + 0.001,
        ideal=achieved,
        block_size=128,
        block_source="server (/metrics vllm:cache_config_info)",
        mean_prompt_len=1024.0,
    )
    info = CellInfo(f"vllm.{task}.c2", "vllm", task, "prefix_hit", target_hit_rate=target, input_len=1024)
    return CellSummary(info, status="complete", hit_target=h)


def _summary(*cells: CellSummary) -> RunSummary:
    return RunSummary(RunInfo("r", "s", status="complete"), cells)


def test_one_row_per_target_with_the_verdict() -> None:
    other = CellSummary(CellInfo("vllm.json.c2", "vllm", "json"), status="complete")
    t = hit_target_table(
        _summary(
            _cell("hit-t0", 0.0, 0.0), _cell("hit-t60", 0.6, 0.4), other, _cell("hit-t90", 0.9, 0.875, CLIENT)
        )
    )
    assert t is not None and t.title == TITLE
    rows = {r[0]: dict(zip(t.headers, r, strict=True)) for r in t.rows}
    assert list(rows) == ["hit-t0", "hit-t60", "hit-t90"]
    assert rows["hit-t0"]["check"] == "pass" and rows["hit-t0"]["tolerance (pp)"] == "12.50"
    assert rows["hit-t60"]["check"] == "FAIL" and rows["hit-t60"]["achieved - target (pp)"] == "-20.00"
    assert rows["hit-t90"]["achieved %"] == "87.5 (client)" and rows["hit-t90"]["theoretical %"] == "90.1"
    assert any("vllm: 128 from server (/metrics vllm:cache_config_info)" in n for n in t.notes)


def test_the_table_is_in_both_reports_and_absent_without_targets() -> None:
    s = _summary(_cell("hit-t30", 0.3, None))
    assert "not measured" in hit_target_table(s).rows[0]  # type: ignore[union-attr]
    assert f"## {TITLE}" in render_markdown(s)
    assert f"<h2>{TITLE}</h2>" in render_html(s, ())
    plain = _summary(CellSummary(CellInfo("c", "e", "t"), status="complete"))
    assert hit_target_table(plain) is None and TITLE not in render_markdown(plain)
