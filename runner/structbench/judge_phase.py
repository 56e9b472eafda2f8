"""The judge phase of a run: grade answered chat turns through the load driver.

It sits at the run level, beside ``run.py``, because it uses two stages: it builds judge
work items from the records (:mod:`structbench.scoring.judge`, pure) and sends them to
the judge engine with :func:`structbench.load.driver.drive`, like any cell. Keeping the
driving here keeps the scoring package free of the load and engine stages, so the report
(which reads grades through scoring) never imports them.

Each judged task is one closed-loop cell with id ``judge.<task>``. It reads the run's
records through :func:`structbench.records.run_records` (every cell's, and a version 1
folder's run-level file). Its own call records go to the run's ``judge.jsonl`` (not into
a cell's ``requests.jsonl``), so no benchmark cell counts them; the ``judge`` scorer reads
the grades from them at scoring time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from structbench.engines.base import Engine
from structbench.ir import WorkItem, item_from_dict
from structbench.load.arrivals import LoadPoint
from structbench.load.driver import DriveConfig, drive
from structbench.records import CallRecord, RecordWriter, open_text, run_records
from structbench.scoring.judge import (
    GRADE_CONSTRAINT,
    JUDGE_FILE,
    JudgeConfig,
    JudgeScore,
    judge_cell_id,
    judged_key,
    plan_judge_items,
    verdicts_from_records,
)

_DEFAULT = JudgeConfig()


def _closed_loop(concurrency: int) -> LoadPoint:
    return LoadPoint("concurrency", concurrency, math.inf, "poisson", 1.0, concurrency)


def _by_task(items: Sequence[WorkItem]) -> dict[str, list[WorkItem]]:
    out: dict[str, list[WorkItem]] = {}
    for it in items:
        out.setdefault(it.task, []).append(it)
    return out


async def judge_records(
    records: Iterable[CallRecord],
    items: Iterable[WorkItem],
    engine: Engine,
    out_path: Path | None = None,
    cfg: JudgeConfig = _DEFAULT,
) -> list[JudgeScore]:
    """Grade every answered turn with ``engine`` (already started); never raises per call.

    Args:
        records: Call records of the run (warm-up and failed ones are not judged).
        items: The run's work items (``items.jsonl``), for questions and references.
        engine: The judge engine, started by the caller (who also closes it).
        out_path: ``judge.jsonl`` to append the judge's call records to as they arrive
            (None = keep them in memory only).
        cfg: Judge settings.

    Returns:
        One verdict per judged turn, in record order.
    """
    constrained = engine.capabilities.unsupported_reason(GRADE_CONSTRAINT) is None
    judge_items = plan_judge_items(records, items, cfg, constrained)
    concurrency = max(1, min(cfg.concurrency, engine.max_concurrency or cfg.concurrency))
    got: list[CallRecord] = []
    writer = RecordWriter(out_path) if out_path is not None and judge_items else None

    def sink(recs: list[CallRecord]) -> None:
        got.extend(recs)
        if writer is not None:
            writer.write_all(recs)

    try:
        for task, task_items in _by_task(judge_items).items():
            cell = DriveConfig(cell_id=judge_cell_id(task), seed=0)
            await drive(engine, task_items, _closed_loop(concurrency), cell, sink)
    finally:
        if writer is not None:
            writer.close()
    verdicts = verdicts_from_records(got)
    keys = (judged_key(it.meta) for it in judge_items)
    return [verdicts[k] for k in keys if k is not None and k in verdicts]


async def run_judge_pass(
    run_dir: Path,
    engine: Engine,
    tasks: Iterable[str],
    cfg: JudgeConfig = _DEFAULT,
    cell_order: Sequence[str] = (),
) -> list[JudgeScore]:
    """Judge a run folder's records of ``tasks``; the judge's records go to its ``judge.jsonl``.

    Reads the run's records (:func:`structbench.records.run_records`) and ``items.jsonl``;
    ``engine`` is started and closed by the caller. This is what ``run_suite`` calls after
    the cells, with the suite's ``judge_engine`` (or first engine) and the tasks that list
    ``judge``.

    Args:
        run_dir: The run folder.
        engine: The judge engine, started.
        tasks: The tasks to judge.
        cfg: Judge settings (its ``tasks`` are replaced by ``tasks``).
        cell_order: The manifest's cell order, in which records are judged (others follow,
            sorted by id).
    """
    with open_text(run_dir / "items.jsonl") as fh:
        items = [item_from_dict(json.loads(line)["item"]) for line in fh if line.strip()]
    records = list(run_records(run_dir, cell_order))
    return await judge_records(
        records, items, engine, run_dir / JUDGE_FILE, replace(cfg, tasks=frozenset(tasks))
    )
