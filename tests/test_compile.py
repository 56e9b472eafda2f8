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
