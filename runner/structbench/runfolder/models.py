"""The run folder's metadata as versioned pydantic models: ``manifest.json`` and what it lists.

:class:`RunManifest` and :class:`~structbench.runfolder.cell.CellFile` write themselves and
read themselves back; nothing else in the package parses these files. Version 2 is written. Version 1 files
(every run committed under ``results/`` before this module) are read too: they are
migrated in memory by :mod:`structbench.runfolder.v1`, never rewritten.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from structbench.load.arrivals import LoadMode, LoadPoint
from structbench.runfolder import v1
from structbench.runfolder.io import read_object, schema_version, validate, write_model

#: The version this module writes.
SCHEMA_VERSION: Final = 2
MANIFEST_FILE = "manifest.json"

CacheArm = Literal["on", "off"]
#: "unknown": a version 1 manifest that recorded no status.
RunStatus = Literal["running", "complete", "partial", "interrupted", "failed", "unknown"]


class Frozen(BaseModel):
    """Base of the run-folder models: frozen, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelFacts(Frozen):
    """The served model's size, read from its ``config.json`` when the engine started.

    ``params``, ``read_params`` and ``bytes_per_param`` are
    :class:`structbench.metrics.roofline.ModelSize`; the rest describe the architecture.
    """

    source: str
    """Where the facts came from (the config.json path on the machine that ran)."""
    params: int
    read_params: int
    """Parameters a decode step reads (all but an untied input embedding)."""
    bytes_per_param: int
    dtype: str | None = None
    """Served dtype when the spec set one; None = the checkpoint's own."""
    layers: int | None = None
    hidden_size: int | None = None
    intermediate_size: int | None = None
    attention_heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    vocab_size: int | None = None


class EngineFacts(Frozen):
    """A started engine, as ``Engine.start()`` reported it, plus what the report needs of it."""

    name: str
    kind: str = ""
    model: str = ""
    version: str = ""
    url: str = ""
    extra: dict[str, str] = Field(default_factory=dict)
    cache_block_size: int | None = None
    cache_arm: CacheArm | None = None
    """The spec's ``cache`` for engines that have one; None for the others."""
    cache_pair: str | None = None
    """What the on and off arms of a cache comparison share (None: not an arm)."""
    model_paths: tuple[str, ...] = ()
    """Candidate model locations, most trusted first (tokenizer and config lookups)."""
    dtype: str | None = None
    """Served weight dtype when the spec sets it (``--dtype``, embedded ``dtype``)."""
    api: str = "chat"
    served_model: ModelFacts | None = None


class TaskFacts(Frozen):
    """A task of the run."""

    kind: str = ""
    scorers: tuple[str, ...] = ()
    canary: bool = False
    path: str = ""
    target_hit_rate: float | None = None
    """The prefix-cache hit rate a ``prefix_hit`` task was built for (None: other kinds)."""
    input_len: int | None = None
    """The prompt length in tokens a ``prefix_hit`` task was built for."""


class LoadFacts(Frozen):
    """A :class:`~structbench.load.arrivals.LoadPoint` as JSON (``label`` is for readers only)."""

    mode: LoadMode
    concurrency: int | None = None
    rate: float = math.inf
    arrivals: str = "poisson"
    burstiness: float = 1.0
    max_concurrency: int | None = None
    label: str = ""
    clients: int = 1
    """Client processes that sent the point together (``load.clients``)."""

    @classmethod
    def of(cls, p: LoadPoint) -> LoadFacts:
        """The JSON form of a load point."""
        return cls(
            mode=p.mode,
            concurrency=p.concurrency,
            rate=p.rate,
            arrivals=p.arrivals,
            burstiness=p.burstiness,
            max_concurrency=p.max_concurrency,
            label=p.label,
            clients=p.clients,
        )

    def point(self) -> LoadPoint:
        """The load point (its label is derived again from the numbers)."""
        return LoadPoint(
            self.mode,
            self.concurrency,
            self.rate,
            self.arrivals,
            self.burstiness,
            self.max_concurrency,
            self.clients,
        )


class CellEntry(Frozen):
    """One engine x task x load point, as the manifest lists it."""

    cell_id: str
    engine: str
    task: str
    load: LoadFacts
    cache_arm: CacheArm | None = None
    cache_pair: str | None = None
    """Set once the engine started (it depends on the served model); None: not an arm."""
    node: str | None = None
    """The Ray node that ran the cell (``--executor ray``); None: the driver's own process."""
    items: int | None = None
    """The cell sends its task's first ``items`` items (``requests_per_concurrency``); None: all."""


