"""What the single-turn kinds (json, regex, choice, grammar) share.

Each of them turns a row into one work item: the system prompt and few-shot pairs as the
shared prefix, then one branch with one user turn answered by one constrained ``gen``.
"""

from __future__ import annotations

from typing import Any, Literal

from structbench.errors import SpecError, UserError
from structbench.ir import Branch, Constraint, Gen, Message, Turn, WorkItem
from structbench.spec.loaded import LoadedTask
from structbench.spec.paths import display_path
from structbench.templates import TemplateError, render

__all__ = ["ChoiceStrategy", "expand_single_turn", "item_id", "row_plan"]

ChoiceStrategy = Literal["constrained", "select"]


def row_plan(n_rows: int, num_requests: int | None) -> list[tuple[int, int]]:
    """Which rows to use, as ``(row index, pass)`` pairs.

    None takes every row once. Fewer requests than rows take the first rows (use the
    dataset's ``shuffle`` for a random sample); more cycle through the rows again, the
    pass number telling the copies apart.

    Raises:
        UserError: When ``num_requests`` is below 1 or there are no rows.
    """
    if n_rows < 1:
        raise UserError("a task needs at least one row")
    if num_requests is None:
        return [(i, 0) for i in range(n_rows)]
    if num_requests < 1:
        raise UserError(f"num_requests must be at least 1, got {num_requests}")
    return [(n % n_rows, n // n_rows) for n in range(num_requests)]


def item_id(task: str, row: int, cycle: int) -> str:
    """``task/row`` on the first pass over the rows, ``task/row#k`` on pass k."""
    return f"{task}/{row}" if cycle == 0 else f"{task}/{row}#{cycle}"


def expand_single_turn(
    task: LoadedTask,
    constraint: Constraint,
    num_requests: int | None,
    strategy: ChoiceStrategy = "constrained",
    extra_meta: tuple[tuple[str, str], ...] = (),
) -> list[WorkItem]:
    """One item per planned row: prefix, one user turn, one ``gen`` named ``answer``.

    Args:
        task: The loaded task.
        constraint: The constraint every ``gen`` carries.
        num_requests: Items to make (rows cycle when fewer); None = one per row.
        strategy: How a choice constraint runs (ignored by the other kinds).
        extra_meta: Labels added after ``("row", i)``.

    Raises:
        SpecError: When a template fails on some row (the loader only tries row 0).
    """
    spec = task.spec
    items = []
    for i, cycle in row_plan(len(task.rows), num_requests):
        row = task.rows[i]
        ref = None if spec.reference is None else render_field(task, "reference", spec.reference, i, row)
        gen = Gen(
            name="answer",
            constraint=constraint,
            max_tokens=spec.max_tokens,
            temperature=spec.temperature,
            choice_strategy=strategy,
            reference=ref,
        )
        turn = Turn(user=render_field(task, "prompt", spec.prompt, i, row), gen=gen)
        items.append(
            WorkItem(
                item_id=item_id(spec.name, i, cycle),
                task=spec.name,
                kind=spec.kind,
                prefix=prefix_messages(task, i, row),
                branches=(Branch((turn,)),),
                meta=(("row", str(i)), *extra_meta),
            )
        )
    return items


def prefix_messages(task: LoadedTask, i: int, row: dict[str, Any]) -> tuple[Message, ...]:
    """System prompt and few-shot turns of ``task`` rendered on row ``i``."""
    spec = task.spec
    out = []
    if spec.system is not None:
        out.append(Message("system", render_field(task, "system", spec.system, i, row)))
    for k, shot in enumerate(spec.few_shot):
        out.append(Message("user", render_field(task, f"few_shot[{k}].user", shot.user, i, row)))
        out.append(
            Message("assistant", render_field(task, f"few_shot[{k}].assistant", shot.assistant, i, row))
        )
    return tuple(out)


def render_field(task: LoadedTask, field: str, template: str, i: int, row: dict[str, Any]) -> str:
    """Render one template field of ``task`` on row ``i``; a failure is a SpecError naming the row."""
    try:
        return render(template, row)
    except TemplateError as e:
        raise SpecError(display_path(task.path), 0, 0, field, f"template fails on row {i}: {e}") from None
