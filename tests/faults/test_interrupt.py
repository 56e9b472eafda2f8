"""Ctrl-C and SIGTERM leave a consistent results folder and no server behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_suites import alive, fake_vllm_python, manifest, ok_calls, record_files, write_suite

from structbench.resume import resume_run

N = 6


def _start_run(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    pid_file = tmp_path / "server.pid"
    python = fake_vllm_python(tmp_path, "--delay", "0.15", "--pid-file", str(pid_file))
    engine: dict[str, object] = {
        "kind": "vllm",
        "name": "v",
        "launch": {"model": "m", "python": str(python), "startup_timeout_s": 30},
    }
    suite = write_suite(tmp_path, [engine], n=N)
    results = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "structbench.cli",
        "run",
        str(suite),
        "--results-dir",
        str(results),
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, results, pid_file


def _wait_for_records(results: Path, n: int, proc: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for path in results.glob("faults/*/cells/*/requests.jsonl"):
            if len(path.read_text(encoding="utf-8").splitlines()) >= n:
                return path.parents[2]
        time.sleep(0.05)
    raise AssertionError("no records in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_leaves_consistent_folder_and_no_server(tmp_path: Path, sig: signal.Signals) -> None:
    proc, results, pid_file = _start_run(tmp_path)
    try:
        run_dir = _wait_for_records(results, 2, proc)
        server_pid = int(pid_file.read_text())
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert manifest(run_dir)["status"] == "interrupted"
    lines = [ln for text in record_files(run_dir).values() for ln in text.splitlines()]
    recs = [json.loads(line) for line in lines]  # every line whole: nothing torn
    ok = [r for r in recs if r["error"] is None]
    assert 2 <= len(ok) < N
    assert all(r["error"] == "cancelled: interrupted" for r in recs if r["error"] is not None)
    assert (run_dir / "report.md").exists()
    assert not alive(server_pid)
    if sig == signal.SIGINT:  # and the run can be finished afterwards
        out = resume_run(run_dir, progress=False)
        assert not out.failed_cells and not out.interrupted
        assert len(ok_calls(run_dir)) == N
        assert not alive(int(pid_file.read_text()))
