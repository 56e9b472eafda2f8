"""Schema validation and regex matching under a hard time limit.

A pathological schema (a catastrophic ``pattern``) or a user regex with nested
quantifiers can make validation of one output run for hours, and a thread can't be
killed. So the checks run in one long-lived worker process that caches compiled
validators and regexes; when a check overruns, the worker is terminated and a fresh one
is started for the next check.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

Op = Literal["schema", "regex"]
#: How long a fresh worker may take to import jsonschema on a loaded machine.
_STARTUP_TIMEOUT_S = 120.0
_MAX_REASON = 200


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one guarded check.

    ``passed`` is None when the check could not be made at all (a broken schema or
    regex, or a check that overran its time limit: reason ``timeout: ...``), so the
    scorer reports "not applicable" instead of blaming the output.
    """

    passed: bool | None
    reason: str = ""


# ---------------------------------------------------------------- worker side


@lru_cache(maxsize=256)
def _validator(schema_text: str) -> Validator:
    from structbench.schema_drafts import check_schema, validator_for

    schema = json.loads(schema_text)
    check_schema(schema)  # under the schema's own $schema draft, not always 2020-12
    return validator_for(schema)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _json_path(path: Iterable[str | int]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _check_schema(schema_text: str, instance_text: str) -> CheckResult:
    from jsonschema.exceptions import SchemaError, best_match

    try:
        validator = _validator(schema_text)
    except SchemaError as e:
        # The keyword path first and the draft named: the report counts these apart
        # from engine failures and says why each schema is invalid.
        from structbench.schema_drafts import draft_of

        where = _json_path(e.absolute_path)
        draft = draft_of(json.loads(schema_text))
        return CheckResult(None, _clip(f"invalid schema under {draft}: {where}: {e.message}"))
    except ValueError as e:
        return CheckResult(None, _clip(f"invalid schema: {e}"))
    try:
        instance = json.loads(instance_text)
    except ValueError as e:
        return CheckResult(False, _clip(f"not JSON: {e}"))
    err = best_match(validator.iter_errors(instance))
    if err is None:
        return CheckResult(True)
    # The keyword in brackets, first: coverage reports count silent failures by keyword,
    # and a long message must not clip it away.
    return CheckResult(False, _clip(f"{_json_path(err.absolute_path)}: [{err.validator}] {err.message}"))


def _check_regex(pattern: str, text: str) -> CheckResult:
    try:
        rx = _regex(pattern)
    except re.error as e:
        return CheckResult(None, _clip(f"invalid regex: {e}"))
    if rx.fullmatch(text):
        return CheckResult(True)
    if rx.fullmatch(text.strip()):
        return CheckResult(False, "matches only after stripping surrounding whitespace")
    return CheckResult(False, "no full match")


def _run_one(op: Op, key: str, payload: str) -> CheckResult:
    try:
        return _check_schema(key, payload) if op == "schema" else _check_regex(key, payload)
    except RecursionError:
        return CheckResult(False, "too deeply nested to check")
    except Exception as e:  # the worker must answer every request, whatever broke
        return CheckResult(None, _clip(f"checker error: {type(e).__name__}: {e}"))


def _serve(stdin: IO[str], stdout: IO[str]) -> None:
    """Worker loop: one JSON request per line in, one JSON answer per line out."""
    import jsonschema  # noqa: F401  (import before "ready", so no check pays for it)

    stdout.write('{"ready": true}\n')
    stdout.flush()
    for line in stdin:
        req = json.loads(line)
        res = _run_one(req["op"], req["key"], req["payload"])
        stdout.write(json.dumps({"passed": res.passed, "reason": res.reason}) + "\n")
        stdout.flush()


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


# ---------------------------------------------------------------- parent side


class _Worker:
    """The child process and a thread that turns its stdout into a queue."""

    def __init__(self) -> None:
        # A fresh interpreter via ``-m`` rather than multiprocessing: "spawn" would
        # re-run the caller's __main__ (breaking scripts without a main guard), and
        # "fork" would copy locks held by the caller's threads (asyncio, torch).
        pkg_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "structbench.scoring.guard"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True, name="structbench-checker-reader").start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)  # EOF: the worker exited

    def ask(self, request: str, timeout_s: float) -> str | None:
        """Send one request line; the answer line, or None on timeout or exit."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        try:
            return self.lines.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def stop(self) -> None:
        """Kill the process and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for fh in (self.proc.stdin, self.proc.stdout):
            if fh is not None:
                fh.close()


class GuardedChecker:
    """Runs checks in a worker process, restarting it after a timeout or crash.

    Checks are serialized by a lock, which is fine: each one is fast.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._worker: _Worker | None = None

    def check_schema(self, schema_text: str, instance_text: str, timeout_s: float) -> CheckResult:
        """Validate JSON text against a schema (its own ``$schema`` draft, format checks on)."""
        return self._call("schema", schema_text, instance_text, timeout_s)

    def fullmatch(self, pattern: str, text: str, timeout_s: float) -> CheckResult:
        """Check that ``pattern`` matches the whole of ``text``."""
        return self._call("regex", pattern, text, timeout_s)

    def close(self) -> None:
        """Stop the worker (a later check starts a new one)."""
        with self._lock:
            self._stop()

    def _call(self, op: Op, key: str, payload: str, timeout_s: float) -> CheckResult:
        request = json.dumps({"op": op, "key": key, "payload": payload})
        with self._lock:
            worker = self._ensure()
            try:
                answer = worker.ask(request, timeout_s)
            except OSError:  # broken pipe: the worker died between checks
                answer = None
            if answer is None:
                crashed = worker.proc.poll() is not None
                self._stop()
                if crashed:
                    return CheckResult(False, "checker process crashed on this output")
                # Unjudged, not invalid: the time limit says nothing about the output, and
                # coverage reports timeouts as their own verdict.
                return CheckResult(None, f"timeout: check took over {timeout_s:g}s")
            d = json.loads(answer)
            return CheckResult(d["passed"], d["reason"])

    def _ensure(self) -> _Worker:
        if self._worker is not None and self._worker.proc.poll() is None:
            return self._worker
        self._stop()
        worker = _Worker()
        try:
            ready = worker.lines.get(timeout=_STARTUP_TIMEOUT_S)
        except queue.Empty:
            ready = None
        if ready is None:
            worker.stop()
            raise RuntimeError("schema checker process did not start")
        self._worker = worker
        return worker

    def _stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
        self._worker = None


_shared: GuardedChecker | None = None
_shared_lock = threading.Lock()


def shared_checker() -> GuardedChecker:
    """The process-wide checker used by the scorers (started on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = GuardedChecker()
            atexit.register(_shared.close)
        return _shared


def close_shared_checker() -> None:
    """Stop the shared worker process now (e.g. at the end of a report build)."""
    with _shared_lock:
        if _shared is not None:
            _shared.close()


if __name__ == "__main__":
    _serve(sys.stdin, sys.stdout)
