"""Read a results folder into the metrics' typed inputs; tolerant of runs that stopped part-way.

The manifest and cell files are read through :mod:`structbench.runfolder` (which also
migrates version 1 folders), the call records through :func:`structbench.records.run_records`
(each cell's ``cells/<id>/requests.jsonl``, and a version 1 folder's run-level file); this
module only maps them onto ``metrics.inputs``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from structbench.errors import UserError
from structbench.ir import Gen, item_from_dict
from structbench.metrics import SLO, CellInfo, CellRuntime, EngineRow, RunInfo, SummaryOptions, TaskRow
from structbench.metrics.cache import IdealCache
from structbench.records import CallRecord, open_text, run_records, stored_path
from structbench.runfolder import (
    CELL_FILE,
    CellEntry,
    CellFile,
    EngineFacts,
    IdealFacts,
    RunManifest,
    TaskFacts,
)
from structbench.scoring.base import ScoreOptions
from structbench.scoring.score_run import GenKey, RecordKey


@dataclass(frozen=True, slots=True)
class RunData:
    """Everything a report is built from."""

    run_dir: Path
    info: RunInfo
    cells: tuple[CellInfo, ...]
    runtimes: Mapping[str, CellRuntime]
    records: tuple[CallRecord, ...]
    gens: Mapping[GenKey, Gen]
    scorers_by_task: Mapping[str, tuple[str, ...]]
    score_options: ScoreOptions


def _pairs(d: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in d.items())


def _options(m: RunManifest) -> tuple[SummaryOptions, ScoreOptions]:
    o = m.options
    slo = SLO(o.slo.ttft_ms, o.slo.tpot_ms, o.slo.e2el_ms)
    summary = SummaryOptions(slo=slo, bootstrap=o.bootstrap, seed=m.seed)
    return summary, ScoreOptions(schema_timeout_s=o.schema_timeout_s)


def _judge_grades(run_dir: Path) -> Mapping[RecordKey, int | None] | None:
    """Grades of the LLM-judge pass, when it ran (the ``judge`` scorer looks them up)."""
    from structbench.scoring.judge import JUDGE_FILE, grades_by_record, read_judge

    path = run_dir / JUDGE_FILE
    return grades_by_record(read_judge(path)) if stored_path(path).exists() else None


def _engine_row(e: EngineFacts) -> EngineRow:
    return EngineRow(e.name, e.kind, e.model, e.version, e.url, tuple(e.extra.items()))


def _run_info(m: RunManifest, options: SummaryOptions) -> RunInfo:
    return RunInfo(
        run_id=m.run_id,
        suite=m.suite,
        status=m.status,
        created_utc=m.created_utc,
        seed=options.seed,
        git_sha=m.git_sha,
        versions=tuple(m.versions.items()),
        # Only the fields the file has and knows: a version 1 manifest may lack some.
        hardware=_pairs(m.hardware.model_dump(exclude_unset=True, exclude_none=True)),
        engines=tuple(_engine_row(e) for e in m.engines.values()),
        tasks=tuple(_task_row(n, t) for n, t in m.tasks.items()),
        options=options,
    )


def _task_row(name: str, t: TaskFacts) -> TaskRow:
    return TaskRow(name, t.kind, t.scorers, t.canary, t.target_hit_rate, t.input_len)


def _cell_info(c: CellEntry, info: RunInfo) -> CellInfo:
    task = next((t for t in info.tasks if t.name == c.task), TaskRow(c.task))
    return CellInfo(
        cell_id=c.cell_id,
        engine=c.engine,
        task=task.name,
        task_kind=task.kind,
        load=c.load.point(),
        scorers=task.scorers,
        canary=task.canary,
        cache_arm=c.cache_arm,
        # Cells that are no arm of a comparison pair with nothing but themselves.
        cache_pair=c.cache_pair or c.engine,
        target_hit_rate=task.target_hit_rate,
        input_len=task.input_len,
    )


def _ideal(f: IdealFacts | None) -> IdealCache | None:
    if f is None:
        return None
    return IdealCache(
        f.prompts, f.prompt_tokens, f.covered_tokens, f.block_size, f.covered_block_tokens, f.tokenizer
    )


def _counters(d: Mapping[str, float] | None) -> tuple[tuple[str, float], ...] | None:
    return None if d is None else tuple(d.items())


def _runtime(path: Path) -> CellRuntime:
    try:
        c = CellFile.read(path)
    except UserError:
        return CellRuntime()  # never written (a run stopped part-way) or torn
    mem = c.memory
    return CellRuntime(
        status=c.status,
        t_start=c.t_start,
        t_end=c.t_end,
        duration_s=c.duration_s,
        n_items=c.n_items,
        metrics_before=_counters(c.metrics_before),
        metrics_after=_counters(c.metrics_after),
        peak_gpu_memory_mb=mem.peak_gpu_mb() if mem else None,
        peak_rss_mb=mem.peak_rss_mb() if mem else None,
        gpu_available=mem.gpu_available if mem else None,
        ideal=_ideal(c.ideal),
        cache_block_size=c.cache_block_size,
        cache_block_source=c.cache_block_source,
    )


def _gens(path: Path) -> dict[GenKey, Gen]:
    gens: dict[GenKey, Gen] = {}
    if not stored_path(path).exists():
        return gens
    with open_text(path) as fh:
        for line in fh:
            try:
                item = item_from_dict(json.loads(line)["item"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line
            for b, t, gen in item.gens():
                gens[(item.item_id, b, t)] = gen
    return gens


def _unlisted_cells(records: tuple[CallRecord, ...], m: RunManifest, info: RunInfo) -> list[CellInfo]:
    # Records of cells the manifest never listed (a manifest written before a crash).
    known = {c.cell_id for c in m.cells}
    out: dict[str, CellInfo] = {}
    for r in records:
        if r.cell_id not in known and r.cell_id not in out:
            out[r.cell_id] = _cell_info(m.unlisted_cell(r.cell_id, r.engine, r.task), info)
    return list(out.values())


def load_run(run_dir: Path) -> RunData:
    """Read manifest, items, records and cell files of a run folder.

    Raises:
        UserError: when ``run_dir`` has no readable ``manifest.json``.
    """
    m = RunManifest.read(run_dir)
    summary_opts, score_opts = _options(m)
    score_opts = replace(score_opts, judge_grades=_judge_grades(run_dir))
    info = _run_info(m, summary_opts)
    records = tuple(run_records(run_dir, [c.cell_id for c in m.cells]))
    cells = [_cell_info(c, info) for c in m.cells]
    cells += _unlisted_cells(records, m, info)
    runtimes = {c.cell_id: _runtime(run_dir / "cells" / c.cell_id / CELL_FILE) for c in cells}
    return RunData(
        run_dir=run_dir,
        info=info,
        cells=tuple(cells),
        runtimes=runtimes,
        records=records,
        gens=_gens(run_dir / "items.jsonl"),
        scorers_by_task={t.name: t.scorers for t in info.tasks},
        score_options=score_opts,
    )