class SloFacts(Frozen):
    """Service-level objectives in ms (None = not set)."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None


class OptionsFacts(Frozen):
    """Suite settings the report needs."""

    schema_timeout_s: float = 2.0
    bootstrap: int = 1000
    slo: SloFacts = SloFacts()


class GpuFacts(Frozen):
    """One GPU of the machine that ran."""

    index: int
    name: str = ""
    memory_bytes: int | None = None


class HardwareFacts(Frozen):
    """The machine that ran (``manifest.hardware()``)."""

    platform: str = ""
    machine: str = ""
    processor: str = ""
    cpu_count: int | None = None
    memory_bytes: int | None = None
    gpus: tuple[GpuFacts, ...] = ()


class ResumedCell(Frozen):
    """A cell a resume ran again."""

    attempt: int
    items: int


class ResumeEntry(Frozen):
    """One ``structbench run --resume``."""

    utc: str
    executor: str = "local"
    """Where this resume ran its cells: ``local`` or ``ray``."""
    cells: dict[str, ResumedCell] = Field(default_factory=dict)


class RunManifest(Frozen):
    """``manifest.json``: written first, updated as the run progresses, never holding secrets.

    The resolved spec in ``spec`` is already redacted (``spec.resolved``); API keys are
    never read into a spec at all.
    """

    schema_version: Literal[2] = SCHEMA_VERSION
    migrated_from: int | None = None
    """The version the run was first written in, when older (its facts are the old reader's)."""
    run_id: str
    suite: str
    created_utc: str = ""
    seed: int = 0
    git_sha: str = "unknown"
    """The commit that ran, or "unknown" (see ``manifest.git_sha``)."""
    git_dirty: bool | None = None
    """Uncommitted changes in the checkout; None when not known."""
    argv: tuple[str, ...] = ()
    versions: dict[str, str] = Field(default_factory=dict)
    hardware: HardwareFacts = HardwareFacts()
    engines: dict[str, EngineFacts] = Field(default_factory=dict)
    tasks: dict[str, TaskFacts] = Field(default_factory=dict)
    cells: tuple[CellEntry, ...] = ()
    options: OptionsFacts = OptionsFacts()
    spec: dict[str, JsonValue] = Field(default_factory=dict)
    """The resolved, redacted suite (``spec.resolved.resolved_dict``)."""
    suite_path: str | None = None
    """Where ``--resume`` reloads the suite from."""
    executor: str = "local"
    """Where the cells ran: ``local`` (in this process, in turn) or ``ray`` (one Ray task each)."""
    status: RunStatus = "running"
    error: str | None = None
    failed_cells: tuple[str, ...] = ()
    resumes: tuple[ResumeEntry, ...] = ()

    @classmethod
    def read(cls, run_dir: Path) -> RunManifest:
        """Read ``run_dir/manifest.json`` (version 1 or 2).

        Raises:
            UserError: Missing, unreadable or invalid, naming the file.
        """
        path = run_dir / MANIFEST_FILE
        data = read_object(path, f"{run_dir} is not a structbench run folder (no {MANIFEST_FILE})")
        if schema_version(data, path, (1, SCHEMA_VERSION)) == 1:
            data = v1.manifest(data, run_dir)
        return validate(cls, data, path)

    def write(self, run_dir: Path) -> None:
        """Write ``run_dir/manifest.json`` atomically."""
        write_model(run_dir / MANIFEST_FILE, self)

    def cell(self, cell_id: str) -> CellEntry | None:
        """The listed cell ``cell_id``, or None."""
        return next((c for c in self.cells if c.cell_id == cell_id), None)

    def unlisted_cell(self, cell_id: str, engine: str, task: str) -> CellEntry:
        """An entry for a cell found only in the records (a manifest written before a crash).

        Its load point is unknown (shown as offline); its cache arm is its engine's.
        """
        e = self.engines.get(engine)
        arm, pair = (e.cache_arm, e.cache_pair) if e is not None else (None, None)
        load = LoadFacts(mode="offline")
        return CellEntry(cell_id=cell_id, engine=engine, task=task, load=load, cache_arm=arm, cache_pair=pair)

    def with_engine(self, facts: EngineFacts) -> RunManifest:
        """The manifest once ``facts.name`` started: its facts, and its cells' cache pair."""
        cells = tuple(
            c.model_copy(update={"cache_pair": facts.cache_pair}) if c.engine == facts.name else c
            for c in self.cells
        )
        return self.model_copy(update={"engines": {**self.engines, facts.name: facts}, "cells": cells})

    def with_node(self, cell_id: str, node: str) -> RunManifest:
        """The manifest once cell ``cell_id`` was placed on Ray node ``node``."""
        cells = tuple(c.model_copy(update={"node": node}) if c.cell_id == cell_id else c for c in self.cells)
        return self.model_copy(update={"cells": cells})

    def with_status(
        self, status: RunStatus, failed: tuple[str, ...] | None = None, error: str | None = None
    ) -> RunManifest:
        """The manifest with a new status (and failed cells or error, when given)."""
        update: dict[str, object] = {"status": status}
        if failed is not None:
            update["failed_cells"] = failed
        if error is not None:
            update["error"] = error
        return self.model_copy(update=update)

    def with_resume(self, entry: ResumeEntry) -> RunManifest:
        """The manifest of a run being resumed: the resume logged, status running again."""
        return self.model_copy(update={"resumes": (*self.resumes, entry), "status": "running"})


class ManifestLog:
    """The manifest of a run in progress: each update replaces the frozen model and the file.

    Args:
        run_dir: The run folder.
        manifest: The manifest as it is now (already written or not).
    """

    def __init__(self, run_dir: Path, manifest: RunManifest) -> None:
        self.run_dir, self.manifest = run_dir, manifest

    def save(self, manifest: RunManifest) -> None:
        """Make ``manifest`` the current one and write it."""
        self.manifest = manifest
        manifest.write(self.run_dir)


__all__ = [
    "MANIFEST_FILE",
    "SCHEMA_VERSION",
    "CacheArm",
    "CellEntry",
    "EngineFacts",
    "GpuFacts",
    "HardwareFacts",
    "LoadFacts",
    "ManifestLog",
    "ModelFacts",
    "OptionsFacts",
    "ResumeEntry",
    "ResumedCell",
    "RunManifest",
    "RunStatus",
    "SloFacts",
    "TaskFacts",
]
