"""What a run's manifest says about each engine's model and the GPU it ran on.

The roofline needs the model's size. A version 2 run recorded it when each engine
started (:func:`structbench.model_config.served_model_facts`, read from the model's
``config.json`` on the machine that ran), so a report rebuilt elsewhere still has it. A
version 1 run did not: its model is looked up where the manifest says it was served from,
and only when that path exists on this machine. The report never tokenizes: the ideal
prefix-cache hit rate is recorded by the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from structbench.metrics.roofline import Gpu, ModelSize, gpu_bandwidth, model_size
from structbench.model_config import local_config
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


@dataclass(frozen=True, slots=True)
class RunModels:
    """Per-engine model facts and the run's GPU."""

    engines: Mapping[str, EngineModel]
    gpu: Gpu | None = None


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
    found = local_config(model.paths)
    return None if found is None else model_size(found[1], model.dtype, str(found[0] / "config.json"))
