"""Tiny suites for fault tests: a choice task with inline rows, against engines given by URL."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from structbench.metrics.calls import final_attempts
from structbench.records import run_records

#: (cell, item, branch, turn) of a call.
CallKey = tuple[str, str, int, int]


def write_suite(folder: Path, engines: list[dict[str, object]], n: int = 4, tasks: int = 1) -> Path:
    """Write ``suite.yaml`` with ``tasks`` choice tasks of ``n`` items, no warm-up, concurrency 1."""
    names = []
    for i in range(tasks):
        name = f"pick{i}"
        rows = [{"q": f"question {j}", "label": "positive"} for j in range(n)]
        task = {
            "name": name,
            "kind": "choice",
            "dataset": {"rows": rows},
            "choices": ["positive", "negative"],
            "prompt": "Q: {{ q }}",
            "max_tokens": 4,
            "reference": "{{ label }}",
            "scorers": ["choice_valid", "exact_match"],
        }
        (folder / f"{name}.yaml").write_text(json.dumps(task), encoding="utf-8")
        names.append(f"{name}.yaml")
    suite = {
        "name": "faults",
        "tasks": names,
        "engines": engines,
        "load": {"mode": "concurrency", "concurrency": [1], "num_requests": n, "warmup": 0},
        "seed": 0,
    }
    path = folder / "suite.yaml"
    path.write_text(json.dumps(suite), encoding="utf-8")  # JSON is YAML
    return path


def openai_engine(url: str, name: str = "fake", **extra: object) -> dict[str, object]:
    """An ``openai`` engine spec for the fake server (choice enforced, short timeout)."""
    return {
        "kind": "openai",
        "name": name,
        "url": url,
        "constraints": ["choice"],
        "request_timeout_s": 5,
        **extra,
    }


def ok_calls(run_dir: Path) -> set[CallKey]:
    """The calls whose last attempt succeeded (warm-up excluded)."""
    recs = final_attempts(r for r in run_records(run_dir) if not r.warmup)
    return {(r.cell_id, r.item_id, r.branch, r.turn) for r in recs if r.ok}


def manifest(run_dir: Path) -> dict[str, object]:
    """The run's manifest.json."""
    data = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def cell_status(run_dir: Path, cell_id: str) -> str | None:
    """The status in a cell's cell.json, or None when it was not written."""
    path = run_dir / "cells" / cell_id / "cell.json"
    if not path.exists():
        return None
    return str(json.loads(path.read_text(encoding="utf-8"))["status"])


# The engine also runs ``launch.python -c PROBE`` (library versions); served, that probe would
# hang until its 60 s timeout, so a fake interpreter hands ``-c`` to the real one.
REAL_PYTHON_FOR_C = (
    "if sys.argv[1:2] == ['-c']:\n    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def fake_vllm_python(folder: Path, *flags: str) -> Path:
    """An executable to use as ``launch.python`` of a ``vllm`` engine: it serves the fake server.

    The launcher runs ``<python> -m vllm.entrypoints.openai.api_server --model M --host H
    --port P ...``; this script ignores what it doesn't know and listens on ``--port``.
    ``flags`` go to the fake server (``--mode``, ``--delay``, ``--pid-file``); ``-c CODE``
    runs in the real interpreter.
    """
    here = Path(__file__).resolve().parent
    script = folder / "fake-vllm-python"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        f"{REAL_PYTHON_FOR_C}\n"
        f"sys.path.insert(0, {str(here)!r})\n"
        "import fake_openai\n"
        f"fake_openai.main(sys.argv[1:] + {list(flags)!r})\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


def alive(pid: int) -> bool:
    """True while process ``pid`` exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def record_files(run_dir: Path) -> dict[str, str]:
    """The plain text of every cell's records file, by cell id."""
    paths = sorted(run_dir.glob("cells/*/requests.jsonl"))
    return {p.parent.name: p.read_text(encoding="utf-8") for p in paths}
