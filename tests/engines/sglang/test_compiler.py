"""Work items -> native @sgl.function programs, checked on SGLang's own trace (no backend)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("sglang")

from sgl_fakes import (
    CHOICE_C,
    CHOICES,
    GRAMMAR_C,
    JSON_C,
    REGEX,
    REGEX_C,
    SCHEMA,
    fanout,
    multi_turn,
    one_gen,
)
from sglang.lang.ir import SglConstantText, SglFork, SglGen, SglGetForkItem, SglSelect

from structbench.engines.sglang.compiler import build_program
from structbench.engines.sglang.plan import (
    GRAMMAR_PROGRAM_UNSUPPORTED,
    choice_regex,
    plan_item,
    var_names,
)
from structbench.ir import NoConstraint

pytestmark = pytest.mark.sglang


def _trace(item: Any) -> tuple[Any, list[tuple[int, int, str]]]:
    program, slots = build_program(item)
    return program.trace(), slots


def _gens(nodes: list[Any]) -> list[Any]:
    return [n for n in nodes if isinstance(n, (SglGen, SglSelect))]


def _text(nodes: list[Any]) -> str:
    return "".join(n.value for n in nodes if isinstance(n, SglConstantText))


def test_json_schema_gen() -> None:
    tracer, slots = _trace(one_gen(JSON_C, max_tokens=40))
    (g,) = _gens(tracer.flatten_nodes())
    assert isinstance(g, SglGen)
    assert slots == [(0, 0, "answer")]
    assert g.name == "answer"
    assert g.sampling_params.json_schema == SCHEMA
    assert g.sampling_params.regex is None
    assert g.sampling_params.max_new_tokens == 40
    # Always explicit: run() would otherwise default the temperature to 1.0.
    assert g.sampling_params.temperature == 0.0
    assert "Answer tersely." in _text(tracer.flatten_nodes())


def test_regex_gen() -> None:
    tracer, _ = _trace(one_gen(REGEX_C))
    (g,) = _gens(tracer.flatten_nodes())
    assert isinstance(g, SglGen)
    assert g.sampling_params.regex == REGEX
    assert g.sampling_params.json_schema is None


def test_choice_select_is_sgl_select() -> None:
    tracer, _ = _trace(one_gen(CHOICE_C, strategy="select"))
    (g,) = _gens(tracer.flatten_nodes())
    assert isinstance(g, SglSelect)
    assert g.choices == list(CHOICES)
    assert g.temperature == 0.0


def test_choice_constrained_is_escaped_regex_alternation() -> None:
    tracer, _ = _trace(one_gen(CHOICE_C, strategy="constrained"))
    (g,) = _gens(tracer.flatten_nodes())
    assert isinstance(g, SglGen)
    assert g.sampling_params.regex == r"(red|green|b\.lue)" == choice_regex(CHOICES)


def test_plain_gen_has_no_constraint() -> None:
    tracer, _ = _trace(one_gen(NoConstraint()))
    (g,) = _gens(tracer.flatten_nodes())
    assert g.sampling_params.regex is None and g.sampling_params.json_schema is None


def test_grammar_is_unsupported_in_program_mode() -> None:
    # The frontend's sgl.gen has no grammar parameter: refuse, never run it unconstrained.
    with pytest.raises(ValueError, match="unsupported: constraint 'grammar'"):
        build_program(one_gen(GRAMMAR_C))
    plan = plan_item(one_gen(GRAMMAR_C), "program")
    assert plan.unsupported() == GRAMMAR_PROGRAM_UNSUPPORTED
    gen_plan = plan_item(one_gen(GRAMMAR_C), "generate")
    (call,) = gen_plan.calls()
    assert call.grammar == ("gbnf", 'root ::= "yes" | "no"') and call.strategy == "sgl.gen.ebnf"
    lark_plan = plan_item(one_gen(GRAMMAR_C), "generate", ("lark",))
    assert lark_plan.calls()[0].grammar == ("lark", 'start: "yes" | "no"')


def test_multi_turn_is_sequential_in_one_state() -> None:
    tracer, slots = _trace(multi_turn())
    nodes = tracer.flatten_nodes()
    gens = _gens(nodes)
    assert [g.name for g in gens] == ["first", "second"]
    assert gens[0].sampling_params.json_schema == SCHEMA
    assert gens[1].sampling_params.regex == REGEX
    assert slots == [(0, 0, "first"), (0, 1, "second")]
    # The second user turn comes after the first gen, so it sees the real answer.
    i_first = nodes.index(gens[0])
    i_second_user = next(
        i for i, n in enumerate(nodes) if isinstance(n, SglConstantText) and n.value == "Second?"
    )
    assert i_first < i_second_user < nodes.index(gens[1])


def test_fork_runs_each_branch_on_its_fork() -> None:
    tracer, slots = _trace(fanout(3))
    main = tracer.flatten_nodes()
    assert _gens(main) == []  # the shared prefix only
    assert "Long shared doc." in _text(main)
    forks = tracer.ret_value
    assert len(forks) == 3
    for i, f in enumerate(forks):
        nodes = f.flatten_nodes()
        (g,) = _gens(nodes)
        assert g.name == f"ans_b{i}_t0"
        assert g.sampling_params.regex == REGEX
        assert f"Q{i}?" in _text(nodes)
        assert isinstance(f.nodes[0].prev_node, SglGetForkItem)
        assert isinstance(f.nodes[0].prev_node.prev_node, SglFork)
        assert f.nodes[0].prev_node.prev_node.number == 3
    assert slots == [(i, 0, f"ans_b{i}_t0") for i in range(3)]


def test_var_names_are_identifiers_and_unique() -> None:
    assert var_names(multi_turn()) == ["first", "second"]
    assert var_names(fanout(2)) == ["ans_b0_t0", "ans_b1_t0"]


def test_strategy_labels() -> None:
    labels = {
        "json": plan_item(one_gen(JSON_C)).calls()[0].strategy,
        "regex": plan_item(one_gen(REGEX_C)).calls()[0].strategy,
        "select": plan_item(one_gen(CHOICE_C, strategy="select")).calls()[0].strategy,
        "constrained": plan_item(one_gen(CHOICE_C)).calls()[0].strategy,
        "grammar": plan_item(one_gen(GRAMMAR_C), "generate").calls()[0].strategy,
        "none": plan_item(one_gen(NoConstraint())).calls()[0].strategy,
    }
    assert labels == {
        "json": "sgl.gen.json_schema",
        "regex": "sgl.gen.regex",
        "select": "sgl.select",
        "constrained": "sgl.gen.regex_choice",
        "grammar": "sgl.gen.ebnf",
        "none": "sgl.gen",
    }
