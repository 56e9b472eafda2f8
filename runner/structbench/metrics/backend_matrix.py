"""The grammar-backend matrix: one row per engine variant x corpus subset (pure functions).

A suite may hold several variants of one engine (``vllm-xgrammar``, ``vllm-guidance``):
each is an engine of its own name whose manifest facts say which grammar backend and
library version it ran (:mod:`structbench.engine_facts`). For every variant and subset
(and ``*`` for all of them) a row holds:

- the coverage rates of :mod:`structbench.metrics.coverage` (declared, empirical,
  compliance, silent, loud, ...) and a few silent failures with the keyword they broke;
- compile time, cold vs warm: per schema, the TTFT of its first request (an unseen
  schema, so the grammar is compiled) and of its warm repeats (same prompt and schema,
  grammar cached). ``compile`` is their difference; p50 and p99 over schemas. The
  prompt's prefill is the same on both sides, so it cancels; a prefix cache makes the
  repeat's prefill cheaper, which this attributes to compilation (read it at low
  concurrency, with the engine's prefix cache off for the purest number);
- the constrained / free TPOT ratio: mean TPOT of the constrained calls over that of
  the free twin task's calls (same prompts, ``pair``) on the same variant and subset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from structbench.engine_facts import GRAMMAR_BACKEND, GRAMMAR_LIBRARY, GRAMMAR_SOURCE
from structbench.metrics.calls import call_timing, measured
from structbench.metrics.cost import corpus_meta, task_roles
from structbench.metrics.coverage import CorpusCall, CoverageStats, EngineCoverage
from structbench.metrics.inputs import EngineRow
from structbench.records import CallRecord
from structbench.stats import EMPTY_DISTRIBUTION, Distribution, describe

__all__ = ["ALL_SUBSETS", "MatrixRow", "SilentExample", "backend_matrix"]

#: The subset label of a variant's row over its whole corpus.
ALL_SUBSETS = "*"
_EXAMPLES = 3
_MAX_REASON = 160


@dataclass(frozen=True, slots=True)
class SilentExample:
    """One silent failure: an accepted schema whose output broke it."""

    schema_id: str
    keyword: str
    reason: str


@dataclass(frozen=True, slots=True)
class MatrixRow:
    """One engine variant on one subset of one ``schema_corpus`` task."""

    engine: str
    task: str
    subset: str
    backend: str
    backend_source: str
    library: str
    stats: CoverageStats
    silent_examples: tuple[SilentExample, ...] = ()
    cold_ttft_ms: Distribution = EMPTY_DISTRIBUTION
    warm_ttft_ms: Distribution = EMPTY_DISTRIBUTION
    compile_ms: Distribution = EMPTY_DISTRIBUTION
    constrained_tpot_ms: float | None = None
    free_tpot_ms: float | None = None

    @property
    def tpot_ratio(self) -> float | None:
        """Constrained / free mean TPOT (above 1: the constraint slows decoding)."""
        a, b = self.constrained_tpot_ms, self.free_tpot_ms
        return a / b if a is not None and b else None

    def to_dict(self) -> dict[str, object]:
        """JSON form for ``summary.json``'s ``corpus.backend_matrix``."""

        def dist(d: Distribution) -> dict[str, object]:
            return {"n": d.n, "p50": d.median, "p99": d.p99, "mean": d.mean}

        return {
            "engine": self.engine,
            "task": self.task,
            "subset": self.subset,
            "grammar_backend": self.backend,
            "grammar_backend_source": self.backend_source,
            "grammar_library": self.library,
            **self.stats.to_dict(),
            "silent_examples": [
                {"schema_id": e.schema_id, "keyword": e.keyword, "reason": e.reason}
                for e in self.silent_examples
            ],
            "cold_ttft_ms": dist(self.cold_ttft_ms),
            "warm_ttft_ms": dist(self.warm_ttft_ms),
            "compile_ms": dist(self.compile_ms),
            "constrained_tpot_ms": self.constrained_tpot_ms,
            "free_tpot_ms": self.free_tpot_ms,
            "tpot_ratio": self.tpot_ratio,
        }


