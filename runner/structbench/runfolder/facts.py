"""Run-folder facts about an engine, taken when it starts."""

from __future__ import annotations

from pydantic import BaseModel

from structbench.engines.base import EngineInfo
from structbench.runfolder import hints
from structbench.runfolder.models import EngineFacts, ModelFacts


def engine_facts(info: EngineInfo, spec: BaseModel, served_model: ModelFacts | None = None) -> EngineFacts:
    """What the manifest records of a started engine.

    Args:
        info: What ``Engine.start()`` returned.
        spec: The engine's spec (any engine kind: read through its JSON form, so no
            engine is named here).
        served_model: The model's size facts, when its config.json was readable.
    """
    d = spec.model_dump(mode="json")
    extra = dict(info.extra)
    arm = hints.spec_cache_arm(d)
    return EngineFacts(
        name=info.name,
        kind=info.kind,
        model=info.model,
        version=info.version,
        url=info.url,
        extra=extra,
        cache_block_size=info.cache_block_size,
        cache_arm=arm,
        cache_pair=None if arm is None else hints.cache_pair(info.name, info.kind, info.model, extra),
        model_paths=hints.model_paths(info.model, extra, d),
        dtype=hints.served_dtype(d),
        api=str(d.get("api") or "chat"),
        served_model=served_model,
    )
