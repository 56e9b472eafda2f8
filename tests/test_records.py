"""Where a run folder keeps its call records, and the one reader of them (``records.run_records``)."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from structbench.records import (
    RECORDS_ARCHIVE,
    CallRecord,
    RecordWriter,
    cell_records_path,
    read_records,
    record_cells,
    run_records,
    stored_path,
)


def _rec(cell_id: str, item: int, attempt: int = 1) -> CallRecord:
    return CallRecord(cell_id, "e", "t", f"t/{item}", 0, 0, "g", "none", attempt=attempt)


def _lines(*recs: CallRecord) -> str:
    return "".join(r.to_json() + "\n" for r in recs)


def _keys(recs: Iterable[CallRecord]) -> list[tuple[str, str, int]]:
    return [(r.cell_id, r.item_id, r.attempt) for r in recs]


def test_cell_records_path_is_in_the_cell_sub_folder(tmp_path: Path) -> None:
    assert cell_records_path(tmp_path, "e.t.c1") == tmp_path / "cells" / "e.t.c1" / "requests.jsonl"


def test_a_folder_without_records_yields_none(tmp_path: Path) -> None:
    assert list(run_records(tmp_path)) == [] and record_cells(tmp_path) == []
    (tmp_path / "cells" / "e.t.c1").mkdir(parents=True)  # a cell that never wrote a record
    assert list(run_records(tmp_path)) == []


def test_version_1_run_level_file_still_reads(tmp_path: Path) -> None:
    (tmp_path / "requests.jsonl").write_text(_lines(_rec("b", 0), _rec("a", 1)), encoding="utf-8")
    assert _keys(run_records(tmp_path, ["a", "b"])) == [("b", "t/0", 1), ("a", "t/1", 1)]


def test_resumed_version_1_folder_yields_the_run_file_then_the_cells(tmp_path: Path) -> None:
    # The first attempt went to the run-level file; the resumed cell appended to its own.
    (tmp_path / "requests.jsonl").write_text(_lines(_rec("a", 0), _rec("b", 0)), encoding="utf-8")
    with RecordWriter(cell_records_path(tmp_path, "b")) as w:
        w.write(_rec("b", 0, attempt=2))
    got = _keys(run_records(tmp_path))
    assert got == [("a", "t/0", 1), ("b", "t/0", 1), ("b", "t/0", 2)]


def test_cells_come_in_the_given_order_then_sorted(tmp_path: Path) -> None:
    for cell in ("z", "m", "a", "q"):
        with RecordWriter(cell_records_path(tmp_path, cell)) as w:
            w.write(_rec(cell, 0))
    assert record_cells(tmp_path) == ["a", "m", "q", "z"]
    assert record_cells(tmp_path, ["q", "z", "gone"]) == ["q", "z", "a", "m"]
    assert [r.cell_id for r in run_records(tmp_path, ["q", "z"])] == ["q", "z", "a", "m"]


def _archive(root: Path, members: dict[str, str]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (root / RECORDS_ARCHIVE).write_bytes(buf.getvalue())


def test_packed_cell_files_read_from_the_run_archive_and_gz(tmp_path: Path) -> None:
    _archive(
        tmp_path,
        {
            "items.jsonl": "{}\n",
            "requests.jsonl": _lines(_rec("old", 0)),  # a resumed version 1 folder, packed
            # U+2028 is a line break to str.splitlines, but not inside a JSONL line.
            "cells/a/requests.jsonl": _lines(_rec("a", 0), replace(_rec("a", 1), text="x\u2028y")),
        },
    )
    (tmp_path / "cells" / "b").mkdir(parents=True)
    (tmp_path / "cells" / "b" / "requests.jsonl.gz").write_bytes(gzip.compress(_lines(_rec("b", 3)).encode()))
    path = cell_records_path(tmp_path, "a")
    assert stored_path(path, tmp_path) == tmp_path / RECORDS_ARCHIVE
    assert stored_path(path) == path  # the cell folder holds no archive of its own
    assert record_cells(tmp_path) == ["a", "b"]
    recs = list(run_records(tmp_path))
    assert _keys(recs) == [("old", "t/0", 1), ("a", "t/0", 1), ("a", "t/1", 1), ("b", "t/3", 1)]
    assert recs[2].text == "x\u2028y"


def test_plain_cell_file_wins_over_the_archived_one(tmp_path: Path) -> None:
    _archive(tmp_path, {"cells/a/requests.jsonl": _lines(_rec("a", 0))})
    with RecordWriter(cell_records_path(tmp_path, "a")) as w:
        w.write(_rec("a", 9))
    assert _keys(run_records(tmp_path)) == [("a", "t/9", 1)]


def test_appending_after_a_torn_line_keeps_the_new_record(tmp_path: Path) -> None:
    path = cell_records_path(tmp_path, "a")
    path.parent.mkdir(parents=True)
    whole = _rec("a", 0).to_json()
    path.write_text(whole + "\n" + whole[:25], encoding="utf-8")  # killed mid-write
    with RecordWriter(path) as w:
        w.write(_rec("a", 0, attempt=2))
    assert path.read_text(encoding="utf-8").startswith(whole + "\n" + whole[:25] + "\n")  # nothing deleted
    assert _keys(read_records(path)) == [("a", "t/0", 1), ("a", "t/0", 2)]
