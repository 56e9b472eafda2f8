"""``structbench run --resume``: an interrupted or failed run finishes in its own folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_openai import FakeServer
from fault_suites import cell_status, manifest, ok_calls, openai_engine, write_suite

from structbench.cli import main
from structbench.errors import UserError
from structbench.records import read_records
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
        before = (out.run_dir / "requests.jsonl").read_text(encoding="utf-8")
        n_sent = srv.behaviour.requests
        srv.behaviour.mode = "ok"
        again = resume_run(out.run_dir, progress=False)
    assert again.run_dir == out.run_dir and not again.failed_cells
    assert ok_calls(out.run_dir) == baseline
    assert srv.behaviour.requests - n_sent == 8 - 3  # only the failed items ran again
    after = (out.run_dir / "requests.jsonl").read_text(encoding="utf-8")
    assert after.startswith(before)  # earlier records kept as they were
    new = [r for r in read_records(out.run_dir / "requests.jsonl")][before.count("\n") :]
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
        lines = (broken / "requests.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (broken / "requests.jsonl").write_text("".join(lines[:2]) + lines[2][:20], encoding="utf-8")
        for cell_json in (broken / "cells").glob("*/cell.json"):
            cell_json.unlink()  # as when the run was killed before the cell ended
        n_sent = srv.behaviour.requests
        resume_run(broken, progress=False)
        assert srv.behaviour.requests - n_sent == 2
    assert ok_calls(broken) == full


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
