"""A watchdog that stops a launched server's process group when the process that launched it dies.

The owner's own cleanup (``stop()``, the ``atexit`` hook) never runs when it is SIGKILLed: a Ray
worker killed by Ray or the OOM killer, ``kill -9``, a device call cut off at its time limit. The
server, in its own session, would live on holding the GPU and the port. So each launch also starts
this module as a small process of its own, holding the read end of a pipe whose write end only the
owner holds. The kernel closes that end when the owner dies, however it dies; the watchdog then
reads EOF and stops the server's group (SIGTERM, the grace period, SIGKILL). A normal stop writes
one byte first, which dismisses the watchdog without a signal.

Not ``prctl(PR_SET_PDEATHSIG)``: it fires when the parent *thread* exits, and on Ray a cell's
server is launched from a worker thread (``executors/ray_task.py``). The pipe also leaves the
server's argv, environment and process tree exactly as they were.

The watchdog runs as ``python -I this_file.py``: isolated, so it needs neither ``PYTHONPATH`` nor
the package, and its folder (which holds a ``tokenize.py``) does not shadow the standard library.
Hence this module imports the standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO

# The byte of a normal stop; EOF with nothing before it means the owner is gone.
_RELEASE = b"r"


@dataclass(slots=True)
class Tether:
    """The owner's side: the watchdog process and the pipe's write end."""

    proc: subprocess.Popen[bytes]
    write_fd: int | None

    def release(self) -> None:
        """Dismiss the watchdog (the owner stopped the server itself) and reap it; idempotent."""
        if self.write_fd is None:
            return
        with contextlib.suppress(OSError):  # the watchdog is already gone: nothing to dismiss
            os.write(self.write_fd, _RELEASE)
        os.close(self.write_fd)
        self.write_fd = None
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # never leave a stuck watchdog behind a normal stop
            self.proc.kill()
            self.proc.wait()


def tether(pgid: int, grace_s: float, log: IO[bytes]) -> Tether:
    """Start a watchdog that stops process group ``pgid`` when this process dies.

    Args:
        pgid: The server's process group (its pid: it leads a new session).
        grace_s: How long SIGTERM gets before SIGKILL, as in a normal stop.
        log: The server's log, which receives the watchdog's one line if it fires.

    Raises:
        OSError: The watchdog could not be started.
    """
    read_fd, write_fd = os.pipe()  # both non-inheritable: no other child of the owner gets them
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), str(read_fd), str(pgid), f"{grace_s:g}"],
            pass_fds=(read_fd,),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C or a signal to the owner's group must not take it too.
            start_new_session=True,
        )
    except OSError:
        os.close(write_fd)
        raise
    finally:
        os.close(read_fd)  # the watchdog holds its copy
    return Tether(proc, write_fd)


def stop_group(pgid: int, grace_s: float, poll_s: float = 0.1) -> None:
    """SIGTERM a process group, wait up to ``grace_s`` for it to empty, then SIGKILL it."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        time.sleep(poll_s)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def watch(read_fd: int, pgid: int, grace_s: float) -> bool:
    """Block until the owner releases or dies; in the second case stop the group.

    Returns:
        True when the group was stopped (the owner died), False on a release.
    """
    if os.read(read_fd, 1) == _RELEASE:
        return False
    print(
        f"structbench: the process that launched this server is gone; stopping its process group {pgid}",
        flush=True,
    )
    stop_group(pgid, grace_s)
    return True


def main(argv: list[str]) -> int:
    """Entry point: ``READ_FD PGID GRACE_S``."""
    read_fd, pgid, grace_s = int(argv[0]), int(argv[1]), float(argv[2])
    watch(read_fd, pgid, grace_s)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
