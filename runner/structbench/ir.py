"""The engine-agnostic program that task kinds produce and engines compile.

A :class:`WorkItem` is a tiny program: a shared prefix of messages, then one or more
branches (``fork``), each a sequence of user turns answered by a constrained ``gen``.
One branch with several turns is a multi-turn chat; several branches that share the
prefix are a fan-out. Every ``gen`` becomes one call record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ConstraintKind = Literal["none", "json_schema", "regex", "choice", "grammar"]
Role = Literal["system", "user", "assistant"]
GrammarSyntax = Literal["lark", "gbnf"]


@dataclass(frozen=True, slots=True)
class Constraint:
    """What a ``gen`` step must produce.

    Only the field that matches ``kind`` is set. ``json_schema`` is compact JSON text in
    the schema file's key order (engines emit properties in schema order, so sorting
    would reorder every answer); a task's items share one text, so engines can cache
    compiled grammars by constraint.
    """

    kind: ConstraintKind = "none"
    json_schema: str | None = None
    regex: str | None = None
    choices: tuple[str, ...] = ()
    #: Grammar text per syntax; engines pick the syntax they support.
    grammars: tuple[tuple[GrammarSyntax, str], ...] = ()

    def grammar(self, syntax: GrammarSyntax) -> str | None:
        """Return the grammar text in ``syntax``, or None when the task has none."""
        for s, text in self.grammars:
            if s == syntax:
                return text
        return None


NO_CONSTRAINT = Constraint()


@dataclass(frozen=True, slots=True)
class Message:
    """A chat message of the shared prefix (system prompt, few-shot turns)."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Gen:
    """One generation: a call to the engine."""

    name: str
    constraint: Constraint = NO_CONSTRAINT
    max_tokens: int = 128
    temperature: float = 0.0
    #: How ``choice`` runs on engines that have two ways ("constrained" regex
    #: alternation, or "select" logprob scoring).
    choice_strategy: Literal["constrained", "select"] = "constrained"
    #: The reference answer for scoring (text; JSON text for json tasks), if any.
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """A user message and the generation that answers it."""

    user: str
    gen: Gen


@dataclass(frozen=True, slots=True)
class Branch:
    """A sequence of turns that continues the shared prefix."""

    turns: tuple[Turn, ...]


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One unit of load: what the load generator schedules.

    Attributes:
        item_id: Stable id, unique within the task (``<task>/<row>`` style).
        task: Name of the task that produced it.
        kind: The task kind (json, regex, choice, grammar, chat, fanout).
        prefix: Messages before the branches (system prompt, few-shot examples).
        branches: One branch = linear (multi-turn) program; several = ``fork(n)``.
        meta: Free-form string labels carried into records (category, group, ...).
    """

    item_id: str
    task: str
    kind: str
    prefix: tuple[Message, ...]
    branches: tuple[Branch, ...]
    meta: tuple[tuple[str, str], ...] = field(default=())

    @property
    def is_fork(self) -> bool:
        """True when the item fans out into several branches."""
        return len(self.branches) > 1

    def gens(self) -> list[tuple[int, int, Gen]]:
        """All gens as ``(branch, turn, gen)`` in program order."""
        return [(b, t, turn.gen) for b, br in enumerate(self.branches) for t, turn in enumerate(br.turns)]


def item_to_dict(item: WorkItem) -> dict[str, object]:
    """Serialize a work item (for ``items.jsonl`` in the results folder)."""
    from dataclasses import asdict

    return asdict(item)


def item_from_dict(d: dict[str, object]) -> WorkItem:
    """Rebuild a work item written by :func:`item_to_dict`."""
    import typing

    def con(c: dict[str, typing.Any]) -> Constraint:
        return Constraint(
            kind=c["kind"],
            json_schema=c.get("json_schema"),
            regex=c.get("regex"),
            choices=tuple(c.get("choices", ())),
            grammars=tuple((s, t) for s, t in c.get("grammars", ())),
        )

    def gen(g: dict[str, typing.Any]) -> Gen:
        return Gen(
            name=g["name"],
            constraint=con(g["constraint"]),
            max_tokens=g["max_tokens"],
            temperature=g["temperature"],
            choice_strategy=g.get("choice_strategy", "constrained"),
            reference=g.get("reference"),
        )

    raw = typing.cast(dict[str, typing.Any], d)
    return WorkItem(
        item_id=raw["item_id"],
        task=raw["task"],
        kind=raw["kind"],
        prefix=tuple(Message(m["role"], m["content"]) for m in raw["prefix"]),
        branches=tuple(
            Branch(tuple(Turn(t["user"], gen(t["gen"])) for t in b["turns"])) for b in raw["branches"]
        ),
        meta=tuple((str(a), str(b)) for a, b in raw.get("meta", ())),
    )
