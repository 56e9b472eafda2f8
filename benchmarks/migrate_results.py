"""Migrate the committed run folders: version 2 cell files with the run-time ideal, reports rebuilt.

The run folders under ``results/`` were written (version 1) before structbench computed
the ideal prefix-cache hit rate at run time (``cells.py``, ``metrics/cache.py``). Their
summaries carried a report-time ideal with the errors of issue 14, item 6, and the
current report, which only reads, shows none. For every committed run this script:

1. recomputes each cell's ideal (``benchmarks/migrate_ideal.py``: the tokenizer, renderer
   and block size each engine used, with the evidence for each, printed);
2. writes it into each ``cell.json`` as a version 2 ``CellFile`` with the block size and
   the manifest's cache arm and pair (a version 1 cell file guessed its arm from the load
   label). The manifest stays version 1 on disk, so the folder still reads as a migrated
   version 1 run (``RunManifest.migrated_from == 1``);
3. rebuilds ``summary.json`` and ``report.md`` in place with ``structbench report RUN``,
   drops the derived files that a packed folder does not keep and compacts the JSON
   (``benchmarks/pack_results.py --compact-json``);
4. prints, grouped by reason, every summary figure that changed. A changed latency or
   throughput figure is a bug: the folder is then restored from the backup, exit 1.

Usage::

    python benchmarks/migrate_results.py --all                 # every run folder under results/
    python benchmarks/migrate_results.py RUN_DIR --backup /tmp/structbench-migrate
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

from migrate_ideal import CellResult, Evidence, compute

from structbench.runfolder import CELL_FILE, CellEntry, CellFile, IdealFacts, RunManifest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
#: Summary keys that hold latency, throughput or token counts: they must never change here.
FORBIDDEN = (
    "_ms",
    "throughput",
    "goodput",
    "duration_s",
    "slo_attainment",
    "_tokens",
    "calls",
    "items",
    "_cache_hit_rate",
)
ABSENT = "(absent)"


@dataclass(frozen=True, slots=True)
class Change:
    """One summary figure that differs between the old and the rebuilt ``summary.json``."""

    reason: str
    cell: str
    key: str
    old: object
    new: object


def _load_pack() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pack_results", ROOT / "benchmarks" / "pack_results.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["pack_results"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def migrate_cell(run_dir: Path, entry: CellEntry, result: CellResult) -> None:
    """Rewrite one ``cell.json`` as version 2 with the ideal, block size and the manifest's cache arm."""
    path = run_dir / "cells" / entry.cell_id / CELL_FILE
    old = CellFile.read(path)
    ideal = None if result.ideal is None else IdealFacts(**asdict(result.ideal)).model_dump()
    update = {**entry.model_dump(), "ideal": ideal, "cache_block_size": result.block_size}
    CellFile.model_validate({**old.model_dump(), **update}).write(path)


