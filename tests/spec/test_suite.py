"""The suite model is built from the engine registry, once per registry state."""

from __future__ import annotations

from typing import Literal

import pytest

from structbench.engines.registry import register_engine, unregister_engine
from structbench.spec.engines import DEFAULT_ENGINES, EngineSpec
from structbench.spec.suite import SuiteSpec, suite_model


class ExtraSpec(EngineSpec):
    """A plugin kind for this module's tests."""

    kind: Literal["extra"] = "extra"
    name: str = "extra"
    depth: int = 1


def test_model_is_cached_per_registry_state() -> None:
    base = suite_model()
    assert issubclass(base, SuiteSpec) and suite_model() is base
    register_engine("extra", spec=f"{__name__}:ExtraSpec", engine="nowhere:Engine")
    try:
        with_extra = suite_model()
        assert with_extra is not base
        spec = with_extra.model_validate({"name": "s", "tasks": ["t.yaml"], "engines": [{"kind": "extra"}]})
        assert spec.engines == (ExtraSpec(),)
    finally:
        unregister_engine("extra")
    assert suite_model() is base
    with pytest.raises(ValueError, match="does not match any of the expected tags"):
        base.model_validate({"name": "s", "tasks": ["t.yaml"], "engines": [{"kind": "extra"}]})


def test_engines_default_and_dump_full_fields() -> None:
    spec = suite_model().model_validate({"name": "s", "tasks": ["t.yaml"]})
    assert spec.engines == DEFAULT_ENGINES
    # The field is typed by the registered union, so every field of the engine's own spec is dumped.
    dumped = (
        suite_model()
        .model_validate(
            {"name": "s", "tasks": ["t.yaml"], "engines": [{"kind": "vllm", "url": "http://h:1"}]}
        )
        .model_dump()
    )
    assert dumped["engines"][0]["url"] == "http://h:1" and dumped["engines"][0]["cache"] == "on"
