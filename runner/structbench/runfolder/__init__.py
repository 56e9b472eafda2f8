"""The run folder's typed, versioned metadata (DESIGN.md "A typed, versioned run log").

``manifest.json`` is :class:`RunManifest` and ``cells/<id>/cell.json`` is
:class:`CellFile`. The same classes write the files (atomically) and read them back,
version 1 files included; ``run``, ``resume``, ``report`` and ``compare`` go through them
only. :func:`structbench.runfolder.facts.engine_facts` (what an engine said at start) is
imported by the run alone, so that reading a folder never loads an engine module.
"""

from structbench.runfolder.cell import CELL_FILE, CellFile, CellStatus, GpuMemory, IdealFacts, MemoryFacts
from structbench.runfolder.hints import spec_cache_arm
from structbench.runfolder.models import (
    MANIFEST_FILE,
    SCHEMA_VERSION,
    CacheArm,
    CellEntry,
    EngineFacts,
    GpuFacts,
    HardwareFacts,
    LoadFacts,
    ManifestLog,
    ModelFacts,
    OptionsFacts,
    ResumedCell,
    ResumeEntry,
    RunManifest,
    RunStatus,
    SloFacts,
    TaskFacts,
)

__all__ = [
    "CELL_FILE",
    "MANIFEST_FILE",
    "SCHEMA_VERSION",
    "CacheArm",
    "CellEntry",
    "CellFile",
    "CellStatus",
    "EngineFacts",
    "GpuFacts",
    "GpuMemory",
    "HardwareFacts",
    "IdealFacts",
    "LoadFacts",
    "ManifestLog",
    "MemoryFacts",
    "ModelFacts",
    "OptionsFacts",
    "ResumeEntry",
    "ResumedCell",
    "RunManifest",
    "RunStatus",
    "SloFacts",
    "TaskFacts",
    "spec_cache_arm",
]
