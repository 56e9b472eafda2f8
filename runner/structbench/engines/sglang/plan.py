"""The SGLang plan of a work item: pure data shared by the program builder and the printer.

A :class:`ProgramPlan` says, for every ``gen`` of a :class:`~structbench.ir.WorkItem`, which
``sgl.gen`` call SGLang runs (variable name, limits, constraint argument) and under which
strategy label its records go. :func:`structbench.engines.sglang.compiler.build_program`
turns the plan into a live ``@sgl.function``, and
:func:`structbench.engines.sglang.source.program_source` prints the same plan as Python,
so the two can never disagree. This module imports nothing from sglang.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from structbench.ir import Gen, Grammar, GrammarSyntax, Message, WorkItem

Mode = Literal["program", "generate"]

#: Strategy labels written into ``CallRecord.strategy``.
STRATEGY_JSON = "sgl.gen.json_schema"
STRATEGY_REGEX = "sgl.gen.regex"
STRATEGY_SELECT = "sgl.select"
STRATEGY_REGEX_CHOICE = "sgl.gen.regex_choice"
STRATEGY_EBNF = "sgl.gen.ebnf"
STRATEGY_PLAIN = "sgl.gen"

#: Why grammar gens can't run as programs: ``sgl.gen`` / ``SglSamplingParams`` of the SGLang
#: frontend (0.5.x) have ``json_schema`` and ``regex`` but no ``ebnf`` field, so the interpreter
#: could only send the gen unconstrained, which would be a silent downgrade.
GRAMMAR_PROGRAM_UNSUPPORTED = (
    "unsupported: constraint 'grammar' in SGLang program mode (sgl.gen has no ebnf parameter; "
    "use mode: generate)"
)


@dataclass(frozen=True, slots=True)
class GenCall:
    """One ``sgl.gen`` call of the plan.

    Exactly one of ``json_schema``, ``regex``, ``choices`` and ``grammar`` is set, or none of
    them for an unconstrained gen. ``choices`` means SGLang's select (logprob scoring).
    """

    var: str
    branch: int
    turn: int
    gen: Gen
    strategy: str
    json_schema: str | None = None
    regex: str | None = None
    choices: tuple[str, ...] = ()
    #: ``(syntax, text)`` of a grammar gen (generate mode only; see GRAMMAR_PROGRAM_UNSUPPORTED).
    #: The server takes GBNF as its ``ebnf`` sampling parameter.
    grammar: tuple[GrammarSyntax, str] | None = None
    #: Set when the gen can't run in this mode ("unsupported: ...").
    unsupported: str | None = None


@dataclass(frozen=True, slots=True)
class PlanTurn:
    """A user message and the gen call that answers it."""

    user: str
    call: GenCall


@dataclass(frozen=True, slots=True)
class ProgramPlan:
    """The whole item as SGLang calls: shared prefix, then one or more branches."""

    item_id: str
    prefix: tuple[Message, ...]
    branches: tuple[tuple[PlanTurn, ...], ...]

    @property
    def is_fork(self) -> bool:
        """True when the program forks into several branches."""
        return len(self.branches) > 1

    def calls(self) -> list[GenCall]:
        """All gen calls in ``WorkItem.gens()`` order."""
        return [t.call for br in self.branches for t in br]

    def unsupported(self) -> str | None:
        """The first reason a gen of this plan can't run, or None."""
        for c in self.calls():
            if c.unsupported:
                return c.unsupported
        return None


def choice_regex(choices: tuple[str, ...]) -> str:
    """Regex alternation that admits exactly the given choices (literal, escaped)."""
    return "(" + "|".join(re.escape(c) for c in choices) + ")"


def _safe(name: str) -> str:
    s = re.sub(r"\W", "_", name).strip("_") or "gen"
    return s if not s[0].isdigit() else f"g_{s}"


def var_names(item: WorkItem) -> list[str]:
    """SGLang variable names for the item's gens, in ``gens()`` order.

    Gen names become identifiers; when they repeat (the same name in every branch of a
    fan-out, or every turn of a chat), the branch and turn are appended, so each variable
    is unique within the program.
    """
    gens = item.gens()
    safe = [_safe(g.name) for _, _, g in gens]
    if len(set(safe)) == len(safe):
        return safe
    return [f"{s}_b{b}_t{t}" for s, (b, t, _) in zip(safe, gens, strict=True)]


def _grammar_call(base: GenCall, mode: Mode, syntaxes: tuple[GrammarSyntax, ...]) -> GenCall:
    c = base.gen.constraint
    assert isinstance(c, Grammar)
    base = replace(base, strategy=STRATEGY_EBNF)
    if mode == "program":
        return replace(base, unsupported=GRAMMAR_PROGRAM_UNSUPPORTED)
    for syntax in syntaxes:
        text = c.grammar(syntax)
        if text is not None:
            label = STRATEGY_EBNF if syntax == "gbnf" else f"sgl.gen.grammar_{syntax}"
            return replace(base, strategy=label, grammar=(syntax, text))
    have = ", ".join(s for s, _ in c.grammars) or "none"
    want = ", ".join(syntaxes) or "none"
    return replace(base, unsupported=f"unsupported: grammar syntax (task has {have}; engine takes {want})")


def _call(base: GenCall, mode: Mode, syntaxes: tuple[GrammarSyntax, ...]) -> GenCall:
    gen = base.gen
    c = gen.constraint
    if c.kind == "json_schema":
        return replace(base, strategy=STRATEGY_JSON, json_schema=c.json_schema)
    if c.kind == "regex":
        return replace(base, strategy=STRATEGY_REGEX, regex=c.regex)
    if c.kind == "choice" and gen.choice_strategy == "select":
        return replace(base, strategy=STRATEGY_SELECT, choices=c.choices)
    if c.kind == "choice":
        return replace(base, strategy=STRATEGY_REGEX_CHOICE, regex=choice_regex(c.choices))
    if c.kind == "grammar":
        return _grammar_call(base, mode, syntaxes)
    return base


def plan_item(
    item: WorkItem, mode: Mode = "program", grammar_syntaxes: tuple[GrammarSyntax, ...] = ("gbnf",)
) -> ProgramPlan:
    """Turn a work item into its SGLang plan (pure).

    Args:
        item: The engine-agnostic program.
        mode: ``program`` (SGLang interpreter) or ``generate`` (per-call requests); they
            differ only for grammar gens, which only per-call requests can constrain.
        grammar_syntaxes: Grammar syntaxes the target takes, in order of preference
            (the SGLang server: ``gbnf``, sent as ``ebnf``).
    """
    names = iter(var_names(item))
    branches = tuple(
        tuple(
            PlanTurn(
                turn.user,
                _call(GenCall(next(names), b, t, turn.gen, STRATEGY_PLAIN), mode, grammar_syntaxes),
            )
            for t, turn in enumerate(br.turns)
        )
        for b, br in enumerate(item.branches)
    )
    return ProgramPlan(item_id=item.item_id, prefix=item.prefix, branches=branches)


def plan_gen(
    gen: Gen, mode: Mode = "generate", grammar_syntaxes: tuple[GrammarSyntax, ...] = ("gbnf",)
) -> GenCall:
    """The SGLang call of one gen on its own (generate mode: one request per gen)."""
    return _call(GenCall("gen", 0, 0, gen, STRATEGY_PLAIN), mode, grammar_syntaxes)
