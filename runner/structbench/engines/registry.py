"""Engine registry: kind -> its spec class and its engine class, as lazy ``"module:Class"`` strings.

This is the one place that knows which engine kinds exist. Adding an engine is one entry
here plus its module (or one :func:`register_engine` call from a plugin). The suite's
``engines:`` field, ``structbench compile --engine`` and the run checks all derive from it.

Nothing is imported at import time: a spec class is imported when a suite is validated
(spec modules must stay light), an engine class only when an engine of that kind is
created, so ``structbench --help`` and ``validate`` never load torch, sglang or vllm.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast, get_args, get_origin

from structbench.errors import UserError
from structbench.spec.engines import EngineSpec

if TYPE_CHECKING:
    from structbench.engines.base import Engine

__all__ = [
    "EngineEntry",
    "EngineEnv",
    "create_engine",
    "engine_kinds",
    "register_engine",
    "spec_class",
    "spec_classes",
    "unregister_engine",
]


@dataclass(frozen=True, slots=True)
class EngineEntry:
    """Where a kind's classes live, as ``"module:Class"``."""

    #: The pydantic spec class (a subclass of :class:`~structbench.spec.engines.EngineSpec`).
    spec: str
    #: The class implementing the Engine protocol, called as ``cls(spec, env)``.
    engine: str


_SPECS = "structbench.spec.engines"

# Order matters to users: it is the order of "expected one of ..." in spec errors and of
# the --engine choices.
_ENGINES: dict[str, EngineEntry] = {
    "embedded": EngineEntry(
        f"{_SPECS}:EmbeddedEngineSpec", "structbench.engines.embedded.engine:EmbeddedEngine"
    ),
    "vllm": EngineEntry(f"{_SPECS}:VllmEngineSpec", "structbench.engines.vllm:VllmEngine"),
    "sglang": EngineEntry(f"{_SPECS}:SglangEngineSpec", "structbench.engines.sglang.engine:SglangEngine"),
    "openai": EngineEntry(f"{_SPECS}:OpenAIEngineSpec", "structbench.engines.openai:OpenAIEngine"),
}


@dataclass(frozen=True, slots=True)
class EngineEnv:
    """Run-level context an engine may need."""

    #: Folder for the engine's own files (server logs, /metrics snapshots).
    workdir: Path
    seed: int = 0


def register_engine(kind: str, spec: str, engine: str, *, replace: bool = False) -> None:
    """Register an engine kind (for plugins and tests).

    The spec class is imported and checked now, so a mistake shows at registration; the
    engine class stays unimported until an engine of this kind is created.

    Args:
        kind: The registry key; must equal the spec class's ``kind`` literal.
        spec: ``"module:Class"`` of the spec class (a subclass of ``EngineSpec``).
        engine: ``"module:Class"`` of the engine class.
        replace: Allow replacing an existing kind.

    Raises:
        ValueError: When the kind exists (and not ``replace``), a target is not
            ``"module:Class"``, or the spec class does not match ``kind``.
    """
    if kind in _ENGINES and not replace:
        raise ValueError(f"engine kind '{kind}' is already registered")
    for target in (spec, engine):
        _split(target)
    _load_spec_class(kind, spec)
    _ENGINES[kind] = EngineEntry(spec, engine)


def unregister_engine(kind: str) -> None:
    """Remove a registered kind (undoes :func:`register_engine`; KeyError when unknown)."""
    del _ENGINES[kind]


def engine_kinds() -> tuple[str, ...]:
    """The registered kinds, in registration order."""
    return tuple(_ENGINES)


def spec_class(kind: str) -> type[EngineSpec]:
    """The spec class registered for ``kind`` (imported on first use).

    Raises:
        UserError: For an unknown kind.
    """
    entry = _ENGINES.get(kind)
    if entry is None:
        raise UserError(f"unknown engine kind '{kind}' (known: {', '.join(_ENGINES)})")
    return _load_spec_class(kind, entry.spec)


def spec_classes() -> tuple[type[EngineSpec], ...]:
    """Every registered spec class, in registration order."""
    return tuple(spec_class(kind) for kind in _ENGINES)


def create_engine(spec: EngineSpec, env: EngineEnv) -> Engine:
    """Instantiate the engine for ``spec`` (imports its module on demand).

    Raises:
        UserError: For an unknown kind, or when the engine's packages are not installed.
    """
    entry = _ENGINES.get(spec.kind)
    if entry is None:
        raise UserError(f"unknown engine kind '{spec.kind}' (known: {', '.join(sorted(_ENGINES))})")
    mod_name, cls_name = _split(entry.engine)
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise UserError(
            f"engine '{spec.kind}' needs packages that are not installed ({e.name}); "
            f"install the matching extra, e.g. pip install 'structbench[{spec.kind}]'"
        ) from e
    cls = getattr(mod, cls_name)
    return cast("Engine", cls(spec, env))


def _split(target: str) -> tuple[str, str]:
    mod_name, sep, cls_name = target.partition(":")
    if not (sep and mod_name and cls_name) or ":" in cls_name:
        raise ValueError(f"'{target}' is not of the form 'module:Class'")
    return mod_name, cls_name


@cache
def _load_spec_class(kind: str, target: str) -> type[EngineSpec]:
    """Import ``target`` and check it is an EngineSpec whose ``kind`` is ``Literal[kind]``."""
    mod_name, cls_name = _split(target)
    cls = getattr(importlib.import_module(mod_name), cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, EngineSpec)):
        raise ValueError(f"'{target}' is not a subclass of EngineSpec")
    annotation = cls.model_fields["kind"].annotation
    # The kind literal is the discriminator the suite validates on: it must be the key.
    if get_origin(annotation) is not Literal or get_args(annotation) != (kind,):
        raise ValueError(f"{cls.__name__}.kind must be Literal['{kind}'] to register as '{kind}'")
    return cls
