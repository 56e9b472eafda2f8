"""Pack finished run folders for git: compress the raw records, drop what ``structbench report`` rebuilds.

Every transfer to a GPU machine carries the whole working tree, so the run folders committed
under ``results/`` must stay small, yet stay re-scorable. For each run folder this:

- moves the raw records (``items.jsonl``, the judge file, each cell's
  ``cells/<id>/requests.jsonl`` and a version 1 folder's run-level ``requests.jsonl``) into
  one ``records.tar.xz`` at the top of the run folder, named by their paths inside it,
  byte-for-byte reproducibly; checks that it reads back to the same bytes, then deletes the
  plain files. structbench's readers (``records.open_text``, ``records.run_records``) read a
  file from there when the plain file is absent; ``tar xJf records.tar.xz`` restores them;
- gzips the server logs under ``engines/`` (mtime 0, so the bytes are reproducible);
- deletes the derived files that ``structbench report RUN`` writes again from the records:
  ``scores.jsonl``, ``report.html``, ``plots/`` and the per-cell ``requests.csv`` exports;
- keeps ``manifest.json``, ``summary.json``, ``report.md`` and the cell files, and with
  ``--compact-json`` rewrites those JSON files without indentation (same values, fewer bytes).

A run not marked ``complete`` in its manifest is left alone: ``structbench run --resume``
appends to a cell's plain ``requests.jsonl``, which would then hide its packed records.

Why one solid xz archive rather than a ``.gz`` per file: a run sends each prompt once per
cell and stores it again in ``items.jsonl``, and gzip's 32 KiB window sees none of those
repeats. The H200 run's 15 MB of records take 4.1 MB with ``gzip -9`` (more than the whole
3 MB budget of ``results/``), 2.2 MB as ``.xz`` files and 1.9 MB as one archive. Usage::

    python benchmarks/pack_results.py results/gpu/gpu/20261128T160753Z_b93a04
    python benchmarks/pack_results.py --all --compact-json    # every run folder under results/
    python benchmarks/pack_results.py --all --check           # exit 1 if anything is unpacked
    python benchmarks/pack_results.py --file results/h200/sglang_bench_serving.jsonl   # gzip it
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import lzma
import shutil
import sys
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from structbench.records import CELLS_DIR, RECORDS_ARCHIVE, RECORDS_FILE
from structbench.scoring.judge import JUDGE_FILE

RESULTS = Path(__file__).resolve().parents[1] / "results"
#: In this order in the archive: the items first, whose prompts the records then repeat, and
#: then the cells' records (``cells/<id>/requests.jsonl``, sorted by cell id).
RAW_FILES = ("items.jsonl", JUDGE_FILE, RECORDS_FILE)
DERIVED_FILES = ("scores.jsonl", "report.html")
DERIVED_DIRS = ("plots",)
KEPT_JSON = ("manifest.json", "summary.json")
PACKABLE_STATUS = "complete"


@dataclass(frozen=True, slots=True)
class PackOptions:
    """What to do to each run folder."""

    compact_json: bool = False
    """Rewrite manifest, summary and cell files without indentation."""
    check: bool = False
    """Change nothing; only list what would change."""


@dataclass(frozen=True, slots=True)
class Change:
    """One change to a run folder (made, or that would be under ``--check``)."""

    action: Literal["archive", "gzip", "drop", "compact"]
    path: Path


def archive_bytes(files: Sequence[Path], root: Path) -> bytes:
    """A reproducible ``.tar.xz`` of ``files``, named by their paths under ``root``.

    Same contents, same bytes: no times, owners or modes of the files go in.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(_member(path, root))
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return lzma.compress(buf.getvalue(), format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME)


