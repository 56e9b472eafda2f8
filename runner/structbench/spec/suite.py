"""The suite: engines x tasks x load points."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from structbench.spec.engines import EmbeddedEngineSpec, EngineSpec


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LoadSpec(_Frozen):
    """How work items are sent. Each concurrency or rate value is one load point (a cell)."""

    mode: Literal["offline", "concurrency", "rate"] = "concurrency"
    """``offline``: all at once. ``concurrency``: closed loop. ``rate``: open loop."""
    concurrency: tuple[int, ...] = (8,)
    """Closed-loop concurrency levels (a sweep when several)."""
    rate: tuple[float, ...] = (float("inf"),)
    """Requests/s for ``rate`` mode (``.inf`` = all at once)."""
    arrivals: Literal["poisson", "gamma", "constant"] = "poisson"
    burstiness: float = Field(default=1.0, gt=0)
    """Gamma shape: 1 = Poisson, < 1 burstier, > 1 smoother (as vLLM's ``--burstiness``)."""
    max_concurrency: int | None = None
    """Cap on in-flight items in ``rate`` mode."""
    num_requests: int | None = None
    """Work items per task (rows are cycled when fewer); None = every row once."""
    warmup: int = Field(default=1, ge=0)
    """Warm-up items per cell, excluded from metrics."""


class SLOSpec(_Frozen):
    """Service-level objectives for goodput (all optional, in ms)."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None


class SuiteSpec(_Frozen):
    """A benchmark suite: ``structbench run SUITE.yaml``."""

    name: str
    description: str = ""
    engines: tuple[EngineSpec, ...] = (EmbeddedEngineSpec(),)
    """Engines to compare; defaults to the embedded CPU engine."""
    tasks: tuple[str, ...] = Field(min_length=1)
    """Task YAML files, relative to this file."""
    load: LoadSpec = LoadSpec()
    seed: int = 0
    slo: SLOSpec = SLOSpec()
    schema_timeout_s: float = 2.0
    """Per-output time limit for schema validation."""
    bootstrap: int = 1000
    """Bootstrap resamples for the confidence intervals of rates."""
