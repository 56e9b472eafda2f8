"""Version 1 run folders, migrated in memory to the version 2 shape (nothing is rewritten).

Version 1 wrote loose dicts. What the migration fills in, and from where:

- cache arms: the engine's ``extra.cache`` (``prefix_cache``, ``prefix_caching``), the
  resolved spec's ``cache`` of launched engines, or a load label such as ``cache=off``
  or ``nocache`` (:func:`label_cache_arm`, the rule the report used to apply);
- the load point's arrivals, burstiness and cap: the resolved spec's ``load``;
- the engines' model locations and dtype: the resolved spec, as the report did;
- ``git_sha``: the GPU runs recorded the literal ``"HEAD"`` (no ``.git`` there): unknown;
- warm-up: cell files say nothing (records carry ``warmup``; old ids end in ``~warmup<i>``);
- server counters keep their raw names.

Fields the old reader defaulted are defaulted the same way, so a report rebuilt from a
version 1 folder shows what it showed before.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from structbench.runfolder import hints

_CACHE_LABEL = re.compile(r"(?:^|[^a-z])(?:prefix[-_]?)?cache[=:_-]?(on|off)\b", re.IGNORECASE)
_CACHE_KEYS = ("cache", "prefix_cache", "prefix_caching")
_RUN_STATUS = ("running", "complete", "partial", "interrupted", "failed")
_CELL_STATUS = ("complete", "partial", "interrupted", "timed_out")
_MODES = ("offline", "concurrency", "rate")
_GPU_MEMORY_KEYS = frozenset(
    ("index", "name", "peak_bytes", "mean_bytes", "baseline_bytes", "peak_minus_baseline_bytes")
)
_Json = dict[str, object]
_Obj = Mapping[str, object]


def _obj(x: object) -> Mapping[str, object]:
    return x if isinstance(x, dict) else {}


def _str(x: object) -> str:
    return x if isinstance(x, str) else ""


def _float(x: object) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _int(x: object) -> int | None:
    return int(x) if isinstance(x, int) and not isinstance(x, bool) else None


def _str_map(x: object) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else json.dumps(v, default=str) for k, v in _obj(x).items()}


def _list(x: object) -> list[object]:
    return x if isinstance(x, list) else []


def _strs(x: object) -> list[str]:
    return [str(v) for v in _list(x)]


def label_cache_arm(load_label: str, engine_extra: Mapping[str, str]) -> Literal["on", "off"] | None:
    """Which arm of a prefix-cache on/off comparison a version 1 cell is, if any.

    An engine ``extra`` entry ``cache`` (or ``prefix_cache``) of on/off (true/false),
    else a load label containing ``cache=on``/``cache-off``/``nocache``.
    """
    for key in _CACHE_KEYS:
        v = engine_extra.get(key, "").strip().lower()
        if v in ("on", "true", "1", "enabled"):
            return "on"
        if v in ("off", "false", "0", "disabled"):
            return "off"
    if "nocache" in load_label.lower():
        return "off"
    m = _CACHE_LABEL.search(load_label)
    if m is None:
        return None
    return "on" if m.group(1).lower() == "on" else "off"


def _sha(x: object) -> str:
    # Outside a checkout git echoes its argument: "HEAD" was never a commit.
    return x if isinstance(x, str) and x and x != "HEAD" else "unknown"


def _engine(name: str, e: Mapping[str, object], spec: Mapping[str, object]) -> _Json:
    own = _str_map(e.get("extra"))
    # Older engines did not report their cache setting: a launched engine's spec says it.
    arm = spec.get("cache") if spec.get("launch") and isinstance(spec.get("cache"), str) else None
    extra = {**({"cache": str(arm)} if arm is not None else {}), **own}
    kind, model = _str(e.get("kind")), _str(e.get("model"))
    is_arm = "cache_pair" in extra or any(k in extra for k in _CACHE_KEYS)
    return {
        "name": name,
        "kind": kind,
        "model": model,
        "version": _str(e.get("version")),
        "url": _str(e.get("url")),
        "extra": extra,
        "cache_arm": label_cache_arm("", extra),
        "cache_pair": hints.cache_pair(name, kind, model, extra) if is_arm else None,
        "model_paths": list(hints.model_paths(model, own, spec)),
        "dtype": hints.served_dtype(spec),
        "api": _str(spec.get("api")) or "chat",
    }


def _load(load: Mapping[str, object], spec_load: Mapping[str, object]) -> _Json:
    mode = load.get("mode") if load.get("mode") in _MODES else "offline"
    conc = _int(load.get("concurrency"))
    rate = load.get("rate")
    cap = conc if mode == "concurrency" else _int(spec_load.get("max_concurrency"))
    return {
        "mode": mode,
        "concurrency": conc,
        "rate": math.inf if rate in ("inf", "Infinity") else (_float(rate) or math.inf),
        "arrivals": _str(spec_load.get("arrivals")) or "poisson",
        "burstiness": _float(spec_load.get("burstiness")) or 1.0,
        "max_concurrency": cap,
        "label": _str(load.get("label")),
    }


def _cell_entry(c: _Obj, engines: Mapping[str, _Json], spec_load: _Obj) -> _Json:
    load = _obj(c.get("load"))
    engine = _str(c.get("engine"))
    e = engines.get(engine)
    extra = e["extra"] if e is not None and isinstance(e["extra"], dict) else {}
    return {
        "cell_id": str(c["cell_id"]),
        "engine": engine,
        "task": _str(c.get("task")),
        "load": _load(load, spec_load),
        "cache_arm": label_cache_arm(_str(load.get("label")), extra),
        "cache_pair": e["cache_pair"] if e is not None else None,
    }


def _hardware(hw: Mapping[str, object]) -> _Json:
    out: _Json = {k: hw[k] for k in ("platform", "machine", "processor") if isinstance(hw.get(k), str)}
    out |= {k: hw[k] for k in ("cpu_count", "memory_bytes") if _int(hw.get(k)) is not None}
    if "gpus" in hw:
        gpus = [g for g in _list(hw["gpus"]) if isinstance(g, dict)]
        out["gpus"] = [
            {"index": i if _int(g.get("index")) is None else g["index"], "name": _str(g.get("name"))}
            | ({"memory_bytes": g["memory_bytes"]} if _int(g.get("memory_bytes")) is not None else {})
            for i, g in enumerate(gpus)
        ]
    return out


def _options(opts: Mapping[str, object]) -> _Json:
    slo = _obj(opts.get("slo"))
    timeout = _float(opts.get("schema_timeout_s"))
    return {
        "schema_timeout_s": timeout if timeout and timeout > 0 else 2.0,
        "bootstrap": _int(opts.get("bootstrap")) or 1000,
        "slo": {k: _float(slo.get(k)) for k in ("ttft_ms", "tpot_ms", "e2el_ms")},
    }


def _task(t: Mapping[str, object]) -> _Json:
    return {
        "kind": _str(t.get("kind")),
        "scorers": _strs(t.get("scorers")),
        "canary": bool(t.get("canary")),
        "path": _str(t.get("path")),
    }


def _resume(r: Mapping[str, object]) -> _Json:
    cells = {
        str(k): {"attempt": _int(_obj(v).get("attempt")) or 1, "items": _int(_obj(v).get("items")) or 0}
        for k, v in _obj(r.get("cells")).items()
    }
    return {"utc": _str(r.get("utc")), "cells": cells}


def manifest(d: Mapping[str, object], run_dir: Path) -> _Json:
    """A version 1 ``manifest.json`` in the version 2 shape (validated by the caller)."""
    spec = _obj(d.get("spec"))
    suite = _obj(spec.get("suite"))
    specs = {_str(e.get("name")): e for e in _list(suite.get("engines")) if isinstance(e, dict)}
    engines = {
        str(n): _engine(str(n), e, _obj(specs.get(str(n))))
        for n, e in _obj(d.get("engines")).items()
        if isinstance(e, dict)
    }
    cells = [c for c in _list(d.get("cells")) if isinstance(c, dict) and "cell_id" in c]
    status = d.get("status")
    return {
        "schema_version": 2,
        "migrated_from": 1,
        "run_id": _str(d.get("run_id")) or run_dir.name,
        "suite": _str(d.get("suite")) or run_dir.parent.name,
        "created_utc": _str(d.get("created_utc")),
        "seed": _int(d.get("seed")) or 0,
        "git_sha": _sha(d.get("git_sha")),
        "argv": _strs(d.get("argv")),
        "versions": _str_map(d.get("versions")),
        "hardware": _hardware(_obj(d.get("hardware"))),
        "engines": engines,
        "tasks": {str(n): _task(t) for n, t in _obj(d.get("tasks")).items() if isinstance(t, dict)},
        "cells": [_cell_entry(c, engines, _obj(suite.get("load"))) for c in cells],
        "options": _options(_obj(d.get("options"))),
        "spec": dict(spec),
        "suite_path": _str(d.get("suite_path")) or None,
        "status": status if status in _RUN_STATUS else "unknown",
        "error": _str(d.get("error")) or None,
        "failed_cells": _strs(d.get("failed_cells")),
        "resumes": [_resume(r) for r in _list(d.get("resumes")) if isinstance(r, dict)],
    }


def _memory(m: object) -> _Json | None:
    if not isinstance(m, dict) or not m:
        return None
    samples = [
        [s[0], s[1], s[2] if _int(s[2]) is not None else 0]
        for s in _list(m.get("samples"))
        if isinstance(s, list) and len(s) == 3 and _float(s[0]) is not None and isinstance(s[1], list)
    ]
    gpus = [
        {k: v for k, v in g.items() if k in _GPU_MEMORY_KEYS}
        for g in _list(m.get("gpus"))
        if isinstance(g, dict) and _int(g.get("index")) is not None
    ]
    rss = _float(m.get("rss_peak_bytes"))
    return {
        "gpu_available": bool(m.get("gpu_available")),
        "n_samples": _int(m.get("n_samples")) or len(samples),
        "gpus": gpus,
        "rss_peak_bytes": None if rss is None else int(rss),
        "rss_mean_bytes": _float(m.get("rss_mean_bytes")),
        "samples": samples,
    }


def _counters(x: object) -> dict[str, float] | None:
    if not isinstance(x, dict):
        return None
    return {str(k): float(v) for k, v in x.items() if _float(v) is not None}


def cell(d: Mapping[str, object], path: Path) -> _Json:
    """A version 1 ``cell.json`` in the version 2 shape (validated by the caller).

    A cell file alone does not know its engine's extras: its cache arm comes from the
    load label only. The manifest's cell entry is the one the report uses.
    """
    load = _obj(d.get("load"))
    status = d.get("status")
    reset = d.get("cache_reset")
    return {
        "schema_version": 2,
        "cell_id": _str(d.get("cell_id")) or path.parent.name,
        "engine": _str(d.get("engine")),
        "task": _str(d.get("task")),
        "load": _load(load, {}),
        "cache_arm": label_cache_arm(_str(load.get("label")), {}),
        "status": status if status in _CELL_STATUS else "unknown",
        "attempt": _int(d.get("attempt")) or 1,
        **{k: _float(d.get(k)) for k in ("t_start", "t_end", "duration_s")},
        **{k: _int(d.get(k)) for k in ("n_items", "n_records", "n_errors")},
        "cache_reset": reset if isinstance(reset, bool) else None,
        "metrics_before": _counters(d.get("metrics_before")),
        "metrics_after": _counters(d.get("metrics_after")),
        "memory": _memory(d.get("memory")),
    }
