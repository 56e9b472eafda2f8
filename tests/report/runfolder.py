"""A hand-made results folder, written the way the runner writes one (used by the report tests).

``version=2`` (the default) writes through :mod:`structbench.runfolder`, as the runner
does now, with each cell's records in ``cells/<id>/requests.jsonl``; ``version=1`` writes
the loose dicts of version 1 folders, with warm-up items renamed ``<id>~warmup0`` and all
records in one run-level ``requests.jsonl``, as the committed runs under ``results/`` have them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from structbench.ir import Branch, Choice, Gen, JsonSchema, Regex, Turn, WorkItem, item_to_dict
from structbench.records import CallRecord, cell_records_path
from structbench.runfolder import CellFile, RunManifest

SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "total": {"type": "number"}},
        "required": ["name", "total"],
    },
    sort_keys=True,
)
INVOICE_REF = '{"name": "ACME", "total": 12.5}'
TASKS = {
    "invoice": {"kind": "json", "scorers": ["json_parse", "schema_valid", "field_accuracy"], "canary": False},
    "canary": {"kind": "regex", "scorers": ["regex_match"], "canary": True},
    "pick": {"kind": "choice", "scorers": ["choice_valid", "exact_match"], "canary": False},
    "math": {"kind": "chat", "scorers": ["final_number"], "canary": False},
}
ENGINES = ("vllm", "sglang")
#: (task, load label, concurrency) of every cell, per engine.
CELLS = (
    ("invoice", "c1", 1),
    ("invoice", "c4", 4),
    ("canary", "c4", 4),
    ("pick", "c4", 4),
    ("math", "c4", 4),
)
N_ITEMS = 6


def _gens(task: str) -> list[Gen]:
    if task == "invoice":
        return [Gen("out", JsonSchema(SCHEMA), reference=INVOICE_REF)]
    if task == "canary":
        return [Gen("out", Regex(r"ZQX-\d{3}"))]
    if task == "pick":
        return [Gen("out", Choice(("yes", "no")), reference="yes")]
    return [Gen("t0", reference="#### 4"), Gen("t1", reference="#### 8")]


def _items() -> list[WorkItem]:
    out = []
    for task in TASKS:
        for i in range(N_ITEMS):
            turns = tuple(Turn(f"q{i}.{k}", g) for k, g in enumerate(_gens(task)))
            out.append(WorkItem(f"{task}/{i}", task, TASKS[task]["kind"], (), (Branch(turns),)))  # type: ignore[arg-type]
    return out


def _text(engine: str, task: str, i: int, turn: int) -> tuple[str, str | None]:
    """Output text and error: vllm is right; sglang slips in places."""
    bad = engine == "sglang" and i % 3 == 0
    if task == "invoice":
        if bad:
            return '{"name": "ACME", "tot', None
        return '{"name": "acme", "total": 12.5}' if i % 2 else INVOICE_REF, None
    if task == "canary":
        return ("hello" if bad else f"ZQX-{100 + i}"), None
    if task == "pick":
        return (
            ("", "unsupported: constraint 'choice'")
            if engine == "sglang"
            else ("yes" if i % 4 else "no", None)
        )
    return (f"so it is {4 * (turn + 1) + (1 if bad else 0)}", None)


def _records(
    engine: str, task: str, label: str, conc: int, speed: float, rng: random.Random, version: int
) -> list[CallRecord]:
    cell = f"{engine}.{task}.{label}"
    recs = []
    t = 100.0
    for i in range(-1, N_ITEMS):  # -1: the warm-up item
        item_id = f"{task}/{max(i, 0)}" + ("~warmup0" if i < 0 and version == 1 else "")
        for turn, _ in enumerate(_gens(task)):
            text, err = _text(engine, task, max(i, 0), turn)
            sent = t
            first = sent + speed * (0.05 + 0.02 * rng.random()) * conc
            n = 8
            times = tuple(first + speed * 0.01 * (k + 1) for k in range(n - 1))
            done = times[-1]
            ok = err is None
            recs.append(
                CallRecord(
                    cell,
                    engine,
                    task,
                    item_id,
                    0,
                    turn,
                    f"g{turn}",
                    TASKS[task]["kind"],  # type: ignore[arg-type]
                    warmup=i < 0,
                    strategy="response_format" if engine == "vllm" else "sgl.gen",
                    t_scheduled=sent,
                    t_sent=sent if ok else None,
                    t_first_token=first if ok else None,
                    t_done=done if ok else None,
                    token_times=times if ok else (),
                    prompt_tokens=50,
                    completion_tokens=n if ok else None,
                    cached_tokens=(32 if engine == "vllm" else None) if ok else None,
                    text=text,
                    error=err,
                )
            )
            t = done if conc == 1 else t + (done - sent) / conc
    return recs


def _cell_json(engine: str, cell_id: str, task: str, label: str, conc: int) -> dict[str, object]:
    metrics = None
    if engine == "vllm":
        metrics = (
            {"vllm:prefix_cache_hits_total": 100.0, "vllm:prefix_cache_queries_total": 400.0},
            {"vllm:prefix_cache_hits_total": 300.0, "vllm:prefix_cache_queries_total": 800.0},
        )
    return {
        "cell_id": cell_id,
        "engine": engine,
        "task": task,
        "load": {"mode": "concurrency", "concurrency": conc, "rate": float("inf"), "label": label},
        "t_start": 99.0,
        "t_end": 130.0,
        "duration_s": 31.0,
        "status": "complete",
        "n_items": N_ITEMS,
        "metrics_before": metrics[0] if metrics else None,
        "metrics_after": metrics[1] if metrics else None,
        "memory": {
            "gpu_available": False,
            "n_samples": 2,
            "gpus": [],
            "rss_peak_bytes": 512 * 2**20,
            "samples": [[0.0, [], 400 * 2**20], [0.1, [], 512 * 2**20]],
        },
    }


def write_run(
    root: Path, name: str = "run1", speed: float = 1.0, status: str = "complete", version: int = 2
) -> Path:
    """Write a complete results folder under ``root/suite/name`` and return its path."""
    run = root / "demo" / name
    (run / "cells").mkdir(parents=True)
    rng = random.Random(name)
    cells, records = [], []
    for engine in ENGINES:
        for task, label, conc in CELLS:
            cell_id = f"{engine}.{task}.{label}"
            load = {"mode": "concurrency", "concurrency": conc, "rate": float("inf"), "label": label}
            cells.append({"cell_id": cell_id, "engine": engine, "task": task, "load": load})
            records += _records(engine, task, label, conc, speed, rng, version)
            (run / "cells" / cell_id).mkdir()
            cj = _cell_json(engine, cell_id, task, label, conc)
            _write_cell(run / "cells" / cell_id / "cell.json", cj, version)
    manifest = {
        "schema_version": 1,
        "run_id": name,
        "suite": "demo",
        "created_utc": "2026-11-28T12:00:00+00:00",
        "seed": 0,
        "git_sha": "abc123",
        "versions": {"structbench": "0.1.0", "python": "3.11"},
        "hardware": {"platform": "Linux", "cpu_count": 2, "gpus": []},
        "engines": {
            "vllm": {"kind": "vllm", "model": "smollm2", "version": "0.32.0", "url": "", "extra": {}},
            "sglang": {"kind": "sglang", "model": "smollm2", "version": "0.5.23", "url": "", "extra": {}},
        },
        "tasks": {t: {**v, "path": f"tasks/{t}.yaml"} for t, v in TASKS.items()},
        "cells": cells,
        "options": {
            "schema_timeout_s": 2.0,
            "bootstrap": 200,
            "slo": {"ttft_ms": 300, "tpot_ms": None, "e2el_ms": None},
        },
        "spec": {},
        "status": status,
    }
    if version == 1:
        (run / "manifest.json").write_text(json.dumps(manifest))
    else:
        RunManifest.model_validate(_v2_manifest(manifest)).write(run)
    with (run / "items.jsonl").open("w") as fh:
        for it in _items():
            fh.write(json.dumps({"task": it.task, "item": item_to_dict(it)}) + "\n")
    for r in records:
        path = run / "requests.jsonl" if version == 1 else cell_records_path(run, r.cell_id)
        with path.open("a") as fh:
            fh.write(r.to_json() + "\n")
    return run


def _write_cell(path: Path, cj: dict[str, object], version: int) -> None:
    if version == 1:
        path.write_text(json.dumps(cj))
        return
    load = cj["load"]
    assert isinstance(load, dict)
    v2 = {**cj, "load": {**load, "max_concurrency": load["concurrency"]}, "warmup_items": 1}
    CellFile.model_validate(v2).write(path)


def _v2_manifest(m: dict[str, object]) -> dict[str, object]:
    """The version 1 dict above as the runner writes it now (engines neither cache arm)."""
    engines = m["engines"]
    cells = m["cells"]
    assert isinstance(engines, dict) and isinstance(cells, list)
    return {
        **{k: v for k, v in m.items() if k != "schema_version"},
        "engines": {n: {**e, "name": n} for n, e in engines.items()},
        "cells": [{**c, "load": {**c["load"], "max_concurrency": c["load"]["concurrency"]}} for c in cells],
    }
