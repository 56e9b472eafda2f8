"""The facts of a new run's manifest: commit, versions, hardware. Never secrets.

The manifest itself is :class:`structbench.runfolder.RunManifest`. The commit is
``git rev-parse HEAD`` of the suite's checkout; a copy without ``.git``, or with one that git
cannot read (as sent to a GPU machine), names it in the ``STRUCTBENCH_GIT_SHA`` environment
variable, else the manifest says "unknown" (or the HEAD that unreadable ``.git`` names).
``git_dirty`` tells whether the checkout had uncommitted changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from structbench import __version__
from structbench.runfolder import GpuFacts, HardwareFacts, RunManifest

#: Environment variable naming the commit when the checkout has no ``.git`` (a copy sent
#: to a GPU machine): ``STRUCTBENCH_GIT_SHA=$(git rev-parse HEAD) structbench run ...``.
GIT_SHA_ENV = "STRUCTBENCH_GIT_SHA"
UNKNOWN_SHA = "unknown"


def utc_stamp() -> str:
    """UTC time as used in run folder names (``20261128T151500Z``)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_sha(cwd: Path) -> str:
    """The commit that runs: ``git rev-parse HEAD``, else ``$STRUCTBENCH_GIT_SHA``, else "unknown".

    HEAD wins only in a checkout git can read (``git status`` works). The GPU machine gets a
    ``.git`` whose HEAD names the last landed commit but whose objects are absent, under a
    working tree that is the session's: there ``rev-parse`` still answers and ``status`` fails
    ("bad object HEAD"), and the commit named in ``$STRUCTBENCH_GIT_SHA`` is the one that ran.
    """
    sha = (_git(cwd, "rev-parse", "HEAD") or "").strip()
    # Outside a repository git prints its argument back ("HEAD") and fails: no SHA then.
    head = sha if len(sha) == 40 else ""
    if head and git_dirty(cwd) is not None:
        return head
    return os.environ.get(GIT_SHA_ENV, "").strip() or head or UNKNOWN_SHA


def git_dirty(cwd: Path) -> bool | None:
    """True when the checkout has uncommitted changes; None outside git."""
    out = _git(cwd, "status", "--porcelain")
    return None if out is None else bool(out.strip())


def package_versions() -> dict[str, str]:
    """Versions of structbench and the libraries that shape its numbers (installed ones only)."""
    out = {"structbench": __version__, "python": platform.python_version()}
    libs = (
        "pydantic",
        "jsonschema",
        "aiohttp",
        "httpx",
        "torch",
        "transformers",
        "outlines",
        "sglang",
        "vllm",
    )
    for dist in libs:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def hardware() -> HardwareFacts:
    """CPU, memory and (when NVML is available) GPUs of this machine."""
    memory = None
    with contextlib.suppress(ValueError, OSError, AttributeError):  # not every OS has these names
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return HardwareFacts(
        platform=platform.platform(),
        machine=platform.machine(),
        processor=platform.processor(),
        cpu_count=os.cpu_count(),
        memory_bytes=memory,
        gpus=_gpus(),
    )


def _gpus() -> tuple[GpuFacts, ...]:
    try:
        import pynvml
    except ImportError:
        return ()
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver: NVML raises its own error types
        return ()
    gpus = []
    for i in range(pynvml.nvmlDeviceGetCount()):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        name = pynvml.nvmlDeviceGetName(h)
        mem = pynvml.nvmlDeviceGetMemoryInfo(h)
        text = name if isinstance(name, str) else name.decode()
        gpus.append(GpuFacts(index=i, name=text, memory_bytes=int(mem.total)))
    pynvml.nvmlShutdown()
    return tuple(gpus)


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """What names a new run: its folder, suite, seed and (redacted) resolved spec."""

    run_id: str
    suite: str
    seed: int
    spec: Mapping[str, object]
    #: Where the suite was loaded from (``--resume`` reloads it from here).
    suite_path: Path


def base_manifest(run: RunIdentity) -> RunManifest:
    """The manifest's fixed part, before any engine starts (tasks, cells, options: none yet)."""
    cwd = run.suite_path.parent
    return RunManifest(
        run_id=run.run_id,
        suite=run.suite,
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        seed=run.seed,
        git_sha=git_sha(cwd),
        git_dirty=git_dirty(cwd),
        argv=tuple(sys.argv),
        versions=package_versions(),
        hardware=hardware(),
        # Exactly what a JSON reader gets back (``--resume`` compares against that).
        spec=json.loads(json.dumps(run.spec, default=str)),
        suite_path=str(run.suite_path.resolve()),
    )
