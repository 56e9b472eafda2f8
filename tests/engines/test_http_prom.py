"""Prometheus text parsing, label sums, deltas and scraping."""

from __future__ import annotations

import asyncio
import math

import httpx

from http_fake import serve
from structbench.engines.launch import free_port
from structbench.engines.prom import metrics_delta, parse_metrics, ratio, scrape
from structbench.engines.stream import ClientConfig, HttpClient

TEXT = """# HELP vllm:prefix_cache_hits_total Prefix cache hits.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="a b"} 10.0
vllm:prefix_cache_hits_total{engine="1",model_name="we{ird} \\"x\\""} 5
vllm:prefix_cache_queries_total{engine="0"} 30 1700000000000
process_cpu_seconds_total 2.5
vllm:prefix_cache_hits_created{engine="0"} 1.7e9
vllm:e2e_request_latency_seconds_bucket{le="0.1"} 3
vllm:e2e_request_latency_seconds_bucket{le="+Inf"} 4
vllm:e2e_request_latency_seconds_count 4
vllm:e2e_request_latency_seconds_sum 1.25
gauge_nan NaN
gauge_inf{x="1"} +Inf
broken{x="1" 3
"""


def test_parse_sums_over_labels() -> None:
    m = parse_metrics(TEXT)
    assert m["vllm:prefix_cache_hits_total"] == 15.0
    assert m["vllm:prefix_cache_queries_total"] == 30.0  # the timestamp is not the value
    assert m["process_cpu_seconds_total"] == 2.5
    assert m["vllm:e2e_request_latency_seconds_count"] == 4.0
    assert not any(k.endswith(("_bucket", "_created")) for k in m)
    assert "gauge_nan" not in m and math.isinf(m["gauge_inf"]) and "broken" not in m


def test_delta_and_ratio() -> None:
    before = parse_metrics("hits 10\nqueries 40\n")
    after = parse_metrics("hits 25\nqueries 70\nnew_counter 3\n")
    d = metrics_delta(before, after)
    assert d == {"hits": 15.0, "queries": 30.0, "new_counter": 3.0}
    assert ratio(d, "hits", "queries") == 0.5
    assert ratio(d, "hits", "missing") is None
    assert ratio({"hits": 1.0, "queries": 0.0}, "hits", "queries") is None


def test_scrape() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="a 1\n") if req.url.path == "/metrics" else httpx.Response(404)

    async def go() -> tuple[object, ...]:
        async with serve(handler) as url:
            client = HttpClient(ClientConfig("e", url, 5.0))
            client.open()
            found = await scrape(client), await scrape(client, "/nope")
            await client.close()
        gone = HttpClient(ClientConfig("e", f"http://127.0.0.1:{free_port()}", 5.0))
        gone.open()
        unreachable = await scrape(gone)
        await gone.close()
        return (*found, unreachable)

    assert asyncio.run(go()) == ({"a": 1.0}, None, None)