def _member(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def archive_records(files: Sequence[Path], archive: Path) -> None:
    """Move ``files`` into ``archive``, deleting each only once it reads back identical.

    Members are named by their paths relative to the archive's folder (``items.jsonl``,
    ``cells/<id>/requests.jsonl``), where ``records.stored_path`` looks for them.

    Raises:
        RuntimeError: When a member does not read back to its file's bytes (nothing deleted).
    """
    root = archive.parent
    packed = archive_bytes(files, root)
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:xz") as tar:
        for path in files:
            member = tar.extractfile(_member(path, root))
            if member is None or member.read() != path.read_bytes():
                raise RuntimeError(f"{path}: archived bytes differ; left as it is")
    _write_atomic(archive, packed)
    for path in files:
        path.unlink()


def gzip_file(path: Path) -> Path:
    """Replace ``path`` by ``path.gz`` (level 9, mtime 0), deleting it once it reads back."""
    data = path.read_bytes()
    packed = gzip.compress(data, compresslevel=9, mtime=0)
    if gzip.decompress(packed) != data:
        raise RuntimeError(f"{path}: gzipped bytes differ; left as it is")
    out = path.with_name(path.name + ".gz")
    _write_atomic(out, packed)
    path.unlink()
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def compact_json(path: Path) -> None:
    """Rewrite a JSON file without indentation (the values stay exactly the same)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")


def run_status(run_dir: Path) -> str | None:
    """The manifest's ``status`` of a run folder, or None when it is not a readable run folder."""
    try:
        data = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(data.get("status")) if isinstance(data, dict) else None


def planned_changes(run_dir: Path, compact: bool) -> Iterator[Change]:
    """What packing ``run_dir`` changes, in a stable order (nothing once it is packed)."""
    yield from (Change("archive", run_dir / n) for n in RAW_FILES if (run_dir / n).is_file())
    yield from (Change("archive", p) for p in sorted((run_dir / CELLS_DIR).glob(f"*/{RECORDS_FILE}")))
    yield from (Change("gzip", log) for log in sorted((run_dir / "engines").glob("**/*.log")))
    yield from (Change("drop", run_dir / n) for n in DERIVED_FILES if (run_dir / n).is_file())
    yield from (Change("drop", run_dir / n) for n in DERIVED_DIRS if (run_dir / n).is_dir())
    yield from (Change("drop", p) for p in sorted((run_dir / "cells").glob("*/requests.csv")))
    if compact:
        kept = [run_dir / n for n in KEPT_JSON] + sorted((run_dir / "cells").glob("*/cell.json"))
        yield from (Change("compact", p) for p in kept if p.is_file() and _indented(p))


def _indented(path: Path) -> bool:
    with path.open(encoding="utf-8") as fh:
        return fh.read(2) in ("{\n", "[\n")


def apply(run_dir: Path, changes: Sequence[Change]) -> None:
    """Carry out the changes planned for ``run_dir``."""
    raw = [c.path for c in changes if c.action == "archive"]
    if raw:
        if (run_dir / RECORDS_ARCHIVE).exists():
            raise RuntimeError(f"{run_dir}: has both {RECORDS_ARCHIVE} and plain records; merge by hand")
        archive_records(raw, run_dir / RECORDS_ARCHIVE)
    for change in changes:
        if change.action == "gzip":
            gzip_file(change.path)
        elif change.action == "compact":
            compact_json(change.path)
        elif change.action == "drop" and change.path.is_dir():
            shutil.rmtree(change.path)
        elif change.action == "drop":
            change.path.unlink()


def pack_run(run_dir: Path, opts: PackOptions) -> list[Change]:
    """Pack one finished run folder (see the module docstring); returns what changed.

    Raises:
        ValueError: When ``run_dir`` is not a run folder, or its run is not complete.
    """
    status = run_status(run_dir)
    if status is None:
        raise ValueError(f"{run_dir}: not a run folder (no readable manifest.json)")
    if status != PACKABLE_STATUS:
        raise ValueError(f"{run_dir}: run status is {status!r}; only complete runs are packed")
    changes = list(planned_changes(run_dir, opts.compact_json))
    if not opts.check:
        apply(run_dir, changes)
    return changes


def run_folders(root: Path) -> list[Path]:
    """Every run folder (a folder holding ``manifest.json``) under ``root``."""
    return sorted(p.parent for p in root.glob("**/manifest.json"))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("runs", nargs="*", type=Path, help="run folders to pack")
    p.add_argument("--all", action="store_true", help="every run folder under --root")
    p.add_argument("--root", type=Path, default=RESULTS, help="where --all looks (default: results/)")
    p.add_argument("--file", type=Path, action="append", default=[], help="also gzip this file")
    p.add_argument("--compact-json", action="store_true", help="drop the indentation of kept JSON")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything would")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Pack the named run folders and files; print one line per change."""
    args = parse_args(argv)
    opts = PackOptions(compact_json=args.compact_json, check=args.check)
    changes: list[Change] = []
    for run in [*args.runs, *(run_folders(args.root) if args.all else [])]:
        try:
            changes += pack_run(run, opts)
        except ValueError as e:
            print(f"skipped: {e}", file=sys.stderr)
    for path in (f for f in args.file if f.is_file()):  # a file already gzipped is gone
        changes.append(Change("gzip", path))
        if not opts.check:
            gzip_file(path)
    for change in changes:
        print(f"{'would ' if opts.check else ''}{change.action} {change.path}")
    return 1 if opts.check and changes else 0


if __name__ == "__main__":
    raise SystemExit(main())
