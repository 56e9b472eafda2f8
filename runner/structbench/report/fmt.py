"""Number formatting shared by the markdown, HTML and terminal renderings."""

from __future__ import annotations

from structbench.metrics import CellSummary, ScoreRate

DASH = "-"


def num(x: float | None) -> str:
    """A rate or count with sensible precision (3 significant digits, at least)."""
    if x is None:
        return DASH
    ax = abs(x)
    if ax >= 100:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def ms(x: float | None) -> str:
    """A latency in ms."""
    if x is None:
        return DASH
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}"


def pct(rate: float | None) -> str:
    """A 0..1 rate as a percentage with one decimal."""
    return DASH if rate is None else f"{100 * rate:.1f}"


def pct_ci(s: ScoreRate | None) -> str:
    """``97.5 [94.0, 99.2]``: rate and its 95 % interval, in percent."""
    if s is None or s.rate is None:
        return DASH
    if s.ci_low is None or s.ci_high is None:
        return pct(s.rate)
    return f"{pct(s.rate)} [{pct(s.ci_low)}, {pct(s.ci_high)}]"


def cache_hit(c: CellSummary) -> str:
    """Client-side hit rate, with the server counters' rate beside it when both exist."""
    return _client_server(c.cache.client_hit_rate, c.cache.server_hit_rate)


def of_ideal(c: CellSummary) -> str:
    """Achieved hit rate as % of the ideal: client-side, with the server counters' beside it."""
    return _client_server(c.cache.client_of_ideal, c.cache.server_of_ideal)


def _client_server(client: float | None, server: float | None) -> str:
    """A client-side rate with the server-side one beside it, whichever exist."""
    if client is None and server is None:
        return DASH
    if server is None:
        return pct(client)
    if client is None:
        return f"{pct(server)} (server)"
    return f"{pct(client)} (server {pct(server)})"


def roofline(c: CellSummary) -> str:
    """Per-sequence decode rate as % of the bandwidth bound."""
    return DASH if c.roofline is None else pct(c.roofline.fraction)


def counts(c: CellSummary) -> str:
    """``completed/failed``, plus unsupported when any."""
    k = c.counts
    out = f"{k.completed}/{k.failed}"
    return out + f" (+{k.unsupported} unsup.)" if k.unsupported else out


def in_flight(c: CellSummary) -> str:
    """``2 of 8`` when the cell reached fewer items in flight than its load point allows, else blank.

    A closed loop of 8 workers over 2 items is labelled ``c8`` but ran 2 at a time; its
    figures are those of concurrency 2.
    """
    asked, reached = c.info.load.max_concurrency, c.counts.max_in_flight
    if asked is None or reached is None or reached >= asked:
        return ""
    return f"{reached} of {asked}"


def load_label(c: CellSummary) -> str:
    """The load point, the cache arm, and the cell status when it did not complete."""
    label = c.info.load.display()
    if c.info.cache_arm:
        label += f" · cache {c.info.cache_arm}"
    if c.status not in ("complete", "ok"):
        label += f" ({c.status})"
    return label
