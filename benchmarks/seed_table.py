"""The seed's table, answered: vLLM against SGLang on one run, then each seed claim tested on it.

Prints markdown: (1) a seed-style table with one column for the engine entry that stands for
"vLLM" and one for "SGLang" (``--pick``; by default the first engine of each kind that is no
cache-off arm), whose figures :mod:`seed_figures` reads from the run folder; (2) one line per
claim of the seed (:mod:`seed_claims`, where the verdict rules are): the claim, our figure,
confirmed / refuted / not comparable and why, with relative links to the run folder and, for
the throughput claims, to the cross-check. Usage::

    python benchmarks/seed_table.py RUN_DIR --pick vllm=vllm --pick sglang=sglang-generate \\
        --crosscheck results/h200/crosscheck.json --relative-to results/h200

``--relative-to`` is the folder the markdown will live in (default: the current one), so that
its links resolve there. Exit status 2 on a folder or option it cannot use.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from seed_claims import (
    DEFAULT_BAND,
    ROLE_NAMES,
    ROLES,
    SEED_CLAIMS,
    SEED_SOURCE,
    Claim,
    CrossCheck,
    Role,
    Verdict,
    engine_band,
    percent,
    rate_verdict,
    ratio_tolerance,
    ratio_verdict,
)
from seed_figures import (
    ACCURACY,
    MEMORY_FRACTION_FLAGS,
    NOT_MEASURED,
    VALIDITY,
    Column,
    Figures,
    Value,
    columns,
    default_picks,
    figures,
    flag_value,
    load_samples,
    read_crosscheck,
    read_summary,
)

from structbench.errors import UserError
from structbench.report import fmt
from structbench.report.markdown import render_table
from structbench.report.tables import Table
from structbench.runfolder import RunManifest

#: Rows of claims whose figure is a throughput: the cross-check bounds how far it may be off.
THROUGHPUT_ROWS = ("output_tok_s", "structured_tok_s")


def _times(x: float) -> str:
    return f"{x:.2f}x"


def _tokens(x: float) -> str:
    return f"{x:,.0f}"


#: (row key, label, how to show a number); ``{scope}`` is the throughput cells' description.
ROWS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("output_tok_s", "output tok/s ({scope})", fmt.num),
    ("p50_ttft_ms", "p50 TTFT ms ({scope})", fmt.ms),
    ("p99_ttft_ms", "p99 TTFT ms ({scope})", fmt.ms),
    ("p50_tpot_ms", "p50 TPOT ms ({scope})", fmt.ms),
    ("p99_tpot_ms", "p99 TPOT ms ({scope})", fmt.ms),
    ("peak_gpu_mib", "peak GPU memory MiB (NVML, whole device)", fmt.num),
    ("kv_tokens", "KV-cache capacity, tokens", _tokens),
    ("structured_tok_s", "structured-task output tok/s (json tasks)", fmt.num),
    ("validity", f"schema validity % ({VALIDITY})", fmt.pct),
    ("accuracy", f"accuracy % ({ACCURACY})", fmt.pct),
    ("cache_benefit", "prefix-cache benefit: mean TTFT cache off / on", _times),
)


@dataclass(frozen=True, slots=True)
class Links:
    """Relative links the claim lines carry."""

    run: str
    crosscheck: str | None = None


def _show(v: Value, show: Callable[[float], str]) -> str:
    return v if isinstance(v, str) else show(v)


def _memory_fraction(col: Column) -> str:
    got = flag_value(col.launch_args, MEMORY_FRACTION_FLAGS)
    return got if got is not None else "not set (engine default)"


def seed_table(cols: Sequence[Column], figs: Mapping[Role, Figures], scope: str) -> Table:
    """The seed-style table: one column per picked engine."""
    headers = ("Figure", *(f"{ROLE_NAMES[c.role]}: `{c.engine.name}`" for c in cols))
    rows = [
        ("engine version", *(c.engine.version or NOT_MEASURED for c in cols)),
        ("model", *(c.engine.model or NOT_MEASURED for c in cols)),
        ("memory fraction (launch flag)", *(_memory_fraction(c) for c in cols)),
    ]
    rows += [
        (label.format(scope=scope), *(_show(figs[c.role].values[key], show) for c in cols))
        for key, label, show in ROWS
    ]
    points = len(cols[0].cells)
    notes = (
        f"pooled over the {points} task x load points both engines ran; {scope}: Σ output tokens / "
        "Σ cell durations (summary.json), percentiles over the pooled calls (records)",
        "validity and accuracy weighted by their calls; peak memory is the largest NVML sample of "
        "the device while the engine's cells ran, whatever else it held",
        "cache benefit: the cache-off twin's mean TTFT over the engine's (> 1x: the cache helped)",
    )
    return Table("The seed's table, answered", headers, tuple(rows), ("l", "r", "r"), notes)


def _untestable(claim: Claim, cols: Sequence[Column], figs: Mapping[Role, Figures]) -> str | None:
    """Why a claim cannot be tested on this run, or None."""
    missing = [ROLE_NAMES[r] for r in ROLES if isinstance(figs[r].values[claim.row], str)]
    if missing:
        return f"{' and '.join(missing)}: {NOT_MEASURED} in this run"
    if len({c.engine.model for c in cols}) > 1:
        return "the two engines served different models"
    by_role = {c.role: c for c in cols}
    if claim.row == "peak_gpu_mib":
        fr = {r: flag_value(by_role[r].launch_args, MEMORY_FRACTION_FLAGS) for r in ROLES}
        if None in fr.values() or len({float(v or 0) for v in fr.values()}) > 1:
            shown = ", ".join(f"{ROLE_NAMES[r]} {fr[r] or 'default'}" for r in ROLES)
            return (
                f"memory fractions differ or are unknown ({shown}): peak memory is what the fraction reserves"
            )
    if claim.kind == "rate" and any(flag_value(c.launch_args, ("--load-format",)) == "dummy" for c in cols):
        return "random weights (--load-format dummy): no accuracy to compare"
    return None


def _ratio_claim(claim: Claim, ours: Mapping[Role, float], xc: CrossCheck | None) -> Verdict:
    if claim.row in THROUGHPUT_ROWS:
        (bs, why_s), (bv, why_v) = (engine_band(xc, r) for r in ("sglang", "vllm"))
    else:
        # No client measures memory: nothing to cross-check it against, so the default band.
        (bs, why_s), (bv, why_v) = (
            (DEFAULT_BAND, f"{r} {percent(DEFAULT_BAND)} (default)") for r in ("sglang", "vllm")
        )
    v = ratio_verdict(claim.ratio, ours["sglang"] / ours["vllm"], ratio_tolerance(bs, bv))
    return Verdict(v.word, f"{v.reason}; bands {why_s}, {why_v}")


def verdict(
    claim: Claim, cols: Sequence[Column], figs: Mapping[Role, Figures], xc: CrossCheck | None
) -> Verdict:
    """The verdict on one claim (rules: :mod:`seed_claims`)."""
    why = _untestable(claim, cols, figs)
    if why is not None:
        return Verdict("not comparable", why)
    if claim.kind == "rate":
        s, v = figs["sglang"].rates[claim.row], figs["vllm"].rates[claim.row]
        assert s is not None and v is not None  # _untestable said "not measured" otherwise
        return rate_verdict(claim.difference, s, v)
    ours = {r: figs[r].values[claim.row] for r in ROLES}
    got = _ratio_claim(claim, {r: float(x) for r, x in ours.items()}, xc)
    if claim.row == "peak_gpu_mib":
        # _untestable let it through only with both fractions set and equal.
        return Verdict(got.word, f"at equal memory fractions ({_memory_fraction(cols[0])}): {got.reason}")
    return got


def _ours(claim: Claim, figs: Mapping[Role, Figures]) -> str:
    s, v = figs["sglang"].values[claim.row], figs["vllm"].values[claim.row]
    show = dict((k, f) for k, _, f in ROWS)[claim.row]
    text = f"{_show(s, show)} vs {_show(v, show)}"
    if isinstance(s, str) or isinstance(v, str):
        return text
    if claim.kind == "rate":
        return f"{text} % ({100 * (s - v):+.1f} pp)"
    return f"{text} ({s / v:.2f}x)"


def _claimed(claim: Claim) -> str:
    if claim.kind == "rate":
        return f"{claim.says} ({100 * claim.difference:+.1f} pp)"
    return f"{claim.says} ({claim.sglang:g} vs {claim.vllm:g} {claim.unit}: {claim.ratio:.2f}x)"


def claims_table(
    cols: Sequence[Column], figs: Mapping[Role, Figures], xc: CrossCheck | None, links: Links
) -> Table:
    """One line per seed claim: the claim, our figure, the verdict and why, the files."""
    rows = []
    for claim in SEED_CLAIMS:
        v = verdict(claim, cols, figs, xc)
        files = f"[run]({links.run})"
        if claim.row in THROUGHPUT_ROWS and links.crosscheck is not None:
            files += f", [cross-check]({links.crosscheck})"
        rows.append((_claimed(claim), _ours(claim, figs), f"**{v.word}**", v.reason, files))
    notes = (
        f"claims: {SEED_SOURCE}; its model, GPU and workload are not this run's, so each claim is "
        "tested on SGLang relative to vLLM here, not on its absolute figures",
        "ratio claims: confirmed within the tolerance of the claimed SGLang / vLLM ratio, which "
        "compounds each engine's band (seed_claims.py); accuracy: the claimed difference against "
        "our 95 % interval of it",
    )
    headers = ("Seed claim", "This run: SGLang vs vLLM", "Verdict", "Why", "Files")
    return Table("Against the seed's claims", headers, tuple(rows), ("l", "r", "l", "l", "l"), notes)


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def _picks(m: RunManifest, given: Sequence[str]) -> dict[Role, str]:
    picks = default_picks(m)
    for p in given:
        role, sep, engine = p.partition("=")
        if not sep or role not in ROLES:
            raise UserError(f"--pick {p}: expected vllm=ENGINE or sglang=ENGINE")
        picks[role] = engine
    return picks


def render(run_dir: Path, opts: argparse.Namespace) -> str:
    """The whole markdown for one run folder."""
    m = RunManifest.read(run_dir)
    cols = columns(m, read_summary(run_dir), _picks(m, opts.pick))
    samples = load_samples(run_dir, cols)
    tasks: list[str] = opts.throughput_task
    figs = {c.role: figures(c, samples, tasks) for c in cols}
    scope = f"tasks {', '.join(tasks)}" if tasks else "all tasks"
    xc = read_crosscheck(opts.crosscheck) if opts.crosscheck else None
    base = opts.relative_to
    links = Links(_rel(run_dir, base), _rel(opts.crosscheck, base) if opts.crosscheck else None)
    gpus = ", ".join(g.name for g in m.hardware.gpus) or "no GPU"
    head = f"Run [`{m.run_id}`]({links.run}) (suite `{m.suite}`, {m.created_utc[:10]}, {gpus})."
    return "\n".join(
        (
            head,
            "",
            render_table(seed_table(cols, figs, scope)),
            render_table(claims_table(cols, figs, xc, links)),
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: print the markdown, or a one-line error and exit 2."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("run_dir", type=Path, help="a structbench run folder (packed or not)")
    p.add_argument("--crosscheck", type=Path, help="crosscheck.json (or .json.gz) for the throughput claims")
    p.add_argument(
        "--pick", action="append", default=[], metavar="ROLE=ENGINE", help="vllm=NAME or sglang=NAME"
    )
    p.add_argument(
        "--throughput-task",
        action="append",
        default=[],
        metavar="TASK",
        help="pool throughput over these tasks only",
    )
    p.add_argument("--relative-to", type=Path, default=Path("."), help="folder the links are relative to")
    opts = p.parse_args(argv)
    try:
        print(render(opts.run_dir, opts), end="")
    except UserError as e:
        print(f"seed_table: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
