"""benchmarks/jsb_sample.py: a deterministic per-subset sample of a JSONSchemaBench-layout folder."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from jsb_sample import NOT_JSON, TOO_LARGE, SampleOptions, main, sample_folder  # noqa: E402

from structbench.spec.loader import load_task  # noqa: E402


def _src(root: Path, extra_subset: bool = False) -> Path:
    """A tiny dataset checkout: subset A with 8 schemas, one oversized, one not JSON; B with 2."""
    data = root / "data"
    for i in range(6):
        _put(data / "A" / f"a{i}.json", json.dumps({"type": "object", "title": f"A{i}"}))
    _put(data / "A" / "big.json", json.dumps({"type": "string", "description": "x" * 500}))
    _put(data / "A" / "broken.json", "{not json")
    _put(data / "B" / "b0.json", '{"type": "integer"}')
    _put(data / "B" / "b1.json", '{"type": "boolean"}')
    if extra_subset:
        _put(data / "C" / "c0.json", '{"type": "null"}')
    _put(root / "README.md", "not a subset")
    return root


def _put(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _opts(src: Path, out: Path, seed: int = 0, per_subset: int = 3, overwrite: bool = False) -> SampleOptions:
    return SampleOptions(src, out, per_subset, seed, max_bytes=200, source_rev="abc123", overwrite=overwrite)


def _names(out: Path, subset: str) -> list[str]:
    return sorted(p.name for p in (out / "data" / subset).iterdir())


def test_sample_layout_counts_and_checksums(tmp_path: Path) -> None:
    src = _src(tmp_path / "src")
    sample_folder(_opts(src, tmp_path / "out"))
    doc = json.loads((tmp_path / "out" / "SAMPLE.json").read_text())
    a, b = doc["subsets"]
    assert (a["subset"], a["files_total"], a["eligible"], a["sampled"]) == ("A", 8, 6, 3)
    assert a["skipped"] == {NOT_JSON: 1, TOO_LARGE: 1}
    assert (b["subset"], b["sampled"], b["skipped"]) == ("B", 2, {})  # fewer than N: all of them
    assert doc["source_rev"] == "abc123" and doc["total_files"] == 5
    assert len(_names(tmp_path / "out", "A")) == 3 and _names(tmp_path / "out", "B") == ["b0.json", "b1.json"]
    for f in doc["files"]:
        blob = (tmp_path / "out" / "data" / f["subset"] / f["file"]).read_bytes()
        assert blob == (src / "data" / f["subset"] / f["file"]).read_bytes()
        assert (f["sha256"], f["bytes"]) == (hashlib.sha256(blob).hexdigest(), len(blob))
    assert doc["total_bytes"] == sum(f["bytes"] for f in doc["files"])
    assert str(tmp_path) not in (tmp_path / "out" / "SAMPLE.json").read_text()  # no local path


def test_same_seed_same_bytes_and_subsets_draw_independently(tmp_path: Path) -> None:
    sample_folder(_opts(_src(tmp_path / "s1"), tmp_path / "o1"))
    sample_folder(_opts(_src(tmp_path / "s2", extra_subset=True), tmp_path / "o2"))
    one = json.loads((tmp_path / "o1" / "SAMPLE.json").read_text())
    two = json.loads((tmp_path / "o2" / "SAMPLE.json").read_text())
    # Another subset in the source leaves A's and B's draws as they were.
    assert [f for f in two["files"] if f["subset"] != "C"] == one["files"]
    sample_folder(_opts(tmp_path / "s1", tmp_path / "o3"))
    assert (tmp_path / "o3" / "SAMPLE.json").read_bytes() == (tmp_path / "o1" / "SAMPLE.json").read_bytes()


def test_the_seed_picks_the_draw(tmp_path: Path) -> None:
    src = _src(tmp_path / "src")
    draws = set()
    for seed in range(6):
        sample_folder(_opts(src, tmp_path / f"o{seed}", seed=seed))
        draws.add(tuple(_names(tmp_path / f"o{seed}", "A")))
    assert len(draws) > 1  # 20 possible draws of 3 from 6: six seeds giving one draw means no seed


def test_no_cap_keeps_large_files(tmp_path: Path) -> None:
    src = _src(tmp_path / "src")
    assert (
        main(["--src", str(src), "--out", str(tmp_path / "out"), "--max-bytes", "0", "--per-subset", "9"])
        == 0
    )
    assert "big.json" in _names(tmp_path / "out", "A") and "broken.json" not in _names(tmp_path / "out", "A")


def test_structbench_reads_the_sample(tmp_path: Path) -> None:
    sample_folder(_opts(_src(tmp_path / "src"), tmp_path / "proj" / ".gpu" / "jsb"))
    (tmp_path / "proj" / "pyproject.toml").write_text("")
    _put(
        tmp_path / "proj" / "tasks" / "t.yaml",
        "name: t\nkind: schema_corpus\nsubsets_dir: ../.gpu/jsb/data\n",
    )
    task = load_task(tmp_path / "proj" / "tasks" / "t.yaml")
    assert sorted({r["subset"] for r in task.rows}) == ["A", "B"] and len(task.rows) == 5


@pytest.mark.parametrize(
    ("make", "args", "expect"),
    [
        ("nothing", [], r"--src .*missing: not a folder$"),
        ("empty", [], r"--src .*: no subset folders \(data/<subset>/\*\.json\)$"),
        ("taken", [], r"--out .*: not empty \(pass --overwrite to replace its sample\)$"),
        ("foreign", ["--overwrite"], r"--out .*: holds files this script did not write$"),
        ("ok", ["--per-subset", "0"], r"--per-subset 0: must be at least 1$"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: str, args: list[str], expect: str
) -> None:
    src = tmp_path / "missing"
    out = tmp_path / "out"
    if make != "nothing":
        src = _src(tmp_path / "src") if make != "empty" else tmp_path / "empty"
        src.mkdir(exist_ok=True)
    if make in ("taken", "foreign"):
        sample_folder(_opts(src, out))
    if make == "foreign":
        _put(out / "notes.txt", "mine")
    assert main(["--src", str(src), "--out", str(out), *args]) == 2
    if make == "foreign":
        assert (out / "SAMPLE.json").is_file()  # refused before anything was deleted
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("jsb_sample: error: ")
    assert re.search(expect, err.strip())


def test_overwrite_replaces_the_sample(tmp_path: Path) -> None:
    src = _src(tmp_path / "src")
    sample_folder(_opts(src, tmp_path / "out", per_subset=1))
    sample_folder(_opts(src, tmp_path / "out", per_subset=2, overwrite=True))
    assert len(_names(tmp_path / "out", "A")) == 2
    assert json.loads((tmp_path / "out" / "SAMPLE.json").read_text())["per_subset"] == 2
