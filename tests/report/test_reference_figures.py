"""Published reference figures (report/reference.py) and the report's tables that set them beside ours."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from structbench.metrics.backend_matrix import ALL_SUBSETS, MatrixRow
from structbench.metrics.coverage import CoverageStats
from structbench.metrics.scores import ScoreRate, score_rate
from structbench.report import html, markdown
from structbench.report.backend_matrix import matrix_tables
from structbench.report.reference import (
    JSB_COVERAGE,
    JSB_FRAMEWORK,
    JSB_SOURCE,
    MASKBENCH,
    MASKBENCH_ENGINE,
    MASKBENCH_SOURCE,
    jsb_coverage,
    maskbench_figure,
)
from structbench.report.tables import Table
from structbench.stats import describe

PUBLISHED = "Beside the published coverage (JSONSchemaBench)"
MASKS = "Beside the published mask and compile times (MaskBench)"


#: Rows of Table 4 whose printed compliance is not empirical / declared (the paper's, kept).
PRINTED_SO = {("Outlines", "Github_easy"), ("Outlines", "Snowplow")}


def test_table_4_is_consistent_with_itself() -> None:
    # Compliance = empirical / declared in the paper, each printed to 2 decimals: a mistyped
    # figure falls outside what that rounding allows.
    broken = set()
    for c in JSB_COVERAGE:
        if c.declared is None or c.empirical is None or c.compliance is None:
            assert (c.framework, c.subset) == ("XGrammar", "Snowplow")  # the paper's only NA
            continue
        low = (c.empirical - 0.005) / (c.declared + 0.005) - 0.005
        high = min(1.0, (c.empirical + 0.005) / (c.declared - 0.005)) + 0.005
        if not low <= c.compliance <= high:
            broken.add((c.framework, c.subset))
        assert 0.0 <= c.empirical <= c.declared <= 1.0, c
    assert broken == PRINTED_SO
    subsets = {c.subset for c in JSB_COVERAGE}
    assert len(subsets) == 8 and not subsets & {"Github_trivial", "Github_ultra"}  # the paper left them out


def test_lookup_by_backend_and_subset() -> None:
    hard = jsb_coverage("xgrammar", "Github_hard")
    assert hard is not None and (hard.framework, hard.empirical) == ("XGrammar", 0.28)
    # vLLM's guidance and SGLang's llguidance both run llguidance: the paper's Guidance.
    assert jsb_coverage("guidance", "Kubernetes") == jsb_coverage("llguidance", "Kubernetes")
    assert jsb_coverage("outlines", "Github_easy") is not None
    for backend, subset in (
        ("auto", "Github_hard"),
        ("unknown", "Github_hard"),
        ("xgrammar", "Github_ultra"),
    ):
        assert jsb_coverage(backend, subset) is None
    assert set(JSB_FRAMEWORK) == set(MASKBENCH_ENGINE)
    for backend in MASKBENCH_ENGINE:
        m = maskbench_figure(backend)
        assert m is not None and m.tbm_p50_us <= m.tbm_p99_us and m.ttfm_p50_us <= m.ttfm_p99_us
        assert 0 < m.passing <= m.schemas
    assert maskbench_figure("auto") is None
    assert len(MASKBENCH) == 5


def _row(engine: str, backend: str, subset: str, valid: int, accepted: int, n: int = 4) -> MatrixRow:
    def rate(name: str, values: list[float]) -> ScoreRate:
        return score_rate(values, 0, name, 100, 0)

    stats = CoverageStats(
        schemas=n,
        declared=rate("declared", [1.0] * accepted + [0.0] * (n - accepted)),
        empirical=rate("empirical", [1.0] * valid + [0.0] * (n - valid)),
        compliance=rate("compliance", [1.0] * valid + [0.0] * (accepted - valid)),
        silent=accepted - valid,
        loud=n - accepted,
        errors=0,
    )
    compile_ms = describe([120.0, 80.0]) if subset == ALL_SUBSETS else describe([])
    return MatrixRow(engine, "jsb", subset, backend, "launch flag", "lib 1.0", stats, compile_ms=compile_ms)


def _matrix() -> tuple[MatrixRow, ...]:
    rows = []
    for engine, backend in (
        ("vllm-xgrammar", "xgrammar"),
        ("sglang-llguidance", "llguidance"),
        ("v", "auto"),
    ):
        for subset in (ALL_SUBSETS, "Github_hard", "Github_ultra", "mine"):
            rows.append(_row(engine, backend, subset, valid=1, accepted=2))
    return tuple(rows)


def test_published_figures_only_where_backend_and_subset_match() -> None:
    tables = {t.title: t for t in matrix_tables(_matrix())}
    pub = tables[PUBLISHED]
    # Only Github_hard is in the paper, and "auto" names no framework; the whole-corpus row has none.
    assert [(r[0], r[1], r[6]) for r in pub.rows] == [
        ("Github_hard", "vllm-xgrammar", "XGrammar"),
        ("Github_hard", "sglang-llguidance", "Guidance"),
    ]
    xg = pub.rows[0]
    assert xg[4].startswith("25.0 [") and xg[7:10] == ("28.0", "69.0", "41.0")  # ours, then Table 4
    assert xg[10] == JSB_SOURCE.label and JSB_SOURCE.setting in pub.notes[0]
    masks = tables[MASKS]
    assert [(r[0], r[5]) for r in masks.rows] == [
        ("vllm-xgrammar", "XGrammar"),
        ("sglang-llguidance", "LLGuidance"),
    ]
    assert masks.rows[0][3] == "100" and masks.rows[0][7:11] == ("919", "900,000", "9", "5,687")
    assert masks.rows[1][11] == "8,909 / 11,306" and MASKBENCH_SOURCE.reference in masks.notes[0]


def test_na_is_shown_as_the_paper_prints_it() -> None:
    (row,) = matrix_tables((_row("x", "xgrammar", "Snowplow", 1, 1),))[-1].rows
    assert row[6:10] == ("XGrammar", "NA", "NA", "NA")


def test_nothing_published_nothing_shown() -> None:
    titles = [
        t.title for t in matrix_tables(tuple(_row("v", "auto", s, 1, 2) for s in (ALL_SUBSETS, "Kubernetes")))
    ]
    assert PUBLISHED not in titles and MASKS not in titles


@pytest.mark.parametrize("render", [markdown.render_table, html.render_table])
def test_rendered_in_markdown_and_html(render: Callable[[Table], str]) -> None:
    pub = next(t for t in matrix_tables(_matrix()) if t.title == PUBLISHED)
    out = render(pub)
    assert "Beside the published coverage" in out and JSB_SOURCE.label in out and "41.0" in out
