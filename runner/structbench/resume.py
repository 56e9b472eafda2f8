"""``structbench run --resume RUN_DIR``: finish an interrupted or partial run in its own folder.

What is reused, and from where:

- the suite is re-loaded from the path the manifest recorded (``suite_path``), because the
  manifest's resolved spec has secrets and URL credentials redacted and cannot start
  engines; the re-loaded suite's resolved spec must equal the recorded one, so a suite
  edited since the run is refused rather than silently mixed into it;
- the work items come from the run's own ``items.jsonl`` (exactly what the run planned,
  whatever ``-n``/``--seed`` it was given), the seed from the manifest, the cells from
  the manifest's cell list;
- the records are kept as they are: a redone cell appends its new attempt to its own
  ``cells/<id>/requests.jsonl`` (a torn last line is ended first, never deleted). A version
  1 folder's run-level ``requests.jsonl`` is read but no longer appended to, so a resumed
  one has both; :func:`structbench.records.run_records` reads both.

A cell is redone when its ``cell.json`` is missing or its status is not ``complete``. Within
it, only the items lacking a final, successful, non-warm-up record for some call are run
again, with ``attempt`` = the cell's previous highest attempt + 1 (metrics keep the last
attempt of each call). "unsupported" records count as done: they would fail the same way.
The cell's previous ``cell.json`` is kept as ``cell.attempt<N>.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from structbench.cells import CellWork, Executor, RunKnobs
from structbench.errors import UserError
from structbench.ir import WorkItem, item_from_dict
from structbench.manifest import utc_stamp
from structbench.metrics.calls import final_attempts
from structbench.records import CallRecord, open_text, run_records
from structbench.run import RunOutcome, cell_items, finish_run, plan_cells, preflight
from structbench.runfolder import CELL_FILE, CellFile, ResumedCell, ResumeEntry, RunManifest
from structbench.spec.adhoc import ADHOC_SUITE_FILE
from structbench.spec.loader import LoadedSuite, load_suite, resolved_dict

#: (item_id, branch, turn) of one call inside a cell.
_CallKey = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """What a resume will run: the cells to redo, each with its unfinished items."""

    work: tuple[CellWork, ...]
    #: Cells left as they are (complete).
    kept: tuple[str, ...]


def resume_run(run_dir: Path, progress: bool = True, executor: Executor | None = None) -> RunOutcome:
    """Re-run the unfinished part of ``run_dir`` and rebuild its report.

    ``executor`` need not be the one the run had: a local run may be finished on Ray.

    Raises:
        UserError: Not a run folder, its suite is gone or changed, or its files are unreadable.
    """
    manifest = RunManifest.read(run_dir)
    suite = _reload_suite(run_dir, manifest)
    seed = manifest.seed
    plan = plan_resume(run_dir, manifest, suite)
    names = {w.cell.engine for w in plan.work}
    engines = [e for e in suite.spec.engines if e.name in names]
    executor = executor or Executor()
    preflight(engines, executor)
    for w in plan.work:
        _archive_cell_json(run_dir / "cells" / w.cell.cell_id, w.attempt)
    cells = {w.cell.cell_id: ResumedCell(attempt=w.attempt, items=len(w.items)) for w in plan.work}
    manifest = manifest.with_resume(ResumeEntry(utc=utc_stamp(), executor=executor.kind, cells=cells))
    manifest.write(run_dir)
    knobs = RunKnobs(seed, suite.spec.load.warmup, progress, suite.spec.load.reset_cache, executor)
    return finish_run(suite, run_dir, manifest, engines, plan.work, knobs)


def plan_resume(run_dir: Path, manifest: RunManifest, suite: LoadedSuite) -> ResumePlan:
    """Decide which cells and items to run again (pure apart from reading the folder)."""
    items = read_items(run_dir / "items.jsonl")
    recorded = [c.cell_id for c in manifest.cells]
    # The item counts the run was planned with (a -n override included), not the suite's now.
    counts = {c.cell_id: c.items for c in manifest.cells}
    cells = {
        c.cell_id: dataclasses.replace(c, items=counts.get(c.cell_id, c.items))
        for c in plan_cells(suite, suite.spec.engines)
    }
    missing = [c for c in recorded if c not in cells]
    if missing:
        raise UserError(f"{run_dir}: the suite no longer has the cells {', '.join(missing)}; cannot resume")
    records = list(run_records(run_dir, recorded))
    work: list[CellWork] = []
    kept: list[str] = []
    for cell_id in recorded:
        cell = cells[cell_id]
        if _cell_status(run_dir / "cells" / cell_id / CELL_FILE) == "complete":
            kept.append(cell_id)
            continue
        mine = [r for r in records if r.cell_id == cell_id]
        todo = unfinished_items(cell_items(cell, items.get(cell.task, [])), mine)
        if todo:
            work.append(CellWork(cell, todo, max((r.attempt for r in mine), default=0) + 1, tuple(mine)))
        else:
            kept.append(cell_id)
    return ResumePlan(tuple(work), tuple(kept))


def unfinished_items(items: Sequence[WorkItem], records: Iterable[CallRecord]) -> list[WorkItem]:
    """The items with a call whose last non-warm-up record is missing or did not complete.

    An item whose calls all completed is done; so is one that stopped at an unsupported gen
    or at a loud rejection of its constraint (those records would come out the same again).

    Args:
        items: One cell's planned items, in order.
        records: That cell's records so far (any attempts).
    """
    last: dict[_CallKey, CallRecord] = {
        (r.item_id, r.branch, r.turn): r for r in final_attempts(r for r in records if not r.warmup)
    }

    def done(item: WorkItem) -> bool:
        recs = [last.get((item.item_id, b, t)) for b, t, _ in item.gens()]
        # A loud rejection of the constraint is done too: the engine would refuse it again.
        if any(r is None or (r.status in ("error", "cancelled") and not r.rejected) for r in recs):
            return False
        # What is left is ok, unsupported (declared or rejected) or skipped. Skipped calls
        # are done only when an unsupported gen caused them: a re-run would stop there again.
        return all(r is not None and r.status != "skipped" for r in recs) or any(
            r is not None and (r.unsupported or r.rejected) for r in recs
        )

    todo = [it for it in items if not it.primer and not done(it)]
    # Primers are never measured, so never done: they rerun (as the warm-up) only with
    # measured work, which needs its prefixes cached again.
    return [it for it in items if it.primer] + todo if todo else []


def read_items(path: Path) -> dict[str, list[WorkItem]]:
    """The run's planned items per task, from its ``items.jsonl``."""
    out: dict[str, list[WorkItem]] = {}
    try:
        with open_text(path) as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    out.setdefault(str(d["task"]), []).append(item_from_dict(d["item"]))
                except (ValueError, KeyError, TypeError) as e:
                    raise UserError(f"{path}:{n}: unreadable work item ({type(e).__name__}: {e})") from e
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from e
    return out


