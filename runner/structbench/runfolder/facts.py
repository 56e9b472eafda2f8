"""Run-folder facts about an engine, taken when it starts; secrets never reach them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

from structbench.engines.base import EngineInfo
from structbench.runfolder import hints
from structbench.runfolder.models import EngineFacts, ModelFacts
from structbench.spec.resolved import REDACTED, is_secret_name


def engine_facts(info: EngineInfo, spec: BaseModel, served_model: ModelFacts | None = None) -> EngineFacts:
    """What the manifest records of a started engine.

    Args:
        info: What ``Engine.start()`` returned.
        spec: The engine's spec (any engine kind: read through its JSON form, so no
            engine is named here).
        served_model: The model's size facts, when its config.json was readable.
    """
    d = spec.model_dump(mode="json")
    extra = {k: _redacted(k, v) for k, v in info.extra}
    arm = hints.spec_cache_arm(d)
    return EngineFacts(
        name=info.name,
        kind=info.kind,
        model=info.model,
        version=info.version,
        url=_without_credentials(info.url),
        extra=extra,
        cache_block_size=info.cache_block_size,
        cache_arm=arm,
        cache_pair=None if arm is None else hints.cache_pair(info.name, info.kind, info.model, extra),
        model_paths=hints.model_paths(info.model, extra, d),
        dtype=info.dtype,
        api=str(d.get("api") or "chat"),
        served_model=served_model,
    )


def _redacted(key: str, value: str) -> str:
    """The value, or REDACTED under a secret name; JSON objects (server info) are scrubbed inside."""
    if is_secret_name(key):
        return REDACTED
    if not value.startswith("{"):
        return value
    try:
        obj = json.loads(value)
    except ValueError:
        return value
    scrubbed = _scrub(obj)
    # Re-encode only when something was hidden, so ordinary values stay byte for byte.
    return value if scrubbed == obj else json.dumps(scrubbed)


def _scrub(x: object) -> object:
    if isinstance(x, Mapping):
        return {
            k: REDACTED if isinstance(v, str) and v and is_secret_name(str(k)) else _scrub(v)
            for k, v in x.items()
        }
    if isinstance(x, list):
        return [_scrub(v) for v in x]
    return x


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{parts.netloc.rsplit('@', 1)[1]}"))
