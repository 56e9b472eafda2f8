"""The report's tables as plain data, rendered by markdown.py, html.py and summary.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from structbench.metrics import CellSummary, RunSummary
from structbench.report import fmt

#: Cap on per-field rows, so a wide schema doesn't drown the report.
MAX_FIELDS = 40


@dataclass(frozen=True, slots=True)
class Table:
    """A titled table of already formatted cells. ``align`` is "l" or "r" per column."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class _Col:
    header: str
    value: Callable[[CellSummary], str]
    align: str = "r"
    #: Shown even when every row is empty.
    always: bool = False


_TASK_COLUMNS: tuple[_Col, ...] = (
    _Col("Engine", lambda c: c.info.engine, "l", True),
    _Col("Load", fmt.load_label, "l", True),
    _Col("max in flight", fmt.in_flight),
    _Col("OK/Fail", fmt.counts, "r", True),
    _Col("req/s", lambda c: fmt.num(c.throughput.request_throughput), "r", True),
    _Col(
        "items/s", lambda c: fmt.num(c.throughput.item_throughput) if c.counts.calls != c.counts.items else ""
    ),
    _Col("out tok/s", lambda c: fmt.num(c.throughput.output_throughput)),
    _Col("mean TTFT ms", lambda c: fmt.ms(c.latency.ttft.mean)),
    _Col("p99 TTFT ms", lambda c: fmt.ms(c.latency.ttft.p99)),
    _Col("mean TPOT ms", lambda c: fmt.ms(c.latency.tpot.mean)),
    _Col("p99 E2EL ms", lambda c: fmt.ms(c.latency.e2el.p99)),
    _Col("goodput req/s", lambda c: fmt.num(c.throughput.goodput)),
    _Col("validity % [95% CI]", lambda c: fmt.pct_ci(c.quality.validity)),
    _Col("accuracy % [95% CI]", lambda c: fmt.pct_ci(c.quality.accuracy)),
    _Col("cache hit %", fmt.cache_hit),
    _Col("ideal hit %", lambda c: fmt.pct(c.cache.ideal_hit_rate)),
    _Col("% of ideal", fmt.of_ideal),
    _Col("roofline %", fmt.roofline),
    _Col("peak GPU MiB", lambda c: fmt.num(c.peak_gpu_memory_mb)),
)


def _build(title: str, cols: Sequence[_Col], cells: Sequence[CellSummary], notes: tuple[str, ...]) -> Table:
    grid = [[col.value(c) for col in cols] for c in cells]
    # Drop columns with nothing to say (no cache data, no accuracy scorer ...).
    keep = [
        i for i, col in enumerate(cols) if col.always or any(row[i] not in ("", fmt.DASH) for row in grid)
    ]
    return Table(
        title=title,
        headers=tuple(cols[i].header for i in keep),
        rows=tuple(tuple(row[i] for i in keep) for row in grid),
        align=tuple(cols[i].align for i in keep),
        notes=notes,
    )


def task_table(summary: RunSummary, task: str) -> Table:
    """The side-by-side table of one task: one row per engine x load cell."""
    cells = summary.cells_of(task)
    notes = []
    kinds = {c.info.task_kind for c in cells if c.info.task_kind}
    if kinds:
        notes.append(f"kind: {', '.join(sorted(kinds))}")
    v = {c.quality.validity.scorer for c in cells if c.quality.validity}
    a = {c.quality.accuracy.scorer for c in cells if c.quality.accuracy}
    if v:
        notes.append(f"validity = {', '.join(sorted(v))}")
    if a:
        notes.append(f"accuracy = {', '.join(sorted(a))}")
    notes += _model_notes(cells)
    strategies = sorted({f"{c.info.engine}: {s}" for c in cells for s in c.strategies})
    if strategies:
        notes.append("strategies: " + "; ".join(strategies))
    return _build(f"Task {task}", _TASK_COLUMNS, cells, tuple(notes))


