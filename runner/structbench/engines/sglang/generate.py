"""Generate mode: each gen is its own call, so every call gets its own TTFT and ITL.

The prompt of each call is the chat so far, rendered with the same role table SGLang's
interpreter uses in program mode (so both modes send the same text), and the sampling
parameters are those the interpreter would send. Multi-turn and fork are the shared
walker's (:mod:`structbench.program`); this module runs one call.

Calls go to SGLang's native ``/generate`` API, streamed through the shared
:class:`~structbench.engines.stream.HttpClient` (the client that times every HTTP
engine), or to the embedded runtime. ``select`` gens use the backend's own ``select``
(SGLang's logprob scoring), which returns the whole answer at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from structbench.engines.base import CallMeasure, Clock
from structbench.engines.embedded.api import GenRequest, Runtime
from structbench.engines.sglang.outcome import GenerateReader, ToDriver, measure_from_meta
from structbench.engines.sglang.plan import GenCall
from structbench.engines.stream import HttpClient, JsonBody
from structbench.ir import NO_CONSTRAINT, Constraint, Grammar, JsonSchema, Regex

GENERATE_PATH = "/generate"


def sampling_params(
    call: GenCall, stops: tuple[str, ...], extra: Mapping[str, object] | None = None
) -> dict[str, object]:
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
    sp.update(extra or {})
    return sp


def generate_body(
    prompt: str, call: GenCall, stops: tuple[str, ...], extra: Mapping[str, object] | None = None
) -> JsonBody:
    """The streaming ``/generate`` body of one gen."""
    return {"text": prompt, "sampling_params": sampling_params(call, stops, extra), "stream": True}


def render_body(body: JsonBody) -> str:
    """The ``/generate`` request as ``structbench compile`` prints it."""
    return f"POST {GENERATE_PATH}\n{json.dumps(body, indent=2)}"


async def http_generate(client: HttpClient, body: JsonBody, clock: Clock) -> CallMeasure:
    """Stream one ``/generate`` request through the shared client."""
    return await client.stream(GENERATE_PATH, body, clock, GenerateReader())


def runtime_constraint(call: GenCall) -> Constraint:
    """The embedded runtime's constraint for a gen call (choices never get here)."""
    if call.json_schema is not None:
        return JsonSchema(call.json_schema)
    if call.regex is not None:
        return Regex(call.regex)
    if call.grammar is not None:
        return Grammar((call.grammar,))
    return NO_CONSTRAINT


@dataclass(frozen=True, slots=True)
class RuntimeGenerate:
    """Runs gens on the embedded runtime, with its own first-token and token times."""

    runtime: Runtime
    stops: tuple[str, ...]

    async def __call__(self, prompt: str, call: GenCall, to_driver: ToDriver, seed: int) -> CallMeasure:
        """Submit one request and wait for it without blocking the loop."""
        from structbench.engines.sglang.backend import trim_at_stop

        g = call.gen
        req = GenRequest(prompt, runtime_constraint(call), g.max_tokens, g.temperature, self.stops, seed)
        res = await asyncio.wrap_future(self.runtime.submit(req))
        d = to_driver
        return CallMeasure(
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

    async def __call__(self, prompt: str, call: GenCall, clock: Clock, to_driver: ToDriver) -> CallMeasure:
        """Score the choices after ``prompt`` and pick the best one."""
        from sglang.lang.choices import token_length_normalized

        # The backends read only the prompt text and images from the interpreter state.
        state = SimpleNamespace(text_=prompt, images_=[])
        choices = list(call.choices)
        t_sent = clock()

        def pick() -> Any:
            return self.backend.select(state, choices, call.gen.temperature, token_length_normalized)

        try:
            d = await asyncio.get_running_loop().run_in_executor(self.executor, pick)
        except Exception as e:
            return CallMeasure(t_sent=t_sent, t_done=clock(), error=f"{type(e).__name__}: {e}")
        return measure_from_meta(str(d.decision), d.meta_info, to_driver, t_sent)
