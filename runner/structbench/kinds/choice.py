"""``kind: choice``: the answer is one of a fixed list of strings."""

from __future__ import annotations

import random

from structbench.ir import Choice, WorkItem
from structbench.kinds.common import expand_single_turn
from structbench.spec.loaded import LoadedTask
from structbench.spec.tasks import ChoiceTaskSpec

__all__ = ["expand"]


def expand(task: LoadedTask, rng: random.Random, num_requests: int | None) -> list[WorkItem]:
    """One item per row, with the task's choice strategy (constrained decode or select).

    The constraint holds the choices themselves, not a regex: engines that have a
    native choice (vLLM) use it, and the others build their own alternation. ``rng``
    is unused: the rows' order is the dataset's (see ``dataset.shuffle``).
    """
    del rng
    spec = task.spec
    if not isinstance(spec, ChoiceTaskSpec):
        raise TypeError(f"task '{spec.name}' is not a choice task")
    constraint = Choice(spec.choices)
    return expand_single_turn(task, constraint, num_requests, strategy=spec.strategy)
