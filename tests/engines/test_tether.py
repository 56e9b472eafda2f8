"""A launched server dies with the process that launched it, and a normal stop is unchanged.

The owner is a child Python process that launches a fake server through the real launch path
(``ServerProcess.start``), from a worker thread that then exits, as on Ray; the test SIGKILLs
it, so no cleanup of its own can run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_suites import alive

import structbench
from structbench.engines import tether
from structbench.engines.launch import ServerConfig, ServerProcess, free_port

# A "server" that forks a worker (like vLLM's engine core), writes both pids, then serves HTTP.
SERVER = """
import http.server, subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[2], "w").write(f"{worker.pid}")
http.server.ThreadingHTTPServer(
    ("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler
).serve_forever()
"""

# Plays structbench: launches from a thread that ends (PDEATHSIG would fire here), then waits.
OWNER = """
import asyncio, sys, threading, time
from pathlib import Path
from structbench.engines.launch import ServerConfig, ServerProcess
port, folder = sys.argv[1], Path(sys.argv[2])
cfg = ServerConfig(
    "toy", (sys.executable, "-c", sys.argv[3], port, str(folder / "worker.pid")),
    folder / "toy.log", f"http://127.0.0.1:{port}/", startup_timeout_s=30, stop_grace_s=2,
)
server = ServerProcess(cfg)
launcher = threading.Thread(target=lambda: asyncio.run(server.start()))
launcher.start()
launcher.join()
(folder / "server.pid").write_text(str(server.pid))
time.sleep(600)
"""


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _read_pid(path: Path, owner: subprocess.Popen[bytes], seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while not path.exists() or not path.read_text():
        assert owner.poll() is None, f"the owner exited early with code {owner.returncode}"
        assert time.monotonic() < deadline, f"no {path.name} after {seconds:g} s"
        time.sleep(0.05)
    return int(path.read_text())


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The child that plays structbench; killed at the end whatever happened."""
    env = {**os.environ, "PYTHONPATH": str(Path(structbench.__file__).parents[1])}
    argv = [sys.executable, "-c", OWNER, str(free_port()), str(tmp_path), SERVER]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def test_server_dies_with_its_sigkilled_owner(tmp_path: Path, owner: subprocess.Popen[bytes]) -> None:
    server = _read_pid(tmp_path / "server.pid", owner, 30)
    worker = _read_pid(tmp_path / "worker.pid", owner, 5)
    try:
        # The launching thread has ended: the server must outlive it while the owner lives.
        time.sleep(0.3)
        assert alive(server) and alive(worker)
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        assert _gone_within([server, worker], 5), "the server outlived the process that launched it"
        assert "launched this server is gone" in (tmp_path / "toy.log").read_text()
    finally:  # never leave the fake server behind if the watchdog failed
        for pid in (server, worker):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_normal_stop_dismisses_the_watchdog(tmp_path: Path) -> None:
    port = free_port()
    cfg = ServerConfig(
        "toy",
        (sys.executable, "-c", SERVER, str(port), str(tmp_path / "worker.pid")),
        tmp_path / "toy.log",
        f"http://127.0.0.1:{port}/",
        startup_timeout_s=30,
        stop_grace_s=5,
    )
    proc = ServerProcess(cfg)
    asyncio.run(proc.start())
    watchdog = proc._tether
    assert watchdog is not None and watchdog.proc.poll() is None
    worker = int((tmp_path / "worker.pid").read_text())
    rc = proc.stop()
    assert rc == -signal.SIGTERM  # the server's own exit, as before: SIGTERM within the grace
    assert _gone_within([worker], 5)
    assert watchdog.proc.returncode == 0  # released and reaped by stop(), not left behind
    assert "launched this server is gone" not in (tmp_path / "toy.log").read_text()


def test_stop_group_kills_what_ignores_sigterm() -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True)"
    code += "; time.sleep(60)"
    stubborn = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline()  # its handler is set
        start = time.monotonic()
        tether.stop_group(stubborn.pid, grace_s=0.5)
        assert stubborn.wait(timeout=5) == -signal.SIGKILL
        assert time.monotonic() - start >= 0.5  # SIGTERM got its grace first
    finally:
        stubborn.kill()
        stubborn.wait()


def test_watch_release_and_eof() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        r, w = os.pipe()
        os.write(w, b"r")
        assert tether.watch(r, sleeper.pid, 1.0) is False and sleeper.poll() is None
        os.close(w)  # no release byte left, then EOF: the owner is gone
        assert tether.watch(r, sleeper.pid, 1.0) is True
        assert sleeper.wait(timeout=5) == -signal.SIGTERM
        os.close(r)
    finally:
        sleeper.kill()
        sleeper.wait()
