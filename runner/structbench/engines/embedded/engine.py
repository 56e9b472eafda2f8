"""The ``embedded`` engine: transformers + outlines in process, the CPU default.

Calls run on an :class:`~structbench.engines.embedded.runtime.EmbeddedRuntime`, whose
worker thread owns the model and batches concurrent calls, so the event loop only awaits
futures. The shared walker (:mod:`structbench.program`) runs the branches of a fork
concurrently, so they batch together.

Importing this module loads no torch: the model is loaded by :meth:`EmbeddedEngine.start`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from structbench.engines.base import Call, CallMeasure, Capabilities, Clock, EngineInfo, Plan, PromptTokens
from structbench.engines.embedded.api import GenRequest, GenResult
from structbench.engines.embedded.constraints import describe_constraint, strategy_label
from structbench.engines.embedded.runtime import (
    EmbeddedRuntime,
    grammar_info,
    load_runtime,
    resolve_model,
    versions,
)
from structbench.engines.registry import EngineEnv
from structbench.engines.tokenize import end_of_turn_ids
from structbench.ir import Choice, Gen, Message
from structbench.spec.engines import EmbeddedEngineSpec

CAPABILITIES = Capabilities(
    constraints=frozenset({"none", "json_schema", "regex", "choice", "grammar"}),
    grammar_syntaxes=frozenset({"lark"}),
    streaming=True,
    cached_tokens=False,
)
"""What the embedded engine runs: outlines-core for JSON/regex/choice, llguidance for lark."""

SELECT_STRATEGY = "logprob.select"

Render = Callable[[list[tuple[str, str]]], str]


class EmbeddedEngine:
    """transformers + outlines in process.

    Args:
        spec: The engine spec.
        env: Run-level context (the seed of sampled generations comes from it).
    """

    def __init__(self, spec: EmbeddedEngineSpec, env: EngineEnv) -> None:
        self.name = spec.name
        self.capabilities = CAPABILITIES
        self.max_concurrency: int | None = None
        self._spec = spec
        self._env = env
        self._runtime: EmbeddedRuntime | None = None
        self._render: Render | None = None

    @property
    def runtime(self) -> EmbeddedRuntime | None:
        """The loaded runtime after :meth:`start` (None before), e.g. to share the model."""
        return self._runtime

    # ---- plan and compile (pure) -----------------------------------------------------

    def plan(self, gen: Gen) -> Plan:
        """The outlines/llguidance strategy of ``gen``, or why it is unsupported."""
        reason = self.capabilities.unsupported_reason(gen.constraint)
        if reason is not None:
            return Plan("unsupported", reason)
        if gen.constraint.kind == "choice" and gen.choice_strategy == "select":
            return Plan(SELECT_STRATEGY)
        return Plan(strategy_label(gen.constraint))

    def render(self, call: Call) -> str:
        """The rendered prompt and the constraint of one call.

        Loads the tokenizer alone (for its chat template) when the engine is not started.
        """
        gen = call.gen
        head = f"gen '{gen.name}': max_tokens={gen.max_tokens} temperature={gen.temperature}"
        strategy = self.plan(gen).strategy
        if strategy == SELECT_STRATEGY and isinstance(gen.constraint, Choice):
            cons = f"score choices {list(gen.constraint.choices)!r} by length-normalised logprob"
        else:
            cons = describe_constraint(gen.constraint, self._spec.whitespace_pattern)
        prompt = self._renderer()([(m.role, m.content) for m in call.messages])
        out = [
            f"# transformers + outlines in process: {self._spec.model} ({self._spec.dtype}), "
            f"micro-batch <= {self._spec.max_batch}",
            head,
            f"  strategy: {strategy}",
            f"  constraint: {cons}",
            "  prompt:",
            *("    " + line for line in prompt.splitlines()),
        ]
        return "\n".join(out)

    def _renderer(self) -> Render:
        """The model's chat template; loads the tokenizer alone when not started."""
        if self._runtime is not None:
            return self._runtime.chat_prompt
        if self._render is None:
            try:
                from transformers import AutoTokenizer

                src = resolve_model(self._spec.model)
                kw = {"gguf_file": src.gguf_file} if src.gguf_file else {}
                tok = AutoTokenizer.from_pretrained(src.path, **kw)

                def render(msgs: list[tuple[str, str]]) -> str:
                    conv = [{"role": r, "content": c} for r, c in msgs]
                    return str(tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True))

                self._render = render
            except Exception:  # no tokenizer at hand: show the messages plainly
                self._render = _plain_render
        return self._render

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> EngineInfo:
        """Load the model on a worker thread (seconds) and start the batcher."""
        if self._runtime is None:
            self._runtime = await asyncio.to_thread(load_runtime, self._spec)
        s = self._spec
        extra = (
            ("dtype", s.dtype),
            ("max_batch", str(s.max_batch)),
            ("batch_window_ms", str(s.batch_window_ms)),
            ("threads", str(s.threads) if s.threads else "default"),
            ("whitespace_pattern", str(s.whitespace_pattern)),
            *grammar_info(),
        )
        return EngineInfo(
            self.name,
            "embedded",
            self._runtime.model_id,
            versions(),
            extra=extra,
            dtype=s.dtype,
            context_length=self._runtime.context_length,
        )

    async def close(self) -> None:
        """Stop the worker thread and free the model."""
        rt, self._runtime = self._runtime, None
        if rt is not None:
            await asyncio.to_thread(rt.close)

    def prompt_tokens(self) -> PromptTokens | None:
        """The loaded model's chat template and tokenizer (exact, since this engine is the model)."""
        rt = self._runtime
        if rt is None:
            return None

        def render(messages: Sequence[Message]) -> str:
            return rt.chat_prompt([(m.role, m.content) for m in messages])

        def render_turn(messages: Sequence[Message]) -> str:
            return rt.chat_prompt([(m.role, m.content) for m in messages], add_generation_prompt=False)

        label = f"model tokenizer ({Path(rt.model_id).name or rt.model_id})"
        return PromptTokens(render, rt.encode, label, stop_ids=end_of_turn_ids(render_turn, rt.encode))

    # ---- generate ------------------------------------------------------------------

    async def generate(self, call: Call, clock: Clock) -> CallMeasure:
        """Run one call on the runtime's batcher, timed by the runtime's own clock."""
        rt = self._runtime
        if rt is None:
            return CallMeasure(error="engine not started")
        gen = call.gen
        prompt = rt.chat_prompt([(m.role, m.content) for m in call.messages])
        t_sent = clock()
        if self.plan(gen).strategy == SELECT_STRATEGY:
            return await self._select(rt, prompt, gen, clock, t_sent)
        req = GenRequest(prompt, gen.constraint, gen.max_tokens, gen.temperature, seed=call.seed)
        res = await asyncio.wrap_future(rt.submit(req))
        return _from_result(res, _timebase(clock, t_sent, res.t_start))

    async def _select(
        self, rt: EmbeddedRuntime, prompt: str, gen: Gen, clock: Clock, t_sent: float
    ) -> CallMeasure:
        choices = list(gen.constraint.choices) if isinstance(gen.constraint, Choice) else []
        res = await asyncio.wrap_future(rt.submit_score(prompt, choices))
        conv = _timebase(clock, t_sent, res.t_start)
        if res.error is not None:
            return CallMeasure(t_sent=conv(res.t_start), t_done=conv(res.t_done), error=res.error)
        best = max(range(len(choices)), key=lambda i: res.logprobs[i])
        # The whole answer arrives at once, as with SGLang's select.
        return CallMeasure(
            t_sent=conv(res.t_start),
            t_first_token=conv(res.t_done),
            t_done=conv(res.t_done),
            prompt_tokens=res.prompt_tokens,
            completion_tokens=rt.count_tokens(choices[best]),
            finish_reason="stop",
            text=choices[best],
        )


def _timebase(clock: Clock, t_sent: float, t_runtime: float) -> Callable[[float], float]:
    """Map runtime ``perf_counter`` times onto the driver clock.

    In production the driver clock is ``time.perf_counter`` itself; otherwise the runtime
    deltas are offset from the driver time at which the call was sent.
    """
    if clock is time.perf_counter:
        return lambda t: t
    return lambda t: t_sent + (t - t_runtime)


def _from_result(res: GenResult, conv: Callable[[float], float]) -> CallMeasure:
    return CallMeasure(
        strategy=res.strategy or None,
        t_sent=conv(res.t_start),
        t_first_token=conv(res.t_first_token) if res.t_first_token is not None else None,
        t_done=conv(res.t_done),
        token_times=tuple(conv(t) for t in res.token_times),
        prompt_tokens=res.prompt_tokens if res.error is None or res.prompt_tokens else None,
        completion_tokens=res.completion_tokens if res.error is None or res.completion_tokens else None,
        finish_reason=res.finish_reason,
        text=res.text,
        error=res.error,
    )


def _plain_render(msgs: list[tuple[str, str]]) -> str:
    return "\n".join(f"{role}: {content}" for role, content in msgs) + "\nassistant:"
