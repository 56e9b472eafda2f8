"""Reading each client's result file, and the ratio entries of ``crosscheck.json``.

Definitions of the three compared metrics, as each client computes them (read in vLLM
0.26.0 ``vllm/benchmarks/serve.py`` + ``lib/endpoint_request_func.py``, SGLang 0.5.17
``sglang/benchmark/serving.py``, structbench ``metrics/calls.py`` + ``metrics/cell.py``):

* output tok/s = output tokens / duration. vLLM: duration from before the first request is
  created to after the last finishes, tokens from ``usage.completion_tokens``. SGLang: the
  same duration; tokens from ``meta_info.completion_tokens`` (``/generate``) or the requested
  length when the chat stream carries no usage. structbench: first ``t_sent`` to last
  ``t_done``; tokens from usage / ``meta_info``.
* mean TTFT: start to first token. vLLM and SGLang start the clock before aiohttp encodes the
  body (SGLang also opens a new session, so a new TCP connection, per request); structbench
  after encoding, with pooled connections. First token: vLLM chat takes the first chunk with
  ``choices`` (the empty role chunk, which vLLM writes just before the first token's chunk),
  vLLM completions and SGLang the first chunk with text; structbench the first with text.
* mean TPOT = (E2E - TTFT) / (output tokens - 1) in all three. E2E ends: vLLM chat at the
  last chunk before ``[DONE]`` (the usage chunk), vLLM completions at the last chunk with
  choices, SGLang at the ``[DONE]`` line, structbench when the body is read to its end.

So the definitions differ only by where a few sub-millisecond moments fall; what differs in
practice is each client's own cost per request. :func:`refdef_metrics` recomputes
structbench's figures from its raw records with the reference formulas, which checks
structbench's metric code against them.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from crosscheck_workload import Workload

METRICS: tuple[str, ...] = ("output_throughput", "mean_ttft_ms", "mean_tpot_ms")
#: Reported, not held to the target. ITL: the clients define the gaps differently.
#: mean_ttft_steady_ms: TTFT over the requests after the first ``concurrency`` (in send order),
#: which leaves out the first wave's connection set-up (SGLang's client connects anew for
#: every request, vLLM's and structbench's reuse pooled connections after the first wave).
#: server_mean_ttft_ms: the server's own TTFT histogram (sum / count deltas over the arm), the same
#: clock for both clients: it tells a client's measurement from what the server did.
INFO_METRICS: tuple[str, ...] = ("mean_itl_ms", "mean_ttft_steady_ms", "server_mean_ttft_ms")
TARGET = (0.97, 1.03)


@dataclass(frozen=True, slots=True)
class ArmMetrics:
    """One arm's figures, whatever client produced them.

    ``input_lens`` are as the client reports them: server-counted for vLLM and structbench,
    counted locally by SGLang's client (on the text it sends).
    """

    output_throughput: float | None
    mean_ttft_ms: float | None
    mean_tpot_ms: float | None
    mean_itl_ms: float | None
    mean_ttft_steady_ms: float | None
    completed: int
    failed: int
    duration_s: float | None
    input_lens: tuple[int, ...] = ()
    output_lens: tuple[int, ...] = ()
    #: structbench only: the same records under the reference formulas (see module doc).
    refdef: tuple[tuple[str, float | None], ...] = ()

    def value(self, metric: str) -> float | None:
        """A metric by its vLLM-bench name."""
        v: object = getattr(self, metric)
        return v if isinstance(v, float) else None


def _f(x: object) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _ints(xs: object) -> tuple[int, ...]:
    return tuple(int(x) for x in xs) if isinstance(xs, list) else ()


def steady_mean_ms(ttfts_s: object, first_wave: int) -> float | None:
    """Mean TTFT in ms of the requests after the first ``first_wave`` (list in send order)."""
    if not isinstance(ttfts_s, list):
        return None
    rest = [float(x) for x in ttfts_s[first_wave:] if isinstance(x, (int, float)) and x > 0]
    return statistics.fmean(rest) * 1000 if rest else None


def parse_vllm(path: Path, first_wave: int = 0) -> ArmMetrics:
    """A ``vllm bench serve --save-result --save-detailed`` JSON file.

    Its per-request lists follow the input order, which is the send order (one task per
    request, created in order, behind one semaphore).
    """
    d = json.loads(path.read_text(encoding="utf-8"))
    errors = d.get("errors") or []
    return ArmMetrics(
        output_throughput=_f(d.get("output_throughput")),
        mean_ttft_ms=_f(d.get("mean_ttft_ms")),
        mean_tpot_ms=_f(d.get("mean_tpot_ms")),
        mean_itl_ms=_f(d.get("mean_itl_ms")),
        mean_ttft_steady_ms=steady_mean_ms(d.get("ttfts"), first_wave),
        completed=int(d.get("completed", 0)),
        failed=int(d.get("failed", sum(1 for e in errors if e))),
        duration_s=_f(d.get("duration")),
        input_lens=_ints(d.get("input_lens")),
        output_lens=_ints(d.get("output_lens")),
    )


def parse_sglang(path: Path, first_wave: int = 0) -> ArmMetrics:
    """The last line of a ``sglang.bench_serving --output-file ... --output-details`` JSONL file.

    As in vLLM's client, the per-request lists follow the (shuffled) input order, the send order.
    """
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    d = json.loads(lines[-1])
    errors = d.get("errors") or []
    completed = int(d.get("completed", 0))
    return ArmMetrics(
        output_throughput=_f(d.get("output_throughput")),
        mean_ttft_ms=_f(d.get("mean_ttft_ms")),
        mean_tpot_ms=_f(d.get("mean_tpot_ms")),
        mean_itl_ms=_f(d.get("mean_itl_ms")),
        mean_ttft_steady_ms=steady_mean_ms(d.get("ttfts"), first_wave),
        completed=completed,
        failed=sum(1 for e in errors if e) if errors else 0,
        duration_s=_f(d.get("duration")),
        input_lens=_ints(d.get("input_lens")),
        output_lens=_ints(d.get("output_lens")),
    )


def parse_structbench(path: Path) -> ArmMetrics:
    """The ``result.json`` that ``crosscheck_sbarm.py`` writes."""
    d = json.loads(path.read_text(encoding="utf-8"))
    refdef = d.get("refdef") or {}
    return ArmMetrics(
        output_throughput=_f(d.get("output_throughput")),
        mean_ttft_ms=_f(d.get("mean_ttft_ms")),
        mean_tpot_ms=_f(d.get("mean_tpot_ms")),
        mean_itl_ms=_f(d.get("mean_itl_ms")),
        mean_ttft_steady_ms=_f(d.get("mean_ttft_steady_ms")),
        completed=int(d.get("completed", 0)),
        failed=int(d.get("failed", 0)),
        duration_s=_f(d.get("duration_s")),
        input_lens=_ints(d.get("input_lens")),
        output_lens=_ints(d.get("output_lens")),
        refdef=tuple((str(k), _f(v)) for k, v in refdef.items()),
    )


@dataclass(frozen=True, slots=True)
class Timing:
    """One request's raw moments (seconds, one clock) and its output tokens."""

    t_sent: float
    t_first: float
    t_done: float
    n_out: int


