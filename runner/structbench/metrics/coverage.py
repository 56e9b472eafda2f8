"""Schema coverage of constrained decoding, JSONSchemaBench style (pure functions).

Per engine and ``schema_corpus`` task, over the schemas of the corpus, one verdict per
schema (:data:`Outcome`):

- ``valid``: the output validates (the schema's own ``$schema`` draft, formats checked);
- ``invalid``: accepted, finished, and the output violates the schema: a *silent*
  failure, the engine claimed the constraint and did not enforce it;
- ``truncated``: accepted, but the output was cut off by the token limit, so it says
  nothing about enforcement (counted apart from ``invalid``);
- ``unsupported``: the engine refused the schema (a *loud* rejection: "unsupported",
  a compile error, an HTTP 400/422);
- ``compile_limit``: compiling the schema's grammar ran past the engine's time or memory
  limit (the embedded engine's ``compile_timeout_s`` / ``compile_memory_mb``): not
  accepted, and counted apart from the loud rejections;
- ``timeout``: validating the output overran the per-output time limit;
- ``invalid_schema``: the schema is invalid under its own draft: the corpus's fault,
  not the engine's; the reason says why;
- ``error``: the call failed for other reasons (transport, server crash).

Rates: **declared** coverage (accepted: valid, invalid, truncated), **empirical**
coverage (valid) and **compliance** (valid among accepted). ``timeout``,
``invalid_schema`` and ``error`` say nothing about support: they are counted and leave
the denominators. With repeats, the most severe verdict of a schema's calls wins
(:data:`_SEVERITY`). Intervals are Wilson score intervals over schemas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from structbench.engine_facts import COMPILE_LIMIT
from structbench.kinds.corpus_features import feature_order
from structbench.metrics.calls import measured
from structbench.metrics.cost import corpus_meta
from structbench.metrics.scores import ScoreRate, score_rate
from structbench.records import CallRecord, is_rejection
from structbench.scoring.score_run import RecordKey, ScoredRecord, record_key
from structbench.stats import derive_seed

__all__ = [
    "CorpusCall",
    "CoverageStats",
    "EngineCoverage",
    "Outcome",
    "classify_call",
    "corpus_calls",
    "coverage_stats",
    "engine_coverage",
    "failing_keyword",
    "is_rejection",
]

Outcome = Literal[
    "valid", "invalid", "truncated", "unsupported", "compile_limit", "timeout", "invalid_schema", "error"
]
#: Combining a schema's calls: the first outcome present in this order wins. A broken
#: schema is broken whatever the engine did; a timeout leaves the schema unjudged.
_SEVERITY: tuple[Outcome, ...] = (
    "invalid_schema",
    "unsupported",
    "compile_limit",
    "invalid",
    "truncated",
    "timeout",
    "valid",
    "error",
)
#: Verdicts that say nothing about the engine's support of the schema.
_UNJUDGED: frozenset[Outcome] = frozenset({"timeout", "invalid_schema", "error"})
_KEYWORD = re.compile(r"^\$\S*: \[([^\]]+)\]")
_MAX_FAILURES = 200


@dataclass(frozen=True, slots=True)
class CorpusCall:
    """One measured call of a constrained ``schema_corpus`` task, classified."""

    engine: str
    task: str
    cell_id: str
    schema_id: str
    features: tuple[str, ...]
    outcome: Outcome
    #: The error (unsupported, error) or the validity scorer's reason (the others).
    reason: str = ""
    #: What broke an invalid output: a JSON Schema keyword (``pattern``, ``format``),
    #: ``truncated`` (ran out of tokens) or ``not_json``.
    keyword: str | None = None
    #: The corpus subset of the schema ("" when the corpus has none).
    subset: str = ""


@dataclass(frozen=True, slots=True)
class CoverageStats:
    """Coverage of one engine over a set of schemas (all, or those with a feature)."""

    schemas: int
    declared: ScoreRate
    empirical: ScoreRate
    compliance: ScoreRate
    silent: int
    loud: int
    errors: int
    truncated: int = 0
    timeouts: int = 0
    invalid_schemas: int = 0
    compile_limits: int = 0

    def to_dict(self) -> dict[str, object]:
        """JSON form for ``summary.json``."""
        return {
            "schemas": self.schemas,
            "declared": self.declared.to_dict(),
            "empirical": self.empirical.to_dict(),
            "compliance": self.compliance.to_dict(),
            "silent": self.silent,
            "loud": self.loud,
            "errors": self.errors,
            "truncated": self.truncated,
            "timeouts": self.timeouts,
            "invalid_schemas": self.invalid_schemas,
            "compile_limits": self.compile_limits,
        }


@dataclass(frozen=True, slots=True)
class EngineCoverage:
    """Coverage of one engine on one constrained ``schema_corpus`` task.

    Attributes:
        engine: Engine name.
        task: Task name.
        overall: Over every schema.
        features: Per feature tag, in tag order.
        subsets: Per corpus subset, in name order (empty when the corpus has none).
        keywords: Silent failures (``invalid``) counted by the keyword that broke them.
        failures: ``(schema_id, outcome, reason)`` of every schema not valid.
    """

    engine: str
    task: str
    overall: CoverageStats
    features: tuple[tuple[str, CoverageStats], ...] = ()
    keywords: tuple[tuple[str, int], ...] = ()
    subsets: tuple[tuple[str, CoverageStats], ...] = ()
    failures: tuple[tuple[str, Outcome, str], ...] = ()

    def to_dict(self) -> dict[str, object]:
        """JSON form for ``summary.json``."""
        return {
            "engine": self.engine,
            "task": self.task,
            "overall": self.overall.to_dict(),
            "features": {f: s.to_dict() for f, s in self.features},
            "subsets": {name: s.to_dict() for name, s in self.subsets},
            "silent_by_keyword": dict(self.keywords),
            "failures": [{"schema_id": s, "outcome": o, "reason": r} for s, o, r in self.failures],
        }


def failing_keyword(reason: str) -> str | None:
    """The keyword of a ``schema_valid`` reason (``$.x: [pattern] ...``), or a failure kind."""
    m = _KEYWORD.match(reason)
    if m:
        return m.group(1)
    if reason.startswith("not JSON: truncated") or reason.startswith("truncated"):
        return "truncated"
    if reason.startswith("not JSON") or reason == "empty output":
        return "not_json"
    if reason.startswith("timeout"):
        return "timeout"
    return None


def classify_call(rec: CallRecord, scored: ScoredRecord | None) -> tuple[Outcome, str, str | None]:
    """``(outcome, reason, keyword)`` of one call from its error and ``schema_valid`` score."""
    score = scored.get("schema_valid") if scored is not None else None
    if score is not None and score.reason.startswith("invalid schema"):
        return "invalid_schema", score.reason, None
    if rec.error is not None:
        if rec.error.startswith(COMPILE_LIMIT):
            return "compile_limit", rec.error, None
        return ("unsupported" if is_rejection(rec.error) else "error"), rec.error, None
    if score is None or score.value is None:
        if score is not None and score.reason.startswith("timeout"):
            return "timeout", score.reason, "timeout"
        # Scoring did not run (or could not): the output is unjudged, not invalid.
        return "error", score.reason if score is not None else "schema_valid not scored", None
    if score.value >= 1.0:
        return "valid", "", None
    keyword = failing_keyword(score.reason) or "other"
    if rec.finish_reason == "length" or (keyword == "truncated" and rec.finish_reason is None):
        # Cut by max_tokens: whatever the validator says, the cause is the token limit.
        return "truncated", score.reason, "truncated"
    return "invalid", score.reason, keyword


def corpus_calls(records: Iterable[CallRecord], scored: Mapping[RecordKey, ScoredRecord]) -> list[CorpusCall]:
    """Classify the measured calls of constrained ``schema_corpus`` tasks (others are skipped)."""
    out = []
    for rec in measured(records):
        meta = corpus_meta(rec)
        if meta is None or meta.mode != "constrained" or rec.constraint != "json_schema":
            continue
        outcome, reason, keyword = classify_call(rec, scored.get(record_key(rec)))
        out.append(
            CorpusCall(
                rec.engine,
                rec.task,
                rec.cell_id,
                meta.schema_id,
                meta.features,
                outcome,
                reason,
                keyword,
                meta.subset,
            )
        )
    return out


def _verdicts(calls: Sequence[CorpusCall]) -> dict[str, CorpusCall]:
    """One call per schema: the most severe outcome among its calls (see :data:`_SEVERITY`)."""
    best: dict[str, CorpusCall] = {}
    for c in calls:
        old = best.get(c.schema_id)
        if old is None or _SEVERITY.index(c.outcome) < _SEVERITY.index(old.outcome):
            best[c.schema_id] = c
    return best


def coverage_stats(verdicts: Sequence[CorpusCall], bootstrap: int, seed: int) -> CoverageStats:
    """Declared, empirical and compliance rates over one verdict per schema."""
    judged = [v for v in verdicts if v.outcome not in _UNJUDGED]
    accepted = [v for v in judged if v.outcome not in ("unsupported", "compile_limit")]

    def rate(name: str, vs: Sequence[CorpusCall], ok: frozenset[Outcome]) -> ScoreRate:
        values = [1.0 if v.outcome in ok else 0.0 for v in vs]
        return score_rate(values, len(verdicts) - len(vs), name, bootstrap, derive_seed(seed, name))

    return CoverageStats(
        schemas=len(verdicts),
        declared=rate("declared", judged, frozenset({"valid", "invalid", "truncated"})),
        empirical=rate("empirical", judged, frozenset({"valid"})),
        compliance=rate("compliance", accepted, frozenset({"valid"})),
        silent=sum(v.outcome == "invalid" for v in judged),
        loud=sum(v.outcome == "unsupported" for v in judged),
        errors=sum(v.outcome == "error" for v in verdicts),
        truncated=sum(v.outcome == "truncated" for v in verdicts),
        timeouts=sum(v.outcome == "timeout" for v in verdicts),
        invalid_schemas=sum(v.outcome == "invalid_schema" for v in verdicts),
        compile_limits=sum(v.outcome == "compile_limit" for v in verdicts),
    )


def engine_coverage(
    engine: str, task: str, calls: Sequence[CorpusCall], bootstrap: int = 1000, seed: int = 0
) -> EngineCoverage:
    """Coverage of one engine on one task, overall and per feature tag.

    Args:
        engine: Engine name (labels the result; ``calls`` are not filtered by it).
        task: Task name (ditto).
        calls: The engine's classified calls on the task, all its cells pooled.
        bootstrap: Resamples per interval (0 = no intervals).
        seed: Run seed; each interval's seed derives from it, the engine, task and feature.
    """
    verdicts = list(_verdicts(calls).values())
    features = sorted({f for v in verdicts for f in v.features}, key=feature_order)
    per_feature = tuple(
        (
            f,
            coverage_stats(
                [v for v in verdicts if f in v.features], bootstrap, derive_seed(seed, engine, task, f)
            ),
        )
        for f in features
    )
    subsets = tuple(
        (
            name,
            coverage_stats(
                [v for v in verdicts if v.subset == name],
                bootstrap,
                derive_seed(seed, engine, task, "@" + name),
            ),
        )
        for name in sorted({v.subset for v in verdicts if v.subset})
    )
    counts: dict[str, int] = {}
    for v in verdicts:
        if v.outcome == "invalid":
            counts[v.keyword or "other"] = counts.get(v.keyword or "other", 0) + 1
    failures = tuple(
        (v.schema_id, v.outcome, v.reason)
        for v in sorted(verdicts, key=lambda v: v.schema_id)
        if v.outcome != "valid"
    )
    return EngineCoverage(
        engine=engine,
        task=task,
        overall=coverage_stats(verdicts, bootstrap, derive_seed(seed, engine, task, "*")),
        features=per_feature,
        subsets=subsets,
        keywords=tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        failures=failures[:_MAX_FAILURES],
    )
