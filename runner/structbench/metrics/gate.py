"""A CI gate over a run summary: rate thresholds and canary verdicts (pure functions).

``structbench run`` and ``structbench report`` take ``--fail-under NAME=VALUE``
(repeatable) and ``--fail-on-canary``; when any check fails they exit with
:data:`GATE_EXIT_CODE`, distinct from a failed cell (1) and a bad input (2), so a CI job
can tell "the engine got worse" from "the benchmark broke".

Names: ``validity`` and ``accuracy`` (each cell's headline rates), any scorer name
(``schema_valid``, ``regex_match``, ...), and the coverage rates of ``schema_corpus``
tasks (``declared``, ``empirical``, ``compliance``, over each engine's schemas). Every
cell or coverage entry that has the rate must reach the threshold; one that has the
scorer but no applicable value fails (nothing was checked), and so does a name that no
part of the run reports, since a gate that checks nothing must not pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from structbench.errors import UserError
from structbench.metrics.scores import ScoreRate
from structbench.metrics.summary import RunSummary

__all__ = ["GATE_EXIT_CODE", "GateResult", "Threshold", "check_gate", "parse_threshold"]

#: Exit code of ``run`` and ``report`` when the gate fails (1 = failed cells, 2 = bad input).
GATE_EXIT_CODE = 3
_COVERAGE = ("declared", "empirical", "compliance")
_HEADLINE = ("validity", "accuracy")


@dataclass(frozen=True, slots=True)
class Threshold:
    """One ``--fail-under NAME=VALUE``: the rate named must be at least ``minimum`` (0..1)."""

    name: str
    minimum: float


@dataclass(frozen=True, slots=True)
class GateResult:
    """The gate's verdict: ``failures`` are one line each; empty means it passed."""

    failures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when every check held."""
        return not self.failures


def parse_threshold(text: str) -> Threshold:
    """``validity=0.99`` or ``validity=99%`` as a :class:`Threshold`.

    Raises:
        UserError: On a malformed threshold (exit code 2, one line).
    """
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise UserError(f"--fail-under {text!r}: expected NAME=VALUE, e.g. validity=0.99")
    scale = 100.0 if value.endswith("%") else 1.0
    try:
        minimum = float(value.removesuffix("%")) / scale
    except ValueError:
        raise UserError(f"--fail-under {text!r}: {value!r} is not a number") from None
    if not 0.0 <= minimum <= 1.0:
        raise UserError(f"--fail-under {text!r}: the threshold must be within 0..1 (or 0..100%)")
    return Threshold(name, minimum)


def _rates(summary: RunSummary, name: str) -> Iterator[tuple[str, ScoreRate | None]]:
    """``(where, rate)`` of every part of the run that reports ``name``."""
    for cell in summary.cells:
        q = cell.quality
        if name in _HEADLINE:
            rate = q.validity if name == "validity" else q.accuracy
            if rate is not None:
                yield cell.info.cell_id, rate
            continue
        for s in q.scores:
            if s.scorer == name:
                yield cell.info.cell_id, s
    if name in _COVERAGE and summary.corpus is not None:
        for cov in summary.corpus.coverage:
            o = cov.overall
            rate = o.declared if name == "declared" else o.empirical if name == "empirical" else o.compliance
            yield f"{cov.engine} on {cov.task}", rate


def _threshold_failures(summary: RunSummary, t: Threshold) -> list[str]:
    found = list(_rates(summary, t.name))
    if not found:
        return [f"{t.name}: no cell of the run reports it (so nothing was checked)"]
    out = []
    for where, rate in found:
        if rate is None or rate.rate is None:
            out.append(f"{t.name} in {where}: no applicable value (threshold {t.minimum:g})")
        elif rate.rate < t.minimum:
            out.append(f"{t.name} in {where}: {rate.rate:.4g} < {t.minimum:g} (n={rate.n})")
    return out


def _canary_failures(summary: RunSummary) -> list[str]:
    out = []
    for cell in summary.cells:
        verdict = cell.quality.canary
        # "unsupported" is the engine declaring it can't run the constraint: honest, and
        # shown in the report; "no completed outputs" can't confirm anything, so it fails.
        if cell.info.canary and verdict not in ("applied", "unsupported"):
            out.append(f"canary in {cell.info.cell_id}: {verdict or 'not scored'}")
    return out


def check_gate(summary: RunSummary, thresholds: Sequence[Threshold], canary: bool) -> GateResult:
    """Check a run against thresholds and (when ``canary``) its canary verdicts."""
    failures: list[str] = []
    for t in thresholds:
        failures += _threshold_failures(summary, t)
    if canary:
        failures += _canary_failures(summary)
    return GateResult(tuple(failures))
