"""A deterministic per-subset sample of a JSONSchemaBench-layout folder, small enough to travel.

The public JSONSchemaBench repository holds ~10k schemas (``data/<subset>/*.json``, about
110 MB). A GPU device call carries at most 64 MiB, the whole repository tree included, and
the H200 matrix has minutes, not hours: so ``tasks/coverage/jsb_h200.yaml`` runs on a
sample of N schemas per subset, written in the same layout by this script::

    python benchmarks/jsb_sample.py --src PATH/TO/jsonschemabench --out .gpu/jsb \\
        --source-rev ba103c73

Deterministic: per subset, the file names are sorted, files over ``--max-bytes`` (or not
JSON) are set aside and counted, and N of the rest are drawn with a generator seeded by
``--seed`` and the subset's name, so one subset's draw does not depend on which other
subsets exist. ``OUT/SAMPLE.json`` lists every file with its sha256 and size, the skipped
counts per subset and why, and the source revision when given; it names no local path, so
two machines that sample the same revision write the same bytes.

The size cap keeps the folder small and bounds grammar compile time on the device: the
largest schemas (up to 1.3 MB) may compile for minutes in some backends (MaskBench cuts
compilation off at 900 s), which would spend the matrix's GPU time on a handful of schemas.
What the cap leaves out is counted, so the sample's bias toward smaller schemas is on record.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SampleOptions", "SubsetSample", "main", "sample_folder"]

#: Default cap on one schema file's size (bytes): see the module docstring.
DEFAULT_MAX_BYTES = 128 * 1024
SAMPLE_FILE = "SAMPLE.json"
TOO_LARGE = "larger than max_bytes"
NOT_JSON = "not JSON (UTF-8)"


class SampleError(ValueError):
    """A bad input folder or option: printed as one line, exit status 2."""


@dataclass(frozen=True, slots=True)
class SampleOptions:
    """What to sample, from where, to where."""

    src: Path
    out: Path
    per_subset: int = 50
    seed: int = 0
    max_bytes: int | None = DEFAULT_MAX_BYTES
    source_rev: str | None = None
    overwrite: bool = False


@dataclass(frozen=True, slots=True)
class SampledFile:
    """One schema file of the sample."""

    subset: str
    file: str
    sha256: str
    bytes: int


@dataclass(frozen=True, slots=True)
class SubsetSample:
    """The draw of one subset: what it had, what was set aside (and why), what was drawn."""

    subset: str
    total: int
    files: tuple[SampledFile, ...]
    skipped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """The subset's entry of ``SAMPLE.json``."""
        return {
            "subset": self.subset,
            "files_total": self.total,
            "eligible": self.total - sum(self.skipped.values()),
            "sampled": len(self.files),
            "sampled_bytes": sum(f.bytes for f in self.files),
            "skipped": dict(sorted(self.skipped.items())),
        }


def data_dir(src: Path) -> Path:
    """The folder holding the subset folders: ``src/data`` when it exists, else ``src``."""
    if not src.is_dir():
        raise SampleError(f"--src {src}: not a folder")
    data = src / "data" if (src / "data").is_dir() else src
    if not any(p.is_dir() for p in data.iterdir()):
        raise SampleError(f"--src {src}: no subset folders (data/<subset>/*.json)")
    return data


def _skip_reason(data: bytes, max_bytes: int | None) -> str | None:
    if max_bytes is not None and len(data) > max_bytes:
        return TOO_LARGE
    try:
        json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        # structbench's loader stops at a file that is not JSON: better left out here, counted.
        return NOT_JSON
    return None


def sample_subset(folder: Path, opts: SampleOptions) -> tuple[SubsetSample, dict[str, bytes]]:
    """Draw one subset; returns the record and the drawn files' bytes by name."""
    skipped: dict[str, int] = {}
    eligible: dict[str, bytes] = {}
    names = sorted(p.name for p in folder.glob("*.json") if p.is_file())
    for name in names:
        data = (folder / name).read_bytes()
        reason = _skip_reason(data, opts.max_bytes)
        if reason is None:
            eligible[name] = data
        else:
            skipped[reason] = skipped.get(reason, 0) + 1
    # A string seed is hashed with SHA-512 by random.seed: stable across runs and platforms.
    rng = random.Random(f"{opts.seed}/{folder.name}")
    picked = sorted(rng.sample(sorted(eligible), min(opts.per_subset, len(eligible))))
    files = tuple(
        SampledFile(folder.name, n, hashlib.sha256(eligible[n]).hexdigest(), len(eligible[n])) for n in picked
    )
    return SubsetSample(folder.name, len(names), files, skipped), {n: eligible[n] for n in picked}


