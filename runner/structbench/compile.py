"""``structbench compile``: show what an engine would run for a task, without running it."""

from __future__ import annotations

import random
from pathlib import Path

from structbench.engines.registry import EngineEnv, create_engine, spec_class
from structbench.kinds.registry import expand_task
from structbench.program import compile_item
from structbench.spec.engines import EngineSpec
from structbench.spec.loader import load_tasks


def default_engine_spec(kind: str) -> EngineSpec:
    """A default spec of a registered ``kind`` (compile needs no URL or model).

    Raises:
        UserError: For an unknown kind.
    """
    return spec_class(kind).for_compile()


def compile_task(task_path: Path, engine_kind: str, num_items: int = 1) -> str:
    """Return the native form of the first ``num_items`` work items of a task file."""
    task = load_tasks(task_path)[0]  # a sweep compiles its first value
    items = expand_task(task, random.Random(f"0:{task.spec.name}"), None)[:num_items]
    engine = create_engine(default_engine_spec(engine_kind), EngineEnv(workdir=Path(".")))
    parts = []
    for it in items:
        c = compile_item(engine, it)
        head = f"# {c.engine} · {c.item_id} · strategies: {', '.join(c.strategies) or '-'}"
        parts.append(f"{head}\n{c.source}")
    return "\n\n".join(parts)