def _model_notes(cells: Sequence[CellSummary]) -> list[str]:
    """Which tokenizer counted the ideal hit rate, and what the roofline assumed."""
    notes = []
    by_tok: dict[str, list[str]] = {}
    for c in cells:
        if c.cache.ideal_hit_rate is not None:
            # The basis says which reuse the engine can reach: any token prefix, or whole blocks.
            how = ", ".join(x for x in (c.cache.ideal_tokenizer, c.cache.ideal_basis) if x)
            by_tok.setdefault(how or "unknown tokenizer", []).append(c.info.engine)
    if len(by_tok) == 1:
        notes.append(f"ideal hit rate counted with: {next(iter(by_tok))}")
    elif by_tok:
        parts = (f"{tok} ({', '.join(dict.fromkeys(engines))})" for tok, engines in by_tok.items())
        notes.append("ideal hit rate counted with: " + "; ".join(parts))
    roofs = {
        f"{r.gpu.name} {r.gpu.bandwidth / 1e12:g} TB/s, {r.model.params / 1e6:,.0f}M params x "
        f"{r.model.bytes_per_param} B -> {r.limit_tok_s:,.0f} tok/s per sequence"
        for c in cells
        if (r := c.roofline) is not None
    }
    if roofs:
        notes.append("roofline: " + "; ".join(sorted(roofs)))
    return notes


def scores_table(summary: RunSummary, task: str) -> Table | None:
    """Every scorer of a task: rate % [CI] (n applicable)."""
    cells = summary.cells_of(task)
    names = list(dict.fromkeys(s.scorer for c in cells for s in c.quality.scores))
    if not names:
        return None
    rows = []
    for c in cells:
        by = {s.scorer: s for s in c.quality.scores}
        vals = [f"{fmt.pct_ci(by.get(n))} (n={by[n].n})" if n in by else fmt.DASH for n in names]
        rows.append((c.info.engine, fmt.load_label(c), *vals))
    return Table(
        f"Scores: {task}", ("Engine", "Load", *names), tuple(rows), ("l", "l", *("r" for _ in names))
    )


def field_table(summary: RunSummary, task: str) -> Table | None:
    """Per-field accuracy (field_accuracy tasks): one row per field, one column per cell."""
    cells = [c for c in summary.cells_of(task) if c.quality.fields]
    if not cells:
        return None
    paths = list(dict.fromkeys(f.path for c in cells for f in c.quality.fields))
    shown = paths[:MAX_FIELDS]
    rows = []
    for p in shown:
        by_cell = [{f.path: f for f in c.quality.fields}.get(p) for c in cells]
        rows.append((p, *(fmt.pct(f.rate) if f else fmt.DASH for f in by_cell)))
    notes = (f"{len(paths) - len(shown)} more fields not shown",) if len(paths) > len(shown) else ()
    headers = ("Field", *(f"{c.info.engine} {fmt.load_label(c)}" for c in cells))
    return Table(f"Per-field accuracy %: {task}", headers, tuple(rows), ("l", *("r" for _ in cells)), notes)


def canary_table(summary: RunSummary) -> Table | None:
    """Canary verdicts: was the constraint actually applied?"""
    rows = tuple(
        (c.info.task, c.info.engine, fmt.load_label(c), c.quality.canary)
        for c in summary.cells
        if c.quality.canary is not None
    )
    if not rows:
        return None
    return Table("Canaries", ("Task", "Engine", "Load", "Verdict"), rows, ("l", "l", "l", "l"))


def problems_table(summary: RunSummary) -> Table | None:
    """Unsupported and failed calls per cell, with the most frequent message."""
    rows = []
    for c in summary.cells:
        for msg, n in c.errors:
            rows.append((c.info.task, c.info.engine, fmt.load_label(c), str(n), msg))
    if not rows:
        return None
    return Table(
        "Unsupported and failed calls",
        ("Task", "Engine", "Load", "Calls", "Error"),
        tuple(rows),
        ("l", "l", "l", "r", "l"),
    )


#: Server facts that tell two runs of one engine apart (engines/server_log.py), as the header says them.
_KERNEL_FACTS = (
    ("attention_backend", "attention"),
    ("grammar_backend", "grammar"),
    ("kv_cache_tokens", "KV"),
)


