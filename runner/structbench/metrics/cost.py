"""The cost of structure, from ``schema_corpus`` records (pure functions).

Three measurements, each on cells of the same engine and load point:

- **compile time** per schema: TTFT of its first request minus TTFT of a warm repeat
  (a task with ``repeats >= 2``). Schemas the warm-up item already compiled are left
  out. TTFT includes queueing inside the engine, so the estimate is cleanest at low
  concurrency; it is a per-schema difference, so the prompt's prefill cancels.
- **structured / free**: output throughput and mean TPOT of a constrained task over its
  ``free`` twin (same prompts, no constraint).
- **unique / repeated**: TTFT and throughput of a task whose every request carries an
  unseen schema (``unique_schemas``) against the same corpus with schemas reused.

Tasks pair by their ``pair`` name, else by having identical prompts.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from structbench.metrics.calls import call_timing, measured
from structbench.metrics.cell import CellSummary
from structbench.records import CallRecord
from structbench.stats import Distribution, describe

__all__ = [
    "CompileCost",
    "CorpusMeta",
    "CostSummary",
    "StructureCost",
    "TaskRole",
    "UniqueCost",
    "compile_costs",
    "corpus_meta",
    "structure_costs",
    "summarize_cost",
    "task_roles",
    "unique_costs",
]


@dataclass(frozen=True, slots=True)
class CorpusMeta:
    """The labels a ``schema_corpus`` item puts on its records."""

    schema_id: str
    features: tuple[str, ...] = ()
    repeat: int = 0
    mode: str = "constrained"
    unique: bool = False
    pair: str = ""
    #: The corpus subset (JSONSchemaBench's ``data/<subset>/``); "" when the corpus has none.
    subset: str = ""


@dataclass(frozen=True, slots=True)
class TaskRole:
    """What part a ``schema_corpus`` task plays in a cost comparison."""

    task: str
    mode: str
    unique: bool
    #: The ``pair`` name, else ``prompts:<crc>`` of the task's prompt set.
    pair_key: str
    repeats: int


@dataclass(frozen=True, slots=True)
class CompileCost:
    """Compile time estimates of one cell: TTFT(first copy) - TTFT(warm repeat), per schema."""

    engine: str
    task: str
    load: str
    delta_ms: Distribution
    cold_ttft_ms: Distribution
    warm_ttft_ms: Distribution
    #: Schemas left out: compiled by the warm-up, or a copy failed.
    skipped: int = 0

    def to_dict(self) -> dict[str, object]:
        """JSON form for ``summary.json``."""
        return {
            "engine": self.engine,
            "task": self.task,
            "load": self.load,
            "delta_ms": _dist(self.delta_ms),
            "cold_ttft_ms": _dist(self.cold_ttft_ms),
            "warm_ttft_ms": _dist(self.warm_ttft_ms),
            "skipped": self.skipped,
        }


@dataclass(frozen=True, slots=True)
class StructureCost:
    """A constrained cell against its free twin (same engine, load and prompts)."""

    engine: str
    load: str
    constrained_task: str
    free_task: str
    constrained_output_throughput: float | None
    free_output_throughput: float | None
    constrained_tpot_ms: float | None
    free_tpot_ms: float | None

    @property
    def throughput_ratio(self) -> float | None:
        """Constrained / free output tokens per second (below 1: structure costs)."""
        return _ratio(self.constrained_output_throughput, self.free_output_throughput)

    @property
    def tpot_ratio(self) -> float | None:
        """Constrained / free mean TPOT (above 1: structure costs)."""
        return _ratio(self.constrained_tpot_ms, self.free_tpot_ms)

    def to_dict(self) -> dict[str, object]:
        """JSON form for ``summary.json``."""
        return {
            "engine": self.engine,
            "load": self.load,
            "constrained_task": self.constrained_task,
            "free_task": self.free_task,
            "constrained_output_throughput": self.constrained_output_throughput,
            "free_output_throughput": self.free_output_throughput,
            "throughput_ratio": self.throughput_ratio,
            "constrained_tpot_ms": self.constrained_tpot_ms,
            "free_tpot_ms": self.free_tpot_ms,
            "tpot_ratio": self.tpot_ratio,
        }


@dataclass(frozen=True, slots=True)
class UniqueCost:
    """A task with an unseen schema per request against the same corpus with reuse."""

    engine: str
    load: str
    repeated_task: str
    unique_task: str
    #: Mean TTFT of the repeated task's first copies (cold) and later copies (warm).
    cold_ttft_ms: float | None
    warm_ttft_ms: float | None
    unique_ttft_ms: float | None
    repeated_output_throughput: float | None
    unique_output_throughput: float | None

    @property
    def throughput_ratio(self) -> float | None:
        """Unique / repeated output tokens per second."""
        return _ratio(self.unique_output_throughput, self.repeated_output_throughput)

    def to_dict(self) -> dict[str, object]:
        """JSON form for ``summary.json``."""
        return {
            "engine": self.engine,
            "load": self.load,
            "repeated_task": self.repeated_task,
            "unique_task": self.unique_task,
            "cold_ttft_ms": self.cold_ttft_ms,
            "warm_ttft_ms": self.warm_ttft_ms,
            "unique_ttft_ms": self.unique_ttft_ms,
            "repeated_output_throughput": self.repeated_output_throughput,
            "unique_output_throughput": self.unique_output_throughput,
            "throughput_ratio": self.throughput_ratio,
        }


@dataclass(frozen=True, slots=True)
class CostSummary:
    """The three cost measurements of a run (each empty when the run lacks its tasks)."""

    compile: tuple[CompileCost, ...] = ()
    structure: tuple[StructureCost, ...] = ()
    unique: tuple[UniqueCost, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """JSON form (merged into ``summary.json``'s ``corpus`` key)."""
        return {
            "compile": [c.to_dict() for c in self.compile],
            "structured_vs_free": [s.to_dict() for s in self.structure],
            "unique_vs_repeated": [u.to_dict() for u in self.unique],
        }


def _dist(d: Distribution) -> dict[str, object]:
    return {"n": d.n, "mean": d.mean, "median": d.median, "p90": d.p90}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def corpus_meta(rec: CallRecord) -> CorpusMeta | None:
    """The ``schema_corpus`` labels of a record, or None for records of other kinds."""
    m = dict(rec.meta)
    if "schema_id" not in m:
        return None
    repeat = m.get("repeat", "0")
    return CorpusMeta(
        schema_id=m["schema_id"],
        features=tuple(f for f in m.get("features", "").split(",") if f),
        repeat=int(repeat) if repeat.isdigit() else 0,
        mode=m.get("mode", "constrained"),
        unique=m.get("unique") == "1",
        pair=m.get("pair", ""),
        subset=m.get("subset", ""),
    )


def task_roles(records: Iterable[CallRecord]) -> dict[str, TaskRole]:
    """The role of every ``schema_corpus`` task that has records."""
    seen: dict[str, tuple[CorpusMeta, set[str], int]] = {}
    for r in records:
        meta = corpus_meta(r)
        if meta is None:
            continue
        first, prompts, repeats = seen.get(r.task, (meta, set(), 0))
        if r.prompt:
            prompts.add(r.prompt[-1].content)
        seen[r.task] = (first, prompts, max(repeats, meta.repeat + 1))
    out = {}
    for task, (meta, prompts, repeats) in seen.items():
        crc = zlib.crc32("\x1e".join(sorted(prompts)).encode("utf-8"))
        key = meta.pair or f"prompts:{crc:08x}"
        out[task] = TaskRole(task, meta.mode, meta.unique, key, repeats)
    return out


def _ttfts(records: Sequence[CallRecord]) -> dict[str, dict[str, dict[int, float]]]:
    """``cell -> schema -> repeat -> TTFT ms`` over measured, completed calls."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for r in measured(records):
        meta = corpus_meta(r)
        ttft = call_timing(r).ttft_ms if r.ok else None
        if meta is None or ttft is None:
            continue
        out.setdefault(r.cell_id, {}).setdefault(meta.schema_id, {})[meta.repeat] = ttft
    return out


def compile_costs(records: Sequence[CallRecord], cells: Sequence[CellSummary]) -> tuple[CompileCost, ...]:
    """Compile-time estimates of every constrained, schema-reusing cell with repeats."""
    roles = task_roles(records)
    warmed: dict[str, set[str]] = {}  # cell -> schemas its warm-up compiled
    for r in records:
        meta = corpus_meta(r)
        if r.warmup and meta is not None:
            warmed.setdefault(r.cell_id, set()).add(meta.schema_id)
    ttfts = _ttfts(records)
    out = []
    for c in cells:
        role = roles.get(c.info.task)
        if role is None or role.mode != "constrained" or role.unique or role.repeats < 2:
            continue
        cold, warm, delta = [], [], []
        schemas = ttfts.get(c.info.cell_id, {})
        for sid, by_rep in schemas.items():
            later = [t for k, t in by_rep.items() if k > 0]
            if sid in warmed.get(c.info.cell_id, ()) or 0 not in by_rep or not later:
                continue
            cold.append(by_rep[0])
            warm.append(min(later))
            delta.append(by_rep[0] - min(later))
        out.append(
            CompileCost(
                c.info.engine,
                c.info.task,
                c.info.load.display(),
                describe(delta),
                describe(cold),
                describe(warm),
                skipped=len(schemas) - len(delta),
            )
        )
    return tuple(out)


def _twins(
    cells: Sequence[CellSummary], roles: Mapping[str, TaskRole], first: str, second: str
) -> list[tuple[CellSummary, CellSummary]]:
    """Cell pairs (same engine, load and pair key) whose tasks have roles ``first``, ``second``."""

    def kind(role: TaskRole) -> str:
        return "free" if role.mode == "free" else "unique" if role.unique else "repeated"

    by_role: dict[str, list[tuple[CellSummary, TaskRole]]] = {}
    for c in cells:
        role = roles.get(c.info.task)
        if role is not None:
            by_role.setdefault(kind(role), []).append((c, role))
    return [
        (a, b)
        for a, ra in by_role.get(first, [])
        for b, rb in by_role.get(second, [])
        if ra.pair_key == rb.pair_key
        and a.info.engine == b.info.engine
        and a.info.load.display() == b.info.load.display()
    ]


def structure_costs(roles: Mapping[str, TaskRole], cells: Sequence[CellSummary]) -> tuple[StructureCost, ...]:
    """Constrained (schemas reused) cells against their free twins."""
    return tuple(
        StructureCost(
            a.info.engine,
            a.info.load.display(),
            a.info.task,
            b.info.task,
            a.throughput.output_throughput,
            b.throughput.output_throughput,
            a.latency.tpot.mean,
            b.latency.tpot.mean,
        )
        for a, b in _twins(cells, roles, "repeated", "free")
    )


def unique_costs(
    records: Sequence[CallRecord], roles: Mapping[str, TaskRole], cells: Sequence[CellSummary]
) -> tuple[UniqueCost, ...]:
    """Unique-schema cells against the same corpus with schemas reused."""
    ttfts = _ttfts(records)
    out = []
    for a, b in _twins(cells, roles, "repeated", "unique"):
        reps = ttfts.get(a.info.cell_id, {}).values()
        cold = [t for r in reps for k, t in r.items() if k == 0]
        warm = [t for r in reps for k, t in r.items() if k > 0]
        uniq = [t for r in ttfts.get(b.info.cell_id, {}).values() for t in r.values()]
        out.append(
            UniqueCost(
                a.info.engine,
                a.info.load.display(),
                a.info.task,
                b.info.task,
                _mean(cold),
                _mean(warm),
                _mean(uniq),
                a.throughput.output_throughput,
                b.throughput.output_throughput,
            )
        )
    return tuple(out)


def summarize_cost(records: Sequence[CallRecord], cells: Sequence[CellSummary]) -> CostSummary:
    """All three cost measurements a run supports."""
    roles = task_roles(records)
    return CostSummary(
        compile=compile_costs(records, cells),
        structure=structure_costs(roles, cells),
        unique=unique_costs(records, roles, cells),
    )
