"""The ``embedded`` engine: transformers + outlines in process, the CPU default.

Work items run on an :class:`~structbench.engines.embedded.runtime.EmbeddedRuntime`,
whose worker thread owns the model and batches concurrent calls, so the event loop only
awaits futures. Branches of a fork run concurrently (and therefore batch together);
turns of a branch run in order, each appending the real previous answer.

Importing this module loads no torch: the model is loaded by :meth:`EmbeddedEngine.start`.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable
from dataclasses import replace

from structbench.engines.base import Capabilities, Compiled, EngineInfo, ExecContext, new_record
from structbench.engines.embedded.api import GenRequest, GenResult
from structbench.engines.embedded.constraints import describe_constraint, strategy_label
from structbench.engines.embedded.runtime import EmbeddedRuntime, load_runtime, resolve_model, versions
from structbench.engines.registry import EngineEnv
from structbench.ir import Gen, Message, WorkItem
from structbench.records import CallRecord
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

    # ---- compile ---------------------------------------------------------------------

    def compile(self, item: WorkItem) -> Compiled:
        """Show, per gen, the rendered prompt and the outlines constraint.

        Answers of earlier turns are unknown before running, so they appear as
        ``<<answer of gen 'name'>>`` placeholders.
        """
        render = self._renderer()
        out = [
            f"# engine '{self.name}': transformers + outlines in process; item {item.item_id}",
            f"# model {self._spec.model} ({self._spec.dtype}), micro-batch <= {self._spec.max_batch}",
        ]
        strategies: list[str] = []
        for b, branch in enumerate(item.branches):
            history = list(item.prefix)
            for t, turn in enumerate(branch.turns):
                messages = [*history, Message("user", turn.user)]
                strategy = self._strategy(turn.gen)
                strategies.append(strategy)
                out += _describe_gen(b, t, turn.gen, strategy, self._spec.whitespace_pattern)
                prompt = render([(m.role, m.content) for m in messages])
                out += ["  prompt:", *("    " + line for line in prompt.splitlines())]
                history = [*messages, Message("assistant", f"<<answer of gen '{turn.gen.name}'>>")]
        return Compiled(self.name, item.item_id, "\n".join(out) + "\n", tuple(strategies))

    def _strategy(self, gen: Gen) -> str:
        if self.capabilities.unsupported_reason(gen.constraint) is not None:
            return "unsupported"
        if gen.constraint.kind == "choice" and gen.choice_strategy == "select":
            return SELECT_STRATEGY
        return strategy_label(gen.constraint)

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
        )
        return EngineInfo(self.name, "embedded", self._runtime.model_id, versions(), extra=extra)

    async def close(self) -> None:
        """Stop the worker thread and free the model."""
        rt, self._runtime = self._runtime, None
        if rt is not None:
            await asyncio.to_thread(rt.close)

    # ---- execute ---------------------------------------------------------------------

    async def execute(self, item: WorkItem, ctx: ExecContext) -> list[CallRecord]:
        """Run every gen of ``item``: branches concurrently, turns in order."""
        per_branch = await asyncio.gather(*(self._branch(item, b, ctx) for b in range(len(item.branches))))
        return [rec for recs in per_branch for rec in recs]

    async def _branch(self, item: WorkItem, b: int, ctx: ExecContext) -> list[CallRecord]:
        history = list(item.prefix)
        recs: list[CallRecord] = []
        failed: CallRecord | None = None
        for t, turn in enumerate(item.branches[b].turns):
            messages = (*history, Message("user", turn.user))
            base = self._base(item, b, t, turn.gen, messages, ctx)
            if failed is not None:  # the conversation has no real previous answer
                recs.append(replace(base, error=_skip_reason(failed)))
                continue
            rec = await self._gen(item, base, turn.gen, ctx)
            recs.append(rec)
            failed = rec if rec.error is not None else None
            history = [*messages, Message("assistant", rec.text)]
        return recs

    def _base(
        self, item: WorkItem, b: int, t: int, gen: Gen, messages: tuple[Message, ...], ctx: ExecContext
    ) -> CallRecord:
        return new_record(self.name, item, (b, t, gen), ctx, strategy=self._strategy(gen), prompt=messages)

    async def _gen(self, item: WorkItem, base: CallRecord, gen: Gen, ctx: ExecContext) -> CallRecord:
        reason = self.capabilities.unsupported_reason(gen.constraint)
        if reason is not None:
            return replace(base, error=reason)
        rt = self._runtime
        if rt is None:
            return replace(base, error="engine not started")
        prompt = rt.chat_prompt([(m.role, m.content) for m in base.prompt])
        if base.strategy == SELECT_STRATEGY:
            return await self._select(rt, base, prompt, gen, ctx)
        seed = zlib.crc32(f"{self._env.seed}/{item.item_id}/{base.branch}/{base.turn}".encode())
        req = GenRequest(prompt, gen.constraint, gen.max_tokens, gen.temperature, seed=seed)
        t_sent = ctx.clock()
        res = await asyncio.wrap_future(rt.submit(req))
        return _from_result(base, res, _timebase(ctx, t_sent, res.t_start))

    async def _select(
        self, rt: EmbeddedRuntime, base: CallRecord, prompt: str, gen: Gen, ctx: ExecContext
    ) -> CallRecord:
        choices = list(gen.constraint.choices)
        t_sent = ctx.clock()
        res = await asyncio.wrap_future(rt.submit_score(prompt, choices))
        conv = _timebase(ctx, t_sent, res.t_start)
        if res.error is not None:
            return replace(base, t_sent=conv(res.t_start), t_done=conv(res.t_done), error=res.error)
        best = max(range(len(choices)), key=lambda i: res.logprobs[i])
        # The whole answer arrives at once, as with SGLang's select.
        return replace(
            base,
            t_sent=conv(res.t_start),
            t_first_token=conv(res.t_done),
            t_done=conv(res.t_done),
            prompt_tokens=res.prompt_tokens,
            completion_tokens=rt.count_tokens(choices[best]),
            finish_reason="stop",
            text=choices[best],
        )


def _timebase(ctx: ExecContext, t_sent: float, t_runtime: float) -> Callable[[float], float]:
    """Map runtime ``perf_counter`` times onto the driver clock.

    In production the driver clock is ``time.perf_counter`` itself; otherwise the runtime
    deltas are offset from the driver time at which the call was sent.
    """
    if ctx.clock is time.perf_counter:
        return lambda t: t
    return lambda t: t_sent + (t - t_runtime)


def _from_result(base: CallRecord, res: GenResult, conv: Callable[[float], float]) -> CallRecord:
    return replace(
        base,
        strategy=res.strategy or base.strategy,
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


def _skip_reason(failed: CallRecord) -> str:
    why = failed.error or "failed"
    if failed.unsupported:
        return f"unsupported: an earlier turn of this branch ({why.removeprefix('unsupported: ')})"
    return f"skipped: turn {failed.turn} of this branch failed ({why})"


def _describe_gen(b: int, t: int, gen: Gen, strategy: str, ws: str | None) -> list[str]:
    head = (
        f"[branch {b} turn {t}] gen '{gen.name}': max_tokens={gen.max_tokens} temperature={gen.temperature}"
    )
    if strategy == SELECT_STRATEGY:
        cons = f"score choices {list(gen.constraint.choices)!r} by length-normalised logprob"
    elif strategy == "unsupported":
        cons = CAPABILITIES.unsupported_reason(gen.constraint) or ""
    else:
        cons = describe_constraint(gen.constraint, ws)
    return [head, f"  strategy: {strategy}", f"  constraint: {cons}"]


def _plain_render(msgs: list[tuple[str, str]]) -> str:
    return "\n".join(f"{role}: {content}" for role, content in msgs) + "\nassistant:"