def _kernels(extra: tuple[tuple[str, str], ...]) -> str:
    facts = dict(extra)
    parts = [
        f"{label} {int(v):,} tokens" if key == "kv_cache_tokens" and v.isdigit() else f"{label} {v}"
        for key, label in _KERNEL_FACTS
        if (v := facts.get(key))
    ]
    return f"[{', '.join(parts)}]" if parts else ""


def _model(model: str) -> str:
    # A local checkpoint path says little beyond its folder name; hub ids stay whole.
    return PurePath(model).name if model.startswith(("/", "./", "~")) else model


def header_rows(summary: RunSummary) -> tuple[tuple[str, str], ...]:
    """The run header as (label, value) pairs."""
    r = summary.run
    engines = "; ".join(
        " ".join(
            x
            for x in (
                f"{e.name}:",
                e.kind,
                _model(e.model),
                e.version and f"({e.version})",
                _kernels(e.extra),
            )
            if x
        )
        for e in r.engines
    )
    keep_hw = ("platform", "cpu_count", "gpus", "memory_bytes")
    rows = [
        ("Suite", r.suite),
        ("Run", r.run_id),
        ("Status", r.status),
        ("Created (UTC)", r.created_utc),
        ("Git SHA", r.git_sha or fmt.DASH),
        ("Seed", str(r.seed)),
        ("Engines", engines or fmt.DASH),
        ("Versions", ", ".join(f"{k} {v}" for k, v in r.versions) or fmt.DASH),
        (
            "Hardware",
            "; ".join(f"{k}={v}" for k, v in r.hardware if k in keep_hw and v not in ("[]", "")) or fmt.DASH,
        ),
    ]
    slo = r.options.slo
    if slo.any_set:
        parts = [
            f"{k} ≤ {v:g} ms"
            for k, v in (("TTFT", slo.ttft_ms), ("TPOT", slo.tpot_ms), ("E2EL", slo.e2el_ms))
            if v
        ]
        rows.append(("SLO (goodput)", ", ".join(parts)))
    return tuple(rows)


GLOSSARY: tuple[tuple[str, str], ...] = (
    ("OK/Fail", "completed / failed calls (one call = one gen), warm-up excluded, last attempt of retries"),
    ("req/s", "request_throughput: completed calls / duration (first send to last completion)"),
    ("items/s", "completed work items / duration (shown when items make several calls)"),
    ("out tok/s", "output_throughput: completion tokens of completed calls / duration"),
    ("TTFT", "time to first token: first streamed token minus send"),
    ("TPOT", "time per output token after the first: (done - first token) / (tokens - 1)"),
    ("E2EL", "end-to-end latency: done minus send"),
    (
        "max in flight",
        "the most items in flight at once, of the most the load point allows; shown only where it fell "
        "short (fewer items than workers): the cell's figures are those of the concurrency reached",
    ),
    ("goodput", "completed calls per second meeting every set SLO"),
    ("validity", "share of completed outputs that satisfy the constraint (schema, regex or choice)"),
    ("accuracy", "share right against the reference (mean of per-call scores)"),
    ("[95% CI]", "Wilson score interval for 0/1 rates, percentile bootstrap for fractional means"),
    ("cache hit", "Σ cached / Σ prompt tokens reported by the engine; server = prefix-cache counter deltas"),
    (
        "ideal hit",
        "the workload's best possible hit rate, counted at run time: each measured prompt (in send "
        "order) covered up to its longest common token prefix with what the engine already holds (the "
        "cell's earlier prompts and generated outputs, warm-ups included), minus the last token, in whole "
        "blocks of the engine's cache block size; tokenizer and basis named under the table",
    ),
    (
        "% of ideal",
        "achieved hit rate / ideal hit rate (client-side; server counters in brackets); blank when the "
        "ideal is 0 or was not computed (runs from before the ideal moved to run time)",
    ),
    (
        "roofline",
        "per-sequence decode rate 1000 / mean TPOT as % of the memory-bandwidth bound: GPU peak bandwidth "
        "(vendor data sheet) / bytes of weights one decode step reads (params from the model's "
        "config.json x bytes per param). A batch shares one weight read, so the bound holds per "
        "sequence at any batch size; KV-cache reads are ignored, so it is an upper bound",
    ),
    (
        "canary",
        "a pattern the model would never produce unprompted: any miss means the constraint was not applied",
    ),
)