def _reload_suite(run_dir: Path, manifest: RunManifest) -> LoadedSuite:
    """The suite as the run loaded it; refuses one whose resolved spec changed since."""
    raw = manifest.suite_path or manifest.spec.get("path")
    if not raw:
        raise UserError(f"{run_dir}/manifest.json records no suite path; cannot resume")
    if Path(str(raw)).name == ADHOC_SUITE_FILE:
        raise UserError(f"{run_dir} was run from command-line flags, not a suite file; cannot resume it")
    suite = load_suite(Path(str(raw)))
    now = json.loads(json.dumps(resolved_dict(suite), default=str))
    then = manifest.spec
    if now != then:
        changed = sorted(k for k in {*now, *then} if now.get(k) != then.get(k))
        raise UserError(
            f"{suite.path} changed since the run ({', '.join(changed)} differ); "
            "resume needs the same suite, tasks and data "
            "(and a run whose fields flags overrode cannot be resumed)"
        )
    return suite


def _cell_status(path: Path) -> str | None:
    try:
        return CellFile.read(path).status
    except UserError:
        return None  # never written (the run stopped before the cell ended) or torn


def _archive_cell_json(cell_dir: Path, attempt: int) -> None:
    """Keep the previous attempt's cell.json beside the new one (nothing is overwritten)."""
    src = cell_dir / CELL_FILE
    if src.exists():
        os.replace(src, cell_dir / f"cell.attempt{attempt - 1}.json")


__all__ = ["ResumePlan", "plan_resume", "read_items", "resume_run", "unfinished_items"]
