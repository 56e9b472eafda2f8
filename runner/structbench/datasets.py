"""Task rows from local files, inline lists, or Hugging Face ``datasets``.

Every source ends as a list of plain dict rows. Then, in this order: rows are shuffled
(seeded) if asked, cut to ``limit``, and the ``fields`` mapping adds the names the
templates use. Shuffling before the limit makes ``limit`` a random sample rather than
the head of the file.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from structbench.errors import SpecError, UserError
from structbench.spec.marks import DataPath, format_field
from structbench.spec.paths import display_path
from structbench.spec.tasks import DatasetSpec

__all__ = ["SUFFIXES", "DatasetError", "load_rows"]

#: File types ``path`` accepts.
SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")


class DatasetError(UserError):
    """A problem with a ``dataset`` spec (not inside a data file).

    Args:
        field: Path of the offending field inside the ``dataset`` mapping (may be empty).
        message: What is wrong.
    """

    def __init__(self, field: DataPath, message: str) -> None:
        self.field, self.message = field, message
        where = format_field(("dataset", *field))
        super().__init__(f"{where}: {message}")


def load_rows(ds: DatasetSpec, base_dir: Path, rng: random.Random | None = None) -> list[dict[str, Any]]:
    """Load, shuffle, limit and map the rows of a dataset spec.

    Args:
        ds: The spec.
        base_dir: Folder that relative ``path``/``data_files`` resolve against (the
            task file's folder).
        rng: Shuffles when ``ds.shuffle``; ``random.Random(0)`` when None.

    Returns:
        The rows, at least one.

    Raises:
        DatasetError: On a spec problem (no source or two, missing file, unknown column).
        SpecError: On a malformed data file, located at its line when known.
        UserError: When an optional package (pyarrow, datasets) is missing.
    """
    given = {"path": ds.path, "rows": ds.rows, "hf": ds.hf}
    sources = [name for name, value in given.items() if value is not None]
    if len(sources) != 1:
        found = " and ".join(sources) if sources else "none"
        raise DatasetError((), f"give exactly one of path, rows or hf (found {found})")
    if ds.limit is not None and ds.limit < 1:
        raise DatasetError(("limit",), f"must be at least 1, got {ds.limit}")
    if ds.data_files and ds.hf is None:
        raise DatasetError(("data_files",), "only applies with hf (a datasets builder such as json)")
    if ds.rows is not None:
        rows = [dict(r) for r in ds.rows]
        rows = _order(rows, ds, rng)
    elif ds.path is not None:
        rows = _order(_read_file(base_dir / ds.path), ds, rng)
    else:
        rows = _from_hub(ds, base_dir, rng)
    if not rows:
        raise DatasetError((), "the dataset has no rows")
    return _map_fields(rows, ds.fields)


def _order(rows: list[dict[str, Any]], ds: DatasetSpec, rng: random.Random | None) -> list[dict[str, Any]]:
    idx = _indices(len(rows), ds, rng)
    return [rows[i] for i in idx]


def _indices(n: int, ds: DatasetSpec, rng: random.Random | None) -> list[int]:
    idx = list(range(n))
    if ds.shuffle:
        (rng or random.Random(0)).shuffle(idx)
    return idx if ds.limit is None else idx[: ds.limit]


def _map_fields(rows: list[dict[str, Any]], fields: dict[str, str]) -> list[dict[str, Any]]:
    if not fields:
        return rows
    out = []
    for i, row in enumerate(rows):
        for name, src in fields.items():
            if src not in row:
                cols = ", ".join(sorted(map(str, row))) or "none"
                raise DatasetError(("fields", name), f"column '{src}' not in row {i} (columns: {cols})")
        # The source columns stay: templates may use either name.
        out.append({**row, **{name: row[src] for name, src in fields.items()}})
    return out


def _read_file(path: Path) -> list[dict[str, Any]]:
    shown = display_path(path)
    if not path.is_file():
        raise DatasetError(("path",), f"file not found: {shown}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix not in SUFFIXES:
        raise DatasetError(("path",), f"unsupported file type '{suffix}' (use {', '.join(SUFFIXES)})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(shown, 0, 0, "", f"not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise SpecError(shown, 0, 0, "", f"cannot read: {e.strerror}") from None
    if suffix == ".csv":
        return [dict(r) for r in csv.DictReader(text.splitlines())]
    if suffix == ".json":
        return _rows_of(_parse_json(text, shown, 0), shown)
    return [
        _row(_parse_json(line, shown, n), shown, n)
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip()
    ]


def _parse_json(text: str, shown: str, line: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        # For a JSONL line the decoder's own line is always 1: report the file's line.
        raise SpecError(shown, line or e.lineno, e.colno, "", f"invalid JSON: {e.msg}") from None


def _row(value: Any, shown: str, line: int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(shown, line, 1, "", f"each row must be a JSON object, got {type(value).__name__}")
    return value


def _rows_of(value: Any, shown: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise SpecError(
            shown, 1, 1, "", f"a .json dataset must be a list of objects, got {type(value).__name__}"
        )
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise SpecError(
                shown, 0, 0, f"[{i}]", f"each row must be a JSON object, got {type(item).__name__}"
            )
    return value


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("reading parquet needs pyarrow: pip install 'structbench[hf]'") from None
    try:
        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises its own hierarchy for corrupt files
        raise SpecError(display_path(path), 0, 0, "", f"cannot read parquet: {e}") from None
    return rows


def _from_hub(ds: DatasetSpec, base_dir: Path, rng: random.Random | None) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise DatasetError(("hf",), "needs the datasets package: pip install 'structbench[hf]'") from None
    files: Sequence[str] | None = None
    if ds.data_files is not None:
        names = (ds.data_files,) if isinstance(ds.data_files, str) else ds.data_files
        files = [str(base_dir / f) for f in names]
        missing = [f for f in files if not Path(f).is_file()]
        if missing:
            raise DatasetError(("data_files",), f"file not found: {display_path(Path(missing[0]))}")
    try:
        data = datasets.load_dataset(ds.hf, ds.hf_config, split=ds.split, data_files=files)
    except Exception as e:  # network, auth, unknown id, bad split: all one-line user errors
        text = " ".join(str(e).split())[:300]
        raise DatasetError(("hf",), f"cannot load '{ds.hf}': {type(e).__name__}: {text}") from None
    # Select before converting, so a limit on a large dataset doesn't materialize it all.
    idx = _indices(len(data), ds, rng)
    rows: list[dict[str, Any]] = data.select(idx).to_list()
    return rows
