"""Task kinds: kind -> "module:function", imported when a suite uses the kind.

Adding a kind is one line here plus its module. Each function has the signature of
:data:`Expander`.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from typing import cast

from structbench.errors import UserError
from structbench.ir import WorkItem
from structbench.spec.loaded import LoadedTask

__all__ = ["KINDS", "Expander", "expand_task"]

Expander = Callable[[LoadedTask, random.Random, int | None], list[WorkItem]]
"""``expand(task, rng, num_requests) -> items``: deterministic for a given ``rng`` seed."""

KINDS: dict[str, str] = {
    "json": "structbench.kinds.json:expand",
    "regex": "structbench.kinds.regex:expand",
    "choice": "structbench.kinds.choice:expand",
    "grammar": "structbench.kinds.grammar:expand",
    "chat": "structbench.kinds.chat:expand",
    "fanout": "structbench.kinds.fanout:expand",
    "prefix_hit": "structbench.kinds.prefix_hit:expand",
    "schema_corpus": "structbench.kinds.schema_corpus:expand",
}


def expand_task(task: LoadedTask, rng: random.Random, num_requests: int | None) -> list[WorkItem]:
    """Expand a loaded task into work items with the function of its kind.

    Args:
        task: The loaded task.
        rng: Seeded generator, the only source of randomness.
        num_requests: Items to make (rows cycle when fewer); None = one per row.

    Raises:
        UserError: When the kind has no expander, or a template fails on a row.
    """
    target = KINDS.get(task.spec.kind)
    if target is None:
        raise UserError(f"task '{task.spec.name}': kind '{task.spec.kind}' cannot be expanded yet")
    module, func = target.split(":")
    expand = cast(Expander, getattr(importlib.import_module(module), func))
    return expand(task, rng, num_requests)
