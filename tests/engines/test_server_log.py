"""Kernel and KV-cache facts read from start-up logs (lines as vLLM 0.26 and SGLang 0.5.17 print them)."""

from __future__ import annotations

from pathlib import Path

from structbench.engines.server_log import read_head, sglang_facts, vllm_facts

VLLM_LOG = """\
(EngineCore pid=1314) INFO [core.py:116] Initializing a V1 LLM engine (v0.26.0) with config: model='/m', \
structured_outputs_config=StructuredOutputsConfig(backend='auto', disable_fallback=False), seed=0
(EngineCore pid=1314) INFO [cuda.py:482] Using FLASH_ATTN attention backend out of potential backends: \
['FLASH_ATTN', 'FLASHINFER', 'TRITON_ATTN', 'FLEX_ATTENTION'].
(EngineCore pid=1314) INFO [flash_attn.py:776] Using FlashAttention version 3
(EngineCore pid=1314) INFO [topk_topp_sampler.py:55] Using FlashInfer for top-p & top-k sampling.
(EngineCore pid=1314) INFO [kv_cache_utils.py:2177] GPU KV cache size: 121,936 tokens
"""

SGLANG_LOG = """\
[2026-12-02 13:25:27] Attention backend not specified. Use fa3 backend by default.
[2026-12-02 13:27:18] max_total_num_tokens=122706, chunked_prefill_size=8192, max_prefill_tokens=16384
"""


def test_vllm_log_gives_attention_backend_and_kv_tokens() -> None:
    assert dict(vllm_facts(VLLM_LOG)) == {
        "attention_backend": "FLASH_ATTN",
        "flash_attn_version": "3",
        "kv_cache_tokens": "121936",
    }
    assert vllm_facts("nothing useful\n") == ()


def test_sglang_prefers_server_info_and_fills_nulls_from_the_log() -> None:
    info = {"attention_backend": None, "sampling_backend": "flashinfer", "max_total_num_tokens": 122706}
    assert dict(sglang_facts(info, SGLANG_LOG)) == {
        "attention_backend": "fa3",
        "sampling_backend": "flashinfer",
        "kv_cache_tokens": "122706",
    }
    # An explicit backend in /server_info wins over the log's default line.
    assert dict(sglang_facts({"attention_backend": "triton"}, SGLANG_LOG))["attention_backend"] == "triton"


def test_read_head_of_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert read_head(None) == "" and read_head(tmp_path / "none.log") == ""
    (tmp_path / "s.log").write_text(SGLANG_LOG)
    assert "fa3" in read_head(tmp_path / "s.log")
