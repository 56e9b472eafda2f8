"""Per-call records and their JSONL I/O.

Records hold raw monotonic timestamps only; every metric is derived later
(``metrics.py``), so re-scoring or re-reporting never needs the engine again.

Where a run folder keeps them (DESIGN.md "Cells"): each cell appends its own records to
``cells/<cell_id>/requests.jsonl`` (:func:`cell_records_path`), so that a cell can run
anywhere and merging is only reading the sub-folders. Folders written before that keep one
run-level ``requests.jsonl``; a resumed one may have both. :func:`run_records` is the one
reader of a run's records, whatever the layout and however the files are stored (plain,
``.gz`` or packed in :data:`RECORDS_ARCHIVE`).
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import re
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal, get_args

from structbench.ir import Message

#: 2: ``status`` added (v1 records derive it from ``error``).
RECORD_SCHEMA_VERSION = 2

#: What became of one call:
#: ``ok``: it completed; ``error``: it was sent and failed; ``unsupported``: the engine
#: declared the gen unsupported and nothing was sent; ``skipped``: not sent because an
#: earlier call of its branch (or program) did not succeed; ``cancelled``: cut off by a
#: cell timeout or an interrupt.
Status = Literal["ok", "error", "unsupported", "skipped", "cancelled"]
_STATUSES: frozenset[str] = frozenset(get_args(Status))


def status_of_error(error: str | None) -> Status:
    """The status a v1 record (which had only ``error``) implies, from its error prefix."""
    if error is None:
        return "ok"
    for prefix, status in (
        ("unsupported:", "unsupported"),
        ("skipped:", "skipped"),
        ("cancelled:", "cancelled"),
    ):
        if error.startswith(prefix):
            return status  # type: ignore[return-value]
    return "error"


#: How engines word a refused constraint: structbench's own "unsupported:", the embedded
#: engine's "constraint:" compile errors, an HTTP 400/422 from a server, or a message
#: naming the grammar machinery.
_REJECT = re.compile(
    r"^(unsupported:|constraint:)|^http 4(00|22)\b|\b(json.?schema|grammar|xgrammar|outlines|"
    r"guided|structured.?output|response_format|compil\w*)\b",
    re.IGNORECASE,
)
#: 400s that are about the request's size, not its constraint.
_NOT_REJECT = re.compile(r"context length|maximum context|prompt is too long|too many tokens", re.IGNORECASE)


def is_rejection(error: str) -> bool:
    """True when a call's error says the engine refused the constraint (a loud rejection)."""
    return bool(_REJECT.search(error)) and not _NOT_REJECT.search(error)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One engine call (one ``gen`` of one work item).

    Timestamps are seconds on the driver's monotonic clock; ``None`` when the
    moment never happened (no first token on a failed call).
    """

    cell_id: str
    engine: str
    task: str
    item_id: str
    branch: int
    turn: int
    gen_name: str
    constraint: str
    warmup: bool = False
    attempt: int = 1
    #: What became of the call; ``error`` holds the reason whenever it is not ``ok``.
    status: Status = "ok"
    #: The call's sampling seed (:func:`structbench.program.gen_seed`; None in v1 records).
    #: Engines that take a seed send it (vLLM, OpenAI, embedded); SGLang's /generate has none.
    seed: int | None = None
    #: Strategy that actually ran (e.g. "response_format", "structured_outputs.regex",
    #: "sgl.select", "outlines.json"), since semantics differ between them.
    strategy: str = ""
    t_scheduled: float | None = None
    t_sent: float | None = None
    t_first_token: float | None = None
    t_done: float | None = None
    #: Arrival time of every streamed chunk after the first (for ITL).
    token_times: tuple[float, ...] = ()
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    finish_reason: str | None = None
    text: str = ""
    #: None on success; why not otherwise (for every status but ``ok``).
    error: str | None = None
    reference: str | None = None
    prompt: tuple[Message, ...] = ()
    meta: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        # A record with an error is never "ok": builders that set only ``error`` (v1 style)
        # get the status its prefix implies.
        if self.error is not None and self.status == "ok":
            object.__setattr__(self, "status", status_of_error(self.error))

    @property
    def ok(self) -> bool:
        """True when the call completed."""
        return self.status == "ok"

    @property
    def unsupported(self) -> bool:
        """True when the engine declared the gen unsupported (nothing was sent)."""
        return self.status == "unsupported"

    @property
    def rejected(self) -> bool:
        """True when a sent, constrained call failed because the engine refused its constraint.

        A server that answers an unsupported schema with a 400 or a compile error is
        telling the truth about its coverage: an "unsupported" verdict, not a failed run.
        """
        return (
            self.status == "error"
            and self.constraint not in ("", "none")
            and self.error is not None
            and is_rejection(self.error)
        )

    def to_json(self) -> str:
        """Serialize as one JSON line."""
        d = asdict(self)
        d["v"] = RECORD_SCHEMA_VERSION
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CallRecord:
        """Rebuild a record from its parsed JSON form (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["token_times"] = tuple(kw.get("token_times", ()))
        kw["prompt"] = tuple(Message(m["role"], m["content"]) for m in kw.get("prompt", ()))
        kw["meta"] = tuple((str(a), str(b)) for a, b in kw.get("meta", ()))
        if kw.get("status") not in _STATUSES:
            kw["status"] = status_of_error(kw.get("error"))
        return cls(**kw)


class JsonlAppender:
    """Appends lines to a JSONL file, flushing and fsyncing each one.

    A crash or Ctrl-C therefore loses at most the line being written. Opening a file whose
    last line was torn that way first ends that line, so the next one starts on its own.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _end_torn_line(path)
        self._fh: IO[str] = path.open("a", encoding="utf-8")

    def write_line(self, line: str) -> None:
        """Append one line (no newline in it) and flush it to disk."""
        self._fh.write(line + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


def _end_torn_line(path: Path) -> None:
    """End a torn last line (a kill mid-write) with a newline.

    The torn bytes stay, and readers skip them: appending deletes nothing.
    """
    try:
        with path.open("rb+") as fh:
            if fh.seek(0, os.SEEK_END) == 0:
                return
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
    except FileNotFoundError:
        return


class RecordWriter(JsonlAppender):
    """Appends call records to a JSONL file (a cell's ``requests.jsonl``) as they complete."""

    def write(self, rec: CallRecord) -> None:
        """Append one record and flush it to disk."""
        self.write_line(rec.to_json())

    def write_all(self, recs: Iterable[CallRecord]) -> None:
        """Append several records."""
        for r in recs:
            self.write(r)

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The packed raw records of a finished run folder (``benchmarks/pack_results.py``): one
#: xz-compressed tar of its JSONL files, solid so that prompts repeated across files and
#: cells are stored once. ``tar xJf records.tar.xz`` restores the plain files.
RECORDS_ARCHIVE = "records.tar.xz"


@functools.lru_cache(maxsize=8)
def _archive_members(archive: Path, mtime_ns: int) -> frozenset[str]:
    # Listing a tar.xz decompresses all of it: remember the listing while the file is unchanged.
    with tarfile.open(archive, "r:xz") as tar:
        return frozenset(tar.getnames())


def stored_path(path: Path, root: Path | None = None) -> Path:
    """The file that holds ``path``'s lines: ``path``, ``path.gz``, or the folder's archive.

    The plain file wins (a run writes plain JSONL and only a finished one is packed), then a
    gzipped sibling, then :data:`RECORDS_ARCHIVE` in ``root`` when that has a member named
    by ``path`` relative to ``root``. Returns ``path`` when none exists, so
    ``stored_path(p).exists()`` asks whether the file is there in any form.

    Args:
        path: The plain file's path.
        root: The folder whose archive may hold it (default: ``path``'s own folder). A run
            folder's archive names a cell's records ``cells/<cell_id>/requests.jsonl``.
    """
    base = path.parent if root is None else root
    gz = path.with_name(path.name + ".gz")
    archive = base / RECORDS_ARCHIVE
    if path.exists() or not (gz.exists() or archive.exists()):
        return path
    if gz.exists():
        return gz
    return archive if _member(path, base) in _archived(archive) else path


def _member(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _archived(archive: Path) -> frozenset[str]:
    if not archive.is_file():
        return frozenset()
    return _archive_members(archive, archive.stat().st_mtime_ns)


def open_text(path: Path, root: Path | None = None) -> IO[str]:
    """Open a run folder's JSONL file for reading as text, from whichever form it is stored in.

    ``root`` is as for :func:`stored_path`.

    Raises:
        FileNotFoundError: When ``path`` is stored in no form (see :func:`stored_path`).
    """
    found = stored_path(path, root)
    if found == path:
        return path.open(encoding="utf-8")
    if found.suffix == ".gz":
        return gzip.open(found, "rt", encoding="utf-8")
    with tarfile.open(found, "r:xz") as tar:
        member = tar.extractfile(_member(path, found.parent))
        data = member.read() if member else b""
    return io.StringIO(data.decode("utf-8"))


def read_records(path: Path, root: Path | None = None) -> Iterator[CallRecord]:
    """Yield records from a JSONL file (or its packed form), skipping a torn line.

    ``root`` is as for :func:`stored_path`.
    """
    with open_text(path, root) as fh:
        yield from _parse(fh)


def _parse(lines: Iterable[str]) -> Iterator[CallRecord]:
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue  # a partially written line: the call was in flight when it was cut
        yield CallRecord.from_dict(d)


#: The name of a records file: a cell's, or (version 1 folders) the run's.
RECORDS_FILE = "requests.jsonl"
#: The run folder's sub-folder with one folder per cell.
CELLS_DIR = "cells"


def cell_records_path(run_dir: Path, cell_id: str) -> Path:
    """Where the cell ``cell_id`` of the run folder ``run_dir`` appends its call records."""
    return run_dir / CELLS_DIR / cell_id / RECORDS_FILE


def record_cells(run_dir: Path, order: Sequence[str] = ()) -> list[str]:
    """The ids of the cells of ``run_dir`` that have a records file, in any stored form.

    Args:
        run_dir: The run folder.
        order: Cell ids in the order wanted (the manifest's); cells not in it follow, sorted.
    """
    cells = run_dir / CELLS_DIR
    found = {p.parent.name for n in (RECORDS_FILE, RECORDS_FILE + ".gz") for p in cells.glob(f"*/{n}")}
    for name in _archived(run_dir / RECORDS_ARCHIVE):
        parts = PurePosixPath(name).parts
        if len(parts) == 3 and parts[0] == CELLS_DIR and parts[2] == RECORDS_FILE:
            found.add(parts[1])
    rank = {c: i for i, c in enumerate(order)}
    return sorted(found, key=lambda c: (rank.get(c, len(rank)), c))


def run_records(run_dir: Path, order: Sequence[str] = ()) -> Iterator[CallRecord]:
    """Yield every call record of a run folder: the run-level file first, then each cell's.

    The run-level ``requests.jsonl`` exists in version 1 folders only (a resumed one has
    cell files too, with the later attempts); a folder with neither yields nothing.

    Args:
        run_dir: The run folder.
        order: The cells' order (the manifest's); cells not in it follow, sorted by id.
    """
    legacy = run_dir / RECORDS_FILE
    if stored_path(legacy).exists():
        yield from read_records(legacy)
    cells = record_cells(run_dir, order)
    packed = _packed_cells(run_dir, cells)
    for cell_id in cells:
        if cell_id in packed:
            yield from _parse(io.StringIO(packed[cell_id]))  # lines end at "\n" only, like a file's
        else:
            yield from read_records(cell_records_path(run_dir, cell_id), run_dir)


def _packed_cells(run_dir: Path, cells: Sequence[str]) -> dict[str, str]:
    """The text of the cells' records stored only in the run's archive, read in one pass.

    Every member read on its own would decompress the archive from its start again.
    """
    archive = run_dir / RECORDS_ARCHIVE
    wanted = {
        _member(path, run_dir): cell_id
        for cell_id in cells
        if stored_path(path := cell_records_path(run_dir, cell_id), run_dir) == archive
    }
    if not wanted:
        return {}
    out: dict[str, str] = {}
    with tarfile.open(archive, "r:xz") as tar:
        for info in tar:
            member = tar.extractfile(info) if info.name in wanted else None
            if member is not None:
                out[wanted[info.name]] = member.read().decode("utf-8")
    return out
