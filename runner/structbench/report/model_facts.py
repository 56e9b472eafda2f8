"""What a run's manifest says about each engine's model and the GPU it ran on.

The report needs the model's files twice: its tokenizer (for the ideal prefix-cache hit
rate) and its ``config.json`` (for the roofline). Neither is stored in the run folder,
so the model is looked up where the manifest says it was served from, and only when
that path exists on this machine: a report rebuilt elsewhere falls back gracefully.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from structbench.metrics.roofline import Gpu, ModelSize, gpu_bandwidth, model_size


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
    """

    engine: str
    kind: str = ""
    paths: tuple[str, ...] = ()
    dtype: str | None = None
    api: str = "chat"

    def local_dir(self) -> Path | None:
        """The first candidate that is a model folder on this machine (has config.json)."""
        for p in self.paths:
            path = Path(p).expanduser()
            if (path / "config.json").is_file():
                return path
        return None


@dataclass(frozen=True, slots=True)
class RunModels:
    """Per-engine model facts and the run's GPU."""

    engines: Mapping[str, EngineModel]
    gpu: Gpu | None = None


def _read_manifest(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _arg_value(args: Sequence[object], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return str(args[i + 1])
        if isinstance(a, str) and a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _spec_engines(m: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    spec = m.get("spec")
    suite = spec.get("suite") if isinstance(spec, dict) else None
    engines = suite.get("engines") if isinstance(suite, dict) else None
    if not isinstance(engines, list):
        return {}
    return {str(e.get("name")): e for e in engines if isinstance(e, dict)}


def _dict(x: object) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _engine_model(name: str, info: Mapping[str, Any], spec: Mapping[str, Any]) -> EngineModel:
    extra, launch, embedded = _dict(info.get("extra")), _dict(spec.get("launch")), _dict(spec.get("embedded"))
    candidates = (info.get("model"), extra.get("root"), launch.get("model"), spec.get("model"))
    paths = tuple(dict.fromkeys(str(p) for p in candidates if isinstance(p, str) and p))
    raw_args = launch.get("args")
    args: list[object] = raw_args if isinstance(raw_args, list) else []
    dtype = _arg_value(args, "--dtype")
    if dtype is None and spec.get("kind") == "embedded":
        dtype = str(spec.get("dtype") or "float32")
    elif dtype is None and spec.get("backend") == "embedded":
        dtype = str(embedded.get("dtype") or "float32")
    kind = str(info.get("kind") or spec.get("kind") or "")
    return EngineModel(name, kind, paths, dtype, str(spec.get("api") or "chat"))


def _gpu(m: Mapping[str, Any]) -> Gpu | None:
    hw = m.get("hardware")
    gpus = hw.get("gpus") if isinstance(hw, dict) else None
    if not isinstance(gpus, list) or not gpus or not isinstance(gpus[0], dict):
        return None
    # One GPU's bandwidth: the run's engines each served from one device.
    return gpu_bandwidth(str(gpus[0].get("name") or ""))


def run_models(run_dir: Path) -> RunModels:
    """Read the model facts of every engine of a run (no model file is opened here)."""
    m = _read_manifest(run_dir)
    specs = _spec_engines(m)
    infos = _dict(m.get("engines"))
    names = list(dict.fromkeys([*infos, *specs]))
    engines = {n: _engine_model(n, _dict(infos.get(n)), specs.get(n, {})) for n in names}
    return RunModels(engines, _gpu(m))


def local_model_size(model: EngineModel) -> ModelSize | None:
    """The model's size from its local ``config.json``, or None when not readable here."""
    folder = model.local_dir()
    if folder is None:
        return None
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return model_size(cfg, model.dtype, str(folder / "config.json")) if isinstance(cfg, dict) else None
