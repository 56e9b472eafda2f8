"""Generate mode: each gen is its own request, so every call gets its own TTFT and ITL.

The prompt of each call is the chat so far, rendered with the same role table SGLang's
interpreter uses in program mode (so both modes send the same text), and the sampling
parameters are those the interpreter would send. Turns of a branch run in order, with the
real earlier answers in context; branches run concurrently.

Calls go to SGLang's native ``/generate`` API with streaming (server), or to the embedded
runtime. ``select`` gens use the backend's own ``select`` (SGLang's logprob scoring).
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol

import httpx

from structbench.engines.base import Clock
from structbench.engines.embedded.api import GenRequest, Runtime
from structbench.engines.sglang.outcome import (
    CallOutcome,
    ToDriver,
    error_outcomes,
    finish_reason_of,
    outcome_from_meta,
)
from structbench.engines.sglang.plan import GenCall, PlanTurn, ProgramPlan
from structbench.engines.sglang.templates import RoleTemplate, render
from structbench.ir import NO_CONSTRAINT, Constraint, Message


class Caller(Protocol):
    """Runs one gen call on a rendered prompt; never raises."""

    async def __call__(self, prompt: str, call: GenCall) -> CallOutcome:
        """Return the call's outcome (``error`` set on failure)."""
        ...


def sampling_params(call: GenCall, stops: tuple[str, ...]) -> dict[str, object]:
    """``sampling_params`` of the native ``/generate`` request for one gen."""
    g = call.gen
    sp: dict[str, object] = {
        "max_new_tokens": g.max_tokens,
        "temperature": g.temperature,
        "stop": list(stops),
    }
    if call.json_schema is not None:
        sp["json_schema"] = call.json_schema
    elif call.regex is not None:
        sp["regex"] = call.regex
    elif call.grammar is not None:
        sp["ebnf"] = call.grammar[1]
    return sp


def _events(chunks: list[tuple[float, str]]) -> list[tuple[float, dict[str, Any]]] | str:
    """The parsed ``data:`` events up to ``[DONE]``, or an error text."""
    events: list[tuple[float, dict[str, Any]]] = []
    for t, line in chunks:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        try:
            ev = json.loads(payload)
        except json.JSONDecodeError:
            return f"bad stream event: {payload[:200]}"
        if not isinstance(ev, dict):
            return f"bad stream event: {payload[:200]}"
        if "error" in ev:
            err = ev["error"]
            return f"server error: {err.get('message', err) if isinstance(err, dict) else err}"
        events.append((t, ev))
    return events or "empty stream"


def _token_times(events: list[tuple[float, dict[str, Any]]]) -> tuple[float | None, tuple[float, ...]]:
    """First-token time and later chunk times, as SGLang's own bench_serving counts them.

    The first token is the first event with text; a later event counts only when it
    brings new tokens (a final event that only closes the stream does not).
    """
    first: float | None = None
    later: list[float] = []
    seen = 0
    for t, ev in events:
        n = (ev.get("meta_info") or {}).get("completion_tokens")
        if first is None:
            if ev.get("text"):
                first, seen = t, n if isinstance(n, int) else 1
            continue
        if not isinstance(n, int) or n > seen:
            later.append(t)
            seen = n if isinstance(n, int) else seen + 1
    return first, tuple(later)


def parse_stream(chunks: list[tuple[float, str]], t_sent: float, t_done: float) -> CallOutcome:
    """Reduce the raw SSE lines of a streamed ``/generate`` (with arrival times) to an outcome.

    Each ``data:`` event carries the cumulative text so far (SGLang's default, without
    ``--incremental-streaming-output``) and the ``meta_info`` so far.
    """
    events = _events(chunks)
    if isinstance(events, str):
        return CallOutcome(t_sent=t_sent, t_done=t_done, error=events)
    last = events[-1][1]
    meta: dict[str, Any] = last.get("meta_info") or {}
    first, later = _token_times(events)
    return CallOutcome(
        text=str(last.get("text", "")),
        t_sent=t_sent,
        t_first_token=first,
        t_done=t_done,
        token_times=later,
        prompt_tokens=meta.get("prompt_tokens"),
        completion_tokens=meta.get("completion_tokens"),
        cached_tokens=meta.get("cached_tokens"),
        finish_reason=finish_reason_of(meta.get("finish_reason")),
    )


@dataclass(frozen=True, slots=True)
class HttpGenerate:
    """Streams ``/generate`` on an SGLang server (all gens except ``select``)."""

    client: httpx.AsyncClient
    base_url: str
    stops: tuple[str, ...]
    clock: Clock

    async def __call__(self, prompt: str, call: GenCall) -> CallOutcome:
        """Send one streaming request and time its chunks."""
        body = {"text": prompt, "sampling_params": sampling_params(call, self.stops), "stream": True}
        chunks: list[tuple[float, str]] = []
        clock = self.clock
        t_sent = clock()
        try:
            async with self.client.stream("POST", f"{self.base_url}/generate", json=body) as resp:
                if resp.status_code != 200:
                    detail = (await resp.aread()).decode("utf-8", errors="replace")[:500]
                    return CallOutcome(
                        t_sent=t_sent, t_done=clock(), error=f"HTTP {resp.status_code}: {detail}"
                    )
                # Hot path: timestamps and raw lines only; parsing waits for the end.
                async for line in resp.aiter_lines():
                    chunks.append((clock(), line))
        except httpx.HTTPError as e:
            return CallOutcome(t_sent=t_sent, t_done=clock(), error=f"{type(e).__name__}: {e}")
        return parse_stream(chunks, t_sent, clock())


