"""Pure reductions from records and scores to the numbers of the report.

Metric names follow ``vllm bench serve`` (``request_throughput``, ``p99_ttft_ms`` ...),
plus validity, accuracy and cache hit rates.
"""

from structbench.metrics.calls import CallTiming, call_timing, final_attempts, measured
from structbench.metrics.cell import (
    CacheStats,
    CellSummary,
    Counts,
    Latency,
    Quality,
    Throughput,
    meets_slo,
    summarize_cell,
)
from structbench.metrics.hit_target import HitTarget
from structbench.metrics.inputs import (
    SLO,
    CellInfo,
    CellRuntime,
    EngineRow,
    LoadPoint,
    SummaryOptions,
    TaskRow,
)
from structbench.metrics.scores import FieldRate, ScoreRate
from structbench.metrics.serialize import cell_to_dict
from structbench.metrics.summary import SUMMARY_SCHEMA_VERSION, RunInfo, RunSummary

__all__ = [
    "SLO",
    "SUMMARY_SCHEMA_VERSION",
    "CacheStats",
    "CallTiming",
    "CellInfo",
    "CellRuntime",
    "CellSummary",
    "Counts",
    "EngineRow",
    "FieldRate",
    "HitTarget",
    "Latency",
    "LoadPoint",
    "Quality",
    "RunInfo",
    "RunSummary",
    "ScoreRate",
    "SummaryOptions",
    "TaskRow",
    "Throughput",
    "call_timing",
    "cell_to_dict",
    "final_attempts",
    "measured",
    "meets_slo",
    "summarize_cell",
]
