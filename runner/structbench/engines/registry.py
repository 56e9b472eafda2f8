"""Engine registry: kind -> "module:Class", imported only when a suite uses it.

Adding an engine is one line here plus its module. Nothing is imported at import time,
so ``structbench --help`` and ``validate`` never load torch, sglang or vllm.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from structbench.engines.base import Engine
from structbench.errors import UserError
from structbench.spec.engines import EngineSpec

ENGINES: dict[str, str] = {
    "embedded": "structbench.engines.embedded.engine:EmbeddedEngine",
    "vllm": "structbench.engines.vllm:VllmEngine",
    "openai": "structbench.engines.openai:OpenAIEngine",
    "sglang": "structbench.engines.sglang.engine:SglangEngine",
}


@dataclass(frozen=True, slots=True)
class EngineEnv:
    """Run-level context an engine may need."""

    #: Folder for the engine's own files (server logs, /metrics snapshots).
    workdir: Path
    seed: int = 0


def create_engine(spec: EngineSpec, env: EngineEnv) -> Engine:
    """Instantiate the engine for ``spec`` (imports its module on demand)."""
    target = ENGINES.get(spec.kind)
    if target is None:
        raise UserError(f"unknown engine kind '{spec.kind}' (known: {', '.join(sorted(ENGINES))})")
    mod_name, cls_name = target.split(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise UserError(
            f"engine '{spec.kind}' needs packages that are not installed ({e.name}); "
            f"install the matching extra, e.g. pip install 'structbench[{spec.kind}]'"
        ) from e
    cls = getattr(mod, cls_name)
    return cast(Engine, cls(spec, env))
