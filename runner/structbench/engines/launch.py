"""Launching inference servers: spawn, wait for health, stop (used by vllm and sglang).

A server runs in its own process group, so stopping it also stops the workers it forks
(vLLM's engine core, SGLang's scheduler). Its output goes to a log file whose path, and
last lines, appear in every startup error. Servers still running when the interpreter
exits are stopped by an ``atexit`` hook, so a crash in the runner leaves no orphan server
holding a port and the CPUs. A runner that dies without running any cleanup (SIGKILL, the
OOM killer) is covered by a watchdog process per server (:mod:`structbench.engines.tether`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx

from structbench.engines.tether import Tether, tether
from structbench.errors import UserError
from structbench.spec.engine_checks import url_problem
from structbench.spec.resolved import REDACTED, is_secret_name, redact_args

# Strong references: a server nobody holds any more must still be stopped at exit.
_LIVE: set[ServerProcess] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the OS for a free TCP port on ``host`` (racy in theory, fine in practice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tail(path: Path, n: int = 20) -> list[str]:
    """The last ``n`` non-empty lines of a text file (empty when unreadable)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [ln for ln in data.splitlines() if ln.strip()][-n:]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What to launch and how to tell that it is up.

    Attributes:
        name: Label for messages ("vllm").
        argv: Command line.
        log_path: File that receives stdout and stderr (appended).
        health_url: GET URL that answers 200 once the server is ready.
        env: Extra environment variables, on top of the current environment.
        startup_timeout_s: How long to wait for health.
        stop_grace_s: How long SIGTERM gets before SIGKILL.
    """

    name: str
    argv: tuple[str, ...]
    log_path: Path
    health_url: str
    env: tuple[tuple[str, str], ...] = field(default=())
    startup_timeout_s: float = 900.0
    stop_grace_s: float = 20.0


class ServerProcess:
    """One launched server process (and its process group)."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._tether: Tether | None = None
        self._secrets = secret_values(cfg.argv, cfg.env)

    @property
    def pid(self) -> int | None:
        """Process id, or None before ``spawn``."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def spawn(self) -> None:
        """Start the process in a new session (process group), and its watchdog; returns at once."""
        if self._proc is not None:
            raise RuntimeError("server already spawned")
        self.cfg.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.cfg.log_path.open("ab")
        self._log.write(f"$ {' '.join(redact_args(list(self.cfg.argv)))}\n".encode())
        self._log.flush()
        env = {**os.environ, **dict(self.cfg.env)}
        try:
            self._proc = subprocess.Popen(
                list(self.cfg.argv),
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as e:
            self._log.close()
            raise UserError(f"cannot start the {self.cfg.name} server ({self.cfg.argv[0]}): {e}") from e
        _LIVE.add(self)
        try:
            self._tether = tether(self._proc.pid, self.cfg.stop_grace_s, self._log)
        except OSError as e:
            # A server that could outlive us unnoticed is worse than no server: refuse it.
            self.stop()
            raise UserError(f"cannot start the watchdog of the {self.cfg.name} server: {e}") from e

    async def wait_healthy(self, poll_s: float = 1.0) -> None:
        """Poll the health URL until it answers 200.

        Raises:
            UserError: The process exited first (with its log's last lines), or the
                timeout passed (naming the log).
        """
        deadline = time.monotonic() + self.cfg.startup_timeout_s
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                self._check_alive()
                try:
                    if (await client.get(self.cfg.health_url)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise UserError(
                        f"{self.cfg.name} server did not become healthy in "
                        f"{self.cfg.startup_timeout_s:g} s; see {self.cfg.log_path}"
                    )
                await asyncio.sleep(poll_s)

    async def start(self) -> None:
        """Spawn and wait until healthy; on failure the process is stopped before raising."""
        self.spawn()
        try:
            await self.wait_healthy()
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise

    def _check_alive(self) -> None:
        if self._proc is None:
            raise RuntimeError("server not spawned")
        rc = self._proc.poll()
        if rc is not None:
            last = self._redact(" | ".join(tail(self.cfg.log_path, 8)))
            raise UserError(
                f"{self.cfg.name} server exited with code {rc} during startup; "
                f"see {self.cfg.log_path}; last lines: {last}"
            )

    def stop(self) -> int | None:
        """SIGTERM the process group, SIGKILL it after the grace period; return the exit code."""
        proc = self._proc
        if proc is None:
            return None
        _LIVE.discard(self)
        rc = proc.poll()
        if rc is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                rc = proc.wait(timeout=self.cfg.stop_grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                rc = proc.wait(timeout=30)
        # Children that ignored SIGTERM while their leader exited would keep the port.
        _signal_group(proc.pid, signal.SIGKILL)
        if self._tether is not None:  # only now: had we died during the grace, it would have acted
            self._tether.release()
            self._tether = None
        if self._log is not None:
            self._log.close()
            self._log = None
        redact_file(self.cfg.log_path, self._secrets)
        return rc

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


def secret_values(argv: Sequence[str], env: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The secrets a server is given: values of secret-looking flags and env variables.

    A server may print its arguments or environment at startup (vLLM logs its non-default
    args), and its log lands in the results folder, so these are redacted from it.
    """
    found = {v for k, v in env if is_secret_name(k)}
    for arg, shown in zip(argv, redact_args(list(argv)), strict=True):
        if shown == REDACTED:
            found.add(arg)
        elif shown != arg and "=" in arg:
            found.add(arg.partition("=")[2])
    return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))


def redact_file(path: Path, secrets: Sequence[str]) -> None:
    """Replace every secret in a (log) file; it is rewritten only when one occurs."""
    if not secrets:
        return
    try:
        data = path.read_bytes()
    except OSError:
        return
    clean = data
    for secret in secrets:
        clean = clean.replace(secret.encode(), REDACTED.encode())
    if clean != data:
        path.write_bytes(clean)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # start_new_session made pid the group id


def check_reachable(name: str, url: str, timeout_s: float = 5.0) -> None:
    """Fail fast when an attached server's host and port accept no TCP connection.

    Run before a run starts, so a typo in a ``url`` costs a second, not the cells before it.
    Only the scheme, host and port are shown: a URL may carry credentials.

    Raises:
        UserError: The URL is malformed or nothing listens there.
    """
    if (why := url_problem(url)) is not None:
        raise UserError(f"engine '{name}': url: {why}")
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    shown = f"{parts.scheme}://{host}:{port}"
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise UserError(f"engine '{name}': cannot reach {shown} ({reason}); is the server running?") from None


def server_env(extra: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Freeze an env mapping for :class:`ServerConfig`."""
    return tuple(sorted(extra.items()))


def command(python: str, module: str, args: Sequence[str]) -> tuple[str, ...]:
    """``python -m module args...`` as an argv tuple."""
    return (python, "-m", module, *args)


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_LIVE):
        proc.stop()


def flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in a server's arguments (``--flag v`` or ``--flag=v``), or None."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None
