"""Dataset rows from files, inline lists and the ``datasets`` library."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest

from structbench.datasets import DatasetError, load_rows
from structbench.errors import SpecError, UserError
from structbench.spec.tasks import DatasetSpec

ROWS: list[dict[str, Any]] = [{"q": f"question {i}", "a": i} for i in range(10)]


def ds(**kw: Any) -> DatasetSpec:
    return DatasetSpec.model_validate(kw)


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS) + "\n", encoding="utf-8")
    (tmp_path / "d.json").write_text(json.dumps(ROWS), encoding="utf-8")
    with (tmp_path / "d.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["q", "a"])
        w.writeheader()
        w.writerows(ROWS)
    return tmp_path


@pytest.mark.parametrize("name", ["d.jsonl", "d.json"])
def test_json_files(files: Path, name: str) -> None:
    assert load_rows(ds(path=name), files) == ROWS


def test_csv_values_are_strings(files: Path) -> None:
    rows = load_rows(ds(path="d.csv"), files)
    assert rows[3] == {"q": "question 3", "a": "3"}


def test_parquet(files: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(ROWS), files / "d.parquet")
    assert load_rows(ds(path="d.parquet"), files) == ROWS


def test_inline_rows_and_default(files: Path) -> None:
    assert load_rows(ds(rows=[{"x": 1}, {"x": 2}]), files) == [{"x": 1}, {"x": 2}]
    # A task without a dataset gets one empty row (the task's default dataset).
    from structbench.spec.tasks import JsonTaskSpec

    default = JsonTaskSpec(kind="json", name="t", json_schema={}).dataset
    assert load_rows(default, files) == [{}]


def test_field_mapping_adds_names(files: Path) -> None:
    rows = load_rows(ds(path="d.jsonl", fields={"question": "q", "answer": "a"}), files)
    assert rows[0] == {"q": "question 0", "a": 0, "question": "question 0", "answer": 0}


def test_shuffle_then_limit_is_seeded(files: Path) -> None:
    spec = ds(path="d.jsonl", shuffle=True, limit=4)
    a = load_rows(spec, files, random.Random(3))
    assert a == load_rows(spec, files, random.Random(3))
    assert len(a) == 4 and a != ROWS[:4]
    assert a != load_rows(spec, files, random.Random(4))
    assert load_rows(ds(path="d.jsonl", limit=2), files) == ROWS[:2]


def test_hf_builder_with_local_files(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    spec = ds(hf="json", data_files="d.jsonl", limit=3, fields={"answer": "a"})
    rows = load_rows(spec, files)
    assert rows == [{**r, "answer": r["a"]} for r in ROWS[:3]]


def test_hf_unknown_dataset_is_a_user_error(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DatasetError, match=r"^dataset\.data_files: file not found"):
        load_rows(ds(hf="json", data_files=["nope.jsonl"]), files)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "dataset: give exactly one of path, rows or hf (found none)"),
        ({"path": "d.jsonl", "hf": "x"}, "dataset: give exactly one of path, rows or hf (found path and hf)"),
        ({"path": "nope.jsonl"}, "dataset.path: file not found: nope.jsonl"),
        (
            {"path": "d.txt"},
            "dataset.path: unsupported file type '.txt' (use .jsonl, .ndjson, .json, .csv, .parquet)",
        ),
        ({"path": "d.jsonl", "limit": 0}, "dataset.limit: must be at least 1, got 0"),
        ({"path": "d.jsonl", "data_files": "x"}, "dataset.data_files: only applies with hf"),
        ({"rows": []}, "dataset: the dataset has no rows"),
        (
            {"path": "d.jsonl", "fields": {"x": "nope"}},
            "dataset.fields.x: column 'nope' not in row 0 (columns: a, q)",
        ),
    ],
)
def test_spec_errors(files: Path, spec: dict[str, Any], message: str) -> None:
    (files / "d.txt").write_text("x")
    with pytest.raises(DatasetError) as info:
        load_rows(DatasetSpec.model_validate(spec), files)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", b'{"a": 1}\n\n{"a": }\n', "bad.jsonl:3:7: invalid JSON: Expecting value"),
        ("bad.jsonl", b'{"a": 1}\n"text"\n', "bad.jsonl:2:1: each row must be a JSON object, got str"),
        ("bad.json", b'{"a": 1}', "bad.json:1:1: a .json dataset must be a list of objects, got dict"),
        ("bad.json", b'[{"a": 1}, 2]', "bad.json: [1]: each row must be a JSON object, got int"),
        ("bad.csv", b"a,b\n\xff\xfe,1\n", "bad.csv: not UTF-8 text (byte 4)"),
    ],
)
def test_file_errors_name_the_file(files: Path, name: str, content: bytes, message: str) -> None:
    (files / name).write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_rows(ds(path=name), files)
    assert str(info.value) == message


def test_errors_are_user_errors() -> None:
    assert issubclass(DatasetError, UserError)
