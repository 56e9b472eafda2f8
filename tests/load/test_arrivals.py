"""Arrival schedules: labels, sweeps, and the statistics of the gap distributions."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from structbench.load.arrivals import LoadPoint, arrival_offsets, load_points
from structbench.spec.suite import LoadSpec


def _rate(rate: float, arrivals: str = "poisson", burstiness: float = 1.0) -> LoadPoint:
    return LoadPoint("rate", None, rate, arrivals, burstiness, None)


def _gaps(offsets: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(offsets)]


def test_labels() -> None:
    assert LoadPoint("offline", None, math.inf, "poisson", 1.0, None).label == "offline"
    assert LoadPoint("concurrency", 8, math.inf, "poisson", 1.0, 8).label == "c8"
    assert _rate(2.5).label == "r2.5"
    assert _rate(math.inf).label == "rinf"
    assert _rate(10.0).label == "r10"


def test_load_points_one_per_sweep_value() -> None:
    pts = load_points(LoadSpec(mode="concurrency", concurrency=(1, 4, 16)))
    assert [p.label for p in pts] == ["c1", "c4", "c16"]
    assert all(p.max_concurrency == p.concurrency for p in pts)
    pts = load_points(LoadSpec(mode="rate", rate=(0.5, float("inf")), arrivals="gamma", burstiness=0.5))
    assert [p.label for p in pts] == ["r0.5", "rinf"]
    assert pts[0].arrivals == "gamma" and pts[0].burstiness == 0.5
    assert [p.label for p in load_points(LoadSpec(mode="offline"))] == ["offline"]


def test_all_at_once_schedules() -> None:
    rng = random.Random(0)
    assert arrival_offsets(5, LoadPoint("offline", None, math.inf, "poisson", 1, None), rng) == [0.0] * 5
    assert arrival_offsets(3, LoadPoint("concurrency", 2, math.inf, "poisson", 1, 2), rng) == [0.0] * 3
    assert arrival_offsets(4, _rate(math.inf), rng) == [0.0] * 4
    assert arrival_offsets(0, _rate(1.0), rng) == []


def test_constant_rate() -> None:
    assert arrival_offsets(4, _rate(2.0, "constant"), random.Random(0)) == [0.0, 0.5, 1.0, 1.5]


@pytest.mark.parametrize("arrivals,burstiness", [("poisson", 1.0), ("gamma", 0.5), ("gamma", 4.0)])
def test_gap_statistics(arrivals: str, burstiness: float) -> None:
    rate = 4.0
    offs = arrival_offsets(40_000, _rate(rate, arrivals, burstiness), random.Random(7))
    gaps = _gaps(offs)
    assert offs[0] == 0.0 and all(g >= 0 for g in gaps)
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1 / rate, rel=0.03)
    # Gamma(k, theta) with mean 1/rate has variance mean^2 / k (Poisson: k = 1).
    assert statistics.variance(gaps) == pytest.approx(mean**2 / burstiness, rel=0.1)


def test_deterministic_per_seed() -> None:
    pt = _rate(3.0, "gamma", 0.7)
    a = arrival_offsets(50, pt, random.Random(42))
    assert a == arrival_offsets(50, pt, random.Random(42))
    assert a != arrival_offsets(50, pt, random.Random(43))


def test_bad_rate_raises() -> None:
    with pytest.raises(ValueError):
        arrival_offsets(3, _rate(0.0), random.Random(0))
