"""The engine-agnostic program that task kinds produce and engines compile.

A :class:`WorkItem` is a tiny program: a shared prefix of messages, then one or more
branches (``fork``), each a sequence of user turns answered by a constrained ``gen``.
One branch with several turns is a multi-turn chat; several branches that share the
prefix are a fan-out. Every ``gen`` becomes one call record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

ConstraintKind = Literal["none", "json_schema", "regex", "choice", "grammar"]
Role = Literal["system", "user", "assistant"]
GrammarSyntax = Literal["lark", "gbnf"]


@dataclass(frozen=True, slots=True)
class NoConstraint:
    """Free text."""

    kind: ClassVar[Literal["none"]] = "none"


@dataclass(frozen=True, slots=True)
class JsonSchema:
    """Output valid under a JSON schema.

    ``json_schema`` is compact JSON text in the schema file's key order (engines emit
    properties in schema order, so sorting would reorder every answer); a task's items
    share one text, so engines can cache compiled grammars by constraint.
    """

    json_schema: str
    kind: ClassVar[Literal["json_schema"]] = "json_schema"


@dataclass(frozen=True, slots=True)
class Regex:
    """Output that fully matches a regular expression."""

    regex: str
    kind: ClassVar[Literal["regex"]] = "regex"


@dataclass(frozen=True, slots=True)
class Choice:
    """Output that is exactly one of the choices."""

    choices: tuple[str, ...]
    kind: ClassVar[Literal["choice"]] = "choice"


@dataclass(frozen=True, slots=True)
class Grammar:
    """Output in a context-free grammar, given in one or more syntaxes."""

    #: Grammar text per syntax; engines pick the syntax they support.
    grammars: tuple[tuple[GrammarSyntax, str], ...]
    kind: ClassVar[Literal["grammar"]] = "grammar"

    def grammar(self, syntax: GrammarSyntax) -> str | None:
        """Return the grammar text in ``syntax``, or None when the task has none."""
        for s, text in self.grammars:
            if s == syntax:
                return text
        return None


#: What a ``gen`` step must produce: a tagged union on ``kind``.
Constraint = NoConstraint | JsonSchema | Regex | Choice | Grammar


def constraint_to_dict(c: Constraint) -> dict[str, object]:
    """The constraint as ``items.jsonl`` stores it: its ``kind`` and its one field."""
    out: dict[str, object] = {"kind": c.kind}
    if isinstance(c, JsonSchema):
        out["json_schema"] = c.json_schema
    elif isinstance(c, Regex):
        out["regex"] = c.regex
    elif isinstance(c, Choice):
        out["choices"] = list(c.choices)
    elif isinstance(c, Grammar):
        out["grammars"] = [list(g) for g in c.grammars]
    return out


def constraint_from_dict(d: Mapping[str, Any]) -> Constraint:
    """Rebuild a constraint from :func:`constraint_to_dict` (or the v1 bag of optional fields).

    Raises:
        ValueError: On an unknown kind.
    """
    kind = d.get("kind", "none")
    if kind == "none":
        return NO_CONSTRAINT
    if kind == "json_schema":
        return JsonSchema(str(d["json_schema"]))
    if kind == "regex":
        return Regex(str(d["regex"]))
    if kind == "choice":
        return Choice(tuple(str(x) for x in d["choices"]))
    if kind == "grammar":
        return Grammar(tuple((s, str(t)) for s, t in d["grammars"]))
    raise ValueError(f"unknown constraint kind {kind!r}")


NO_CONSTRAINT: Constraint = NoConstraint()


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
        primer: Runs only as the cell's warm-up, before the measured items, to fill the
            engine's cache (a prefix workload's shared prefixes); never measured.
    """

    item_id: str
    task: str
    kind: str
    prefix: tuple[Message, ...]
    branches: tuple[Branch, ...]
    meta: tuple[tuple[str, str], ...] = field(default=())
    primer: bool = False

    @property
    def is_fork(self) -> bool:
        """True when the item fans out into several branches."""
        return len(self.branches) > 1

    def gens(self) -> list[tuple[int, int, Gen]]:
        """All gens as ``(branch, turn, gen)`` in program order."""
        return [(b, t, turn.gen) for b, br in enumerate(self.branches) for t, turn in enumerate(br.turns)]


def _gen_to_dict(g: Gen) -> dict[str, object]:
    d = asdict(g)
    d["constraint"] = constraint_to_dict(g.constraint)
    return d


def item_to_dict(item: WorkItem) -> dict[str, object]:
    """Serialize a work item (for ``items.jsonl`` in the results folder)."""
    return {
        "item_id": item.item_id,
        "task": item.task,
        "kind": item.kind,
        "prefix": [asdict(m) for m in item.prefix],
        "branches": [
            {"turns": [{"user": t.user, "gen": _gen_to_dict(t.gen)} for t in b.turns]} for b in item.branches
        ],
        "meta": [list(m) for m in item.meta],
        "primer": item.primer,
    }


def _gen_from_dict(g: Mapping[str, Any]) -> Gen:
    return Gen(
        name=g["name"],
        constraint=constraint_from_dict(g["constraint"]),
        max_tokens=g["max_tokens"],
        temperature=g["temperature"],
        choice_strategy=g.get("choice_strategy", "constrained"),
        reference=g.get("reference"),
    )


def _branch_from_dict(b: Mapping[str, Any]) -> Branch:
    return Branch(tuple(Turn(t["user"], _gen_from_dict(t["gen"])) for t in b["turns"]))


def item_from_dict(d: Mapping[str, Any]) -> WorkItem:
    """Rebuild a work item written by :func:`item_to_dict` (any version of it)."""
    return WorkItem(
        item_id=d["item_id"],
        task=d["task"],
        kind=d["kind"],
        prefix=tuple(Message(m["role"], m["content"]) for m in d["prefix"]),
        branches=tuple(
            Branch(tuple(Turn(t["user"], _gen_from_dict(t["gen"])) for t in b["turns"]))
            for b in d["branches"]
        ),
        meta=tuple((str(a), str(b)) for a, b in d.get("meta", ())),
        primer=bool(d.get("primer", False)),
    )
