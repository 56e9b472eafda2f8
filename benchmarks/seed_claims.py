"""The seed document's claims about vLLM and SGLang, and the rules that confirm or refute them.

The claims are data, not measurements of ours: :data:`SEED_CLAIMS` quotes them as
``results/h200/README.md`` ("Against the seed document's claims") reads the seed. The seed
names neither its model, nor its GPU, nor its workload, so no absolute figure of ours can
confirm one of its absolute figures. What a run of ours *can* test is what each claim says
about the two engines relative to each other, on one model, one GPU and one workload:

* **Ratio claims** (throughput, structured-task throughput, memory) are tested on
  SGLang / vLLM. A claim is *confirmed* when our ratio is within ``tolerance`` of the claimed
  ratio (relative), else *refuted*. Each engine's figure is trusted to a relative error
  ``b`` (its *band*); a ratio of two figures can then be off by up to
  ``(1 + b_sglang) * (1 + b_vllm) - 1`` (one read high, the other low), and that is the
  tolerance (:func:`ratio_tolerance`). For throughput the band is what the cross-check
  measured (:func:`engine_band`): the larger of its target (±3 %) and the worst
  structbench / reference-client ratio it found for that engine, since a cross-check that
  missed its target shows the figure is trusted less. Without a cross-check, or for figures
  no client measures (NVML memory), the band is the project's 3 % agreement target.
* **Rate claims** (accuracy) are tested on the difference SGLang - vLLM in percentage
  points, against the 95 % interval of our difference (Agresti-Caffo: one success and one
  failure added to each engine's calls, normal approximation, the two engines' calls taken
  as independent). Treating the same items as independent and a fractional score (field
  accuracy) as 0/1 both widen the interval, so a refutation is never made on noise. The
  claim is *refuted* when the claimed difference lies outside the interval, *confirmed*
  when it lies inside and 0 does not, and *not comparable* when the interval holds both:
  the run has too few scored calls to tell.

Before either rule, the caller decides whether a claim can be tested at all (a figure not
measured, two engines on different models, unequal memory fractions, random weights): a
claim that cannot is *not comparable*, with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

#: The engines the seed compares, as its claims name them.
Role = Literal["vllm", "sglang"]
ROLES: tuple[Role, ...] = ("vllm", "sglang")
#: How the tables name them.
ROLE_NAMES: Mapping[Role, str] = {"vllm": "vLLM", "sglang": "SGLang"}
Word = Literal["confirmed", "refuted", "not comparable"]

#: Where :data:`SEED_CLAIMS` come from.
SEED_SOURCE = 'the seed document, as results/h200/README.md ("Against the seed document\'s claims") reads it'
#: The project's agreement target (issue 15): structbench within ±3 % of each engine's own client.
DEFAULT_BAND = 0.03
#: Two-sided 95 % normal quantile.
_Z95 = 1.96


@dataclass(frozen=True, slots=True)
class Claim:
    """One claim of the seed: a figure for each engine.

    Attributes:
        row: The seed-table row it is tested against.
        says: The claim in words, as the seed makes it.
        sglang: SGLang's figure.
        vllm: vLLM's figure.
        unit: The seed's unit ("%" for a rate given as 0..1).
        kind: "ratio" (tested on SGLang / vLLM) or "rate" (on SGLang - vLLM).
    """

    row: str
    says: str
    sglang: float
    vllm: float
    unit: str
    kind: Literal["ratio", "rate"]

    @property
    def ratio(self) -> float:
        """SGLang / vLLM, as claimed."""
        return self.sglang / self.vllm

    @property
    def difference(self) -> float:
        """SGLang - vLLM, as claimed."""
        return self.sglang - self.vllm


#: The seed's claims (source: :data:`SEED_SOURCE`).
SEED_CLAIMS: tuple[Claim, ...] = (
    Claim("output_tok_s", "SGLang at 2.3x vLLM's output throughput", 1532.0, 661.0, "tok/s", "ratio"),
    Claim("peak_gpu_mib", "SGLang uses 15 GB of GPU memory, vLLM 18 GB", 15.0, 18.0, "GB", "ratio"),
    Claim(
        "structured_tok_s", "structured tasks: SGLang 1200 tok/s, vLLM 893", 1200.0, 893.0, "tok/s", "ratio"
    ),
    Claim("accuracy", "accuracy: SGLang 95 %, vLLM 92 %", 0.95, 0.92, "%", "rate"),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A claim's verdict and the one line that says why."""

    word: Word
    reason: str