def refdef_metrics(ts: Sequence[Timing]) -> dict[str, float | None]:
    """The three metrics under the reference clients' formulas (``calculate_metrics``).

    TTFT and TPOT are means over requests (TPOT over those with more than one token);
    throughput is total output tokens over first send to last finish.
    """
    if not ts:
        return {m: None for m in METRICS}
    dur = max(t.t_done for t in ts) - min(t.t_sent for t in ts)
    tpots = [(t.t_done - t.t_first) / (t.n_out - 1) for t in ts if t.n_out > 1]
    return {
        "output_throughput": sum(t.n_out for t in ts) / dur if dur > 0 else None,
        "mean_ttft_ms": statistics.fmean(t.t_first - t.t_sent for t in ts) * 1000,
        "mean_tpot_ms": statistics.fmean(tpots) * 1000 if tpots else None,
    }


@dataclass(frozen=True, slots=True)
class ArmOutcome:
    """An arm as ``arms.jsonl`` records it: what ran, how it went, what it measured."""

    arm_id: str
    path: str
    engine: str
    client: str
    concurrency: int
    round: int
    n_prompts: int
    command: str
    returncode: int
    wall_s: float
    flushed: bool
    metrics: ArmMetrics | None = None
    error: str | None = None
    #: Server prefix-cache counter deltas over the arm, engine-neutral (hits, queries).
    server_cache: tuple[float, float] | None = None
    #: User + system CPU seconds of the arm's whole process (imports and tokenizer included):
    #: a client that saturates its core delays its own timestamps.
    client_cpu_s: float | None = None
    #: The client's busiest 1-s window, in cores (sampled every 0.5 s): ~1.0 is a saturated client.
    client_cpu_peak: float | None = None
    #: The server's TTFT histogram deltas over the arm (seconds summed, requests counted).
    server_ttft: tuple[float, float] | None = None

    def server_mean_ttft_ms(self) -> float | None:
        """The server's mean TTFT over this arm's requests, in ms (None without its histogram)."""
        if self.server_ttft is None or self.server_ttft[1] <= 0:
            return None
        return 1000.0 * self.server_ttft[0] / self.server_ttft[1]


