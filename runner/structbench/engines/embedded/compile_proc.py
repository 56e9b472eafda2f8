"""Grammar compilation in a child process, with a time and a memory limit per constraint.

outlines-core builds a token-level automaton per JSON schema or regex. For most schemas
that takes well under a second; for a pathological one (a long ``pattern``, a deep
``oneOf``) it can run for minutes and grow to gigabytes, and a thread cannot be stopped.
So compilation runs in a child process that holds the vocabulary: the parent waits at most
``timeout_s`` for the index, and the child's address space is capped at its size after
start-up plus ``memory_mb``. Past either limit the child is killed (and restarted for the
next constraint) and the request fails with a ``compile_limit:`` error, a verdict of its
own in the coverage report. The index comes back pickled (outlines-core serializes it).

The child is started with ``spawn``: forking a process that runs torch threads is unsafe.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from structbench.engine_facts import COMPILE_LIMIT

__all__ = ["CompileLimitError", "CompileLimits", "CompileProcess"]


#: How long a child may take to start (import outlines-core, load the vocabulary).
_STARTUP_S = 120.0


class CompileLimitError(Exception):
    """A compile ran past its time or memory limit (the message starts with :data:`COMPILE_LIMIT`)."""


@dataclass(frozen=True, slots=True)
class CompileLimits:
    """Limits of one compile (None: no limit of that kind)."""

    timeout_s: float | None = 60.0
    memory_mb: int | None = 4096


def _address_space() -> int | None:
    """This process's current virtual memory size in bytes (Linux), or None."""
    import os

    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _cap_memory(memory_mb: int | None) -> None:
    """Cap the address space at its size now plus ``memory_mb`` (where the OS allows)."""
    if memory_mb is None:
        return
    import resource

    base = _address_space()
    if base is None:
        return
    limit = base + memory_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _serve(conn: Connection, vocabulary: bytes, memory_mb: int | None) -> None:
    """The child's loop: ``(kind, text, whitespace)`` in, ``("ok", index bytes)`` or an error out."""
    from outlines_core import Index
    from outlines_core.json_schema import build_regex_from_schema

    vocab = pickle.loads(vocabulary)
    _cap_memory(memory_mb)
    conn.send(("ready", ""))  # the limits time compiles, not this start-up
    while True:
        try:
            kind, text, ws = conn.recv()
        except EOFError:
            return
        try:
            regex = str(build_regex_from_schema(text, ws)) if kind == "json_schema" else text
            conn.send(("ok", pickle.dumps(Index(regex, vocab))))
        except MemoryError:
            conn.send(("memory", ""))
        except Exception as e:  # outlines-core raises its own error types
            stage = "JSON schema" if kind == "json_schema" else f"regex {text!r}"
            conn.send(("error", f"cannot compile {stage}: {e}"))


class CompileProcess:
    """One child process that compiles outlines-core indexes, restarted after a limit is hit.

    Args:
        vocabulary: The ``outlines_core.Vocabulary`` of the model (sent once per child).
        limits: The per-compile time and memory limits.
    """

    def __init__(self, vocabulary: Any, limits: CompileLimits) -> None:
        self._vocab = pickle.dumps(vocabulary)
        self._limits = limits
        self._lock = threading.Lock()
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def _ensure(self) -> Connection:
        if self._proc is None or not self._proc.is_alive() or self._conn is None:
            self._stop()
            ctx = multiprocessing.get_context("spawn")
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_serve,
                args=(child, self._vocab, self._limits.memory_mb),
                name="structbench-compile",
                daemon=True,
            )
            proc.start()
            child.close()
            self._proc, self._conn = proc, parent
            try:
                ready = parent.poll(_STARTUP_S) and parent.recv() == ("ready", "")
            except (EOFError, OSError):
                ready = False
            if not ready:
                code = self._stop()
                raise ValueError(f"the compile process did not start (exit code {code})")
        return self._conn

    def index(self, kind: str, text: str, whitespace: str | None) -> Any:
        """The compiled ``outlines_core.Index`` of a JSON schema (``kind`` ``json_schema``) or regex.

        Raises:
            CompileLimitError: The compile ran past a limit (the child is killed).
            ValueError: outlines-core refused the constraint.
        """
        with self._lock:
            conn = self._ensure()
            conn.send((kind, text, whitespace))
            timeout = self._limits.timeout_s
            try:
                reply = conn.recv() if conn.poll(timeout) else None
            except (EOFError, OSError):
                # The child died mid-compile: Rust aborts when an allocation fails under the cap.
                reply = ("died", "")
            if reply is None:
                self._stop()
                raise CompileLimitError(f"{COMPILE_LIMIT} time: compiling took over {timeout:g} s")
            status, payload = reply
            if status in ("memory", "died"):
                code = self._stop()
                how = "" if status == "memory" else f" (the compile process died, exit code {code})"
                raise CompileLimitError(
                    f"{COMPILE_LIMIT} memory: compiling needed over {self._limits.memory_mb} MB{how}"
                )
            if status == "error":
                raise ValueError(payload)
            return pickle.loads(payload)

    def _stop(self) -> int | None:
        """Kill the child (if any); its exit code."""
        proc, self._proc = self._proc, None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=10)
        return proc.exitcode

    def close(self) -> None:
        """Stop the child process."""
        with self._lock:
            self._stop()
