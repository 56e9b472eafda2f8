"""``kind: grammar``: answers constrained by a context-free grammar."""

from __future__ import annotations

import random

from structbench.ir import Grammar, WorkItem
from structbench.kinds.common import expand_single_turn
from structbench.spec.loaded import LoadedTask
from structbench.spec.tasks import GrammarTaskSpec

__all__ = ["expand"]


def expand(task: LoadedTask, rng: random.Random, num_requests: int | None) -> list[WorkItem]:
    """One item per row; the constraint holds the grammar in every syntax the task gives.

    ``rng`` is unused: the rows' order is the dataset's (see ``dataset.shuffle``).
    """
    del rng
    if not isinstance(task.spec, GrammarTaskSpec) or not task.grammars:
        raise TypeError(f"task '{task.spec.name}' is not a loaded grammar task")
    return expand_single_turn(task, Grammar(task.grammars), num_requests)