@dataclass(frozen=True, slots=True)
class PooledRate:
    """A score pooled over calls: its mean (0..1) and how many calls it covers."""

    rate: float
    n: int


@dataclass(frozen=True, slots=True)
class CrossCheck:
    """What a ``crosscheck.json`` says about structbench's output throughput.

    Attributes:
        target: The agreement band of structbench / reference (e.g. 0.97, 1.03).
        all_within_target: Whether every gated ratio of the cross-check met it.
        ratios: Engine kind -> its structbench / reference output-throughput ratios.
    """

    target: tuple[float, float]
    all_within_target: bool
    ratios: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


def percent(x: float, digits: int = 1) -> str:
    """A relative figure (0.031) as the project writes it: "3.1 %"."""
    return f"{100 * x:.{digits}f} %"


def engine_band(xc: CrossCheck | None, kind: str) -> tuple[float, str]:
    """The relative error one engine's output tok/s is trusted to, and where it comes from."""
    if xc is None:
        return DEFAULT_BAND, f"{kind} {percent(DEFAULT_BAND)} (no cross-check given)"
    half = max(abs(t - 1.0) for t in xc.target)
    got = xc.ratios.get(kind, ())
    if not got:
        return half, f"{kind} {percent(half)} (not in the cross-check)"
    worst = max(got, key=lambda r: abs(r - 1.0))
    band = max(half, abs(worst - 1.0))
    return band, f"{kind} {percent(band)} (cross-check: worst ratio {worst:.3f} of {len(got)})"


def ratio_tolerance(band_sglang: float, band_vllm: float) -> float:
    """How far a ratio of two figures, each trusted to its band, may be off (relative)."""
    return (1.0 + band_sglang) * (1.0 + band_vllm) - 1.0


def ratio_verdict(claimed: float, ours: float, tolerance: float) -> Verdict:
    """Confirmed when ``ours`` is within ``tolerance`` (relative) of ``claimed``, else refuted."""
    dev = ours / claimed - 1.0
    if abs(dev) <= tolerance:
        return Verdict(
            "confirmed", f"{ours:.2f}x is within ±{percent(tolerance)} of the claimed {claimed:.2f}x"
        )
    side = "above" if dev > 0 else "below"
    off = f"{ours:.2f}x is {percent(abs(dev), 0)} {side} the claimed {claimed:.2f}x"
    return Verdict("refuted", f"{off} (tolerance ±{percent(tolerance)})")


def difference_interval(sglang: PooledRate, vllm: PooledRate) -> tuple[float, float]:
    """The 95 % Agresti-Caffo interval of SGLang - vLLM (see the module docstring)."""

    def adjusted(r: PooledRate) -> tuple[float, float]:
        p = (r.rate * r.n + 1.0) / (r.n + 2.0)
        return p, p * (1.0 - p) / (r.n + 2.0)

    (ps, vs), (pv, vv) = adjusted(sglang), adjusted(vllm)
    half = _Z95 * math.sqrt(vs + vv)
    return ps - pv - half, ps - pv + half


def _pp(x: float) -> str:
    return f"{100 * x:+.1f}"


def rate_verdict(claimed: float, sglang: PooledRate, vllm: PooledRate) -> Verdict:
    """Test a claimed difference SGLang - vLLM (0..1 units) against our 95 % interval of it."""
    lo, hi = difference_interval(sglang, vllm)
    span = f"our 95 % interval of SGLang - vLLM is [{_pp(lo)}, {_pp(hi)}] pp"
    if not lo <= claimed <= hi:
        return Verdict("refuted", f"{span}: it excludes the claimed {_pp(claimed)} pp")
    if lo > 0.0 or hi < 0.0:
        return Verdict("confirmed", f"{span}: it holds the claimed {_pp(claimed)} pp and excludes 0")
    return Verdict(
        "not comparable", f"too few scored calls to tell: {span}, holding both 0 and {_pp(claimed)}"
    )
