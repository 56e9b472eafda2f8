"""Is a difference between two sets of runs inside their run-to-run noise?

One run's own bootstrap interval (``structbench compare``'s ``≈``) only knows the spread of calls
inside that run. Two runs of one suite on one host, each with its own server start, can differ by
far more: on the H200, three local runs of ``suites/h200_ray.yaml`` spread by ~20 % in TPOT. To
judge "run B matches run A within noise", run each side more than once and let this script set
the groups' difference against the spread of the repeats::

    python benchmarks/repeat_noise.py RUN_DIR... [--ref local] [--metric mean_tpot_ms]... [--json OUT]

Runs are grouped by the executor their manifest names (``local``, ``ray``); ``--ref`` is the
group the others are set against. For each cell and metric: every run's value, each group's mean,
the relative difference of the means, and a pooled two-sample Student t-test. A difference is
"inside" the noise when |t| is at most the two-sided 95 % critical value: with so few runs only a
gross difference is caught, so the reference runs' spread is printed beside it. A cell or metric
missing from any run is left out; one run against one run (no spread at all) is printed, not judged.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Judgement", "judge", "load_runs", "main"]

METRICS = ("request_throughput", "output_throughput", "mean_ttft_ms", "mean_tpot_ms")

#: Two-sided 95 % critical values of Student's t by degrees of freedom (standard tables); past the
#: table's end the last value, a slight overstatement, so a judgement errs towards "inside".
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


@dataclass(frozen=True)
class Judgement:
    cell_id: str
    metric: str
    group: str
    ref_values: list[float]
    values: list[float]
    diff_pct: float
    spread_pct: float  # (max - min) / min of the reference runs: their run-to-run spread
    t: float | None
    t_crit: float | None
    inside: bool | None


def load_runs(dirs: Sequence[Path]) -> dict[str, list[dict[str, dict[str, Any]]]]:
    """Each executor's runs, in the order given: cell id → that cell's summary.json entry."""
    groups: dict[str, list[dict[str, dict[str, Any]]]] = {}
    for d in dirs:
        try:
            manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
            summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"repeat_noise: {d}: not a reported run folder ({exc})") from None
        cells = {c["cell_id"]: c for c in summary["cells"]}
        groups.setdefault(str(manifest.get("executor", "local")), []).append(cells)
    return groups


def _pct(a: float, b: float) -> float:
    return 100.0 * (b - a) / a if a else math.nan


def _var(values: list[float]) -> float:
    return statistics.variance(values) if len(values) > 1 else 0.0  # one run adds no spread


def _t_test(a: list[float], b: list[float]) -> tuple[float, float] | None:
    """Pooled two-sample t and its 95 % critical value; None when neither side was repeated (no
    spread to pool). One run against repeated ones is judged by the repeats' spread."""
    n, m = len(a), len(b)
    if n + m < 3:
        return None
    pooled = ((n - 1) * _var(a) + (m - 1) * _var(b)) / (n + m - 2)
    se = math.sqrt(pooled * (1 / n + 1 / m))
    diff = statistics.fmean(b) - statistics.fmean(a)
    t = diff / se if se else (0.0 if diff == 0 else math.inf)
    return t, T975[min(n + m - 2, len(T975)) - 1]


def judge(
    groups: dict[str, list[dict[str, dict[str, Any]]]], ref: str, metrics: Sequence[str] = METRICS
) -> list[Judgement]:
    if ref not in groups:
        raise SystemExit(f"repeat_noise: no run of executor {ref!r} (have: {', '.join(sorted(groups))})")
    out: list[Judgement] = []
    for cell_id in sorted(groups[ref][0]):
        for group, runs in sorted(groups.items()):
            if group == ref:
                continue
            for metric in metrics:
                a = [r.get(cell_id, {}).get(metric) for r in groups[ref]]
                b = [r.get(cell_id, {}).get(metric) for r in runs]
                if None in a or None in b:
                    continue  # not measured in every run: nothing to set side by side
                av, bv = [float(x) for x in a if x is not None], [float(x) for x in b if x is not None]
                test = _t_test(av, bv)
                out.append(
                    Judgement(
                        cell_id,
                        metric,
                        group,
                        av,
                        bv,
                        _pct(statistics.fmean(av), statistics.fmean(bv)),
                        _pct(min(av), max(av)),
                        None if test is None else test[0],
                        None if test is None else test[1],
                        None if test is None else abs(test[0]) <= test[1],
                    )
                )
    return out


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def render(rows: Sequence[Judgement], ref: str) -> str:
    head = f"| cell | metric | {ref} runs | other runs | Δ mean % | {ref} spread % | t (95 % crit) | inside |"
    lines = [head]
    lines.append("|---|---|---|---|---:|---:|---:|---|")
    for j in rows:
        t = "n/a (one run a side)" if j.t is None else f"{j.t:+.2f} ({j.t_crit:.2f})"
        verdict = "not judged" if j.inside is None else ("yes" if j.inside else "**no**")
        lines.append(
            f"| {j.cell_id} | {j.metric} | {_fmt(j.ref_values)} | {j.group}: {_fmt(j.values)} "
            f"| {j.diff_pct:+.1f} | {j.spread_pct:.1f} | {t} | {verdict} |"
        )
    judged = [j for j in rows if j.inside is not None]
    lines.append("")
    inside = sum(j.inside is True for j in judged)
    lines.append(f"{inside} of {len(judged)} judged differences inside the noise")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="reported run folders (each with summary.json)")
    ap.add_argument("--ref", default="local", help="the executor the others are set against (default: local)")
    default = ", ".join(METRICS)
    ap.add_argument("--metric", action="append", help=f"a summary.json metric (default: {default})")
    ap.add_argument("--json", type=Path, help="also write the judgements here")
    args = ap.parse_args(argv)
    rows = judge(load_runs(args.runs), args.ref, args.metric or METRICS)
    print(render(rows, args.ref))
    if args.json:
        args.json.write_text(json.dumps([asdict(j) for j in rows], indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
