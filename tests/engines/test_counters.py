"""Engine-neutral prefix-cache counter names."""

from __future__ import annotations

from structbench.engines.counters import HIT_TOKENS, QUERY_TOKENS, neutral_counters


def test_raw_names_translate_in_preference_order() -> None:
    both = {
        "vllm:gpu_prefix_cache_hits_total": 1.0,
        "vllm:gpu_prefix_cache_queries_total": 2.0,
        "vllm:prefix_cache_hits_total": 3.0,
        "vllm:prefix_cache_queries_total": 4.0,
        "vllm:num_requests_running": 9.0,
    }
    assert neutral_counters(both) == {HIT_TOKENS: 3.0, QUERY_TOKENS: 4.0}
    sglang = {"sglang:cached_tokens_total": 5.0, "sglang:prompt_tokens_total": 6.0}
    assert neutral_counters(sglang) == {HIT_TOKENS: 5.0, QUERY_TOKENS: 6.0}


def test_idempotent_and_incomplete_pairs() -> None:
    neutral = {HIT_TOKENS: 1.0, QUERY_TOKENS: 2.0, "vllm:prefix_cache_hits_total": 7.0}
    assert neutral_counters(neutral) == {HIT_TOKENS: 1.0, QUERY_TOKENS: 2.0}
    assert neutral_counters(neutral_counters(neutral)) == neutral_counters(neutral)
    assert neutral_counters({"vllm:prefix_cache_hits_total": 1.0}) == {}
    assert neutral_counters({}) == {}
