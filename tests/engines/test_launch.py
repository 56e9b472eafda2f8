"""ServerProcess: health wait, early exit, timeout, and stopping the whole process group."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from fault_suites import alive

from structbench.engines.launch import ServerConfig, ServerProcess, free_port, tail
from structbench.errors import UserError

# A "server" that forks a child (like vLLM's engine core) and then serves HTTP.
SERVER = """
import http.server, os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[2], "w").write(str(child.pid))
print("serving", flush=True)
handler = http.server.SimpleHTTPRequestHandler
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
"""


def test_start_healthy_then_stop_kills_group(tmp_path: Path) -> None:
    port = free_port()
    pidfile = tmp_path / "child.pid"
    cfg = ServerConfig(
        "toy",
        (sys.executable, "-c", SERVER, str(port), str(pidfile)),
        tmp_path / "toy.log",
        f"http://127.0.0.1:{port}/",
        startup_timeout_s=60,
        stop_grace_s=5,
    )
    proc = ServerProcess(cfg)
    asyncio.run(proc.start())
    try:
        assert proc.running
        child = int(pidfile.read_text())
        assert alive(child)
    finally:
        proc.stop()
    assert not proc.running
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)
    assert "serving" in (tmp_path / "toy.log").read_text()
    assert proc.stop() is not None  # idempotent


def test_early_exit_reports_log_tail(tmp_path: Path) -> None:
    code = "import sys; print('loading model'); print('CUDA out of memory', file=sys.stderr); sys.exit(3)"
    cfg = ServerConfig(
        "vllm", (sys.executable, "-c", code), tmp_path / "s.log", f"http://127.0.0.1:{free_port()}/"
    )
    with pytest.raises(UserError) as err:
        asyncio.run(ServerProcess(cfg).start())
    msg = str(err.value)
    assert "exited with code 3" in msg and str(tmp_path / "s.log") in msg and "CUDA out of memory" in msg


def test_health_timeout_stops_process(tmp_path: Path) -> None:
    cfg = ServerConfig(
        "vllm",
        (sys.executable, "-c", "import time; time.sleep(60)"),
        tmp_path / "s.log",
        f"http://127.0.0.1:{free_port()}/health",
        startup_timeout_s=1.5,
        stop_grace_s=2,
    )
    proc = ServerProcess(cfg)
    with pytest.raises(UserError, match=r"vllm server did not become healthy in 1.5 s; see .*s\.log"):
        asyncio.run(proc.start())
    assert not proc.running


def test_bad_executable_is_a_user_error(tmp_path: Path) -> None:
    cfg = ServerConfig("x", ("/nonexistent/python",), tmp_path / "s.log", "http://127.0.0.1:1/")
    with pytest.raises(UserError, match="cannot start"):
        ServerProcess(cfg).spawn()


def test_tail(tmp_path: Path) -> None:
    p = tmp_path / "f.log"
    p.write_text("a\n\nb\nc\n")
    assert tail(p, 2) == ["b", "c"] and tail(tmp_path / "missing") == []
