"""Repository hygiene: a lean ``results/``, no machine-specific paths, packed runs stay readable.

Also the packed forms of a run folder's JSONL files (``records.open_text``) and the script that
makes them (``benchmarks/pack_results.py``).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from structbench.records import (
    RECORDS_ARCHIVE,
    cell_records_path,
    open_text,
    record_cells,
    run_records,
    stored_path,
)
from structbench.resume import read_items

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
BUDGET_KIB = 3 * 1024
BLOCK = 4096  # what ``du`` counts per started block on the usual filesystems
# An absolute path that starts at one of these folders names one machine's layout. Spelled so
# that this file does not match itself.
MACHINE_PATH = re.compile(r"(?<![\w.~/-])/(?:root|work|home)/|(?<![\w.~/-])/tmp/pay(?:load)")
# Files that may name such a path, each because it documents the GPU machine's layout, where
# the staging scripts (../shared/gpu/stage.sh, benchmarks/gpu/*.sh) unpack models and sites
# to fixed folders; the paths exist only there:
ALLOWED = {
    "benchmarks/gpu/gpu_smoke.sh",  # the device command: stages the model it then serves
    "benchmarks/gpu/h200_crosscheck.sh",  # the device command: serves the staged model
    "benchmarks/gpu/start_server.sh",  # its default model is the staged one; an argument overrides
    "suites/gpu.yaml",  # the suite run on the device, launching the staged model
    "suites/h200_qwen.yaml",  # the same, on the staged real-weight checkpoint
    "suites/h200_sweep.yaml",  # the same, the concurrency sweep
    "suites/h200_coverage.yaml",  # the same, the grammar-backend matrix
    "suites/h200_ray.yaml",  # the same, vLLM and SGLang as fractional-GPU Ray tasks
    "tests/engines/sglang/gpu_proof.py",  # its docstring is the command to type on the device
    "tests/test_runfolder.py",  # asserts on the model paths the committed GPU manifests recorded
    "benchmarks/gpu/README.md",  # how the device runs were staged, to the device's folders
    "benchmarks/gpu/STAGING.md",  # the device calls, in order, and where each bundle installs
    "benchmarks/gpu/crosscheck.py",  # its usage text is the command run on the device
}


def _git_files(*args: str) -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (the GPU machine gets the tree without .git)")
    out = subprocess.run(["git", "ls-files", "-z", *args], cwd=ROOT, capture_output=True, check=True)
    return [p for p in out.stdout.decode().split("\0") if p]


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


pack = _load_script("pack_results")


def _run_folders() -> list[Path]:
    return sorted(p.parent for p in RESULTS.glob("**/manifest.json"))


def test_tracked_results_fit_the_budget() -> None:
    files = [ROOT / p for p in _git_files("results")]
    kib = sum(-(-f.stat().st_size // BLOCK) * BLOCK for f in files if f.is_file()) // 1024
    assert kib <= BUDGET_KIB, f"results/ tracks {kib} KiB; pack runs with benchmarks/pack_results.py"


def test_no_machine_specific_paths_outside_results() -> None:
    hits = []
    for rel in _git_files():
        if rel.startswith("results/") or rel in ALLOWED:
            continue
        data = (ROOT / rel).read_bytes() if (ROOT / rel).is_file() else b""
        if b"\0" in data[:8192]:
            continue  # binary
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                hits.append(f"{rel}:{n}: {line.strip()}")
    assert not hits, "machine-specific paths (use an env var, option or relative path):\n" + "\n".join(hits)


def test_allowed_files_still_exist() -> None:
    # A stale entry would silently allow a path in a file that took the old one's name.
    assert all((ROOT / rel).is_file() for rel in ALLOWED)


def test_machine_path_pattern() -> None:
    assert MACHINE_PATH.search('python = "' + "/ro" + 'ot/venvs/vllm/bin/python"')
    assert MACHINE_PATH.search("model: /tmp/pay" + "load/smollm2")
    assert not MACHINE_PATH.search("see ../shared/gpu/README.md and ~/.cache/structbench")
    assert not MACHINE_PATH.search("https://example.org/home/x and runner/work/y")


@pytest.mark.parametrize("run", _run_folders(), ids=lambda p: p.relative_to(RESULTS).as_posix())
def test_committed_run_is_readable(run: Path) -> None:
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    records = Counter(r.cell_id for r in run_records(run, [c["cell_id"] for c in manifest["cells"]]))
    for cell in manifest["cells"]:
        cell_file = json.loads((run / "cells" / cell["cell_id"] / "cell.json").read_text(encoding="utf-8"))
        assert records[cell["cell_id"]] == cell_file["n_records"], cell["cell_id"]
    items = read_items(run / "items.jsonl")
    assert set(items) == {str(c["task"]) for c in manifest["cells"]}


@pytest.mark.parametrize("run", _run_folders(), ids=lambda p: p.relative_to(RESULTS).as_posix())
def test_committed_run_is_packed(run: Path) -> None:
    assert not list(pack.planned_changes(run, compact=True)), "run benchmarks/pack_results.py on it"


def _lines(path: Path, root: Path | None = None) -> list[str]:
    with open_text(path, root) as fh:
        return fh.read().splitlines()


def test_open_text_reads_plain_gz_and_archive(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"a": 1}\n', encoding="utf-8")
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b'{"b": 2}\n'))
    member = tmp_path / "c.jsonl"
    member.write_text('{"c": "\u00e9"}\n', encoding="utf-8")
    pack.archive_records([member], tmp_path / RECORDS_ARCHIVE)
    assert not member.exists()
    assert _lines(tmp_path / "a.jsonl") == ['{"a": 1}']
    assert _lines(tmp_path / "b.jsonl") == ['{"b": 2}']
    assert _lines(tmp_path / "c.jsonl") == ['{"c": "\u00e9"}']
    assert stored_path(tmp_path / "c.jsonl") == tmp_path / RECORDS_ARCHIVE
    missing = tmp_path / "d.jsonl"  # the archive exists but has no such member
    assert stored_path(missing) == missing and not stored_path(missing).exists()
    with pytest.raises(FileNotFoundError):
        open_text(missing)


def test_plain_file_wins_over_packed_forms(tmp_path: Path) -> None:
    # A run writes plain JSONL; a packed form is older, so the plain one is what counts.
    (tmp_path / "x.jsonl").write_text("plain\n", encoding="utf-8")
    (tmp_path / "x.jsonl.gz").write_bytes(gzip.compress(b"gz\n"))
    assert _lines(tmp_path / "x.jsonl") == ["plain"]
    (tmp_path / "x.jsonl").unlink()
    assert _lines(tmp_path / "x.jsonl") == ["gz"]


RECORD = '{"cell_id": "e.t.c1"}'


def _fake_run(run: Path, status: str = "complete", version: int = 2) -> None:
    """A run folder as the runner leaves it; version 1 kept the records in one run-level file."""
    (run / "cells" / "e.t.c1").mkdir(parents=True)
    (run / "engines" / "e").mkdir(parents=True)
    (run / "plots").mkdir()
    for name, data in (
        ("manifest.json", {"status": status, "cells": []}),
        ("summary.json", {"cells": [{"x": 1.5}]}),
        ("cells/e.t.c1/cell.json", {"n": 1}),
    ):
        (run / name).write_text(json.dumps(data, indent=2), encoding="utf-8")
    (run / "cells" / "e.t.c1" / "requests.csv").write_text("a\n", encoding="utf-8")
    (run / "engines" / "e" / "e-server.log").write_text("started\n", encoding="utf-8")
    (run / "items.jsonl").write_text('{"task": "t"}\n', encoding="utf-8")
    records = run / "requests.jsonl" if version == 1 else cell_records_path(run, "e.t.c1")
    records.write_text(f"{RECORD}\n" * 3, encoding="utf-8")
    for name in ("scores.jsonl", "report.html", "report.md", "plots/cdf.png"):
        (run / name).write_text("derived\n", encoding="utf-8")


@pytest.mark.parametrize("version", [1, 2])
def test_pack_run_packs_drops_and_keeps(tmp_path: Path, version: int) -> None:
    run = tmp_path / "run"
    _fake_run(run, version=version)
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    changes = pack.pack_run(run, pack.PackOptions(compact_json=True))
    assert Counter(c.action for c in changes) == {"archive": 2, "gzip": 1, "drop": 4, "compact": 3}
    names = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    assert names == [
        "cells/e.t.c1/cell.json", "engines/e/e-server.log.gz", "manifest.json", RECORDS_ARCHIVE,
        "report.md", "summary.json",
    ]  # fmt: skip
    # Archived by their paths in the run folder, where the readers look for them.
    member = "requests.jsonl" if version == 1 else "cells/e.t.c1/requests.jsonl"
    with tarfile.open(run / RECORDS_ARCHIVE, "r:xz") as tar:
        assert tar.getnames() == ["items.jsonl", member]
    assert _lines(run / member, run) == [RECORD] * 3
    assert record_cells(run) == ([] if version == 1 else ["e.t.c1"])  # found in the archive
    assert _lines(run / "items.jsonl") == ['{"task": "t"}']
    assert json.loads((run / "summary.json").read_text(encoding="utf-8")) == summary
    assert gzip.decompress((run / "engines/e/e-server.log.gz").read_bytes()) == b"started\n"
    assert pack.pack_run(run, pack.PackOptions(compact_json=True)) == []  # packing twice changes nothing


def test_packing_is_byte_reproducible(tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        _fake_run(tmp_path / name)
        pack.pack_run(tmp_path / name, pack.PackOptions())
        outputs.append([(tmp_path / name / RECORDS_ARCHIVE).read_bytes(),
                        (tmp_path / name / "engines/e/e-server.log.gz").read_bytes()])  # fmt: skip
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("status", ["running", "interrupted", "partial"])
def test_unfinished_runs_are_not_packed(tmp_path: Path, status: str) -> None:
    _fake_run(tmp_path / "run", status)
    with pytest.raises(ValueError, match="only complete runs"):
        pack.pack_run(tmp_path / "run", pack.PackOptions())
    assert cell_records_path(tmp_path / "run", "e.t.c1").is_file()


def test_check_changes_nothing_and_reports(tmp_path: Path) -> None:
    _fake_run(tmp_path / "run")
    assert pack.main(["--check", "--all", "--root", str(tmp_path)]) == 1
    assert cell_records_path(tmp_path / "run", "e.t.c1").is_file()
    assert pack.main(["--all", "--root", str(tmp_path)]) == 0
    assert pack.main(["--check", "--all", "--root", str(tmp_path)]) == 0
