"""The run-level summary: run facts plus every cell."""

from __future__ import annotations

from dataclasses import dataclass, field

from structbench.metrics.cell import CellSummary
from structbench.metrics.corpus import CorpusSummary
from structbench.metrics.inputs import EngineRow, SummaryOptions, TaskRow
from structbench.metrics.serialize import cell_to_dict

SUMMARY_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Facts about the run, from its manifest."""

    run_id: str
    suite: str
    status: str = "unknown"
    created_utc: str = ""
    seed: int = 0
    git_sha: str = ""
    versions: tuple[tuple[str, str], ...] = field(default=())
    hardware: tuple[tuple[str, str], ...] = field(default=())
    engines: tuple[EngineRow, ...] = field(default=())
    tasks: tuple[TaskRow, ...] = field(default=())
    options: SummaryOptions = field(default_factory=SummaryOptions)

    def to_dict(self) -> dict[str, object]:
        """JSON form for ``summary.json``'s ``run`` key."""
        slo = self.options.slo
        return {
            "run_id": self.run_id,
            "suite": self.suite,
            "status": self.status,
            "created_utc": self.created_utc,
            "seed": self.seed,
            "git_sha": self.git_sha,
            "versions": dict(self.versions),
            "hardware": dict(self.hardware),
            "engines": [
                {
                    "name": e.name,
                    "kind": e.kind,
                    "model": e.model,
                    "version": e.version,
                    "url": e.url,
                    "extra": dict(e.extra),
                }
                for e in self.engines
            ],
            "tasks": [
                {"name": t.name, "kind": t.kind, "scorers": list(t.scorers), "canary": t.canary}
                for t in self.tasks
            ],
            "slo": {"ttft_ms": slo.ttft_ms, "tpot_ms": slo.tpot_ms, "e2el_ms": slo.e2el_ms},
            "bootstrap": self.options.bootstrap,
        }


@dataclass(frozen=True, slots=True)
class RunSummary:
    """``summary.json``: ``{"schema_version": 1, "run": {...}, "cells": [...]}``."""

    run: RunInfo
    cells: tuple[CellSummary, ...]
    schema_version: int = SUMMARY_SCHEMA_VERSION
    #: Schema coverage and cost of structure, when the run has ``schema_corpus`` tasks.
    corpus: CorpusSummary | None = None

    def to_dict(self) -> dict[str, object]:
        """The versioned JSON form (``corpus`` only when the run has schema_corpus tasks)."""
        out: dict[str, object] = {
            "schema_version": self.schema_version,
            "run": self.run.to_dict(),
            "cells": [cell_to_dict(c) for c in self.cells],
        }
        if self.corpus is not None:
            out["corpus"] = self.corpus.to_dict()
        return out

    def tasks_in_order(self) -> list[str]:
        """Task names in manifest order, then any only seen in cells."""
        names = [t.name for t in self.run.tasks]
        names += [c.info.task for c in self.cells if c.info.task not in names]
        return list(dict.fromkeys(names))

    def cells_of(self, task: str) -> list[CellSummary]:
        """The cells of one task, in run order."""
        return [c for c in self.cells if c.info.task == task]
