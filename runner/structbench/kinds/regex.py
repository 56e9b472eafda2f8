"""``kind: regex``: answers constrained by a regular expression (and the canary)."""

from __future__ import annotations

import random

from structbench.ir import Regex, WorkItem
from structbench.kinds.common import expand_single_turn
from structbench.spec.loaded import LoadedTask
from structbench.spec.tasks import RegexTaskSpec

__all__ = ["expand"]


def expand(task: LoadedTask, rng: random.Random, num_requests: int | None) -> list[WorkItem]:
    """One item per row. Canary items carry ``("canary", "1")`` in their meta.

    ``rng`` is unused: the rows' order is the dataset's (see ``dataset.shuffle``).
    """
    del rng
    spec = task.spec
    if not isinstance(spec, RegexTaskSpec):
        raise TypeError(f"task '{spec.name}' is not a regex task")
    meta = (("canary", "1"),) if spec.canary else ()
    return expand_single_turn(task, Regex(spec.regex), num_requests, extra_meta=meta)
