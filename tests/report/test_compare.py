"""compare_runs: side-by-side markdown with deltas against the first run."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from structbench.errors import UserError
from structbench.records import cell_records_path
from structbench.report.compare import CompareOptions, compare_runs
from structbench.stats import bootstrap_diff_ci


def test_compare_two_runs(make_run: Callable[..., Path]) -> None:
    first = make_run("base", speed=1.0)
    second = make_run("slow", speed=2.0)
    md = compare_runs([first, second])
    assert "- **#1**: demo / base (complete" in md and "- **#2**: demo / slow" in md
    assert "## Task invoice" in md and "## Task math" in md
    rows = [line for line in md.splitlines() if line.startswith("| vllm | c1 |")]
    assert len(rows) == 2 and "| #1 |" in rows[0] and "| #2 |" in rows[1]
    # Same outputs, twice the latency: validity unchanged (inside the noise), p99 latency up.
    assert "(+0.0 pp ≈)" in rows[1]
    header = next(line for line in md.splitlines() if line.startswith("| Engine | Load | Run |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    cells = [c.strip() for c in rows[1].strip("|").split("|")]
    p99 = cells[cols.index("p99 E2EL ms")]
    assert "(+" in p99 and "%)" in p99 and "≈" not in p99  # every call twice as slow: not noise
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
    # One line per task for cells only one run has, not a row of blanks per run.
    assert "| sglang |" not in md and "Only in run #1: sglang c4." in md


def test_compare_maps_engine_names_and_filters(make_run: Callable[..., Path]) -> None:
    first = make_run("cpu")
    second = make_run("gpu")
    m = json.loads((second / "manifest.json").read_text())
    text = (second / "manifest.json").read_text().replace('"vllm"', '"vllm-gpu"')
    (second / "manifest.json").write_text(text)
    assert json.loads(text)["cells"] != m["cells"]
    for cell in (second / "cells").iterdir():
        for path in (cell / "cell.json", cell_records_path(second, cell.name)):
            path.write_text(path.read_text().replace('"vllm"', '"vllm-gpu"'))
    unmapped = compare_runs([first, second])
    assert "Only in run #1: vllm c1, vllm c4." in unmapped and "Only in run #2: vllm-gpu c1" in unmapped
    opts = CompareOptions(engine_map=(("vllm-gpu", "vllm"),), tasks=("invoice",), engines=("vllm",))
    md = compare_runs([first, second], replace(opts, metrics=("p99_e2el_ms", "validity")))
    assert "- engines renamed: vllm-gpu → vllm" in md
    assert "## Task invoice" in md and "## Task math" not in md and "| sglang |" not in md
    header = next(line for line in md.splitlines() if line.startswith("| Engine | Load | Run |"))
    assert header == "| Engine | Load | Run | p99 E2EL ms | validity % |"
    rows = [line for line in md.splitlines() if line.startswith("| vllm | c1 |")]
    assert len(rows) == 2 and "≈" in rows[1]  # the same records: every delta is noise
    assert "Only in run" not in md


@pytest.mark.parametrize(
    ("opts", "error"),
    [
        (CompareOptions(metrics=("p99_ttft",)), "--metric: no metric p99_ttft (have: request_"),
        (CompareOptions(tasks=("nosuch",)), "--task: no task nosuch in these runs (have: invoice, canary"),
        (
            CompareOptions(engines=("vllm-cpu",)),
            "--engine: no engine vllm-cpu in these runs (have: vllm, sglang",
        ),
        (
            CompareOptions(engine_map=(("sglang", "vllm"),)),
            "--map: run #1 has engines 'vllm' and 'sglang' both",
        ),
    ],
)
def test_compare_bad_options_name_the_flag(
    make_run: Callable[..., Path], opts: CompareOptions, error: str
) -> None:
    run = make_run("a")
    with pytest.raises(UserError) as err:
        compare_runs([run, run], opts)
    assert str(err.value).startswith(error), str(err.value)


def test_bootstrap_diff_ci_holds_zero_only_for_noise() -> None:
    same = [10.0, 12.0, 11.0, 13.0, 9.0, 12.5, 10.5, 11.5]
    ci = bootstrap_diff_ci(same, [v + 0.1 for v in same], seed=1)
    assert ci is not None and ci[0] <= 0.0 <= ci[1]
    ci = bootstrap_diff_ci(same, [2 * v for v in same], q=99, seed=1)
    assert ci is not None and ci[0] > 0
    assert bootstrap_diff_ci([], same) is None and bootstrap_diff_ci(same, same, n_resamples=0) is None
