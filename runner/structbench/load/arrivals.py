"""Arrival schedules: pure functions of a load point and a seeded RNG.

A :class:`LoadPoint` is one value of a load sweep (one cell per engine x task), the one
load-point type of the package: the driver runs it, the run folder records it and the
metrics and the report label and plot it. The
schedules follow vLLM's ``bench serve``: the first request leaves at t = 0, and the gaps
between requests are constant (``1/rate``), exponential (Poisson process) or gamma
distributed with shape ``burstiness`` and mean ``1/rate``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from structbench.spec.suite import LoadSpec

LoadMode = Literal["offline", "concurrency", "rate"]


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """One load point of a sweep.

    Attributes:
        mode: ``offline`` (all items at once), ``concurrency`` (closed loop with
            ``concurrency`` workers) or ``rate`` (open loop at ``rate`` items/s).
        concurrency: Number of closed-loop workers; None outside ``concurrency`` mode.
        rate: Items per second in ``rate`` mode; ``inf`` otherwise.
        arrivals: Gap distribution in ``rate`` mode: ``poisson``, ``gamma``, ``constant``.
        burstiness: Gamma shape (1 = Poisson, < 1 burstier, > 1 smoother).
        max_concurrency: Cap on items in flight for ``rate``/``offline`` (None = no cap).
        clients: Client processes that send this point together, each a share of one
            schedule (:func:`split_schedule`); it says how the load is sent, not what it is,
            so it is not part of the label.
    """

    mode: LoadMode
    concurrency: int | None = None
    rate: float = math.inf
    arrivals: str = "poisson"
    burstiness: float = 1.0
    max_concurrency: int | None = None
    clients: int = 1

    @property
    def label(self) -> str:
        """Short id used in cell ids: ``c8``, ``r2.5``, ``rinf`` or ``offline``."""
        if self.mode == "offline":
            return "offline"
        if self.mode == "concurrency":
            return f"c{self.concurrency}"
        return "rinf" if math.isinf(self.rate) else f"r{self.rate:g}"

    def display(self) -> str:
        """Short human label for tables and plots (the same as :attr:`label`)."""
        return self.label

    def x_value(self) -> float | None:
        """The number that varies along a sweep (concurrency or rate), for plots."""
        if self.mode == "concurrency":
            return None if self.concurrency is None else float(self.concurrency)
        if self.mode == "rate" and math.isfinite(self.rate):
            return self.rate
        return None


def load_points(spec: LoadSpec) -> list[LoadPoint]:
    """Expand a load spec into its load points, one per sweep value."""
    a, b, cap, n = spec.arrivals, spec.burstiness, spec.max_concurrency, spec.clients
    if spec.mode == "offline":
        return [LoadPoint("offline", None, math.inf, a, b, cap, n)]
    if spec.mode == "concurrency":
        # A closed loop's in-flight cap is its worker count.
        return [LoadPoint("concurrency", c, math.inf, a, b, c, n) for c in spec.concurrency]
    return [LoadPoint("rate", None, r, a, b, cap, n) for r in spec.rate]


def arrival_offsets(n: int, point: LoadPoint, rng: random.Random) -> list[float]:
    """Planned send times of ``n`` items, in seconds from the start of the cell.

    Offline, closed-loop and infinite-rate points send everything at t = 0 (a closed
    loop paces itself, so its offsets are unused).

    Args:
        n: Number of items.
        point: The load point.
        rng: Seeded generator; the only source of randomness.

    Returns:
        Non-decreasing offsets, the first one 0.0.
    """
    if n <= 0:
        return []
    if point.mode != "rate" or math.isinf(point.rate):
        return [0.0] * n
    if point.rate <= 0:
        raise ValueError(f"rate must be > 0, got {point.rate}")
    mean_gap = 1.0 / point.rate
    offsets = [0.0]
    for _ in range(n - 1):
        offsets.append(offsets[-1] + _gap(point, mean_gap, rng))
    return offsets


def _gap(point: LoadPoint, mean_gap: float, rng: random.Random) -> float:
    if point.arrivals == "constant":
        return mean_gap
    if point.arrivals == "poisson":
        return rng.expovariate(1.0 / mean_gap)
    if point.arrivals == "gamma":
        # shape k, scale theta: mean k*theta = 1/rate, as vLLM's --burstiness.
        shape = point.burstiness
        return rng.gammavariate(shape, mean_gap / shape)
    raise ValueError(f"unknown arrivals '{point.arrivals}'")


def split_schedule(n: int, point: LoadPoint, seed: int, clients: int) -> list[tuple[tuple[int, float], ...]]:
    """One open-loop schedule dealt over ``clients`` senders: per client, its (item index, offset).

    The schedule is the one a single client draws for this seed (the driver's
    ``random.Random(seed)``), dealt round-robin, so that N clients together send exactly what
    one would, and each client's share is still in time order.

    Raises:
        ValueError: A closed-loop point (it paces itself: there is no schedule to split), or
            ``clients`` < 1.
    """
    if point.mode == "concurrency":
        raise ValueError("a closed-loop point has no arrival schedule to split over clients")
    if clients < 1:
        raise ValueError(f"clients must be >= 1, got {clients}")
    offsets = arrival_offsets(n, point, random.Random(seed))
    return [tuple((i, offsets[i]) for i in range(k, n, clients)) for k in range(clients)]
