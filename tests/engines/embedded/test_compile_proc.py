"""Grammar compiles in a child process: a pathological schema hits a limit, the next one compiles.

The vocabulary is a tiny hand-made one (no model needed); the pathological schema is a
string of ``maxLength`` 40000, whose automaton takes seconds and hundreds of MB to build.
"""

from __future__ import annotations

import json
import string
import time
from typing import Any

import pytest

from structbench.engines.embedded.compile_proc import CompileLimitError, CompileLimits, CompileProcess

SMALL = json.dumps({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]})
HUGE = json.dumps({"type": "object", "properties": {"s": {"type": "string", "maxLength": 40000}}})


def _vocab() -> Any:
    from outlines_core import Vocabulary

    chars = string.ascii_letters + string.digits + '{}[]":,. -_'
    tokens = {c: [i] for i, c in enumerate(chars)}
    return Vocabulary(len(tokens), tokens)


@pytest.fixture
def limited() -> Any:
    procs: list[CompileProcess] = []

    def make(timeout_s: float | None, memory_mb: int | None) -> CompileProcess:
        procs.append(CompileProcess(_vocab(), CompileLimits(timeout_s, memory_mb)))
        return procs[-1]

    yield make
    for p in procs:
        p.close()


def test_a_small_schema_compiles_in_the_child(limited: Any) -> None:
    index = limited(30.0, 2048).index("json_schema", SMALL, "[ ]?")
    assert isinstance(index.get_initial_state(), int)


def test_a_slow_compile_hits_the_time_limit_and_the_next_one_compiles(limited: Any) -> None:
    proc = limited(0.5, None)
    t0 = time.perf_counter()
    with pytest.raises(CompileLimitError, match=r"^compile_limit: time: compiling took over 0.5 s"):
        proc.index("json_schema", HUGE, "[ ]?")
    assert time.perf_counter() - t0 < 30  # stopped at the limit, not after the compile
    # The child was killed and a fresh one serves the next schema.
    assert isinstance(proc.index("json_schema", SMALL, "[ ]?").get_initial_state(), int)


def test_a_greedy_compile_hits_the_memory_limit(limited: Any) -> None:
    proc = limited(300.0, 64)
    with pytest.raises(CompileLimitError, match=r"^compile_limit: memory: compiling needed over 64 MB"):
        proc.index("json_schema", HUGE, "[ ]?")
    assert isinstance(proc.index("regex", "(yes|no)", None).get_initial_state(), int)


def test_an_invalid_constraint_is_a_plain_compile_error(limited: Any) -> None:
    with pytest.raises(ValueError, match="cannot compile regex"):
        limited(30.0, None).index("regex", "(unclosed", None)
