"""Control requests to the servers under test: flush, counters, versions and backends.

None of this is timed, so it uses the standard library only.

* vLLM 0.26.0: ``POST /reset_prefix_cache`` exists only with ``VLLM_SERVER_DEV_MODE=1``
  (``vllm/entrypoints/serve/dev/cache/api_router.py``) and answers 200 with
  ``{"success": false}`` while blocks are still held, so success is read from the body.
  ``GET /version``. Counters ``vllm:prefix_cache_hits_total`` / ``..._queries_total``.
* SGLang 0.5.17: ``POST /flush_cache`` answers 400 while requests are running or waiting
  (``sglang/srt/entrypoints/http_server.py``). ``GET /server_info`` carries the resolved
  server arguments (``attention_backend`` is "fa3" after the Hopper default is applied),
  ``version`` and ``max_total_num_tokens``. Counters ``sglang:cached_tokens_total`` /
  ``sglang:prompt_tokens_total`` (``--enable-metrics``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crosscheck_plan import ENGINE_OF, Target

#: (hits, queries) counter names per engine, summed over label sets.
CACHE_COUNTERS: dict[str, tuple[str, str]] = {
    "vllm": ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"),
    "sglang": ("sglang:cached_tokens_total", "sglang:prompt_tokens_total"),
}
#: The servers' own TTFT histograms (``_sum`` / ``_count``): vLLM 0.26 ``vllm/v1/metrics/loggers.py``,
#: SGLang's tokenizer-side metrics collector (``--enable-metrics``); neither is a client clock.
TTFT_HISTOGRAMS: dict[str, str] = {
    "vllm": "vllm:time_to_first_token_seconds",
    "sglang": "sglang:time_to_first_token_seconds",
}
#: server_info keys worth keeping next to the figures.
SGLANG_INFO_KEYS = (
    "version", "attention_backend", "decode_attention_backend", "prefill_attention_backend",
    "sampling_backend", "grammar_backend", "context_length", "mem_fraction_static",
    "chunked_prefill_size", "max_prefill_tokens", "max_total_num_tokens", "max_running_requests",
    "stream_interval", "disable_radix_cache", "enable_cache_report", "page_size", "model_path",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reply:
    """Status and body of one control request (status 0: unreachable)."""

    status: int
    body: str


def request(method: str, url: str, timeout_s: float = 10.0) -> Reply:
    """One small HTTP request; never raises."""
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return Reply(resp.status, resp.read().decode("utf-8", errors="replace"))
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.read().decode("utf-8", errors="replace"))
    except (urllib.error.URLError, OSError):
        return Reply(0, "")


def flush_ok(engine: str, reply: Reply) -> bool:
    """Whether a flush reply means the prefix cache is now empty."""
    if engine == "vllm":
        try:
            return reply.status == 200 and bool(json.loads(reply.body).get("success"))
        except (ValueError, AttributeError):
            return False
    return reply.status == 200


def flush(engine: str, url: str, attempts: int = 10, pause_s: float = 0.5) -> bool:
    """Empty the prefix cache, retrying while the server still holds requests."""
    path = "/reset_prefix_cache" if engine == "vllm" else "/flush_cache"
    for _ in range(attempts):
        if flush_ok(engine, request("POST", url.rstrip("/") + path)):
            return True
        time.sleep(pause_s)
    return False


def parse_counters(text: str) -> dict[str, float]:
    """Prometheus text to ``{name: sum over label sets}`` (comments and bad lines skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "}" in line:  # label values may hold spaces: the value follows the last brace
            head, _, rest = line.rpartition("}")
            name = head.split("{", 1)[0].strip()
        else:
            name, _, rest = line.partition(" ")
        try:
            value = float(rest.split()[0])
        except (ValueError, IndexError):
            continue
        if value == value:  # NaN != NaN
            out[name] = out.get(name, 0.0) + value
    return out


def cache_counters(engine: str, url: str) -> tuple[float, float] | None:
    """The engine's (hits, queries) prefix-cache counters, or None when /metrics lacks them."""
    reply = request("GET", url.rstrip("/") + "/metrics")
    if reply.status != 200:
        return None
    counters = parse_counters(reply.body)
    hits, queries = CACHE_COUNTERS[engine]
    if hits not in counters or queries not in counters:
        return None
    return counters[hits], counters[queries]


#: Gauges of the requests a server is running now.
RUNNING_GAUGES: dict[str, str] = {"vllm": "vllm:num_requests_running", "sglang": "sglang:num_running_reqs"}


def serving(engine: str, url: str) -> bool:
    """Whether the server is running requests now (False when /metrics does not say)."""
    reply = request("GET", url.rstrip("/") + "/metrics", timeout_s=1.0)
    return reply.status == 200 and parse_counters(reply.body).get(RUNNING_GAUGES[engine], 0.0) > 0


def server_ttft(engine: str, url: str) -> tuple[float, float] | None:
    """The server's TTFT histogram (seconds summed, requests counted), or None when /metrics lacks it."""
    reply = request("GET", url.rstrip("/") + "/metrics")
    if reply.status != 200:
        return None
    counters = parse_counters(reply.body)
    name = TTFT_HISTOGRAMS[engine]
    if name + "_sum" not in counters or name + "_count" not in counters:
        return None
    return counters[name + "_sum"], counters[name + "_count"]


def server_facts(engine: str, url: str) -> dict[str, object]:
    """Version and backends as the server reports them (JSON-ready)."""
    base = url.rstrip("/")
    if engine == "vllm":
        reply = request("GET", base + "/version")
        try:
            return {"version": json.loads(reply.body).get("version")} if reply.status == 200 else {}
        except ValueError:
            return {}
    reply = request("GET", base + "/server_info")
    try:
        info = json.loads(reply.body) if reply.status == 200 else {}
    except ValueError:
        return {}
    return {k: info.get(k) for k in SGLANG_INFO_KEYS if k in info}


def _client_version(python: str, pythonpath: str, package: str) -> str | None:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    env = {**os.environ, "PYTHONPATH": pythonpath}
    r = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, check=False, timeout=60)
    return (r.stdout.strip() or None) if r.returncode == 0 else None


