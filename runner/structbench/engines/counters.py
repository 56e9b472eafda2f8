"""Engine-neutral names for the servers' prefix-cache counters.

Each engine hands metrics its ``/metrics`` snapshot with these names added, so that
nothing after ``engines/`` needs to know any engine's counter names. Old run folders
hold raw snapshots: the same table translates them when they are read.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Prompt tokens served from the prefix cache during a cell (counter delta).
HIT_TOKENS = "prefix_cache_hit_tokens"
#: Prompt tokens looked up in the prefix cache during a cell (counter delta).
QUERY_TOKENS = "prefix_cache_query_tokens"

#: (hits counter, queries counter) of each engine, in order of preference.
_RAW_PAIRS: tuple[tuple[str, str], ...] = (
    ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"),
    ("vllm:gpu_prefix_cache_hits_total", "vllm:gpu_prefix_cache_queries_total"),
    ("sglang:cached_tokens_total", "sglang:prompt_tokens_total"),
)


def neutral_counters(snapshot: Mapping[str, float]) -> dict[str, float]:
    """``snapshot`` plus the neutral prefix-cache counters (idempotent on neutral names).

    The first raw pair present gives both neutral counters, so a hit rate never mixes
    two engines' definitions.
    """
    out = dict(snapshot)
    if HIT_TOKENS in out and QUERY_TOKENS in out:
        return out
    for hits, queries in _RAW_PAIRS:
        if hits in snapshot and queries in snapshot:
            out[HIT_TOKENS], out[QUERY_TOKENS] = snapshot[hits], snapshot[queries]
            break
    return out
