"""Engine-neutral names for the servers' prefix-cache counters.

Engines hand ``/metrics`` snapshots to the metrics stage under the neutral names below.
Cell files written before that (version 1) hold the servers' raw names; the table here
translates them, so that metrics never needs to know which engine wrote a snapshot.
This module is a pure table: it imports nothing, and metrics may import it.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Prompt tokens served from the prefix cache, summed since the server started.
HIT_TOKENS = "prefix_cache_hit_tokens"
#: Prompt tokens looked up in the prefix cache, summed since the server started.
QUERY_TOKENS = "prefix_cache_query_tokens"

#: (raw hits, raw queries) of the engines that export them, most preferred first.
#: vLLM renamed ``gpu_prefix_cache_*`` to ``prefix_cache_*`` (both are token counts);
#: SGLang counts cached and prompt tokens.
RAW_CACHE_COUNTERS: tuple[tuple[str, str], ...] = (
    ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"),
    ("vllm:gpu_prefix_cache_hits_total", "vllm:gpu_prefix_cache_queries_total"),
    ("sglang:cached_tokens_total", "sglang:prompt_tokens_total"),
)


def neutral_counters(snapshot: Mapping[str, float]) -> dict[str, float]:
    """The prefix-cache counters of a snapshot, under the neutral names.

    Neutral names already present win (so the function is idempotent); else the first
    raw pair of :data:`RAW_CACHE_COUNTERS` with both counters present is translated.

    Args:
        snapshot: Counter name -> value, neutral or raw (one ``/metrics`` read).

    Returns:
        ``{HIT_TOKENS: ..., QUERY_TOKENS: ...}``, or an empty dict when the snapshot has
        no complete pair.
    """
    if HIT_TOKENS in snapshot and QUERY_TOKENS in snapshot:
        return {HIT_TOKENS: snapshot[HIT_TOKENS], QUERY_TOKENS: snapshot[QUERY_TOKENS]}
    for hits, queries in RAW_CACHE_COUNTERS:
        if hits in snapshot and queries in snapshot:
            return {HIT_TOKENS: snapshot[hits], QUERY_TOKENS: snapshot[queries]}
    return {}