def _examples(calls: Sequence[CorpusCall], subset: str) -> tuple[SilentExample, ...]:
    """The first few silent failures (by schema id) of a subset, one per schema."""
    seen: dict[str, SilentExample] = {}
    for c in sorted(calls, key=lambda c: c.schema_id):
        if c.outcome == "invalid" and c.schema_id not in seen and subset in (ALL_SUBSETS, c.subset):
            reason = " ".join(c.reason.split())[:_MAX_REASON]
            seen[c.schema_id] = SilentExample(c.schema_id, c.keyword or "other", reason)
    return tuple(seen.values())[:_EXAMPLES]


def _compile_times(
    records: Sequence[CallRecord], engine: str, task: str, subset: str
) -> tuple[Distribution, Distribution, Distribution]:
    """Cold TTFT, warm TTFT and their per-schema difference, over schemas with both.

    Schemas a warm-up request compiled are left out: their first measured copy is warm.
    """
    warmed = {
        (r.cell_id, m.schema_id)
        for r in records
        if r.warmup and r.engine == engine and (m := corpus_meta(r)) is not None
    }
    by_schema: dict[tuple[str, str], dict[int, float]] = {}
    for r in measured(records):
        meta = corpus_meta(r)
        if r.engine != engine or r.task != task or meta is None or meta.unique or not r.ok:
            continue
        if subset not in (ALL_SUBSETS, meta.subset) or (r.cell_id, meta.schema_id) in warmed:
            continue
        ttft = call_timing(r).ttft_ms
        if ttft is not None:
            by_schema.setdefault((r.cell_id, meta.schema_id), {})[meta.repeat] = ttft
    cold, warm, delta = [], [], []
    for reps in by_schema.values():
        later = [t for k, t in reps.items() if k > 0]
        if 0 in reps and later:
            cold.append(reps[0])
            warm.append(min(later))
            delta.append(reps[0] - min(later))
    return describe(cold), describe(warm), describe(delta)


def _mean_tpot(records: Sequence[CallRecord], engine: str, tasks: set[str], subset: str) -> float | None:
    tpots = []
    for r in measured(records):
        meta = corpus_meta(r)
        if r.engine != engine or r.task not in tasks or meta is None or not r.ok:
            continue
        if subset in (ALL_SUBSETS, meta.subset) and (t := call_timing(r).tpot_ms) is not None:
            tpots.append(t)
    return sum(tpots) / len(tpots) if tpots else None


def backend_matrix(
    records: Sequence[CallRecord],
    calls: Sequence[CorpusCall],
    coverage: Sequence[EngineCoverage],
    engines: Sequence[EngineRow],
) -> tuple[MatrixRow, ...]:
    """The matrix rows of every engine variant and constrained task, ``*`` first, then subsets.

    Args:
        records: Every record of the run (warm-ups included, to leave their schemas out).
        calls: The classified constrained calls (:func:`~structbench.metrics.coverage.corpus_calls`).
        coverage: Per engine and task, from :func:`~structbench.metrics.coverage.engine_coverage`.
        engines: The manifest's engines (their grammar facts).
    """
    facts: Mapping[str, dict[str, str]] = {e.name: dict(e.extra) for e in engines}
    roles = task_roles(records)
    out = []
    for cov in coverage:
        extra = facts.get(cov.engine, {})
        role = roles.get(cov.task)
        free = {
            t
            for t, r in roles.items()
            if role is not None and r.mode == "free" and r.pair_key == role.pair_key
        }
        mine = [c for c in calls if c.engine == cov.engine and c.task == cov.task]
        for subset, stats in ((ALL_SUBSETS, cov.overall), *cov.subsets):
            cold, warm, delta = _compile_times(records, cov.engine, cov.task, subset)
            out.append(
                MatrixRow(
                    engine=cov.engine,
                    task=cov.task,
                    subset=subset,
                    backend=extra.get(GRAMMAR_BACKEND, "unknown"),
                    backend_source=extra.get(GRAMMAR_SOURCE, "not recorded"),
                    library=extra.get(GRAMMAR_LIBRARY, "not recorded"),
                    stats=stats,
                    silent_examples=_examples(mine, subset),
                    cold_ttft_ms=cold,
                    warm_ttft_ms=warm,
                    compile_ms=delta,
                    constrained_tpot_ms=_mean_tpot(records, cov.engine, {cov.task}, subset),
                    free_tpot_ms=_mean_tpot(records, cov.engine, free, subset) if free else None,
                )
            )
    return tuple(out)
