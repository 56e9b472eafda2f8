"""Read a results folder into typed values; tolerant of runs that stopped part-way."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from structbench.errors import UserError
from structbench.ir import Gen, item_from_dict
from structbench.metrics import (
    SLO,
    CellInfo,
    CellRuntime,
    EngineRow,
    LoadPoint,
    RunInfo,
    SummaryOptions,
    TaskRow,
)
from structbench.records import CallRecord, open_text, read_records, stored_path
from structbench.scoring.base import ScoreOptions
from structbench.scoring.score_run import GenKey, RecordKey

_CACHE_LABEL = re.compile(r"(?:^|[^a-z])(?:prefix[-_]?)?cache[=:_-]?(on|off)\b", re.IGNORECASE)


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


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _pairs(d: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(d, dict):
        return ()
    return tuple((str(k), v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in d.items())


def _opt_float(x: object) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _opt_int(x: object) -> int | None:
    return int(x) if isinstance(x, int) and not isinstance(x, bool) else None


def _options(m: dict[str, Any]) -> tuple[SummaryOptions, ScoreOptions]:
    opts = m.get("options") or {}
    slo = opts.get("slo") or {}
    summary = SummaryOptions(
        slo=SLO(
            _opt_float(slo.get("ttft_ms")), _opt_float(slo.get("tpot_ms")), _opt_float(slo.get("e2el_ms"))
        ),
        bootstrap=_opt_int(opts.get("bootstrap")) or 1000,
        seed=_opt_int(m.get("seed")) or 0,
    )
    timeout = _opt_float(opts.get("schema_timeout_s"))
    return summary, ScoreOptions(schema_timeout_s=timeout if timeout and timeout > 0 else 2.0)


def _judge_grades(run_dir: Path) -> Mapping[RecordKey, int | None] | None:
    """Grades of the LLM-judge pass, when it ran (the ``judge`` scorer looks them up)."""
    from structbench.scoring.judge import JUDGE_FILE, grades_by_record, read_judge

    path = run_dir / JUDGE_FILE
    return grades_by_record(read_judge(path)) if stored_path(path).exists() else None


def _spec_cache_arms(m: dict[str, Any]) -> dict[str, str]:
    """``cache`` of each launched engine in the resolved spec (older engines did not report it)."""
    spec = m.get("spec")
    suite = spec.get("suite") if isinstance(spec, dict) else None
    engines = suite.get("engines") if isinstance(suite, dict) else None
    return {
        str(e.get("name")): str(e["cache"])
        for e in engines or ()
        if isinstance(e, dict) and e.get("launch") and isinstance(e.get("cache"), str)
    }


def _run_info(m: dict[str, Any], run_dir: Path, options: SummaryOptions) -> RunInfo:
    arms = _spec_cache_arms(m)
    engines = tuple(
        EngineRow(
            name=str(name),
            kind=str(e.get("kind") or ""),
            model=str(e.get("model") or ""),
            version=str(e.get("version") or ""),
            url=str(e.get("url") or ""),
            extra=_pairs({**({"cache": arms[name]} if name in arms else {}), **(e.get("extra") or {})}),
        )
        for name, e in (m.get("engines") or {}).items()
        if isinstance(e, dict)
    )
    tasks = tuple(
        TaskRow(str(n), str(t.get("kind") or ""), tuple(t.get("scorers") or ()), bool(t.get("canary")))
        for n, t in (m.get("tasks") or {}).items()
        if isinstance(t, dict)
    )
    return RunInfo(
        run_id=str(m.get("run_id") or run_dir.name),
        suite=str(m.get("suite") or run_dir.parent.name),
        status=str(m.get("status") or "unknown"),
        created_utc=str(m.get("created_utc") or ""),
        seed=options.seed,
        git_sha=str(m.get("git_sha") or ""),
        versions=_pairs(m.get("versions")),
        hardware=_pairs(m.get("hardware")),
        engines=engines,
        tasks=tasks,
        options=options,
    )


def cache_arm(load_label: str, engine_extra: Mapping[str, str]) -> str | None:
    """Which arm of a prefix-cache on/off comparison a cell is, if any.

    The hook: an engine ``extra`` entry ``cache`` (or ``prefix_cache``) of on/off
    (true/false), or a load label containing ``cache=on``/``cache-off``/``nocache``.
    """
    for key in ("cache", "prefix_cache", "prefix_caching"):
        v = engine_extra.get(key, "").strip().lower()
        if v in ("on", "true", "1", "enabled"):
            return "on"
        if v in ("off", "false", "0", "disabled"):
            return "off"
    if "nocache" in load_label.lower():
        return "off"
    m = _CACHE_LABEL.search(load_label)
    return m.group(1).lower() if m else None


def _cell_info(c: dict[str, Any], info: RunInfo) -> CellInfo:
    load = c.get("load") or {}
    rate = load.get("rate")
    point = LoadPoint(
        mode=str(load.get("mode") or "offline"),
        concurrency=_opt_int(load.get("concurrency")),
        rate=float(rate) if isinstance(rate, int | float) or rate in ("inf", "Infinity") else None,
        label=str(load.get("label") or ""),
    )
    task = next((t for t in info.tasks if t.name == c.get("task")), TaskRow(str(c.get("task"))))
    engine = next((e for e in info.engines if e.name == c.get("engine")), EngineRow(str(c.get("engine"))))
    extra = dict(engine.extra)
    return CellInfo(
        cell_id=str(c["cell_id"]),
        engine=engine.name,
        task=task.name,
        task_kind=task.kind,
        load=point,
        scorers=task.scorers,
        canary=task.canary,
        cache_arm=cache_arm(point.label, extra),
        cache_pair=_cache_pair(engine, extra, point),
    )


def _cache_pair(engine: EngineRow, extra: Mapping[str, str], point: LoadPoint) -> str:
    # Arms set per engine are two engine entries (one launched without the cache):
    # pair them by kind, model and mode (an SGLang "program" engine is no arm of a
    # "generate" one). Arms set per load label share the engine.
    if "cache_pair" in extra:
        return extra["cache_pair"]
    if any(k in extra for k in ("cache", "prefix_cache", "prefix_caching")):
        parts = (engine.kind, engine.model, extra.get("backend", ""), extra.get("mode", ""))
        return " ".join(x for x in parts if x) or engine.name
    return engine.name


def _peak_gpu_mb(mem: dict[str, Any]) -> float | None:
    # Samples are [t, [bytes per GPU], rss]: the peak of their sum is the true
    # simultaneous peak; the per-device peaks are the fallback.
    if not mem.get("gpu_available"):
        return None
    totals = [sum(s[1]) for s in mem.get("samples") or () if isinstance(s, list) and len(s) > 1 and s[1]]
    if totals:
        return max(totals) / 2**20
    peaks = [g.get("peak_bytes") or 0 for g in mem.get("gpus") or () if isinstance(g, dict)]
    return sum(peaks) / 2**20 if peaks else None


def _rss_mb(mem: dict[str, Any]) -> float | None:
    rss = _opt_float(mem.get("rss_peak_bytes"))
    return rss / 2**20 if rss else None


def _metric_pairs(d: object) -> tuple[tuple[str, float], ...] | None:
    if not isinstance(d, dict):
        return None
    return tuple((str(k), float(v)) for k, v in d.items() if _opt_float(v) is not None)


def _runtime(path: Path) -> CellRuntime:
    c = _read_json(path)
    if c is None:
        return CellRuntime()
    mem = c.get("memory") if isinstance(c.get("memory"), dict) else None
    return CellRuntime(
        status=str(c.get("status") or "unknown"),
        t_start=_opt_float(c.get("t_start")),
        t_end=_opt_float(c.get("t_end")),
        duration_s=_opt_float(c.get("duration_s")),
        n_items=_opt_int(c.get("n_items")),
        metrics_before=_metric_pairs(c.get("metrics_before")),
        metrics_after=_metric_pairs(c.get("metrics_after")),
        peak_gpu_memory_mb=_peak_gpu_mb(mem) if mem else None,
        peak_rss_mb=_rss_mb(mem) if mem else None,
        gpu_available=bool(mem.get("gpu_available")) if mem else None,
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


def _extra_cells(records: tuple[CallRecord, ...], known: set[str], info: RunInfo) -> list[CellInfo]:
    # Records of cells the manifest never listed (a manifest written before a crash).
    out: dict[str, CellInfo] = {}
    for r in records:
        if r.cell_id not in known and r.cell_id not in out:
            out[r.cell_id] = _cell_info({"cell_id": r.cell_id, "engine": r.engine, "task": r.task}, info)
    return list(out.values())


def load_run(run_dir: Path) -> RunData:
    """Read manifest, items, records and cell files of a run folder.

    Raises:
        UserError: when ``run_dir`` has no readable ``manifest.json``.
    """
    m = _read_json(run_dir / "manifest.json")
    if m is None:
        raise UserError(f"{run_dir}: not a structbench run folder (no readable manifest.json)")
    summary_opts, score_opts = _options(m)
    score_opts = replace(score_opts, judge_grades=_judge_grades(run_dir))
    info = _run_info(m, run_dir, summary_opts)
    req = run_dir / "requests.jsonl"
    records = tuple(read_records(req)) if stored_path(req).exists() else ()
    cells = [_cell_info(c, info) for c in m.get("cells") or () if isinstance(c, dict) and "cell_id" in c]
    cells += _extra_cells(records, {c.cell_id for c in cells}, info)
    runtimes = {c.cell_id: _runtime(run_dir / "cells" / c.cell_id / "cell.json") for c in cells}
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
