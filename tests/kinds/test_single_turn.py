"""The single-turn kinds (json, regex, choice, grammar) and the kind registry."""

from __future__ import annotations

import importlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from structbench.errors import SpecError, UserError
from structbench.ir import Choice, Message, Regex, WorkItem, item_from_dict, item_to_dict
from structbench.kinds import registry
from structbench.kinds.common import row_plan
from structbench.kinds.registry import KINDS, expand_task
from structbench.spec.loader import LoadedTask, load_suite
from structbench.spec.tasks import (
    ChoiceTaskSpec,
    FewShot,
    GrammarFiles,
    GrammarTaskSpec,
    JsonTaskSpec,
    RegexTaskSpec,
)

REPO = Path(__file__).resolve().parents[2]
ROWS: tuple[dict[str, Any], ...] = (
    {"text": "a is 1", "expected": {"a": 1}},
    {"text": "a is 2", "expected": {"a": 2}},
    {"text": "a is 3", "expected": {"a": 3}},
)
# Property order on purpose not alphabetical: it must survive into the constraint.
SCHEMA = {"type": "object", "properties": {"zeta": {"type": "string"}, "a": {"type": "integer"}}}


def loaded(spec: Any, rows: tuple[dict[str, Any], ...] = ROWS, **kw: Any) -> LoadedTask:
    return LoadedTask(spec, Path("tasks/x.yaml"), rows, kw.get("schema"), kw.get("grammars", ()), None)


def json_task(**kw: Any) -> LoadedTask:
    spec = JsonTaskSpec(kind="json", name="inv", json_schema="s.json", prompt="Extract: {{ text }}", **kw)
    return loaded(spec, schema=SCHEMA)


def expand(task: LoadedTask, n: int | None = None, seed: int = 0) -> list[WorkItem]:
    return expand_task(task, random.Random(seed), n)


def test_json_items() -> None:
    task = json_task(
        system="You extract {{ 'JSON' }}.",
        few_shot=(FewShot(user="Example: {{ text }}", assistant='{"a": 0}'),),
        reference="{{ expected | tojson }}",
        max_tokens=77,
        temperature=0.5,
    )
    items = expand(task)
    assert [it.item_id for it in items] == ["inv/0", "inv/1", "inv/2"]
    it = items[1]
    assert (it.task, it.kind, it.meta, it.is_fork) == ("inv", "json", (("row", "1"),), False)
    assert it.prefix == (
        Message("system", "You extract JSON."),
        Message("user", "Example: a is 2"),
        Message("assistant", '{"a": 0}'),
    )
    (branch,) = it.branches
    (turn,) = branch.turns
    assert turn.user == "Extract: a is 2"
    gen = turn.gen
    assert (gen.name, gen.max_tokens, gen.temperature, gen.reference) == ("answer", 77, 0.5, '{"a": 2}')
    assert gen.constraint.kind == "json_schema"
    assert gen.constraint.json_schema is not None
    assert json.loads(gen.constraint.json_schema) == SCHEMA
    assert list(json.loads(gen.constraint.json_schema)["properties"]) == ["zeta", "a"]
    assert " " not in gen.constraint.json_schema  # compact


def test_no_system_no_reference() -> None:
    (it, *_) = expand(json_task())
    assert it.prefix == ()
    assert it.branches[0].turns[0].gen.reference is None


def test_rows_cycle_to_reach_num_requests() -> None:
    ids = [it.item_id for it in expand(json_task(), 7)]
    assert ids == ["inv/0", "inv/1", "inv/2", "inv/0#1", "inv/1#1", "inv/2#1", "inv/0#2"]
    assert [it.item_id for it in expand(json_task(), 2)] == ["inv/0", "inv/1"]


def test_row_plan_rejects_nonsense() -> None:
    with pytest.raises(UserError):
        row_plan(3, 0)
    with pytest.raises(UserError):
        row_plan(0, None)


