"""What a run's manifest says about each engine's model and the GPU it ran on.

The roofline needs the model's size. A version 2 run recorded it when each engine
started (:func:`served_model_facts`, read from the model's ``config.json`` on the
machine that ran), so a report rebuilt elsewhere still has it. A version 1 run did not:
its model is looked up where the manifest says it was served from, and only when that
path exists on this machine. The tokenizer (for the ideal prefix-cache hit rate) is
looked up the same way, from the recorded candidate paths.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from structbench.metrics.roofline import Gpu, ModelSize, gpu_bandwidth, model_size
from structbench.runfolder import EngineFacts, ModelFacts, RunManifest


@dataclass(frozen=True, slots=True)
class EngineModel:
    """Where an engine's model may be found, and how it was served.

    Attributes:
        engine: Engine name.
        kind: Engine kind (vllm, sglang, embedded, openai).
        paths: Candidate model locations, most trusted first (engine info, server
            root, the spec's launch model).
        dtype: Served weight dtype when the spec sets it (``--dtype``, embedded
            ``dtype``); None = the checkpoint's own.
        api: The spec's ``api`` (HTTP engines): ``chat`` or ``completions``.
        size: The model size recorded at run time (None: not recorded).
        local_config: Whether a local ``config.json`` may stand in for a missing
            ``size`` (version 1 runs, which never recorded one).
    """

    engine: str
    kind: str = ""
    paths: tuple[str, ...] = ()
    dtype: str | None = None
    api: str = "chat"
    size: ModelSize | None = None
    local_config: bool = True

    def local_dir(self) -> Path | None:
        """The first candidate that is a model folder on this machine (has config.json)."""
        return _local_dir(self.paths)


@dataclass(frozen=True, slots=True)
class RunModels:
    """Per-engine model facts and the run's GPU."""

    engines: Mapping[str, EngineModel]
    gpu: Gpu | None = None


def _local_dir(paths: Sequence[str]) -> Path | None:
    for p in paths:
        path = Path(p).expanduser()
        if (path / "config.json").is_file():
            return path
    return None


def _size(f: ModelFacts | None) -> ModelSize | None:
    return None if f is None else ModelSize(f.params, f.read_params, f.bytes_per_param, f.source)


def _engine_model(e: EngineFacts, legacy: bool) -> EngineModel:
    size = _size(e.served_model)
    return EngineModel(e.name, e.kind, e.model_paths, e.dtype, e.api, size, local_config=legacy)


def run_models(run_dir: Path) -> RunModels:
    """Read the model facts of every engine of a run (no model file is opened here).

    Raises:
        UserError: When the manifest is missing or unreadable.
    """
    m = RunManifest.read(run_dir)
    # Only runs written before model facts were recorded may fall back to local files.
    legacy = m.migrated_from is not None
    engines = {n: _engine_model(e, legacy) for n, e in m.engines.items()}
    # One GPU's bandwidth: the run's engines each served from one device.
    gpu = gpu_bandwidth(m.hardware.gpus[0].name) if m.hardware.gpus else None
    return RunModels(engines, gpu)


def local_model_size(model: EngineModel) -> ModelSize | None:
    """The recorded model size, else (version 1 runs) the one in a local ``config.json``."""
    if model.size is not None or not model.local_config:
        return model.size
    folder = model.local_dir()
    return None if folder is None else _config_size(folder, model.dtype)


def _config_size(folder: Path, dtype: str | None) -> ModelSize | None:
    cfg = _read_config(folder / "config.json")
    return None if cfg is None else model_size(cfg, dtype, str(folder / "config.json"))


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
    folder = _local_dir(paths)
    cfg = None if folder is None else _read_config(folder / "config.json")
    if folder is None or cfg is None:
        return None
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
