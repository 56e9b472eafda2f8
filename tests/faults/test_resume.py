"""``structbench run --resume``: an interrupted or failed run finishes in its own folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_openai import FakeServer
from fault_suites import cell_status, manifest, ok_calls, openai_engine, record_files, write_suite

from structbench.cli import main
from structbench.errors import UserError
from structbench.records import cell_records_path, read_records, run_records
from structbench.resume import resume_run
from structbench.run import RunOptions, run_suite


def _run(suite: Path, root: Path) -> Path:
    return run_suite(RunOptions(suite, root, progress=False)).run_dir


def test_resume_after_failures_matches_uninterrupted_run(tmp_path: Path) -> None:
    with FakeServer() as srv:
        suite = write_suite(tmp_path, [openai_engine(srv.url)], n=4, tasks=2)
        baseline = ok_calls(_run(suite, tmp_path / "a"))
        assert len(baseline) == 8
        srv.behaviour.mode, srv.behaviour.ok_first = "500", srv.behaviour.requests + 3
        out = run_suite(RunOptions(suite, tmp_path / "b", progress=False))
        assert out.failed_cells and not out.interrupted
        assert manifest(out.run_dir)["status"] == "partial"
        assert {cell_status(out.run_dir, c) for c in out.failed_cells} == {"partial"}
        before = record_files(out.run_dir)
        n_sent = srv.behaviour.requests
        srv.behaviour.mode = "ok"
        again = resume_run(out.run_dir, progress=False)
    assert again.run_dir == out.run_dir and not again.failed_cells
    assert ok_calls(out.run_dir) == baseline
    assert srv.behaviour.requests - n_sent == 8 - 3  # only the failed items ran again
    # Each redone cell appended its new attempt to its own file; earlier records kept as they were.
    after = record_files(out.run_dir)
    assert set(after) == set(before) and not (out.run_dir / "requests.jsonl").exists()
    new = []
    for cell, text in after.items():
        assert text.startswith(before[cell])
        recs = list(read_records(cell_records_path(out.run_dir, cell)))[before[cell].count("\n") :]
        assert {r.cell_id for r in recs} <= {cell}
        new += recs
    assert {r.cell_id for r in new} == set(out.failed_cells)
    assert new and {r.attempt for r in new} == {2} and all(r.ok for r in new)
    m = manifest(out.run_dir)
    assert m["status"] == "complete" and m["failed_cells"] == []
    assert len(m["resumes"]) == 1  # type: ignore[arg-type]
    assert any((out.run_dir / "cells").glob("*/cell.attempt1.json"))
    assert (out.run_dir / "report.md").exists()


def test_resume_after_truncated_records(tmp_path: Path) -> None:
    with FakeServer() as srv:
        suite = write_suite(tmp_path, [openai_engine(srv.url)], n=4)
        run_dir = _run(suite, tmp_path / "r")
        full = ok_calls(run_dir)
        broken = tmp_path / "broken"
        shutil.copytree(run_dir, broken)
        path = cell_records_path(broken, "fake.pick0.c1")
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(lines[:2]) + lines[2][:20], encoding="utf-8")  # killed mid-write
        for cell_json in (broken / "cells").glob("*/cell.json"):
            cell_json.unlink()  # as when the run was killed before the cell ended
        n_sent = srv.behaviour.requests
        resume_run(broken, progress=False)
        assert srv.behaviour.requests - n_sent == 2
    assert ok_calls(broken) == full
    assert [r.attempt for r in read_records(path)] == [1, 1, 2, 2]  # appended after the torn line


def _as_version_1(run_dir: Path) -> None:
    """Move the cells' records into one run-level file, as version 1 folders keep them."""
    recs = list(run_records(run_dir))
    (run_dir / "requests.jsonl").write_text("".join(r.to_json() + "\n" for r in recs), encoding="utf-8")
    for path in run_dir.glob("cells/*/requests.jsonl"):
        path.unlink()


def test_resume_of_a_version_1_folder_appends_to_the_cell_files(tmp_path: Path) -> None:
    with FakeServer() as srv:
        suite = write_suite(tmp_path, [openai_engine(srv.url)], n=4, tasks=2)
        run_dir = _run(suite, tmp_path / "r")
        full = ok_calls(run_dir)
        _as_version_1(run_dir)
        legacy = (run_dir / "requests.jsonl").read_text(encoding="utf-8")
        lines = legacy.splitlines(keepends=True)
        # The run stopped two items into the second cell (pick1): drop its records and cell.json.
        kept = [ln for ln in lines if '"cell_id":"fake.pick1.c1"' not in ln]
        pick1 = [ln for ln in lines if '"cell_id":"fake.pick1.c1"' in ln]
        (run_dir / "requests.jsonl").write_text("".join(kept + pick1[:2]), encoding="utf-8")
        (run_dir / "cells" / "fake.pick1.c1" / "cell.json").unlink()
        n_sent = srv.behaviour.requests
        resume_run(run_dir, progress=False)
        assert srv.behaviour.requests - n_sent == 2
    # The run-level file is left as it was; the new attempt went to the cell's own file.
    assert (run_dir / "requests.jsonl").read_text(encoding="utf-8") == "".join(kept + pick1[:2])
    assert set(record_files(run_dir)) == {"fake.pick1.c1"}
    assert [r.attempt for r in read_records(cell_records_path(run_dir, "fake.pick1.c1"))] == [2, 2]
    assert ok_calls(run_dir) == full  # both files read


def test_resume_of_complete_run_runs_nothing(tmp_path: Path) -> None:
    with FakeServer() as srv:
        suite = write_suite(tmp_path, [openai_engine(srv.url)], n=2)
        run_dir = _run(suite, tmp_path / "r")
        n_sent = srv.behaviour.requests
        out = resume_run(run_dir, progress=False)
        assert srv.behaviour.requests == n_sent
    assert not out.failed_cells and manifest(run_dir)["status"] == "complete"


def test_resume_refuses_a_changed_suite(tmp_path: Path) -> None:
    with FakeServer() as srv:
        suite = write_suite(tmp_path, [openai_engine(srv.url)], n=2)
        run_dir = _run(suite, tmp_path / "r")
    write_suite(tmp_path, [openai_engine(srv.url)], n=3)
    with pytest.raises(UserError, match="changed since the run"):
        resume_run(run_dir, progress=False)


def test_cli_resume_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["run", "--resume", str(tmp_path)])
    assert res.exit_code == 2 and "no manifest.json" in res.output
    res = runner.invoke(main, ["run", "x.yaml", "--resume", str(tmp_path)])
    assert res.exit_code == 2 and "give none of them" in res.output
    res = runner.invoke(main, ["run"])
    assert res.exit_code == 2 and "--resume RUN_DIR" in res.output
