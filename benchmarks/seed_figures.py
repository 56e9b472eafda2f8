"""The figures of the seed table (``seed_table.py``), read from one run folder.

Where each figure comes from (nothing is re-scored; a figure the run lacks says
"not measured", never 0):

* throughput, structured-task throughput, validity, accuracy, peak memory and the cache
  benefit: ``summary.json``, pooled as the report's headline pools them
  (``structbench.report.headline``): Σ output tokens / Σ cell durations, rates weighted by
  their calls, the largest NVML peak (the whole device, as the sampler reads it);
* p50 / p99 TTFT and TPOT: percentiles need the calls, so they are taken over the pooled
  calls of the throughput cells, read from the records with the report's own reader
  (``structbench.report.samples.cell_samples``; packed records are read in place);
* KV-cache capacity: the manifest's engine facts (``kv_cache_tokens``,
  ``structbench.engines.server_log``); older SGLang manifests only kept ``/server_info``,
  which the same module reads;
* the cache benefit: the engine's cache-off twin (same ``cache_pair`` in the manifest, same
  task and load point): mean TTFT off / on, as the headline defines it.

All figures pool the task x load points both picked engines ran (``--throughput-task``
narrows the throughput and latency rows to some tasks); structured-task throughput pools
the ``json`` tasks, validity ``schema_valid`` and accuracy ``field_accuracy``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError
from seed_claims import ROLES, CrossCheck, PooledRate, Role

from structbench.engines.server_log import sglang_facts
from structbench.errors import UserError
from structbench.records import run_records
from structbench.report.samples import CellSamples, cell_samples
from structbench.runfolder import EngineFacts, RunManifest
from structbench.stats import describe

NOT_MEASURED = "not measured"
#: Launch flags that set the share of GPU memory an engine takes (vLLM, SGLang).
MEMORY_FRACTION_FLAGS = ("--gpu-memory-utilization", "--mem-fraction-static")
#: Scores the table reads: validity is a JSON schema's, accuracy the field-level one.
VALIDITY, ACCURACY = "schema_valid", "field_accuracy"
STRUCTURED_KIND = "json"

#: A figure, or why it is missing.
Value = float | str


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class _Score(_Model):
    scorer: str
    rate: float | None = None
    n: int = 0


class _Load(_Model):
    label: str


class SummaryCell(_Model):
    """The fields of one ``summary.json`` cell this table reads."""

    cell_id: str
    engine: str
    task: str
    task_kind: str = ""
    load: _Load
    cache_arm: str | None = None
    completed: int = 0
    duration_s: float | None = None
    output_throughput: float | None = None
    total_output_tokens: int = 0
    mean_ttft_ms: float | None = None
    scores: tuple[_Score, ...] = ()
    peak_gpu_memory_mb: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        """The task x load point."""
        return self.task, self.load.label

    def score(self, scorer: str) -> _Score | None:
        """One scorer's rate, if the cell has it."""
        return next((s for s in self.scores if s.scorer == scorer), None)


class _Summary(_Model):
    schema_version: int
    cells: tuple[SummaryCell, ...]


class _XcEntry(_Model):
    engine: str
    metric: str
    ratio: float | None = None


class _XcFile(_Model):
    target: tuple[float, float]
    all_within_target: bool
    entries: tuple[_XcEntry, ...] = ()


