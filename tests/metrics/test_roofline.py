"""Roofline: model size from config.json, GPU bandwidth table, the fraction."""

from __future__ import annotations

import pytest

from structbench.metrics.roofline import ModelSize, gpu_bandwidth, model_size, roofline

SMOLLM2 = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
    "dtype": "bfloat16",
}
LLAMA8B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


def test_model_size_matches_published_counts() -> None:
    small = model_size(SMOLLM2)
    assert small is not None
    assert small.params == pytest.approx(134.5e6, rel=0.01)  # "135M"
    assert small.read_params == small.params  # tied: the LM head reads the table
    assert small.bytes_per_param == 2
    big = model_size(LLAMA8B)
    assert big is not None
    assert big.params == pytest.approx(8.03e9, rel=0.01)  # Llama 3 8B
    # Untied: the input embedding (128256 x 4096) is not read whole per step.
    assert big.params - big.read_params == 128256 * 4096


def test_served_dtype_overrides_config_and_bad_configs_give_none() -> None:
    size = model_size(SMOLLM2, dtype="float32")
    assert size is not None and size.bytes_per_param == 4
    assert model_size({"hidden_size": 8}) is None
    assert model_size({**LLAMA8B, "num_local_experts": 8}) is None  # MoE: not a dense read


def test_gpu_table() -> None:
    h200 = gpu_bandwidth("NVIDIA H200")
    assert h200 is not None and h200.bandwidth == 4.8e12
    h100 = gpu_bandwidth("NVIDIA H100 80GB HBM3")
    assert h100 is not None and h100.name == "H100 SXM"
    a100 = gpu_bandwidth("NVIDIA A100-SXM4-80GB")
    assert a100 is not None and a100.bandwidth == 2.039e12
    assert gpu_bandwidth("Tesla T4") is None


def test_fraction() -> None:
    size = ModelSize(params=1_000_000_000, read_params=1_000_000_000, bytes_per_param=2)
    gpu = gpu_bandwidth("NVIDIA H200")
    # 4.8e12 / 2e9 = 2400 tok/s per sequence; 5 ms TPOT = 200 tok/s = 1/12.
    r = roofline(5.0, size, gpu)
    assert r is not None
    assert r.limit_tok_s == pytest.approx(2400)
    assert r.achieved_tok_s == pytest.approx(200)
    assert r.fraction == pytest.approx(1 / 12)
    assert roofline(None, size, gpu) is None
    assert roofline(5.0, None, gpu) is None
    assert roofline(5.0, size, None) is None
