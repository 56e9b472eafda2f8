"""compare_runs: side-by-side markdown with deltas against the first run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from structbench.records import cell_records_path
from structbench.report.compare import compare_runs


def test_compare_two_runs(make_run: Callable[..., Path]) -> None:
    first = make_run("base", speed=1.0)
    second = make_run("slow", speed=2.0)
    md = compare_runs([first, second])
    assert "- **#1**: demo / base (complete" in md and "- **#2**: demo / slow" in md
    assert "## Task invoice" in md and "## Task math" in md
    rows = [line for line in md.splitlines() if line.startswith("| vllm | c1 |")]
    assert len(rows) == 2 and "| #1 |" in rows[0] and "| #2 |" in rows[1]
    # Same outputs, twice the latency: validity unchanged, p99 latency up (positive % delta).
    assert "(+0.0 pp)" in rows[1]
    header = next(line for line in md.splitlines() if line.startswith("| Engine | Load | Run |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    cells = [c.strip() for c in rows[1].strip("|").split("|")]
    p99 = cells[cols.index("p99 E2EL ms")]
    assert "(+" in p99 and "%)" in p99
    req = cells[cols.index("req/s")]
    assert "(-" in req  # slower run: fewer requests per second


def test_compare_marks_missing_cells(make_run: Callable[..., Path]) -> None:
    first = make_run("a")
    second = make_run("b")
    # Drop the sglang cells from run b's manifest and cell folders: they were never run.
    for cell in (second / "cells").iterdir():
        if cell.name.startswith("sglang."):
            (cell / "cell.json").unlink()
            cell_records_path(second, cell.name).unlink()
    m = json.loads((second / "manifest.json").read_text())
    m["cells"] = [c for c in m["cells"] if c["engine"] != "sglang"]
    (second / "manifest.json").write_text(json.dumps(m))
    md = compare_runs([first, second])
    assert "| sglang | c4 | #2 | (missing) |" in md
