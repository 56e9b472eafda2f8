"""Rules that turn an engine's spec (as JSON) and start-up facts into run-folder fields.

They run at engine start for version 2 folders, and in the version 1 reader on the
recorded resolved spec: one implementation for both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

#: JSON object as parsed (the resolved spec is free-form by design: ``spec.resolved``).
JsonObject = Mapping[str, object]


def _obj(x: object) -> JsonObject:
    return x if isinstance(x, dict) else {}


def _arg_value(args: Sequence[object], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return str(args[i + 1])
        if isinstance(a, str) and a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def model_paths(info_model: str, extra: Mapping[str, str], spec: JsonObject) -> tuple[str, ...]:
    """Where the engine's model may be found, most trusted first.

    Args:
        info_model: The model the started engine reported.
        extra: The engine's reported extras (``root``: the server's model folder).
        spec: The engine's spec as JSON.
    """
    launch = _obj(spec.get("launch"))
    candidates = (info_model, extra.get("root"), launch.get("model"), spec.get("model"))
    return tuple(dict.fromkeys(p for p in candidates if isinstance(p, str) and p))


def served_dtype(spec: JsonObject) -> str | None:
    """Version-1 manifests only: the dtype their spec asked for. Since version 2 the engine says."""
    launch = _obj(spec.get("launch"))
    raw = launch.get("args")
    dtype = _arg_value(raw if isinstance(raw, list | tuple) else [], "--dtype")
    if dtype is None and spec.get("kind") == "embedded":
        return str(spec.get("dtype") or "float32")
    if dtype is None and spec.get("backend") == "embedded":
        return str(_obj(spec.get("embedded")).get("dtype") or "float32")
    return dtype


def spec_cache_arm(spec: JsonObject) -> Literal["on", "off"] | None:
    """The spec's ``cache`` setting, for engines whose spec has one."""
    v = spec.get("cache")
    return v if v == "on" or v == "off" else None


def cache_pair(name: str, kind: str, model: str, extra: Mapping[str, str]) -> str:
    """What the two arms of a cache on/off comparison share.

    Arms set per engine are two engine entries (one launched without the cache): they
    pair by kind, model and mode (an SGLang "program" engine is no arm of a "generate"
    one). An engine may name its pair itself (``extra.cache_pair``).
    """
    if "cache_pair" in extra:
        return extra["cache_pair"]
    parts = (kind, model, extra.get("backend", ""), extra.get("mode", ""))
    return " ".join(x for x in parts if x) or name
