"""benchmarks/gpu/ray_h200.sh on CPU: one run per call, times.json kept across calls, local2 labelled apart.

The script is what issue 17's H200 sitting runs; here it runs a one-cell embedded suite, so that its
label and bookkeeping logic is checked where CI can run it (the H200 runs cost device time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu" / "ray_h200.sh"

pytestmark = [pytest.mark.embedded, pytest.mark.timeout(600)]


def _call(runs: str, suite: Path, work: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        # The script calls python3; this one has structbench, the model and Ray.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OUT": str(out),
        "SB_WORKDIR": str(work),
        "SB_SUITE": str(suite),
        "SB_RUNS": runs,
        "SB_SCALING": "0",
        "SB_BUDGET_S": "400",
        "SB_GRACE_S": "30",
        "SB_GIT_SHA": "0" * 40,
        "STRUCTBENCH_ALLOW_OUTSIDE_PATHS": "1",
    }
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=500)


def test_local_then_local2_are_two_labelled_runs_in_one_times_file(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        "name: tiny\ndescription: ray_h200.sh on CPU\n"
        f"tasks: ['{ROOT / 'tasks' / 'canary' / 'code.yaml'}']\n"
        "load: {mode: concurrency, concurrency: [2], num_requests: 2, warmup: 0}\nseed: 0\n"
    )
    work = tmp_path / "work"
    first = _call("local", suite, work, tmp_path / "out1")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    second = _call("local2", suite, work, tmp_path / "out2")
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]

    times = json.loads((tmp_path / "out2" / "times.json").read_text())
    assert times["git_sha"] == "0" * 40
    assert {k for k in times if k not in ("suite", "git_sha")} == {"local", "local2"}
    for label in ("local", "local2"):
        assert times[label]["exit"] == 0 and times[label]["cut_by_deadline"] is False
        assert times[label]["wall_s"] > 0
    # Each call packs only its own run, under its own label.
    assert not (tmp_path / "out2" / "run-local.tgz").exists()
    with tarfile.open(tmp_path / "out2" / "run-local2.tgz") as tar:
        names = tar.getnames()
    assert any(n.startswith("tiny/") and n.endswith("/manifest.json") for n in names), names


def test_an_unknown_runs_label_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    done = _call("remote", tmp_path / "none.yaml", tmp_path / "work", tmp_path / "out")
    assert done.returncode == 2
    assert "SB_RUNS is" in done.stdout + done.stderr
