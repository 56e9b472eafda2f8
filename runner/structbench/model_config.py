"""The served model's facts from its ``config.json``, read at engine start (the run records them).

The report reads the recorded facts; it opens a local ``config.json`` itself only for runs
written before the facts were recorded (:func:`local_config`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from structbench.metrics.roofline import model_size
from structbench.runfolder import ModelFacts


def local_config(paths: Sequence[str]) -> tuple[Path, dict[str, object]] | None:
    """The first candidate that is a model folder here, and its parsed ``config.json``."""
    for p in paths:
        folder = Path(p).expanduser()
        cfg = _read_config(folder / "config.json")
        if cfg is not None:
            return folder, cfg
    return None


def _read_config(path: Path) -> dict[str, object] | None:
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) else None


def _arch_int(cfg: Mapping[str, object], *keys: str) -> int | None:
    text = cfg.get("text_config")
    inner: Mapping[str, object] = text if isinstance(text, dict) else cfg
    for k in keys:
        v = inner.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def served_model_facts(paths: Sequence[str], dtype: str | None) -> ModelFacts | None:
    """The model's size and architecture from its ``config.json``, at engine start.

    Args:
        paths: Candidate model locations, most trusted first (``EngineFacts.model_paths``).
        dtype: The served dtype, when the spec sets one.

    Returns:
        The facts, or None when no candidate is a local model folder or its config
        does not describe a dense decoder.
    """
    found = local_config(paths)
    if found is None:
        return None
    folder, cfg = found
    size = model_size(cfg, dtype, str(folder / "config.json"))
    if size is None:
        return None
    return ModelFacts(
        source=size.source,
        params=size.params,
        read_params=size.read_params,
        bytes_per_param=size.bytes_per_param,
        dtype=dtype,
        layers=_arch_int(cfg, "num_hidden_layers", "n_layer", "num_layers"),
        hidden_size=_arch_int(cfg, "hidden_size", "n_embd", "d_model"),
        intermediate_size=_arch_int(cfg, "intermediate_size", "n_inner", "ffn_dim"),
        attention_heads=_arch_int(cfg, "num_attention_heads", "n_head"),
        kv_heads=_arch_int(cfg, "num_key_value_heads") or _arch_int(cfg, "num_attention_heads", "n_head"),
        head_dim=_arch_int(cfg, "head_dim"),
        vocab_size=_arch_int(cfg, "vocab_size"),
    )