def test_deterministic() -> None:
    task = json_task(reference="{{ expected | tojson }}")
    assert expand(task, 5, seed=1) == expand(task, 5, seed=1)
    # These kinds draw nothing from the RNG: the dataset's own shuffle orders rows.
    assert expand(task, 5, seed=1) == expand(task, 5, seed=2)


def test_template_failure_on_a_later_row_names_the_row() -> None:
    rows = (*ROWS, {"expected": {"a": 4}})
    task = loaded(
        JsonTaskSpec(kind="json", name="inv", json_schema="s.json", prompt="{{ text }}"), rows, schema=SCHEMA
    )
    with pytest.raises(SpecError) as info:
        expand(task)
    assert str(info.value) == "tasks/x.yaml: prompt: template fails on row 3: 'text' is undefined"


def test_regex_and_canary() -> None:
    spec = RegexTaskSpec(
        kind="regex", name="code", regex="[A-Z]{3}-[0-9]{4}", prompt="{{ text }}", canary=True
    )
    items = expand(loaded(spec))
    c = items[0].branches[0].turns[0].gen.constraint
    assert c == Regex("[A-Z]{3}-[0-9]{4}") and c.kind == "regex"
    assert items[0].meta == (("row", "0"), ("canary", "1"))
    plain = RegexTaskSpec(kind="regex", name="code", regex="x", prompt="{{ text }}")
    assert expand(loaded(plain))[0].meta == (("row", "0"),)


@pytest.mark.parametrize("strategy", ["constrained", "select"])
def test_choice(strategy: str) -> None:
    spec = ChoiceTaskSpec.model_validate(
        {"kind": "choice", "name": "s", "choices": ["pos", "neg"], "strategy": strategy, "reference": "pos"}
    )
    gen = expand(loaded(spec))[0].branches[0].turns[0].gen
    # A tagged union: a choice constraint has its choices and no other field.
    assert gen.constraint == Choice(("pos", "neg")) and gen.constraint.kind == "choice"
    assert gen.choice_strategy == strategy and gen.reference == "pos"


def test_grammar() -> None:
    spec = GrammarTaskSpec(kind="grammar", name="g", grammar=GrammarFiles(lark="g.lark", gbnf="g.gbnf"))
    grammars = (("lark", "start: /a/"), ("gbnf", 'root ::= "a"'))
    c = expand(loaded(spec, grammars=grammars))[0].branches[0].turns[0].gen.constraint
    assert c.kind == "grammar"
    assert c.grammar("lark") == "start: /a/" and c.grammar("gbnf") == 'root ::= "a"'


def test_wrong_spec_for_kind_is_a_type_error() -> None:
    from structbench.kinds import json as json_kind

    spec = RegexTaskSpec(kind="regex", name="code", regex="x")
    with pytest.raises(TypeError):
        json_kind.expand(loaded(spec), random.Random(0), None)


def test_registry_targets_resolve() -> None:
    for kind in ("json", "regex", "choice", "grammar"):
        module, func = KINDS[kind].split(":")
        assert callable(getattr(importlib.import_module(module), func))


def test_unknown_kind_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "KINDS", {k: v for k, v in KINDS.items() if k != "json"})
    with pytest.raises(UserError, match="kind 'json' cannot be expanded"):
        expand(json_task())


@pytest.mark.parametrize("suite", ["suites/json.yaml", "suites/kinds.yaml"])
def test_repo_suites_expand_and_round_trip(suite: str) -> None:
    loaded_suite = load_suite(REPO / suite)
    n = loaded_suite.spec.load.num_requests
    for task in loaded_suite.tasks:
        items = expand(task, n)
        assert len(items) == n
        for it in items:
            assert item_from_dict(json.loads(json.dumps(item_to_dict(it)))) == it
            gen = it.branches[0].turns[0].gen
            assert gen.constraint.kind != "none"
            if task.spec.reference is not None:
                assert gen.reference