def _prepare_out(opts: SampleOptions) -> None:
    out = opts.out
    if out.exists() and not out.is_dir():
        raise SampleError(f"--out {out}: not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not opts.overwrite:
            raise SampleError(f"--out {out}: not empty (pass --overwrite to replace its sample)")
        # Only what this script writes, and only then, so a mistyped --out wipes nothing.
        if {p.name for p in out.iterdir()} - {"data", SAMPLE_FILE}:
            raise SampleError(f"--out {out}: holds files this script did not write")
        shutil.rmtree(out / "data", ignore_errors=True)
        (out / SAMPLE_FILE).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def sample_folder(opts: SampleOptions) -> list[SubsetSample]:
    """Write the sample to ``opts.out`` (``data/<subset>/<file>`` and ``SAMPLE.json``).

    Raises:
        SampleError: On a missing or empty source, a bad option, or an ``out`` folder that
            holds something else.
    """
    if opts.per_subset < 1:
        raise SampleError(f"--per-subset {opts.per_subset}: must be at least 1")
    if opts.max_bytes is not None and opts.max_bytes < 1:
        raise SampleError(f"--max-bytes {opts.max_bytes}: must be at least 1 (0 = no cap)")
    data = data_dir(opts.src)
    _prepare_out(opts)
    subsets = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        subset, blobs = sample_subset(folder, opts)
        target = opts.out / "data" / subset.subset
        target.mkdir(parents=True, exist_ok=True)
        for name, blob in blobs.items():
            (target / name).write_bytes(blob)
        subsets.append(subset)
    doc = {
        "source": "JSONSchemaBench layout (data/<subset>/*.json)",
        "source_rev": opts.source_rev,
        "seed": opts.seed,
        "per_subset": opts.per_subset,
        "max_bytes": opts.max_bytes,
        "total_files": sum(len(s.files) for s in subsets),
        "total_bytes": sum(f.bytes for s in subsets for f in s.files),
        "subsets": [s.to_dict() for s in subsets],
        "files": [
            {"subset": f.subset, "file": f.file, "sha256": f.sha256, "bytes": f.bytes}
            for s in subsets
            for f in s.files
        ],
    }
    (opts.out / SAMPLE_FILE).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return subsets


def parse_args(argv: Sequence[str] | None = None) -> SampleOptions:
    """The command line as :class:`SampleOptions`."""
    p = argparse.ArgumentParser(
        description="A deterministic per-subset sample of a JSONSchemaBench-layout folder."
    )
    p.add_argument("--src", type=Path, required=True, help="a JSONSchemaBench checkout (or its data/)")
    p.add_argument(
        "--out", type=Path, required=True, help="folder to write (OUT/data/<subset>/, SAMPLE.json)"
    )
    p.add_argument("--per-subset", type=int, default=50, help="schemas per subset (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        help=f"skip schema files larger than this (default {DEFAULT_MAX_BYTES}; 0 = no cap)",
    )
    p.add_argument("--source-rev", help="the source repository's commit, recorded in SAMPLE.json")
    p.add_argument("--overwrite", action="store_true", help="replace a sample already in --out")
    a = p.parse_args(argv)
    max_bytes = None if a.max_bytes == 0 else a.max_bytes
    return SampleOptions(a.src, a.out, a.per_subset, a.seed, max_bytes, a.source_rev, a.overwrite)


def main(argv: Sequence[str] | None = None) -> int:
    """Sample, then print one line per subset and the total."""
    opts = parse_args(argv)
    try:
        subsets = sample_folder(opts)
    except (SampleError, OSError) as e:
        print(f"jsb_sample: error: {e}", file=sys.stderr)
        return 2
    for s in subsets:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(s.skipped.items())) or "none"
        size = sum(f.bytes for f in s.files)
        print(f"{s.subset}: {len(s.files)} of {s.total} sampled ({size} bytes); skipped: {why}")
    total = sum(f.bytes for s in subsets for f in s.files)
    print(f"total: {sum(len(s.files) for s in subsets)} files, {total} bytes -> {opts.out / SAMPLE_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
