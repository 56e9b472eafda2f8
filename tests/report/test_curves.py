"""The trade-off curve, request timelines and cache picture: drawn when the data allows, else a note."""

from __future__ import annotations

from dataclasses import replace

from test_plots import PNG, cell

from structbench.metrics import CellSummary, LoadPoint, RunInfo, RunSummary
from structbench.metrics.cell import Throughput
from structbench.records import CallRecord
from structbench.report.curves import (
    MAX_TIMELINE_CALLS,
    NO_CACHE,
    NO_TIMELINE,
    NO_TRADEOFF,
    make_curves,
)
from structbench.report.html import render_html
from structbench.report.markdown import render_markdown
from structbench.report.samples import CellSamples, Span, cell_samples


def _spans(n: int) -> CellSamples:
    return CellSamples(spans=tuple(Span(0.01 * i, 0.01 * i + 0.05, 0.01 * i + 0.3) for i in range(n)))


def _summary(cells: list[CellSummary]) -> RunSummary:
    return RunSummary(run=RunInfo("r", "s"), cells=tuple(cells))


def test_all_three_drawn_when_the_data_allows() -> None:
    cells = [cell(e, "t", LoadPoint("concurrency", c)) for e in ("a", "b") for c in (1, 4, 16)]
    cells += [
        cell("v", "fan", LoadPoint("concurrency", 4), "on", "vllm m"),
        cell("v-nocache", "fan", LoadPoint("concurrency", 4), "off", "vllm m"),
    ]
    samples = {c.info.cell_id: _spans(5) for c in cells}
    drawn = make_curves(_summary(cells), samples)
    names = [p.name for p in drawn.plots]
    # The timeline picks the busiest load point (c16 of task t) and draws both engines there.
    assert names == ["tradeoff_t", "timeline_t_c16", "cache_overview"]
    assert all(p.png.startswith(PNG) for p in drawn.plots)
    assert [p.task for p in drawn.plots] == ["t", None, None]
    # Task "fan" has one load point: its curve is absent, and the note says so by name.
    assert drawn.notes == (f"{NO_TRADEOFF} (fan)",)


def test_each_skipped_with_a_note_when_the_data_does_not_allow() -> None:
    # One load point, no streamed calls, no cache-off arm.
    cells = [cell("a", "t", LoadPoint("concurrency", 8)), cell("b", "t", LoadPoint("concurrency", 8))]
    one_call = {cells[0].info.cell_id: _spans(1)}  # a timeline needs 2 or more calls
    drawn = make_curves(_summary(cells), one_call)
    assert drawn.plots == ()
    assert drawn.notes == (f"{NO_TRADEOFF} (t)", NO_TIMELINE, NO_CACHE)
    summary = _summary(cells)
    md = render_markdown(summary, (), None, drawn.notes)
    assert f"## Plots\n\n- {NO_TRADEOFF} (t)\n- {NO_TIMELINE}\n- {NO_CACHE}\n" in md
    html = render_html(summary, [], None, drawn.notes)
    assert f'<p class="notes">{NO_TIMELINE}</p>' in html


def test_a_sweep_without_throughput_draws_no_curve() -> None:
    cells = [cell("a", "t", LoadPoint("concurrency", c)) for c in (1, 4)]
    cells = [replace(c, throughput=Throughput()) for c in cells]
    drawn = make_curves(_summary(cells), {})
    assert "tradeoff_t" not in [p.name for p in drawn.plots]


def test_timeline_caps_the_calls_it_draws() -> None:
    cells = [cell("a", "t", LoadPoint("concurrency", 8))]
    drawn = make_curves(_summary(cells), {cells[0].info.cell_id: _spans(MAX_TIMELINE_CALLS + 5)})
    (timeline,) = [p for p in drawn.plots if p.name.startswith("timeline")]
    assert f"first {MAX_TIMELINE_CALLS} calls" in timeline.title


def test_spans_are_relative_to_the_cells_first_send() -> None:
    def rec(item: str, sent: float, first: float | None, done: float) -> CallRecord:
        return CallRecord(
            cell_id="c", engine="e", task="t", item_id=item, branch=0, turn=0, gen_name="g",
            constraint="none", t_scheduled=sent, t_sent=sent, t_first_token=first, t_done=done,
            completion_tokens=3, text="x",
        )  # fmt: skip

    samples = cell_samples([rec("b", 11.0, 11.5, 12.0), rec("a", 10.0, None, 10.5)])
    assert samples["c"].spans == (Span(0.0, None, 0.5), Span(1.0, 1.5, 2.0))
