"""The ``chat`` kind: multi-turn conversations in MT-Bench's question format.

A row is one question: an id, a category, ``turns`` (the user messages, in order) and an
optional ``reference`` (one per turn; ``null`` where a turn has none). Each row becomes
one work item with one branch whose turns are the user messages. The engine runs the
turns in order and puts its real earlier answers into the context of later turns; this
module only builds the program.

Column names are configurable (``turns_field``, ``category_field``, ``reference_field``,
``id_field``), and the dataset's ``fields`` mapping renames columns of a Hugging Face
dataset before that. The user messages are sent as written (the spec refuses a
``prompt`` template). ``system`` and ``few_shot`` render with the row as in other kinds;
a ``reference`` template, if given, is the reference of the last turn of rows that
carry none.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from structbench.errors import SpecError
from structbench.ir import Branch, Gen, Message, Turn, WorkItem
from structbench.kinds.common import row_plan
from structbench.spec.loaded import LoadedTask
from structbench.spec.paths import display_path
from structbench.spec.tasks import ChatTaskSpec, FewShot
from structbench.templates import TemplateError, render


def expand(task: LoadedTask, rng: random.Random, num_requests: int | None) -> list[WorkItem]:
    """One work item per question; rows are cycled when ``num_requests`` exceeds them.

    Args:
        task: A loaded ``chat`` task.
        rng: Unused: the rows' order is the dataset's (see ``dataset.shuffle``).
        num_requests: Items to make (None = every row once); more cycle through the
            rows again, as ``task/qid#k`` on pass k.

    Returns:
        Work items in row order.

    Raises:
        SpecError: When a row lacks its turns, its references don't fit its turns, or
            two rows share a question id.
    """
    spec = task.spec
    if not isinstance(spec, ChatTaskSpec):
        raise TypeError(f"chat.expand got a '{spec.kind}' task")
    del rng
    items = [_item(task, spec, task.rows[i], i, cycle) for i, cycle in row_plan(len(task.rows), num_requests)]
    seen: dict[str, int] = {}
    for k, it in enumerate(items):
        if it.item_id in seen:
            first = seen[it.item_id] % len(task.rows)
            qid = dict(it.meta)["question_id"]
            msg = f"'{spec.id_field}' {qid!r} is also on row {first}; ids must be unique"
            raise _error(task, f"dataset row {k % len(task.rows)}", msg)
        seen[it.item_id] = k
    return items


def _item(
    task: LoadedTask, spec: ChatTaskSpec, row: Mapping[str, Any], row_index: int, cycle: int
) -> WorkItem:
    turns = _turns(task, spec, row, row_index)
    refs = _references(task, spec, row, row_index, len(turns))
    category = _text(row.get(spec.category_field, ""))
    qid = _text(row.get(spec.id_field, row_index))
    max_tokens = spec.category_max_tokens.get(category, spec.max_tokens)
    temperature = spec.category_temperature.get(category, spec.temperature)
    steps = tuple(
        Turn(user, Gen(name=f"turn{k}", max_tokens=max_tokens, temperature=temperature, reference=refs[k]))
        for k, user in enumerate(turns)
    )
    suffix = f"#{cycle}" if cycle else ""
    return WorkItem(
        item_id=f"{spec.name}/{qid}{suffix}",
        task=spec.name,
        kind="chat",
        prefix=_rendered(task, row_index, lambda: prefix_messages(spec.system, spec.few_shot, row)),
        branches=(Branch(steps),),
        meta=(("category", category), ("question_id", qid)),
    )


def prefix_messages(
    system: str | None, few_shot: Sequence[FewShot], row: Mapping[str, Any]
) -> tuple[Message, ...]:
    """The system prompt and few-shot turns, rendered with ``row``."""
    out: list[Message] = []
    if system is not None:
        out.append(Message("system", render(system, row)))
    for shot in few_shot:
        out += [Message("user", render(shot.user, row)), Message("assistant", render(shot.assistant, row))]
    return tuple(out)


def _turns(task: LoadedTask, spec: ChatTaskSpec, row: Mapping[str, Any], i: int) -> list[str]:
    turns = row.get(spec.turns_field)
    if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
        raise _error(task, f"dataset row {i}", f"'{spec.turns_field}' must be a non-empty list of strings")
    return turns


def _references(
    task: LoadedTask, spec: ChatTaskSpec, row: Mapping[str, Any], i: int, n_turns: int
) -> list[str | None]:
    raw = row.get(spec.reference_field)
    if raw is None:
        refs: list[str | None] = [None] * n_turns
        if spec.reference is not None:
            template = spec.reference
            refs[-1] = _rendered(task, i, lambda: render(template, row))
        return refs
    if not isinstance(raw, list) or len(raw) > n_turns:
        msg = f"'{spec.reference_field}' must be a list with at most one entry per turn ({n_turns})"
        raise _error(task, f"dataset row {i}", msg)
    # MT-Bench lists may be shorter than the turns: the later turns have no reference.
    return [None if r is None else _text(r) for r in raw] + [None] * (n_turns - len(raw))


def _text(value: object) -> str:
    # Numbers and structured answers become text; JSON keeps them unambiguous for scorers.
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


T = TypeVar("T")


def _rendered(task: LoadedTask, i: int, make: Callable[[], T]) -> T:
    """Run a template render, locating a failure at the row (the loader tries row 0 only)."""
    try:
        return make()
    except TemplateError as e:
        raise _error(task, f"dataset row {i}", f"template fails: {e}") from None


def _error(task: LoadedTask, field: str, message: str) -> SpecError:
    return SpecError(display_path(task.path), 0, 0, field, message)
