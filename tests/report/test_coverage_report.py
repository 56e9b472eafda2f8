"""The coverage section of report.md / report.html, built from a hand-made corpus run folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from structbench.ir import NO_CONSTRAINT, Branch, Gen, JsonSchema, Turn, WorkItem, item_to_dict
from structbench.records import CallRecord
from structbench.report.build import build_report

SCHEMAS = {
    "ok": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    "pat": {
        "type": "object",
        "properties": {"c": {"type": "string", "pattern": "^[A-Z]+$"}},
        "required": ["c"],
    },
    "ip": {"type": "object", "properties": {"ip": {"type": "string", "format": "ipv4"}}, "required": ["ip"]},
}
FEATURES = {"ok": "", "pat": "pattern", "ip": "format:ipv4"}
#: Per engine, per schema: (output text, error). "good" enforces everything but ipv4,
#: which it refuses; "lax" accepts everything and ignores pattern and format.
OUTPUTS: dict[str, dict[str, tuple[str, str | None]]] = {
    "good": {"ok": ('{"n": 1}', None), "pat": ('{"c": "AB"}', None), "ip": ("", "unsupported: format ipv4")},
    "lax": {"ok": ('{"n": 1}', None), "pat": ('{"c": "ab"}', None), "ip": ('{"ip": "999.1.1.1"}', None)},
}
TASKS = {"corpus": ("constrained", 2), "corpus_free": ("free", 1)}


def _item(task: str, sid: str, row: int, repeat: int) -> WorkItem:
    mode, repeats = TASKS[task]
    text = json.dumps(SCHEMAS[sid], separators=(",", ":"))
    con = JsonSchema(text) if mode == "constrained" else NO_CONSTRAINT
    meta = (
        ("row", str(row)),
        ("schema_id", sid),
        ("features", FEATURES[sid]),
        ("repeat", str(repeat)),
        ("mode", mode),
        ("unique", "0"),
        ("pair", "corpus"),
    )
    iid = f"{task}/{row}/r{repeat}" if repeats > 1 else f"{task}/{row}"
    return WorkItem(
        iid, task, "schema_corpus", (), (Branch((Turn(f"make {sid}", Gen("answer", con)),)),), meta
    )


def _record(engine: str, item: WorkItem, t: float) -> CallRecord:
    sid, repeat = dict(item.meta)["schema_id"], int(dict(item.meta)["repeat"])
    free = dict(item.meta)["mode"] == "free"
    text, error = ('{"free": true}', None) if free else OUTPUTS[engine][sid]
    ttft = 0.05 if free or repeat else 0.65  # first copies pay a 600 ms compile
    ok = error is None
    return CallRecord(
        cell_id=f"{engine}.{item.task}.c1",
        engine=engine,
        task=item.task,
        item_id=item.item_id,
        branch=0,
        turn=0,
        gen_name="answer",
        constraint=item.branches[0].turns[0].gen.constraint.kind,
        t_scheduled=t,
        t_sent=t,
        t_first_token=t + ttft if ok else None,
        t_done=t + ttft + (0.5 if free else 1.0) if ok else None,
        completion_tokens=10 if ok else None,
        text=text,
        error=error,
        meta=item.meta,
    )


def _write_run(root: Path) -> Path:
    run = root / "coverage" / "r1"
    (run / "cells").mkdir(parents=True)
    items = [
        _item(task, sid, row, k)
        for task, (_, repeats) in TASKS.items()
        for k in range(repeats)
        for row, sid in enumerate(SCHEMAS)
    ]
    cells, records = [], []
    for engine in OUTPUTS:
        for task in TASKS:
            cell_id = f"{engine}.{task}.c1"
            load = {"mode": "concurrency", "concurrency": 1, "rate": None, "label": "c1"}
            cells.append({"cell_id": cell_id, "engine": engine, "task": task, "load": load})
            records += [
                _record(engine, it, 100.0 + 2 * i) for i, it in enumerate(i for i in items if i.task == task)
            ]
    manifest = {
        "run_id": "r1",
        "suite": "coverage",
        "seed": 0,
        "status": "complete",
        "engines": {e: {"kind": "embedded", "model": "m"} for e in OUTPUTS},
        "tasks": {t: {"kind": "schema_corpus", "scorers": ["json_parse", "schema_valid"]} for t in TASKS},
        "cells": cells,
        "options": {"schema_timeout_s": 30.0, "bootstrap": 100, "slo": {}},
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "items.jsonl").write_text("".join(json.dumps({"item": item_to_dict(it)}) + "\n" for it in items))
    (run / "requests.jsonl").write_text("".join(r.to_json() + "\n" for r in records))
    return run


def _row(md: str, start: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


def test_coverage_section_in_every_output(tmp_path: Path) -> None:
    run = _write_run(tmp_path)
    summary = build_report(run)
    assert summary.corpus is not None
    md = (run / "report.md").read_text()
    assert "## Schema coverage and the cost of structure" in md
    assert "### Coverage by feature: corpus" in md
    # Feature, engine, schemas, declared, empirical, compliance, silent, loud, errors,
    # truncated, timeout, bad schema, compile limit.
    good = _row(md, "| all schemas | good |")
    assert good[2] == "3" and good[3] == "66.7 [20.8, 93.9]"  # with its Wilson CI
    assert good[5].startswith("100.0") and good[6:] == ["0", "1", "0", "0", "0", "0", "0"]
    assert _row(md, "| all schemas | lax |")[6:9] == ["2", "0", "0"]
    zeros = ["0"] * 4  # truncated, timeout, bad schema, compile limit
    assert _row(md, "| pattern | good |")[2:] == ["1", "100.0", "100.0", "100.0", "0", "0", "0", *zeros]
    assert _row(md, "| pattern | lax |")[2:] == ["1", "100.0", "0.0", "0.0", "1", "0", "0", *zeros]
    assert _row(md, "| format:ipv4 | good |")[2:] == ["1", "0.0", "0.0", "-", "0", "1", "0", *zeros]
    assert _row(md, "| format:ipv4 | lax |")[6:8] == ["1", "0"]
    # Silent failures name the keyword the engine ignored.
    assert _row(md, "| lax | corpus | pattern |") == ["lax", "corpus", "pattern", "1"]
    assert _row(md, "| lax | corpus | format |") == ["lax", "corpus", "format", "1"]
    assert "| good | corpus | ip | unsupported | unsupported: format ipv4 |" in md
    # Cost: 600 ms compile per schema; constrained vs free throughput per engine.
    compile_row = _row(md, "| lax | corpus | c1 |")
    assert compile_row[3:5] == ["3", "600"]
    assert _row(md, "| good | corpus | c1 |")[3] == "2"  # the refused schema has no TTFT
    assert _row(md, "| lax | c1 | corpus | corpus_free |")[4:7] == ["5.43", "6.59", "0.82"]
    html = (run / "report.html").read_text()
    assert "<h2>Schema coverage and the cost of structure</h2>" in html
    assert html.count('alt="corpus: empirical and declared coverage by feature"') == 1
    assert html.count('alt="Cost of structure"') == 1
    assert (run / "plots" / "coverage_corpus.png").exists() and (
        run / "plots" / "cost_of_structure.png"
    ).exists()
    data = json.loads((run / "summary.json").read_text())
    cov = next(c for c in data["corpus"]["coverage"] if c["engine"] == "good")
    assert cov["features"]["format:ipv4"]["loud"] == 1
    assert {c["engine"] for c in data["corpus"]["compile"]} == {"good", "lax"}


def test_no_section_without_a_corpus(make_run: Callable[..., Path]) -> None:
    run = make_run()
    summary = build_report(run)
    assert summary.corpus is None
    assert "Schema coverage" not in (run / "report.md").read_text()
    assert "Schema coverage" not in (run / "report.html").read_text()
    assert "corpus" not in json.loads((run / "summary.json").read_text())