def _flat(x: object, path: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _flat(v, f"{path}.{k}" if path else str(k))
    elif (
        isinstance(x, list)
        and x
        and all(isinstance(v, dict) and ("cell_id" in v or "scorer" in v) for v in x)
    ):
        for v in x:
            yield from _flat(v, f"{path}[{v.get('cell_id', v.get('scorer'))}]")
    else:
        yield path, x


def reason(key: str) -> str:
    """Why a summary figure changed, from its key (``forbidden``: a timing or count figure)."""
    if key.endswith("_of_ideal"):
        return "% of ideal"
    if key.startswith("ideal_"):
        return "ideal hit rate"
    if key == "server_cache_source":
        return "server cache source name"
    if key == "git_sha":
        return "git sha"
    if any(s in key for s in FORBIDDEN):
        return "forbidden"
    return "other"


def _split(path: str) -> tuple[str, str]:
    """``cells[X].a.b`` -> ``("X", "a.b")``; ``run.git_sha`` -> ``("run", "git_sha")``."""
    m = re.fullmatch(r"cells\[([^\]]+)\]\.(.+)", path)
    if m:
        return m.group(1), m.group(2)
    head, _, key = path.rpartition(".")
    return head or "(top)", key


def changes(old: Path, new: Path) -> list[Change]:
    """Every summary figure that differs between two ``summary.json`` files."""
    a = dict(_flat(json.loads(old.read_text(encoding="utf-8"))))
    b = dict(_flat(json.loads(new.read_text(encoding="utf-8"))))
    out = []
    for path in sorted({*a, *b}):
        va, vb = a.get(path, ABSENT), b.get(path, ABSENT)
        if va != vb:
            cell, key = _split(path)
            out.append(Change(reason(key.rsplit(".", 1)[-1]), cell, key, va, vb))
    return out


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    text = str(v)
    return text.split(" (")[0] if len(text) > 40 else text  # a tokenizer label: its head


def _ideal_why(cs: Sequence[Change], result: CellResult | None) -> str:
    """The causes of one cell's changed ideal."""
    by = {c.key: c for c in cs}
    out = list(result.causes if result else ())
    tok = by.get("ideal_cache_tokenizer")
    if tok and str(tok.old).startswith("approximate") and tok.new is not None:
        out.insert(0, "model tokenizer, not the approximation")
    basis = by.get("ideal_cache_basis")
    if basis:
        out.insert(0, "no prefix cache: no ideal" if basis.new is None else f"{basis.old} -> {basis.new}")
    return "; ".join(out) or "(rounding)"


def _of_ideal_why(cs: Sequence[Change]) -> str:
    """Why a cell's achieved/ideal fraction changed."""
    if any(c.old == 0.0 and c.new is None for c in cs):
        return "undefined, not 0: nothing cacheable at the block size"
    above = any(isinstance(c.old, float) and c.old > 1 for c in cs)
    return "the new ideal" + (" (was above 100 %)" if above else "")


def change_table(diff: Sequence[Change], results: Mapping[str, CellResult]) -> list[str]:
    """Markdown: one row per reason and cell, every changed figure old -> new, and why."""
    lines = ["| reason | cell | figures (old -> new) | why |", "|---|---|---|---|"]
    for why in sorted({c.reason for c in diff}):
        cells: dict[str, list[Change]] = {}
        for c in (c for c in diff if c.reason == why):
            cells.setdefault(c.cell, []).append(c)
        for cell, cs in cells.items():
            figs = "; ".join(f"{c.key} {_fmt(c.old)} -> {_fmt(c.new)}" for c in cs)
            cause = {
                "ideal hit rate": _ideal_why(cs, results.get(cell)),
                "% of ideal": _of_ideal_why(cs),
            }.get(why, "")
            lines.append(f"| {why} | {cell} | {figs} | {cause} |")
    return lines


def _kept(run_dir: Path) -> list[Path]:
    return [
        run_dir / "summary.json",
        run_dir / "report.md",
        *sorted((run_dir / "cells").glob(f"*/{CELL_FILE}")),
    ]


def backup(run_dir: Path, dest: Path) -> None:
    """Save the files this script rewrites (summary, report, cell files)."""
    for p in _kept(run_dir):
        out = dest / p.relative_to(run_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, out)


def restore(run_dir: Path, src: Path) -> None:
    """Put the saved files back."""
    for p in src.rglob("*"):
        if p.is_file():
            shutil.copy2(p, run_dir / p.relative_to(src))


def rebuild_report(run_dir: Path) -> None:
    """``structbench report RUN`` in place, then drop what a packed folder does not keep."""
    path = os.pathsep.join(p for p in (str(ROOT / "runner"), os.environ.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "structbench.cli", "report", str(run_dir)]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": path}, stdout=subprocess.DEVNULL)
    pack = _load_pack()
    pack.pack_run(run_dir, pack.PackOptions(compact_json=True))


def print_run(run_dir: Path, evidence: Sequence[Evidence], results: Sequence[CellResult]) -> None:
    """The evidence and the recomputed ideal of every cell."""
    print(f"## {run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir}\n")
    for ev in evidence:
        print(f"- {ev.engine}: block {ev.block_size}: {ev.why}")
    print()
    for c in results:
        i = c.ideal
        if i is None:
            print(f"- {c.cell_id}: no ideal")
            continue
        print(
            f"- {c.cell_id}: ideal {_fmt(i.block_hit_rate)} ({i.basis}), token-level {_fmt(i.hit_rate)}, "
            f"{i.prompts} prompts, {i.prompt_tokens} tokens, {c.prior_calls} earlier calls in the cache"
        )
    print()


def migrate_run(run_dir: Path, backup_root: Path) -> int:
    """Migrate one run folder; returns 1 (folder restored) when a timing figure changed."""
    evidence, results = compute(run_dir)
    print_run(run_dir, evidence, results)
    saved = backup_root / run_dir.name
    backup(run_dir, saved)
    by_id = {r.cell_id: r for r in results}
    for entry in RunManifest.read(run_dir).cells:
        migrate_cell(run_dir, entry, by_id[entry.cell_id])
    rebuild_report(run_dir)
    diff = changes(saved / "summary.json", run_dir / "summary.json")
    print("\n".join(change_table(diff, by_id)) + "\n")
    if any(c.reason == "forbidden" for c in diff):
        restore(run_dir, saved)
        print(
            f"{run_dir}: a latency, throughput or count figure changed; restored from {saved}",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Migrate the named run folders (or all of them); print evidence and changes."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("runs", nargs="*", type=Path, help="run folders to migrate")
    p.add_argument("--all", action="store_true", help="every run folder under results/")
    p.add_argument("--backup", type=Path, default=Path("/tmp/structbench-migrate"), help="where old files go")
    args = p.parse_args(argv)
    runs = [*args.runs, *(sorted(q.parent for q in RESULTS.glob("**/manifest.json")) if args.all else [])]
    return max((migrate_run(r.resolve(), args.backup) for r in runs), default=0)


if __name__ == "__main__":
    raise SystemExit(main())