@dataclass(frozen=True, slots=True)
class Entry:
    """One (engine, path, concurrency, metric) of ``crosscheck.json``."""

    engine: str
    path: str
    concurrency: int
    metric: str
    structbench: float | None
    reference: float | None
    ratio: float | None
    within_target: bool | None
    gated: bool
    per_round: tuple[tuple[int, float | None, float | None], ...]
    structbench_refdef: float | None = None
    commands: tuple[str, ...] = ()
    checks: tuple[tuple[str, bool], ...] = field(default=())
    #: The output-length rule of these arms: its spread F (0: every request the fixed length)
    #: and the tokens each arm had to generate in all (the sum of its per-request lengths).
    output_len_spread: float = 0.0
    output_tokens_expected: int | None = None


def _mean(xs: Iterable[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.fmean(vals) if vals else None


def expected_input_lens(w: Workload, path: str, client: str, n: int) -> tuple[int, ...] | None:
    """The prompt lengths an arm should report, sorted (None when the workload has no counts).

    Servers count the template-rendered prompt; SGLang's client counts the text it sends
    itself, which on its chat path is the raw user text.
    """
    raw_count = client == "reference" and path == "sglang-oai-chat"
    lens = w.prompt_tokens if raw_count else w.rendered_tokens
    return None if lens is None else tuple(sorted(lens[:n]))


def expected_output_lens(w: Workload | None, n: int, output_len: int) -> tuple[int, ...]:
    """The output lengths an arm of ``n`` prompts must report, sorted (SGLang's client shuffles).

    The workload's per-request lengths (drawn with a spread, else all ``output_len``); without a
    workload file, ``n`` times ``output_len``.
    """
    lens = w.request_output_lens()[:n] if w is not None else (output_len,) * n
    return tuple(sorted(lens))


def _prompts_match(arms: Sequence[ArmOutcome], w: Workload | None) -> bool:
    """Every arm reported the prompt lengths its workload implies (as multisets: SGLang shuffles)."""
    for a in arms:
        if a.metrics is None:
            return False
        want = expected_input_lens(w, a.path, a.client, a.n_prompts) if w is not None else None
        got = tuple(sorted(a.metrics.input_lens))
        if want is not None and got != want:
            return False
    return True


def _checks(
    sb: Sequence[ArmOutcome], ref: Sequence[ArmOutcome], w: Workload | None, output_len: int
) -> tuple[tuple[str, bool], ...]:
    """Did both clients run the same, complete workload? (Each arm's own figures.)"""
    arms = [*sb, *ref]
    ms = [a.metrics for a in arms if a.metrics is not None]
    full = all(
        a.metrics is not None and a.metrics.failed == 0 and a.metrics.completed == a.n_prompts for a in arms
    )
    # Each request generated exactly its own length (as multisets: the order is each client's).
    outs = all(
        a.metrics.output_lens
        and tuple(sorted(a.metrics.output_lens)) == expected_output_lens(w, a.n_prompts, output_len)
        for a in arms
        if a.metrics is not None
    )
    return (
        ("all_arms_ran", bool(sb) and bool(ref) and len(ms) == len(arms)),
        ("no_failed_requests", full),
        ("output_len_exact", bool(ms) and outs),
        ("prompt_lens_match", bool(ms) and _prompts_match(arms, w)),
        ("prefix_cache_flushed", all(a.flushed for a in arms)),
    )


def paired_rounds(sb: Sequence[ArmOutcome], ref: Sequence[ArmOutcome]) -> list[int]:
    """Rounds in which both clients produced figures: the only ones a ratio may compare."""
    return sorted(
        {a.round for a in sb if a.metrics is not None} & {a.round for a in ref if a.metrics is not None}
    )


def build_entries(
    outcomes: Sequence[ArmOutcome], output_len: int, w: Workload | None = None, min_rounds: int = 2
) -> list[Entry]:
    """Group arms by (path, concurrency) and compare the clients' means over their paired rounds.

    A round that only one client finished (a sitting cut short) stays in ``per_round`` but out of
    the means, so that neither client's figure carries a round the other lacks; ``rounds_paired``
    says whether at least ``min_rounds`` rounds were compared.
    """
    keys = sorted({(a.path, a.concurrency) for a in outcomes}, key=lambda k: (k[0], k[1]))
    entries: list[Entry] = []
    for path, c in keys:
        group = [a for a in outcomes if a.path == path and a.concurrency == c]
        sb = [a for a in group if a.client == "structbench"]
        ref = [a for a in group if a.client == "reference"]
        paired = paired_rounds(sb, ref)
        checks = (*_checks(sb, ref, w, output_len), ("rounds_paired", len(paired) >= min_rounds))
        commands = tuple(a.command for a in sorted(group, key=lambda a: (a.round, a.arm_id)))
        sb_p, ref_p = [a for a in sb if a.round in paired], [a for a in ref if a.round in paired]
        spread = w.output_spread if w is not None else 0.0
        total = sum(expected_output_lens(w, group[0].n_prompts, output_len))
        for metric in (*METRICS, *INFO_METRICS):
            e = _entry(group, sb_p, ref_p, metric, checks, commands)
            entries.append(replace(e, output_len_spread=spread, output_tokens_expected=total))
    return entries


def _value(a: ArmOutcome, metric: str) -> float | None:
    if a.metrics is None or a.returncode != 0:
        return None
    return a.server_mean_ttft_ms() if metric == "server_mean_ttft_ms" else a.metrics.value(metric)


def _entry(
    group: Sequence[ArmOutcome],
    sb: Sequence[ArmOutcome],
    ref: Sequence[ArmOutcome],
    metric: str,
    checks: tuple[tuple[str, bool], ...],
    commands: tuple[str, ...],
) -> Entry:
    rounds = sorted({a.round for a in group})
    per_round = tuple(
        (
            r,
            _mean(_value(a, metric) for a in group if a.client == "structbench" and a.round == r),
            _mean(_value(a, metric) for a in group if a.client == "reference" and a.round == r),
        )
        for r in rounds
    )
    s, f = _mean(_value(a, metric) for a in sb), _mean(_value(a, metric) for a in ref)
    ratio = s / f if s is not None and f else None
    gated = metric in METRICS
    refdef = _mean(dict(a.metrics.refdef).get(metric) for a in sb if a.metrics is not None)
    return Entry(
        engine=group[0].engine,
        path=group[0].path,
        concurrency=group[0].concurrency,
        metric=metric,
        structbench=s,
        reference=f,
        ratio=ratio,
        within_target=None if ratio is None or not gated else TARGET[0] <= ratio <= TARGET[1],
        gated=gated,
        per_round=per_round,
        structbench_refdef=refdef,
        commands=commands,
        checks=checks,
    )