def _read_json(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            return str(fh.read())
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None


def read_summary(run_dir: Path) -> tuple[SummaryCell, ...]:
    """The cells of ``run_dir/summary.json``."""
    path = run_dir / "summary.json"
    try:
        return _Summary.model_validate_json(_read_json(path)).cells
    except ValidationError as e:
        raise UserError(f"{path}: not a structbench summary ({e.error_count()} errors)") from None


def read_crosscheck(path: Path) -> CrossCheck:
    """The output-throughput ratios of a ``crosscheck.json`` (or ``.json.gz``), by engine kind."""
    try:
        xc = _XcFile.model_validate_json(_read_json(path))
    except ValidationError as e:
        raise UserError(f"{path}: not a cross-check result ({e.error_count()} errors)") from None
    ratios: dict[str, list[float]] = {}
    for entry in xc.entries:
        if entry.metric == "output_throughput" and entry.ratio is not None:
            ratios.setdefault(entry.engine, []).append(entry.ratio)
    return CrossCheck(xc.target, xc.all_within_target, {k: tuple(v) for k, v in ratios.items()})


@dataclass(frozen=True, slots=True)
class Column:
    """One picked engine: its facts, its cells on the common points, its cache-off twins."""

    role: Role
    engine: EngineFacts
    cells: tuple[SummaryCell, ...]
    #: (cache on, cache off) cells of the same task x load point.
    pairs: tuple[tuple[SummaryCell, SummaryCell], ...]
    launch_args: tuple[str, ...]


def _launch_args(m: RunManifest, engine: str) -> tuple[str, ...]:
    # The resolved suite is free-form JSON by design (spec.resolved): read it defensively.
    suite = m.spec.get("suite")
    engines = suite.get("engines") if isinstance(suite, dict) else None
    for e in engines if isinstance(engines, list) else []:
        launch = e.get("launch") if isinstance(e, dict) and e.get("name") == engine else None
        args = launch.get("args") if isinstance(launch, dict) else None
        if isinstance(args, list):
            return tuple(str(a) for a in args)
    return ()


def flag_value(args: Sequence[str], flags: Sequence[str]) -> str | None:
    """The value of the first of ``flags`` in a launch command line (``--f v`` or ``--f=v``)."""
    for i, a in enumerate(args):
        for f in flags:
            if a == f and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(f + "="):
                return a.split("=", 1)[1]
    return None


def default_picks(m: RunManifest) -> dict[Role, str]:
    """Per role, the first engine of that kind that is not a cache-off arm."""
    out: dict[Role, str] = {}
    for e in m.engines.values():
        if e.kind in ROLES and e.cache_arm != "off":
            out.setdefault(e.kind, e.name)
    return out


def columns(m: RunManifest, cells: Sequence[SummaryCell], picks: Mapping[Role, str]) -> list[Column]:
    """The two picked engines' cells on the task x load points both ran, with their twins."""
    known = ", ".join(m.engines)
    for role in ROLES:
        if role not in picks:
            raise UserError(
                f"the run has no {role} engine to stand for {role} ({known}): name one with --pick"
            )
        if picks[role] not in m.engines:
            raise UserError(f"--pick {role}={picks[role]}: no such engine in the run (it has {known})")
    mine = {r: [c for c in cells if c.engine == picks[r]] for r in ROLES}
    common = set.intersection(*({c.key for c in mine[r]} for r in ROLES))
    if not common:
        raise UserError(f"{picks['vllm']} and {picks['sglang']} ran no task x load point in common")
    pair_of = {c.cell_id: c.cache_pair for c in m.cells}
    out = []
    for r in ROLES:
        on = tuple(c for c in mine[r] if c.key in common)
        twins = tuple(
            (c, off)
            for c in on
            if c.cache_arm == "on"
            for off in cells
            if off.cache_arm == "off"
            and off.key == c.key
            and pair_of.get(off.cell_id) == pair_of.get(c.cell_id)
        )
        out.append(Column(r, m.engines[picks[r]], on, twins, _launch_args(m, picks[r])))
    return out


def output_tok_s(cells: Sequence[SummaryCell]) -> Value:
    """Σ output tokens / Σ cell durations, over the cells that measured a throughput."""
    got = [c for c in cells if c.output_throughput is not None and c.duration_s]
    dur = sum(c.duration_s or 0.0 for c in got)
    return sum(c.total_output_tokens for c in got) / dur if dur else NOT_MEASURED


def pooled_rate(cells: Sequence[SummaryCell], scorer: str) -> PooledRate | None:
    """One scorer's rate over the cells that have it, weighted by the calls it covers."""
    got = [(s.rate, s.n) for c in cells if (s := c.score(scorer)) is not None and s.rate is not None and s.n]
    n = sum(k for _, k in got)
    return PooledRate(sum(r * k for r, k in got) / n, n) if n else None


def _mean_ttft(cells: Sequence[SummaryCell]) -> float | None:
    # Cell means pool exactly when weighted by their calls.
    got = [(c.mean_ttft_ms, c.completed) for c in cells if c.mean_ttft_ms is not None and c.completed]
    n = sum(k for _, k in got)
    return sum((v or 0.0) * k for v, k in got) / n if n else None


def cache_benefit(col: Column) -> Value:
    """Mean TTFT of the cache-off twin / of the cache-on cells (> 1: the cache helped)."""
    if not col.pairs:
        return f"{NOT_MEASURED} (no cache-off twin)"
    on, off = _mean_ttft([p[0] for p in col.pairs]), _mean_ttft([p[1] for p in col.pairs])
    return off / on if on and off is not None else f"{NOT_MEASURED} (no TTFT)"


def kv_tokens(e: EngineFacts) -> Value:
    """The KV-cache capacity the engine reported at start-up, in tokens."""
    got = e.extra.get("kv_cache_tokens")
    if got is None and "server_info" in e.extra:
        # SGLang manifests written before the facts were recorded kept /server_info whole.
        try:
            got = dict(sglang_facts(json.loads(e.extra["server_info"]), "")).get("kv_cache_tokens")
        except ValueError:
            got = None
    return float(got) if got is not None and got.isdigit() else NOT_MEASURED


def _percentile(
    samples: Sequence[CellSamples], pick: Callable[[CellSamples], tuple[float, ...]], q: str
) -> Value:
    d = describe([v for s in samples for v in pick(s)])
    got = d.median if q == "p50" else d.p99
    return NOT_MEASURED if got is None else got


@dataclass(frozen=True, slots=True)
class Figures:
    """One column's figures, by row key, and the pooled rates the claims test."""

    values: Mapping[str, Value]
    rates: Mapping[str, PooledRate | None]


def figures(col: Column, samples: Mapping[str, CellSamples], throughput_tasks: Sequence[str]) -> Figures:
    """Every row of the table for one column."""
    tp = [c for c in col.cells if not throughput_tasks or c.task in throughput_tasks]
    got = [samples.get(c.cell_id, CellSamples()) for c in tp]
    structured = [c for c in col.cells if c.task_kind == STRUCTURED_KIND]
    peaks = [c.peak_gpu_memory_mb for c in col.cells if c.peak_gpu_memory_mb is not None]
    rates = {"validity": pooled_rate(col.cells, VALIDITY), "accuracy": pooled_rate(col.cells, ACCURACY)}
    values: dict[str, Value] = {
        "output_tok_s": output_tok_s(tp),
        "p50_ttft_ms": _percentile(got, lambda s: s.ttft_ms, "p50"),
        "p99_ttft_ms": _percentile(got, lambda s: s.ttft_ms, "p99"),
        "p50_tpot_ms": _percentile(got, lambda s: s.tpot_ms, "p50"),
        "p99_tpot_ms": _percentile(got, lambda s: s.tpot_ms, "p99"),
        "peak_gpu_mib": max(peaks) if peaks else NOT_MEASURED,
        "kv_tokens": kv_tokens(col.engine),
        "structured_tok_s": output_tok_s(structured) if structured else f"{NOT_MEASURED} (no json task)",
        **{k: NOT_MEASURED if r is None else r.rate for k, r in rates.items()},
        "cache_benefit": cache_benefit(col),
    }
    return Figures(values, rates)


def load_samples(run_dir: Path, cols: Sequence[Column]) -> dict[str, CellSamples]:
    """The calls of the columns' cells (warm-ups out, last attempts), read from the records."""
    wanted = {c.cell_id for col in cols for c in col.cells}
    return cell_samples([r for r in run_records(run_dir, sorted(wanted)) if r.cell_id in wanted])
