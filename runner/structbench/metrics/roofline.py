"""The memory-bandwidth roofline of decoding (DESIGN.md step 7, "fraction of the roofline").

Each decode step of a dense model reads every weight it multiplies with from GPU memory
once, whatever the batch size: a batch of B sequences gets B tokens for one read. So a
sequence can never decode faster than ``bandwidth / weight bytes`` tokens per second,
alone or in a batch. structbench compares each cell's achieved per-sequence decode rate,
``1000 / mean TPOT ms``, with that limit.

The limit ignores KV-cache reads and compute, so it is an upper bound: short contexts
and small batches come closest; large batches turn compute-bound and fall below it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Peak HBM bandwidth in bytes/s by NVML name fragment, most specific first. From the
#: vendor data sheets: NVIDIA H200 (4.8 TB/s), H100 SXM (3.35 TB/s), H100 NVL (3.9 TB/s),
#: H100 PCIe (2.0 TB/s), A100 80GB SXM (2,039 GB/s), A100 80GB PCIe (1,935 GB/s),
#: A100 40GB (1,555 GB/s), L40S (864 GB/s), A10 (600 GB/s), L4 (300 GB/s).
GPU_BANDWIDTH: tuple[tuple[tuple[str, ...], str, float], ...] = (
    (("h200",), "H200", 4.8e12),
    (("h100", "nvl"), "H100 NVL", 3.9e12),
    (("h100", "pcie"), "H100 PCIe", 2.0e12),
    (("h100",), "H100 SXM", 3.35e12),
    (("a100", "80gb", "pcie"), "A100 80GB PCIe", 1.935e12),
    (("a100", "80gb"), "A100 80GB SXM", 2.039e12),
    (("a100",), "A100 40GB", 1.555e12),
    (("l40s",), "L40S", 0.864e12),
    (("a10",), "A10", 0.6e12),
    (("l4",), "L4", 0.3e12),
)

#: Bytes per parameter by config / CLI dtype name.
DTYPE_BYTES: Mapping[str, int] = {
    "float32": 4,
    "fp32": 4,
    "float": 4,
    "bfloat16": 2,
    "bf16": 2,
    "float16": 2,
    "fp16": 2,
    "half": 2,
}


@dataclass(frozen=True, slots=True)
class Gpu:
    """A GPU model and its peak memory bandwidth."""

    name: str
    bandwidth: float  # bytes/s


@dataclass(frozen=True, slots=True)
class ModelSize:
    """Parameters of a dense decoder, as a decode step reads them.

    Attributes:
        params: All parameters.
        read_params: Parameters read per decode step: all but an untied input
            embedding table, of which a step reads one row per sequence.
        bytes_per_param: Served weight precision.
        source: Where the numbers came from (a config.json path).
    """

    params: int
    read_params: int
    bytes_per_param: int
    source: str = ""

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights read per decode step."""
        return self.read_params * self.bytes_per_param


@dataclass(frozen=True, slots=True)
class Roofline:
    """A cell's decode rate against the bandwidth bound.

    Attributes:
        gpu: The GPU model the bound is for (one GPU: tensor parallelism is not modelled).
        limit_tok_s: Per-sequence bound, ``bandwidth / weight bytes``.
        achieved_tok_s: ``1000 / mean TPOT ms`` of the cell.
        model: The model size the bound used.
    """

    gpu: Gpu
    model: ModelSize
    limit_tok_s: float
    achieved_tok_s: float

    @property
    def fraction(self) -> float:
        """Achieved / limit (1.0 = at the bandwidth bound)."""
        return self.achieved_tok_s / self.limit_tok_s


def gpu_bandwidth(name: str) -> Gpu | None:
    """The table entry an NVML GPU name matches (e.g. "NVIDIA H100 80GB HBM3"), or None."""
    low = name.lower()
    for fragments, label, bw in GPU_BANDWIDTH:
        if all(f in low for f in fragments):
            return Gpu(label, bw)
    return None


def _int(cfg: Mapping[str, object], *keys: str) -> int | None:
    for k in keys:
        v = cfg.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def model_size(config: Mapping[str, object], dtype: str | None = None, source: str = "") -> ModelSize | None:
    """Estimate a dense decoder's size from its HF ``config.json``.

    Counts the attention projections (grouped KV heads included), a gated MLP (three
    matrices, as Llama/Qwen/Mistral have), and the embedding and LM head; norms and
    biases are negligible. Mixture-of-experts configs are refused (a step reads only
    the routed experts), as are configs missing a size field.

    Args:
        config: The parsed config (nested ``text_config`` is used when present).
        dtype: The served dtype (e.g. from ``--dtype``); the config's dtype when None.
        source: Where the config came from, for the report.

    Returns:
        The size, or None when the config does not describe a dense decoder.
    """
    text = config.get("text_config")
    cfg: Mapping[str, object] = text if isinstance(text, dict) else config
    if any(k in cfg for k in ("num_local_experts", "num_experts", "n_routed_experts")):
        return None
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model")
    inter = _int(cfg, "intermediate_size", "n_inner", "ffn_dim")
    layers = _int(cfg, "num_hidden_layers", "n_layer", "num_layers")
    vocab = _int(cfg, "vocab_size")
    heads = _int(cfg, "num_attention_heads", "n_head")
    if None in (hidden, inter, layers, vocab, heads):
        return None
    assert hidden and inter and layers and vocab and heads  # narrowed for mypy
    kv_heads = _int(cfg, "num_key_value_heads") or heads
    head_dim = _int(cfg, "head_dim") or hidden // heads
    attn = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    per_layer = attn + 3 * hidden * inter
    embed = vocab * hidden
    tied = cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", True)) is not False
    params = layers * per_layer + embed * (1 if tied else 2)
    stored = cfg.get("dtype") or cfg.get("torch_dtype") or config.get("torch_dtype") or ""
    name = (dtype or str(stored)).lower()
    nbytes = DTYPE_BYTES.get(name, 2)  # "auto" and unknown: 16-bit, what GPU servers load by default
    return ModelSize(params, params - (0 if tied else embed), nbytes, source)


def roofline(mean_tpot_ms: float | None, model: ModelSize | None, gpu: Gpu | None) -> Roofline | None:
    """A cell's roofline figures, or None when a piece is unknown."""
    if mean_tpot_ms is None or mean_tpot_ms <= 0 or model is None or gpu is None or not model.weight_bytes:
        return None
    return Roofline(gpu, model, gpu.bandwidth / model.weight_bytes, 1000.0 / mean_tpot_ms)
