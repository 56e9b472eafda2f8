"""``structbench compile``'s default engine spec comes from the registered spec class."""

from __future__ import annotations

import pytest

from structbench.compile import default_engine_spec
from structbench.engines.registry import engine_kinds
from structbench.errors import UserError


@pytest.mark.parametrize("kind", engine_kinds())
def test_every_registered_kind_has_a_compile_spec(kind: str) -> None:
    assert default_engine_spec(kind).kind == kind


def test_unknown_kind_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown engine kind 'nope'"):
        default_engine_spec("nope")


def test_an_unsupported_constraint_says_unsupported_not_a_program() -> None:
    from pathlib import Path

    from structbench.compile import compile_task

    root = Path(__file__).resolve().parents[1]
    out = compile_task(root / "tasks/grammar/settings.yaml", "sglang")  # program mode: no ebnf
    assert out.splitlines()[0].endswith("strategies: unsupported")
    assert "unsupported: constraint 'grammar'" in out and "@sgl.function" not in out
    ok = compile_task(root / "tasks/json/invoice.yaml", "sglang")
    assert "@sgl.function" in ok and "unsupported" not in ok
