"""run_suite(): YAML -> work items -> engines x cells -> records -> scores -> report.

Read top to bottom, this is the whole pipeline (DESIGN.md "Data flow"). Each cell writes
its own records into its sub-folder (:func:`structbench.cells.run_cell`); the run writes
only the manifest, ``items.jsonl``, the judge's records and the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from structbench.cells import Cell, CellCtx, CellWork, Executor, RunKnobs, run_engine_cells, started_facts
from structbench.engines.launch import check_reachable
from structbench.engines.registry import EngineEnv, create_engine
from structbench.errors import UserError
from structbench.ir import WorkItem, item_to_dict
from structbench.judge_phase import run_judge_pass
from structbench.kinds.registry import expand_task
from structbench.limits import check_token_limits
from structbench.load.arrivals import load_points
from structbench.load.clients import fleet_for
from structbench.manifest import RunIdentity, base_manifest, utc_stamp
from structbench.memory import gpu_baseline
from structbench.progress import Progress
from structbench.report.build import build_report
from structbench.report.summary import RunSummary
from structbench.runfolder import (
    ManifestLog,
    OptionsFacts,
    RunManifest,
    RunStatus,
    SloFacts,
    TaskFacts,
    spec_cache_arm,
)
from structbench.scoring.judge import judged_tasks
from structbench.spec.adhoc import RunFlags, suite_for_run
from structbench.spec.engine_checks import engine_problems
from structbench.spec.engines import EngineSpec
from structbench.spec.loader import LoadedSuite, resolved_dict
from structbench.spec.marks import format_field
from structbench.spec.suite import LoadSpec
from structbench.spec.tasks import PrefixHitTaskSpec, TaskSpec


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What the user asked for on the command line."""

    #: A suite or task file; None when the flags name the tasks (an ad-hoc run).
    suite: Path | None
    results_root: Path = Path("results")
    num_requests: int | None = None
    seed: int | None = None
    #: Only run these engine names (empty = all).
    engines: tuple[str, ...] = ()
    progress: bool = True
    #: Flags that build the suite (ad-hoc) or override its fields.
    flags: RunFlags = field(default_factory=RunFlags)
    #: Where the cells run (``--executor``, ``--address``).
    executor: Executor = field(default_factory=Executor)
    #: Told the results folder as soon as it exists (None: nobody is told before the end).
    on_run_dir: Callable[[Path], None] | None = None
    #: Receives one-line warnings about the plan before the run starts (None: dropped).
    warn: Callable[[str], None] | None = None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What a finished (or interrupted) run produced."""

    run_dir: Path
    summary: RunSummary
    failed_cells: tuple[str, ...]
    interrupted: bool


def run_suite(opts: RunOptions) -> RunOutcome:
    """Run a suite end to end and write its results folder."""
    pick = suite_for_run(opts.suite, opts.flags)
    suite = pick.suite
    seed = suite.spec.seed if opts.seed is None else opts.seed
    engines = _select_engines(suite, pick.engines or opts.engines)
    preflight(engines, opts.executor)
    load = suite.spec.load
    if opts.num_requests is not None:
        load = load.model_copy(update={"num_requests": opts.num_requests})
    items = plan_items(suite, seed, load.items_to_plan())
    cells = plan_cells(suite, engines, load)
    if opts.warn is not None:
        for line in few_items_warnings(cells, items):
            opts.warn(line)
    run_dir = _new_run_dir(opts.results_root, suite.spec.name)
    if opts.on_run_dir is not None:
        opts.on_run_dir(run_dir)  # first, so a long run's folder can be watched while it runs
    manifest = _initial_manifest(suite, run_dir, seed, cells)
    manifest = manifest.model_copy(update={"executor": opts.executor.kind})
    manifest.write(run_dir)
    _write_items(run_dir / "items.jsonl", items)
    work = [CellWork(c, cell_items(c, items[c.task])) for c in cells]
    knobs = RunKnobs(seed, suite.spec.load.warmup, opts.progress, suite.spec.load.reset_cache, opts.executor)
    return finish_run(suite, run_dir, manifest, engines, work, knobs)


def finish_run(
    suite: LoadedSuite,
    run_dir: Path,
    manifest: RunManifest,
    engines: Sequence[EngineSpec],
    work: Sequence[CellWork],
    knobs: RunKnobs,
) -> RunOutcome:
    """Run ``work`` cell by cell, judge, close the manifest and build the report.

    Shared by :func:`run_suite` and ``resume.resume_run``.
    """
    log = ManifestLog(run_dir, manifest)
    try:
        if knobs.executor.kind == "ray":
            # Imported here only: without --executor ray nothing imports Ray.
            from structbench.executors.ray_driver import run_on_ray

            interrupted, failed = run_on_ray(engines, work, log, knobs)
        else:
            interrupted, failed = asyncio.run(_run_engines(engines, work, log, knobs))
    except UserError as e:  # an engine that cannot start: the folder still says what happened
        log.save(log.manifest.with_status("failed", error=str(e)))
        raise
    if not interrupted:
        asyncio.run(_judge(suite, run_dir, knobs.seed, [c.cell_id for c in manifest.cells]))
    status: RunStatus = "interrupted" if interrupted else ("partial" if failed else "complete")
    log.save(log.manifest.with_status(status, failed=tuple(failed)))
    summary = build_report(run_dir)
    return RunOutcome(run_dir, summary, tuple(failed), interrupted)


async def _judge(suite: LoadedSuite, run_dir: Path, seed: int, cell_order: Sequence[str]) -> None:
    """Grade the tasks that list ``judge`` with the suite's judge engine (default: its first engine).

    ``cell_order`` is the manifest's: the records are judged in the order the cells ran.
    """
    tasks = judged_tasks({t.spec.name: t.spec.scorers for t in suite.tasks})
    if not tasks:
        return
    name = suite.spec.judge_engine or suite.spec.engines[0].name
    spec = next(e for e in suite.spec.engines if e.name == name)
    engine = create_engine(spec, EngineEnv(workdir=run_dir / "engines" / f"judge-{name}", seed=seed))
    try:
        await engine.start()
        await run_judge_pass(run_dir, engine, tasks, cell_order=cell_order)
    finally:
        await engine.close()


def plan_items(suite: LoadedSuite, seed: int, num_requests: int | None) -> dict[str, list[WorkItem]]:
    """Expand every task into work items with its own seeded RNG (stable per task name)."""
    return {
        t.spec.name: expand_task(t, random.Random(f"{seed}:{t.spec.name}"), num_requests) for t in suite.tasks
    }


def plan_cells(suite: LoadedSuite, engines: Sequence[EngineSpec], load: LoadSpec | None = None) -> list[Cell]:
    """Every engine x task x load point, in run order (engine-major, so each engine starts once).

    ``load`` is the suite's, with the command line's overrides (default: the suite's own).
    """
    load = load or suite.spec.load
    points = load_points(load)
    per_point = load.requests_per_concurrency is not None
    return [
        Cell(
            f"{e.name}.{t.spec.name}.{p.label}",
            e.name,
            t.spec.name,
            p,
            spec_cache_arm(e.model_dump()),
            load.items_for(p.concurrency) if per_point else None,
        )
        for e in engines
        for t in suite.tasks
        for p in points
    ]


def cell_items(cell: Cell, items: list[WorkItem]) -> list[WorkItem]:
    """The items ``cell`` sends: the first ``cell.items`` of its task's, or all of them."""
    return items if cell.items is None else items[: cell.items]


def few_items_warnings(cells: Sequence[Cell], items: Mapping[str, list[WorkItem]]) -> list[str]:
    """One line per task (and item count) with fewer items than a closed loop's workers: those
    cells can't reach their concurrency (the report shows what they reached, as ``max in flight``)."""
    short: dict[tuple[str, int], list[Cell]] = {}
    for c in cells:
        n, cap = len(cell_items(c, items[c.task])), c.point.concurrency
        if c.point.mode == "concurrency" and cap is not None and cap > n:
            short.setdefault((c.task, n), []).append(c)
    out = []
    for (task, n), cs in short.items():
        labels = ", ".join(dict.fromkeys(c.point.label for c in cs))
        out.append(
            f"task '{task}' has {n} item{'s' if n != 1 else ''}, fewer than the workers of {labels}: at most "
            f"{n} will be in flight there (give more items with -n, or a lower concurrency)"
        )
    return out


def preflight(engines: Sequence[EngineSpec], executor: Executor | None = None) -> None:
    """Check every engine's spec against this machine (:func:`engine_problems`, here fatal: the
    run is about to start), that every attached server is reachable, and that Ray is importable
    when asked for, before any folder or cell."""
    for e in engines:
        for problem in engine_problems(e):
            raise UserError(f"engine '{e.name}': {format_field(problem.field)}: {problem.message}")
    for e in engines:
        if e.attach_url is not None:
            check_reachable(e.name, e.attach_url)
    if executor is not None and executor.kind == "ray":
        from structbench.executors.ray_driver import connect, import_ray
        from structbench.executors.ray_placement import check_fits

        connect(executor.address)  # last: a refused run should not leave a Ray session behind
        check_fits(import_ray(), engines)


def _select_engines(suite: LoadedSuite, names: Sequence[str]) -> list[EngineSpec]:
    if not names:
        return list(suite.spec.engines)
    known = {e.name for e in suite.spec.engines}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(
            f"{suite.path}: no engine named {', '.join(unknown)} (have: {', '.join(sorted(known))})"
        )
    return [e for e in suite.spec.engines if e.name in names]


def _new_run_dir(root: Path, suite_name: str) -> Path:
    run_dir = root / suite_name / f"{utc_stamp()}_{secrets.token_hex(3)}"
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
        (run_dir / "cells").mkdir()
    except OSError as e:
        raise UserError(f"cannot create results folder {run_dir}: {e.strerror}") from e
    return run_dir


def _initial_manifest(suite: LoadedSuite, run_dir: Path, seed: int, cells: Sequence[Cell]) -> RunManifest:
    s = suite.spec
    run = RunIdentity(run_dir.name, s.name, seed, resolved_dict(suite), suite.path)
    tasks = {
        t.spec.name: TaskFacts(
            kind=t.spec.kind,
            scorers=tuple(t.spec.scorers),
            canary=bool(getattr(t.spec, "canary", False)),
            path=str(t.path),
            target_hit_rate=_prefix_hit(t.spec)[0],
            input_len=_prefix_hit(t.spec)[1],
        )
        for t in suite.tasks
    }
    slo = SloFacts(ttft_ms=s.slo.ttft_ms, tpot_ms=s.slo.tpot_ms, e2el_ms=s.slo.e2el_ms)
    options = OptionsFacts(schema_timeout_s=s.schema_timeout_s, bootstrap=s.bootstrap, slo=slo)
    cell_entries = tuple(c.entry() for c in cells)
    return base_manifest(run).model_copy(update={"tasks": tasks, "options": options, "cells": cell_entries})


def _prefix_hit(spec: TaskSpec) -> tuple[float | None, int | None]:
    """(target hit rate, input length) of a ``prefix_hit`` task, for the report's check."""
    if isinstance(spec, PrefixHitTaskSpec):
        return spec.targets[0], spec.input_len
    return None, None


def _write_items(path: Path, items: dict[str, list[WorkItem]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for task, its in items.items():
            for it in its:
                fh.write(json.dumps({"task": task, "item": item_to_dict(it)}, ensure_ascii=False) + "\n")


async def _run_engines(
    engines: Sequence[EngineSpec], work: Sequence[CellWork], log: ManifestLog, knobs: RunKnobs
) -> tuple[bool, list[str]]:
    """Start each engine once, run its cells, always close it. Returns (interrupted, failed cells)."""
    run_dir, seed = log.run_dir, knobs.seed
    _cancel_on_sigterm()
    failed: list[str] = []
    with Progress(enabled=knobs.progress) as bar:
        for spec in engines:
            engine = create_engine(spec, EngineEnv(workdir=run_dir / "engines" / spec.name, seed=seed))
            try:
                info = await engine.start()
                facts = started_facts(info, spec)
                log.save(log.manifest.with_engine(facts))
                mine = [w for w in work if w.cell.engine == spec.name]
                check_token_limits(info, (it for w in mine for it in w.items))
                ctx = CellCtx(
                    bar,
                    seed,
                    knobs.warmup,
                    gpu_baseline(),
                    knobs.reset_cache,
                    facts,
                    block_size=info.cache_block_size,
                    block_source=info.cache_block_source,
                    fleet=fleet_for(spec, info.url) if info.url else None,
                )
                # One engine's cells in a row: each sees the ones before it (an unflushed cache).
                interrupted, bad = await run_engine_cells(engine, mine, run_dir, ctx)
                failed.extend(bad)
                if interrupted:
                    return True, failed
            except asyncio.CancelledError:
                return True, failed
            finally:
                await engine.close()
    return False, failed


def _cancel_on_sigterm() -> None:
    """SIGTERM cancels the run like Ctrl-C does, so servers stop and the folder stays consistent."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        # Not available off the main thread or on some platforms: Ctrl-C still works there.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