def runtime_constraint(call: GenCall) -> Constraint:
    """The embedded runtime's constraint for a gen call (choices never get here)."""
    if call.json_schema is not None:
        return Constraint(kind="json_schema", json_schema=call.json_schema)
    if call.regex is not None:
        return Constraint(kind="regex", regex=call.regex)
    if call.grammar is not None:
        return Constraint(kind="grammar", grammars=(call.grammar,))
    return NO_CONSTRAINT


@dataclass(frozen=True, slots=True)
class RuntimeGenerate:
    """Runs gens on the embedded runtime, with its own first-token and token times."""

    runtime: Runtime
    stops: tuple[str, ...]
    to_driver: ToDriver

    async def __call__(self, prompt: str, call: GenCall) -> CallOutcome:
        """Submit one request and wait for it without blocking the loop."""
        from structbench.engines.sglang.backend import trim_at_stop

        g = call.gen
        req = GenRequest(prompt, runtime_constraint(call), g.max_tokens, g.temperature, self.stops)
        res = await asyncio.wrap_future(self.runtime.submit(req))
        d = self.to_driver
        return CallOutcome(
            text=trim_at_stop(res.text, self.stops),
            t_sent=d(res.t_start),
            t_first_token=None if res.t_first_token is None else d(res.t_first_token),
            t_done=d(res.t_done),
            token_times=tuple(d(t) for t in res.token_times),
            prompt_tokens=res.prompt_tokens,
            completion_tokens=res.completion_tokens,
            cached_tokens=0,
            finish_reason=res.finish_reason,
            error=res.error,
        )


@dataclass(frozen=True, slots=True)
class BackendSelect:
    """``select`` gens through an SGLang backend's own ``select`` (logprob scoring), off the loop."""

    backend: Any
    executor: Executor
    clock: Clock
    to_driver: ToDriver

    async def __call__(self, prompt: str, call: GenCall) -> CallOutcome:
        """Score the choices after ``prompt`` and pick the best one."""
        from sglang.lang.choices import token_length_normalized

        # The backends read only the prompt text and images from the interpreter state.
        state = SimpleNamespace(text_=prompt, images_=[])
        choices = list(call.choices)
        t_sent = self.clock()

        def pick() -> Any:
            return self.backend.select(state, choices, call.gen.temperature, token_length_normalized)

        try:
            d = await asyncio.get_running_loop().run_in_executor(self.executor, pick)
        except Exception as e:
            return CallOutcome(t_sent=t_sent, t_done=self.clock(), error=f"{type(e).__name__}: {e}")
        return outcome_from_meta(str(d.decision), d.meta_info, self.to_driver, t_sent)


@dataclass(frozen=True, slots=True)
class Route:
    """Sends ``select`` gens to one caller and all others to another."""

    generate: Caller
    select: Caller | None

    async def __call__(self, prompt: str, call: GenCall) -> CallOutcome:
        """Dispatch on the call's kind."""
        if call.unsupported:
            return CallOutcome(error=call.unsupported)
        if call.choices:
            if self.select is None:
                return CallOutcome(error="unsupported: sgl.select without a select backend")
            return await self.select(prompt, call)
        return await self.generate(prompt, call)


async def _branch(
    prefix: tuple[Message, ...],
    turns: tuple[PlanTurn, ...],
    template: RoleTemplate,
    caller: Caller,
    clock: Clock,
) -> list[CallOutcome]:
    msgs = list(prefix)
    out: list[CallOutcome] = []
    for i, turn in enumerate(turns):
        msgs.append(Message("user", turn.user))
        o = await caller(render(template, msgs, True), turn.call)
        out.append(o)
        if o.error is not None:
            now = clock()
            return out + error_outcomes(
                len(turns) - i - 1, "skipped: an earlier gen of this branch failed", now, now
            )
        msgs.append(Message("assistant", o.text))
    return out


async def run_generate(
    plan: ProgramPlan, template: RoleTemplate, caller: Caller, clock: Clock
) -> list[CallOutcome]:
    """Run every gen of a plan as its own call; outcomes in plan order; never raises."""
    results = await asyncio.gather(
        *(_branch(plan.prefix, turns, template, caller, clock) for turns in plan.branches),
        return_exceptions=True,
    )
    out: list[CallOutcome] = []
    for turns, r in zip(plan.branches, results, strict=True):
        if isinstance(r, BaseException):
            now = clock()
            out += error_outcomes(len(turns), f"{type(r).__name__}: {r}", now, now)
        else:
            out += r
    return out
