"""The printed @sgl.function source: valid Python, names the constraints, and traces like the real one."""

from __future__ import annotations

from typing import Any

import pytest
from sgl_fakes import CHOICE_C, GRAMMAR_C, JSON_C, REGEX, REGEX_C, SCHEMA, fanout, multi_turn, one_gen

from structbench.engines.sglang.source import program_source
from structbench.ir import NoConstraint, WorkItem

ITEMS = {
    "json": one_gen(JSON_C),
    "regex": one_gen(REGEX_C),
    "select": one_gen(CHOICE_C, strategy="select"),
    "constrained": one_gen(CHOICE_C),
    "none": one_gen(NoConstraint(), system=None),
    "multi": multi_turn(),
    "fork": fanout(3),
    "grammar": one_gen(GRAMMAR_C),
}


@pytest.mark.parametrize("name", sorted(ITEMS))
def test_source_compiles(name: str) -> None:
    src = program_source(ITEMS[name])
    compile(src, f"<{name}>", "exec")
    assert "@sgl.function" in src and "def program(s):" in src


def test_source_mentions_constraints() -> None:
    src = program_source(ITEMS["json"])
    assert f"SCHEMA_0 = {SCHEMA!r}" in src and "json_schema=SCHEMA_0" in src
    assert "max_tokens=24" in src and "temperature=0.0" in src
    assert f"regex={REGEX!r}" in program_source(ITEMS["regex"])
    assert "choices=['red', 'green', 'b.lue']" in program_source(ITEMS["select"])
    assert "regex='(red|green|b\\\\.lue)'" in program_source(ITEMS["constrained"])
    fork = program_source(ITEMS["fork"])
    assert "forks = s.fork(3)" in fork and "forks[2] += sgl.assistant(" in fork
    assert fork.index("s.sync()") < fork.index("s.fork(3)")


def test_grammar_source_says_unsupported_in_program_mode_and_ebnf_in_generate_mode() -> None:
    src = program_source(ITEMS["grammar"])
    assert "raise NotImplementedError(" in src and "unsupported" in src
    gen = program_source(ITEMS["grammar"], "generate")
    compile(gen, "<g>", "exec")
    assert 'GRAMMAR_0 = \'root ::= "yes" | "no"\'' in gen and "ebnf" in gen


def _signature(tracer: Any) -> list[tuple[Any, ...]]:
    from sglang.lang.ir import SglConstantText, SglGen, SglSelect

    states = [tracer, *(tracer.ret_value if len(tracer.ret_value) > 1 else [])]
    out: list[tuple[Any, ...]] = []
    for st in states:
        for n in st.flatten_nodes():
            if isinstance(n, SglGen):
                sp = n.sampling_params
                out.append(("gen", n.name, sp.max_new_tokens, sp.temperature, sp.json_schema, sp.regex))
            elif isinstance(n, SglSelect):
                out.append(("select", n.name, tuple(n.choices), n.temperature))
            elif isinstance(n, SglConstantText):
                out.append(("text", n.value))
    return out


@pytest.mark.sglang
# The fork program is left out: its printed s.sync() needs a live state (the built
# program skips that wait while tracing).
@pytest.mark.parametrize("name", sorted(set(ITEMS) - {"grammar", "fork"}))
def test_printed_program_traces_like_the_built_one(name: str) -> None:
    pytest.importorskip("sglang")
    from structbench.engines.sglang.compiler import build_program

    item: WorkItem = ITEMS[name]
    ns: dict[str, Any] = {}
    exec(compile(program_source(item), "<src>", "exec"), ns)
    built, _ = build_program(item)
    assert _signature(ns["program"].trace()) == _signature(built.trace())
