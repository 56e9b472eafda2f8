"""The grammar-backend matrix: per engine variant x subset rows, from scripted records."""

from __future__ import annotations

import json

import pytest

from structbench.metrics import SummaryOptions
from structbench.metrics.backend_matrix import ALL_SUBSETS, MatrixRow
from structbench.metrics.corpus import summarize_corpus
from structbench.metrics.inputs import EngineRow
from structbench.records import CallRecord
from structbench.report.backend_matrix import matrix_tables
from structbench.scoring.base import Score
from structbench.scoring.score_run import ScoredRecord, record_key


def rec(
    engine: str,
    sid: str,
    subset: str,
    *,
    repeat: int = 0,
    mode: str = "constrained",
    ttft: float = 0.1,
    decode_s: float = 1.0,
    error: str | None = None,
    warmup: bool = False,
) -> CallRecord:
    task = "corpus" if mode == "constrained" else "corpus_free"
    meta = (
        ("schema_id", f"{subset}/{sid}"),
        ("features", ""),
        ("repeat", str(repeat)),
        ("mode", mode),
        ("unique", "0"),
        ("pair", "p"),
        ("subset", subset),
    )
    sent = 10.0 + 5 * repeat
    ok = error is None
    return CallRecord(
        cell_id=f"{engine}.{task}.c1",
        engine=engine,
        task=task,
        item_id=f"{task}/{subset}/{sid}/r{repeat}" + ("~warmup0" if warmup else ""),
        branch=0,
        turn=0,
        gen_name="answer",
        constraint="json_schema" if mode == "constrained" else "none",
        warmup=warmup,
        t_scheduled=sent,
        t_sent=sent,
        t_first_token=sent + ttft if ok else None,
        t_done=sent + ttft + decode_s if ok else None,
        completion_tokens=11 if ok else None,
        finish_reason="stop" if ok else None,
        text="{}",
        error=error,
        meta=meta,
    )


def _score(r: CallRecord, value: float | None, reason: str = "") -> ScoredRecord:
    return ScoredRecord(record_key(r), (Score("schema_valid", value, reason),))


def _run() -> tuple[list[CallRecord], dict[object, ScoredRecord]]:
    """Two variants on subsets A (2 schemas) and B (1 schema), each schema sent twice, plus free twins.

    ``xg`` compiles slowly (cold TTFT 0.9 s, warm 0.1 s) and is valid everywhere but one silent
    ``minimum`` failure in B; ``gd`` compiles fast, rejects A/2 loudly and decodes twice as slowly.
    """
    records: list[CallRecord] = []
    scores: dict[object, ScoredRecord] = {}
    for engine, cold, decode in (("xg", 0.9, 1.0), ("gd", 0.2, 2.0)):
        for subset, sid in (("A", "1"), ("A", "2"), ("B", "1")):
            rejected = engine == "gd" and (subset, sid) == ("A", "2")
            for k in (0, 1):
                err = "constraint: cannot compile JSON schema" if rejected else None
                r = rec(
                    engine, sid, subset, repeat=k, ttft=cold if k == 0 else 0.1, decode_s=decode, error=err
                )
                records.append(r)
                if engine == "xg" and subset == "B":
                    scores[record_key(r)] = _score(r, 0.0, "$.n: [minimum] -1 is less than the minimum of 0")
                else:
                    scores[record_key(r)] = _score(r, None if rejected else 1.0)
            records.append(rec(engine, sid, subset, mode="free", decode_s=1.0))
    records.append(rec("xg", "1", "A", warmup=True))  # the warm-up compiled xg's A/1
    return records, scores


def _matrix() -> tuple[MatrixRow, ...]:
    records, scores = _run()
    engines = (
        EngineRow(
            "xg", "vllm", extra=(("grammar_backend", "xgrammar"), ("grammar_library", "xgrammar 0.2.8"))
        ),
        EngineRow(
            "gd", "vllm", extra=(("grammar_backend", "guidance"), ("grammar_backend_source", "server"))
        ),
    )
    summary = summarize_corpus(records, scores, [], SummaryOptions(bootstrap=0), engines)  # type: ignore[arg-type]
    assert summary is not None
    return summary.matrix


def test_one_row_per_variant_and_subset_with_its_backend() -> None:
    rows = {(m.engine, m.subset): m for m in _matrix()}
    assert set(rows) == {(e, s) for e in ("xg", "gd") for s in (ALL_SUBSETS, "A", "B")}
    assert rows["xg", "A"].backend == "xgrammar" and rows["xg", "A"].library == "xgrammar 0.2.8"
    assert rows["gd", "B"].backend_source == "server" and rows["gd", "B"].library == "not recorded"


def test_coverage_silent_and_loud_per_subset() -> None:
    rows = {(m.engine, m.subset): m for m in _matrix()}
    xb, ga = rows["xg", "B"].stats, rows["gd", "A"].stats
    assert (xb.schemas, xb.silent, xb.loud, xb.compliance.rate) == (1, 1, 0, 0.0)
    assert (ga.schemas, ga.loud, ga.declared.rate, ga.compliance.rate) == (2, 1, 0.5, 1.0)
    (ex,) = rows["xg", "B"].silent_examples
    assert (ex.schema_id, ex.keyword) == ("B/1", "minimum") and "minimum of 0" in ex.reason
    assert rows["xg", "A"].silent_examples == () and len(rows["xg", ALL_SUBSETS].silent_examples) == 1


def test_compile_time_is_cold_minus_warm_ttft_and_tpot_ratio_against_the_free_twin() -> None:
    rows = {(m.engine, m.subset): m for m in _matrix()}
    xa = rows["xg", "A"]
    # A/1 is left out (the warm-up compiled it, so its first copy was warm): only A/2 counts.
    assert xa.compile_ms.n == 1 and xa.compile_ms.median == pytest.approx(800.0)
    assert rows["xg", ALL_SUBSETS].compile_ms.n == 2
    assert xa.cold_ttft_ms.p99 == pytest.approx(900.0) and xa.warm_ttft_ms.median == pytest.approx(100.0)
    ga = rows["gd", "A"]
    assert ga.compile_ms.n == 1  # the rejected schema has no TTFT
    assert ga.compile_ms.median == pytest.approx(100.0)
    assert rows["xg", ALL_SUBSETS].tpot_ratio == pytest.approx(1.0)
    assert ga.tpot_ratio == pytest.approx(2.0)


def test_matrix_is_json_ready_and_rendered_side_by_side() -> None:
    matrix = _matrix()
    json.dumps([m.to_dict() for m in matrix])
    d = matrix[0].to_dict()
    assert d["grammar_backend"] == "xgrammar" and d["compile_ms"]["p50"] == pytest.approx(800.0)  # type: ignore[index]
    tables = matrix_tables(matrix)
    assert [t.title for t in tables] == [
        "Grammar-backend matrix: corpus",
        "Grammar backends and library versions",
        "Silent failures: examples",
        # xg runs xgrammar, which MaskBench measured; subsets A and B are not JSONSchemaBench's.
        "Beside the published mask and compile times (MaskBench)",
    ]
    subsets = [r[0] for r in tables[0].rows]
    assert subsets == ["all", "all", "A", "A", "B", "B"]  # variants side by side per subset
    assert tables[2].rows[0][:5] == ("xg", "xgrammar", "B", "B/1", "minimum")
    assert matrix_tables(()) == []
