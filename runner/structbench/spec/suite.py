"""The suite: engines x tasks x load points.

The engine kinds a suite may list are the registered ones, so the model that validates a
suite is built from the registry: use :func:`suite_model`, not :class:`SuiteSpec` itself.
"""

from __future__ import annotations

from functools import lru_cache, reduce
from operator import or_
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from structbench.engines.registry import spec_classes
from structbench.spec.engines import DEFAULT_ENGINES, EngineSpec

__all__ = ["LoadSpec", "SLOSpec", "SuiteSpec", "suite_model"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LoadSpec(_Frozen):
    """How work items are sent. Each concurrency or rate value is one load point (a cell)."""

    mode: Literal["offline", "concurrency", "rate"] = "concurrency"
    """``offline``: all at once. ``concurrency``: closed loop. ``rate``: open loop."""
    concurrency: tuple[Annotated[int, Field(gt=0)], ...] = Field(default=(8,), min_length=1)
    """Closed-loop concurrency levels (a sweep when several)."""
    rate: tuple[Annotated[float, Field(gt=0)], ...] = Field(default=(float("inf"),), min_length=1)
    """Requests/s for ``rate`` mode (``.inf`` = all at once)."""
    arrivals: Literal["poisson", "gamma", "constant"] = "poisson"
    """Gaps between arrivals in ``rate`` mode: exponential, gamma (see ``burstiness``) or constant."""
    burstiness: float = Field(default=1.0, gt=0)
    """Gamma shape: 1 = Poisson, < 1 burstier, > 1 smoother (as vLLM's ``--burstiness``)."""
    max_concurrency: int | None = Field(default=None, gt=0)
    """Cap on in-flight items in ``rate`` mode."""
    num_requests: int | None = Field(default=None, gt=0)
    """Work items per task (rows are cycled when fewer); None = every row once."""
    requests_per_concurrency: int | None = Field(default=None, gt=0)
    """Closed loop only: each concurrency ``c`` sends ``k * c`` items (at least ``num_requests``),
    so a sweep from 1 to 256 neither waits minutes at c1 nor stays in a start-up wave at c256.
    Every cell sends the first items of one list, so the cells share their prompts."""
    reset_cache: bool = True
    """Flush the engine's prefix cache before each cell (vLLM ``/reset_prefix_cache``, SGLang
    ``/flush_cache``), so load points of a sweep, which repeat the same prompts, don't warm each other.
    cell.json records whether the server accepted."""
    warmup: int = Field(default=1, ge=0)
    """Warm-up items per cell, excluded from metrics."""
    clients: int = Field(default=1, ge=1)
    """Client processes that send each load point together (``rate`` and ``offline`` modes): the
    point's one arrival schedule is dealt round-robin over them, they share its start time, and
    their raw records are merged into the cell. Past one Python core's send rate, an open loop is
    otherwise late before the server is the limit. Local processes, or Ray actors under
    ``--executor ray``; only engines with an HTTP server (``url`` or ``launch``)."""

    @model_validator(mode="after")
    def _clients_split_a_schedule(self) -> LoadSpec:
        if self.clients > 1 and self.mode == "concurrency":
            raise ValueError(
                "clients: a closed loop paces itself and has no schedule to split; use mode rate"
            )
        if self.clients > 1 and self.max_concurrency is not None:
            raise ValueError("clients: max_concurrency would be one cap per client; leave one of them out")
        return self

    @model_validator(mode="after")
    def _per_concurrency_needs_closed_loop(self) -> LoadSpec:
        if self.requests_per_concurrency is not None and self.mode != "concurrency":
            raise ValueError("requests_per_concurrency needs mode: concurrency")
        return self

    def items_for(self, concurrency: int | None) -> int | None:
        """Items one cell sends (None = every row once)."""
        k = self.requests_per_concurrency
        if k is None or concurrency is None:
            return self.num_requests
        return max(k * concurrency, self.num_requests or 0)

    def items_to_plan(self) -> int | None:
        """Items to expand per task: enough for the largest cell."""
        if self.requests_per_concurrency is None:
            return self.num_requests
        return max(self.items_for(c) or 0 for c in self.concurrency)

    @field_validator("concurrency", "rate", mode="before")
    @classmethod
    def _one_value(cls, value: object) -> object:
        # ``concurrency: 8`` is what people write for a single load point.
        return (value,) if isinstance(value, int | float | str) else value


class SLOSpec(_Frozen):
    """Service-level objectives for goodput (all optional, in ms)."""

    ttft_ms: float | None = None
    """Time to first token, at most."""
    tpot_ms: float | None = None
    """Time per output token after the first, at most."""
    e2el_ms: float | None = None
    """End-to-end latency of a call, at most."""


class SuiteSpec(_Frozen):
    """A benchmark suite: ``structbench run SUITE.yaml``.

    Validate suites with :func:`suite_model`: this base types ``engines`` by the common
    base class, which accepts no engine's own fields.
    """

    name: str
    """Names the results folder (``results/<name>/``)."""
    description: str = ""
    """Free text, shown in the report."""
    engines: tuple[EngineSpec, ...] = DEFAULT_ENGINES
    """Engines to compare (each entry's ``kind`` is a registered engine kind); defaults to the
    embedded CPU engine."""
    tasks: tuple[str, ...] = Field(min_length=1)
    """Task YAML files, relative to this file."""
    load: LoadSpec = LoadSpec()
    """How the work items are sent (below)."""
    seed: int = 0
    """Seeds dataset shuffles, item expansion, arrivals and every call's sampling seed."""
    slo: SLOSpec = SLOSpec()
    """Latency limits for goodput (below)."""
    schema_timeout_s: float = 2.0
    """Per-output time limit for schema validation."""
    bootstrap: int = 1000
    """Bootstrap resamples for the confidence intervals of rates."""
    judge_engine: str | None = None
    """Name of the engine (one of ``engines``) that grades tasks listing the ``judge``
    scorer; None = the first engine."""

    @model_validator(mode="after")
    def _judge_engine_known(self) -> SuiteSpec:
        names = [e.name for e in self.engines]
        if self.judge_engine is not None and self.judge_engine not in names:
            known = ", ".join(names)
            raise ValueError(f"judge_engine '{self.judge_engine}' is not one of the engines ({known})")
        return self

    @model_validator(mode="after")
    def _clients_reach_a_server(self) -> SuiteSpec:
        # Another process can only reach an engine through its server.
        if self.load.clients > 1:
            alone = [e.name for e in self.engines if e.client_spec("http://x") is None]
            if alone:
                raise ValueError(f"load.clients: engine(s) {', '.join(alone)} run in process, with no server")
        return self


def suite_model() -> type[SuiteSpec]:
    """The suite model whose ``engines`` accept every registered engine kind, by ``kind``.

    Built once per registry state (a plugin's :func:`~structbench.engines.registry.register_engine`
    gives a new model), so the discriminated union reports errors exactly as a static one.
    """
    return _suite_model(spec_classes())


@lru_cache(maxsize=8)
def _suite_model(classes: tuple[type[EngineSpec], ...]) -> type[SuiteSpec]:
    union: Any = reduce(or_, classes)
    # A discriminator needs a union; one registered kind is a plain model.
    member: Any = Annotated[union, Field(discriminator="kind")] if len(classes) > 1 else union
    field: Any = (tuple[member, ...], DEFAULT_ENGINES)
    return create_model("SuiteSpec", __base__=SuiteSpec, __module__=__name__, engines=field)
