"""A loaded suite and task: validated specs with their referenced files read.

Their own module (not the loader's), so that the task kinds, which expand a loaded task,
and the loader, which calls a kind's row loader, don't import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from structbench.ir import GrammarSyntax
from structbench.spec.paths import display_path
from structbench.spec.suite import SuiteSpec
from structbench.spec.tasks import TaskSpec


@dataclass(frozen=True, slots=True)
class LoadedTask:
    """A validated task with its referenced files read.

    Attributes:
        spec: The task spec.
        path: The task file.
        rows: Data rows after shuffling, limit and field mapping (at least one).
        schema: The JSON schema of a json task, else None.
        grammars: Grammar text per syntax of a grammar task, else empty.
        prefix_text: The shared-prefix document of a fan-out task, if it names one.
    """

    spec: TaskSpec
    path: Path
    rows: tuple[dict[str, Any], ...]
    schema: dict[str, Any] | None
    grammars: tuple[tuple[GrammarSyntax, str], ...]
    prefix_text: str | None

    def __str__(self) -> str:
        return (
            f"task '{self.spec.name}' ({self.spec.kind}, {len(self.rows)} rows) in {display_path(self.path)}"
        )


@dataclass(frozen=True, slots=True)
class LoadedSuite:
    """A validated suite and its loaded tasks, in the suite's order.

    ``warnings`` are located one-line problems that only ``run`` refuses (an unset
    ``api_key_env`` variable); ``validate`` prints them.
    """

    spec: SuiteSpec
    path: Path
    tasks: tuple[LoadedTask, ...]
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        engines = ", ".join(e.name for e in self.spec.engines)
        tasks = ", ".join(f"{t.spec.name} ({t.spec.kind}, {len(t.rows)} rows)" for t in self.tasks)
        return f"suite '{self.spec.name}' in {display_path(self.path)}: engines {engines}; tasks {tasks}"
