"""A misbehaving server: error records with a reason, failed cells marked, the run goes on, exit 1."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_openai import FakeServer
from fault_suites import alive, cell_status, manifest, ok_calls, openai_engine, write_suite

from structbench.cli import main
from structbench.records import run_records

HERE = Path(__file__).resolve().parent

#: mode -> a fragment every error record's reason must contain.
REASONS = {
    "500": "http 500",
    "429": "http 429",
    "break": "",  # aiohttp's wording varies (ClientPayloadError, ServerDisconnectedError, ...)
    "error_event": "stream error: fake overload in stream",
    "hang": "timeout",
}


def _engine(kind: str, url: str, name: str) -> dict[str, object]:
    if kind == "openai":
        return openai_engine(url, name=name, request_timeout_s=1)
    return {"kind": "vllm", "name": name, "url": url, "request_timeout_s": 1}


def _run_cli(suite: Path, results: Path) -> tuple[int, str, Path]:
    res = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(results), "--no-progress"])
    run_dirs = list(results.glob("*/*/manifest.json"))
    assert len(run_dirs) == 1, res.output
    return res.exit_code, res.output, run_dirs[0].parent


@pytest.mark.parametrize("kind", ["openai", "vllm"])
@pytest.mark.parametrize("mode", list(REASONS))
def test_fault_becomes_error_records_and_exit_1(tmp_path: Path, kind: str, mode: str) -> None:
    with FakeServer(mode=mode) as bad, FakeServer() as good:
        suite = write_suite(tmp_path, [_engine(kind, bad.url, "bad"), _engine(kind, good.url, "good")], n=2)
        rc, out, run_dir = _run_cli(suite, tmp_path / "results")
    assert rc == 1, out
    assert "cells with failures: bad.pick0.c1" in out
    recs = list(run_records(run_dir))
    bad_recs = [r for r in recs if r.engine == "bad"]
    assert len(bad_recs) == 2 and all(r.error and REASONS[mode] in r.error for r in bad_recs)
    if mode == "break":  # the reason still says what broke
        assert all(r.error and r.error.strip() for r in bad_recs)
    assert cell_status(run_dir, "bad.pick0.c1") == "partial"
    assert cell_status(run_dir, "good.pick0.c1") == "complete"  # the other cells continued
    assert len([k for k in ok_calls(run_dir) if k[0].startswith("good.")]) == 2
    m = manifest(run_dir)
    assert m["status"] == "partial" and m["failed_cells"] == ["bad.pick0.c1"]


def test_server_killed_mid_cell(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    server = subprocess.Popen(
        [sys.executable, str(HERE / "fake_openai.py"), "--port-file", str(port_file), "--mode", "exit",
         "--ok-first", "2"],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        suite = write_suite(tmp_path, [openai_engine(url)], n=4)
        rc, out, run_dir = _run_cli(suite, tmp_path / "results")
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
    assert rc == 1, out
    recs = list(run_records(run_dir))
    assert [r.ok for r in recs] == [True, True, False, False]
    assert all(r.error for r in recs[2:])  # the cut stream, then refused connections
    assert cell_status(run_dir, "fake.pick0.c1") == "partial"


def test_launched_server_never_healthy(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    python = tmp_path / "sleepy-python"
    python.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 120\n", encoding="utf-8")
    python.chmod(0o755)
    launch = {"model": "m", "python": str(python), "startup_timeout_s": 1.5}
    suite = write_suite(tmp_path, [{"kind": "vllm", "name": "v", "launch": launch}], n=1)
    rc, out, run_dir = _run_cli(suite, tmp_path / "results")
    assert rc == 2, out
    # The results folder is named first (it holds the server log), then the one-line error.
    first, *lines = out.strip().splitlines()
    assert first == f"results: {run_dir}", out
    assert len(lines) == 1 and lines[0].startswith("error: ") and "did not become healthy" in lines[0]
    log = run_dir / "engines" / "v" / "v-server.log"
    assert str(log) in lines[0] and log.exists()
    assert not alive(int(pid_file.read_text()))
    m = manifest(run_dir)
    assert m["status"] == "failed" and "did not become healthy" in str(m["error"])


def test_unreachable_url_fails_before_the_run(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    suite = write_suite(tmp_path, [openai_engine(f"http://user:pw@127.0.0.1:{port}/v1")], n=1)
    res = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "results")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and f"cannot reach http://127.0.0.1:{port}" in lines[0]
    assert "pw" not in res.output
    assert not (tmp_path / "results").exists()  # checked before any folder was made
