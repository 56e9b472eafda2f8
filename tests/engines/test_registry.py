"""The engine registry: one entry per kind, checked, lazy, and the source of every kind list."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from structbench.engines.registry import (
    EngineEnv,
    create_engine,
    engine_kinds,
    register_engine,
    spec_class,
    spec_classes,
    unregister_engine,
)
from structbench.errors import UserError
from structbench.spec.engines import (
    EmbeddedEngineSpec,
    EngineSpec,
    LaunchSpec,
    OpenAIEngineSpec,
    SglangEngineSpec,
    VllmEngineSpec,
)


class NotASpec:
    """Not a pydantic EngineSpec."""


class MisnamedSpec(EngineSpec):
    """Its literal says ``other``."""

    kind: Literal["other"] = "other"
    name: str = "other"


class LazySpec(EngineSpec):
    """A spec whose engine module does not exist (it must not be imported at registration)."""

    kind: Literal["lazy"] = "lazy"
    name: str = "lazy"


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    """Kinds appended to the yielded list are unregistered after the test."""
    kinds: list[str] = []
    yield kinds
    for kind in kinds:
        unregister_engine(kind)


def test_builtin_kinds_match_their_spec_literals() -> None:
    kinds = engine_kinds()
    assert kinds[0] == "embedded"  # the suite default comes first in "expected one of"
    assert [c.model_fields["kind"].default for c in spec_classes()] == list(kinds)
    # compile builds each kind's spec from the class alone (vllm/openai need a URL placeholder).
    assert [spec_class(k).for_compile().kind for k in kinds] == list(kinds)
    assert spec_class("embedded").for_compile() == EmbeddedEngineSpec()


def test_registration_is_lazy_and_checked(cleanup: list[str]) -> None:
    register_engine("lazy", spec=f"{__name__}:LazySpec", engine="no_such_module_xyz:Engine")
    cleanup.append("lazy")
    assert engine_kinds()[-1] == "lazy"
    assert spec_class("lazy") is LazySpec
    with pytest.raises(
        UserError, match=r"engine 'lazy' needs packages that are not installed \(no_such_module_xyz\)"
    ):
        create_engine(LazySpec(), EngineEnv(Path(".")))
    with pytest.raises(ValueError, match="already registered"):
        register_engine("lazy", spec=f"{__name__}:LazySpec", engine="x:Y")
    register_engine("lazy", spec=f"{__name__}:LazySpec", engine="x:Y", replace=True)


@pytest.mark.parametrize(
    ("spec", "engine", "error"),
    [
        (f"{__name__}:MisnamedSpec", "m:E", r"MisnamedSpec.kind must be Literal\['bad'\]"),
        (f"{__name__}:NotASpec", "m:E", "is not a subclass of EngineSpec"),
        (f"{__name__}:Missing", "m:E", "is not a subclass of EngineSpec"),
        (f"{__name__}.MisnamedSpec", "m:E", "is not of the form 'module:Class'"),
        (f"{__name__}:MisnamedSpec", "m", "is not of the form 'module:Class'"),
    ],
)
def test_bad_registrations_are_refused(spec: str, engine: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        register_engine("bad", spec=spec, engine=engine)
    assert "bad" not in engine_kinds()


def test_unknown_kind() -> None:
    with pytest.raises(UserError, match="unknown engine kind 'nope' \\(known: embedded, "):
        spec_class("nope")
    with pytest.raises(KeyError):
        unregister_engine("nope")


def test_importing_the_registry_imports_no_engine_module() -> None:
    code = (
        "import sys, structbench.engines.registry as r\n"
        "r.spec_classes()\n"
        "print(sorted(m for m in sys.modules if m.startswith('structbench.engines.') and m != r.__name__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_specs_say_what_the_run_must_check() -> None:
    launch = LaunchSpec(model="m")
    assert EmbeddedEngineSpec().attach_url is None and EmbeddedEngineSpec().key_env is None
    assert VllmEngineSpec(launch=launch).attach_url is None  # launched: nothing to reach beforehand
    attached = VllmEngineSpec(url="http://h:1", api_key_env="KEY")
    assert (attached.attach_url, attached.key_env) == ("http://h:1", "KEY")
    assert SglangEngineSpec(url="http://s:2").attach_url == "http://s:2"
    assert OpenAIEngineSpec(url="http://o:3", api_key_env="K2").key_env == "K2"
