"""The run manifest: written first, updated as the run progresses, never holding secrets."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from structbench import __version__
from structbench.engines.base import EngineInfo

MANIFEST_SCHEMA_VERSION = 1


def utc_stamp() -> str:
    """UTC time as used in run folder names (``20261128T151500Z``)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def git_sha(cwd: Path) -> str | None:
    """The commit of the checkout holding ``cwd``, or None outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = out.stdout.strip()
    # Outside a repository git prints its argument back ("HEAD") and fails: no SHA then.
    return sha if out.returncode == 0 and len(sha) == 40 else None


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


def hardware() -> dict[str, Any]:
    """CPU, memory and (when NVML is available) GPUs of this machine."""
    hw: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
    }
    with contextlib.suppress(ValueError, OSError, AttributeError):  # not every OS has these names
        hw["memory_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    hw["gpus"] = _gpus()
    return hw


def _gpus() -> list[dict[str, Any]]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver: NVML raises its own error types
        return []
    gpus = []
    for i in range(pynvml.nvmlDeviceGetCount()):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        name = pynvml.nvmlDeviceGetName(h)
        mem = pynvml.nvmlDeviceGetMemoryInfo(h)
        gpus.append(
            {"index": i, "name": name if isinstance(name, str) else name.decode(), "memory_bytes": mem.total}
        )
    pynvml.nvmlShutdown()
    return gpus


def engine_info_dict(info: EngineInfo) -> dict[str, Any]:
    """EngineInfo as manifest JSON."""
    d = asdict(info)
    d["extra"] = dict(info.extra)
    return d


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temp file + rename), so a crash never leaves half a manifest."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def base_manifest(run_id: str, suite: str, seed: int, spec: dict[str, Any], cwd: Path) -> dict[str, Any]:
    """The manifest's fixed part, before any engine starts."""
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "run_id": run_id,
        "suite": suite,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "git_sha": git_sha(cwd),
        "argv": [a for a in sys.argv],
        "versions": package_versions(),
        "hardware": hardware(),
        "engines": {},
        "tasks": {},
        "cells": [],
        "options": {},
        "spec": spec,
        "status": "running",
    }
