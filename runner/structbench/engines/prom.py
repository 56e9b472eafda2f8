"""Prometheus text-format parsing for server ``/metrics`` snapshots.

The runner stores a snapshot before and after each cell and reports deltas (e.g. vLLM's
``vllm:prefix_cache_hits_total`` / ``vllm:prefix_cache_queries_total``). A snapshot sums
every series of a metric over its labels (all models, all engine indexes), which is what a
cell-level delta needs. Histogram ``_bucket`` series are dropped (summed over ``le`` they
mean nothing; ``_sum``/``_count`` carry the useful part), and so are the ``_created``
series of prometheus_client (creation timestamps, not counts).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # parsing stays importable without the HTTP stack
    from structbench.engines.stream import HttpClient

Snapshot = dict[str, float]
_SKIPPED_SUFFIXES = ("_bucket", "_created")


def parse_metrics(text: str) -> Snapshot:
    """Parse Prometheus exposition text into ``{metric name: sum over label sets}``.

    Comment lines, malformed lines, ``_bucket`` and ``_created`` series are skipped; NaN samples are
    ignored so that one bad gauge does not poison a sum.
    """
    out: Snapshot = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parsed = _parse_sample(line)
        if parsed is None:
            continue
        name, value = parsed
        if name.endswith(_SKIPPED_SUFFIXES) or math.isnan(value):
            continue
        out[name] = out.get(name, 0.0) + value
    return out


def _parse_sample(line: str) -> tuple[str, float] | None:
    """Split ``name{labels} value [timestamp]``; label values may hold spaces, braces, quotes."""
    brace = line.find("{")
    space = line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        name, rest = line[:brace], _skip_labels(line, brace)
        if rest is None:
            return None
    elif space != -1:
        name, rest = line[:space], line[space:]
    else:
        return None
    fields = rest.split()
    if not name or not fields:
        return None
    try:
        return name, float(fields[0])  # float() reads NaN, +Inf and -Inf as Prometheus writes them
    except ValueError:
        return None


def _skip_labels(line: str, start: int) -> str | None:
    """Return the text after the label block that opens at ``start``, or None if unclosed."""
    in_quotes = escaped = False
    for i in range(start + 1, len(line)):
        ch = line[i]
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = in_quotes
        elif ch == '"':
            in_quotes = not in_quotes
        elif ch == "}" and not in_quotes:
            return line[i + 1 :]
    return None


_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def info_labels(text: str, metric: str) -> dict[str, str] | None:
    """The labels of the first sample of ``metric`` (an "info" gauge), or None when absent.

    vLLM publishes its cache configuration this way (``vllm:cache_config_info{block_size="16",...} 1``).
    """
    head = metric + "{"
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(head):
            end = _skip_labels(line, len(metric))
            block = line[len(head) : len(line) - len(end) - 1] if end is not None else ""
            return {k: v.replace('\\"', '"') for k, v in _LABEL.findall(block)}
    return None


def metrics_delta(before: Snapshot, after: Snapshot) -> Snapshot:
    """``after - before`` for every metric present in ``after`` (missing before = 0)."""
    return {name: value - before.get(name, 0.0) for name, value in after.items()}


def ratio(delta: Snapshot, numerator: str, denominator: str) -> float | None:
    """``delta[numerator] / delta[denominator]``, or None when absent or zero.

    Example: ``ratio(d, "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total")``.
    """
    den = delta.get(denominator)
    num = delta.get(numerator)
    if num is None or not den:
        return None
    return num / den


async def scrape(client: HttpClient, path: str = "/metrics") -> Snapshot | None:
    """GET a /metrics page and parse it; None when the server has none or is unreachable."""
    reply = await client.fetch("GET", path)
    if reply is None or reply.status != 200:
        return None
    return parse_metrics(reply.text)