def record_versions(path: Path, python: str, targets: Sequence[Target]) -> None:
    """Server facts and client versions, once per path, into ``path`` (``servers.json``)."""
    doc: dict[str, object] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for t in targets:
        if t.path in doc:
            continue
        package = ENGINE_OF[t.path]
        doc[t.path] = {
            "url": t.url,
            "server": server_facts(package, t.url),
            "reference_client": {package: _client_version(python, t.ref_pythonpath, package)},
            "structbench_pythonpath": t.sb_pythonpath,
            "reference_pythonpath": t.ref_pythonpath,
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")


def _post_json(url: str, body: dict[str, object], timeout_s: float) -> int:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (urllib.error.URLError, OSError):
        return 0


def warm_up(
    engine: str, url: str, model: str, prompts: Sequence[str], concurrency: int, max_tokens: int = 32
) -> tuple[int, int]:
    """Send ``prompts`` (rendered for SGLang's ``/generate``) ``concurrency`` at a time, untimed.

    A fresh server's first requests pay one-off costs (lazily compiled kernels, allocator growth)
    that would otherwise land in whichever arm runs first. Returns (ok, sent).
    """
    from concurrent.futures import ThreadPoolExecutor

    base = url.rstrip("/")

    def one(prompt: str) -> int:
        if engine == "vllm":
            body: dict[str, object] = {
                "model": model, "messages": [{"role": "user", "content": prompt}],
                "max_tokens": max_tokens, "ignore_eos": True,
            }  # fmt: skip
            return _post_json(base + "/v1/chat/completions", body, 300.0)
        params = {"max_new_tokens": max_tokens, "ignore_eos": True}
        return _post_json(base + "/generate", {"text": prompt, "sampling_params": params}, 300.0)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        codes = list(pool.map(one, prompts))
    return sum(1 for c in codes if c == 200), len(codes)
