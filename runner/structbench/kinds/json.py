"""``kind: json``: answers constrained by a JSON schema."""

from __future__ import annotations

import json
import random

from structbench.ir import JsonSchema, WorkItem
from structbench.kinds.common import expand_single_turn
from structbench.spec.loaded import LoadedTask
from structbench.spec.tasks import JsonTaskSpec

__all__ = ["expand"]


def expand(task: LoadedTask, rng: random.Random, num_requests: int | None) -> list[WorkItem]:
    """One item per row; the schema travels as compact JSON text in its file's key order.

    ``rng`` is unused: the rows' order is the dataset's (see ``dataset.shuffle``).
    """
    del rng
    if not isinstance(task.spec, JsonTaskSpec) or task.schema is None:
        raise TypeError(f"task '{task.spec.name}' is not a loaded json task")
    # Not sort_keys: outlines and xgrammar emit properties in schema order, and sorting
    # would put "currency" before "invoice_number" in every answer. One text per task is
    # all engines need to compile each schema once.
    schema = json.dumps(task.schema, ensure_ascii=False, separators=(",", ":"))
    return expand_single_turn(task, JsonSchema(schema), num_requests)
