"""OpenAI-compatible requests for work items: bodies, multi-turn, fan-out, records.

:class:`HttpProgram` turns a work item into streamed requests: each ``gen`` is one request
whose messages are the prefix, the branch's earlier turns (with the real previous answers)
and the new user message. Turns of a branch run in order; the branches of a fork run
concurrently and share the prefix. An engine module supplies only its constraint mapping
(a :data:`ConstraintMapper`); :meth:`HttpProgram.compile` prints the bodies for
``structbench compile``.

The ``completions`` API has no chat template on the client side, so its prompt is the
messages joined as ``"<role>: <content>"`` paragraphs followed by ``"assistant:"``: a
plain-text approximation, meant for servers without a chat endpoint. ``chat`` is the
default and the tested path.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from structbench.engines.base import Compiled, ExecContext, new_record
from structbench.engines.http import JsonBody, OpenAIClient, StreamResult
from structbench.ir import Gen, Message, WorkItem
from structbench.records import CallRecord

Api = Literal["chat", "completions"]
PREVIOUS_ANSWER = "<previous answer>"
SKIPPED = "skipped: an earlier turn of this branch failed"
_PATHS: dict[str, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


@dataclass(frozen=True, slots=True)
class ConstraintPlan:
    """How one gen's constraint goes on the wire.

    Attributes:
        strategy: Label recorded in ``CallRecord.strategy`` (e.g. ``structured_outputs.regex``).
        fields: Top-level body fields that carry the constraint.
        error: ``"unsupported: ..."`` when the engine can't run it (nothing is sent).
    """

    strategy: str
    fields: tuple[tuple[str, object], ...] = ()
    error: str | None = None


ConstraintMapper = Callable[[Gen], ConstraintPlan]


def chat_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """IR messages as OpenAI chat messages."""
    return [{"role": m.role, "content": m.content} for m in messages]


def completion_prompt(messages: Sequence[Message]) -> str:
    """The plain-text prompt used for ``api: completions`` (see the module docstring)."""
    return "".join(f"{m.role}: {m.content}\n\n" for m in messages) + "assistant:"


def gen_seed(seed: int, item_id: str, branch: int, turn: int) -> int:
    """A stable per-request seed, so branches of a fork sample independently."""
    return zlib.crc32(f"{seed}:{item_id}:{branch}:{turn}".encode()) & 0x7FFFFFFF


@dataclass(frozen=True, slots=True)
class _Call:
    branch: int
    turn: int
    gen: Gen
    plan: ConstraintPlan
    messages: tuple[Message, ...] = ()


@dataclass(frozen=True, slots=True)
class HttpProgram:
    """Turns work items into OpenAI-compatible requests for one engine.

    Attributes:
        engine: Engine name written into records.
        api: ``chat`` or ``completions``.
        mapper: The engine's constraint mapping.
        seed: Run seed; each request gets :func:`gen_seed` of it.
        extra_body: Fields added to every body (e.g. ``ignore_eos`` for benchmarks).
    """

    engine: str
    api: Api
    mapper: ConstraintMapper
    seed: int = 0
    extra_body: tuple[tuple[str, object], ...] = ()
    #: Plans per gen: mapping a schema parses JSON, which the request path shouldn't redo.
    _plans: dict[Gen, ConstraintPlan] = field(default_factory=dict, compare=False, repr=False)

    def plan(self, gen: Gen) -> ConstraintPlan:
        """The (cached) constraint plan of ``gen``."""
        plan = self._plans.get(gen)
        if plan is None:
            plan = self._plans[gen] = self.mapper(gen)
        return plan

    @property
    def path(self) -> str:
        """Endpoint path for the API."""
        return _PATHS[self.api]

    def body(self, model: str, item: WorkItem, call: _Call) -> JsonBody:
        """The JSON body of one gen."""
        body: JsonBody = {"model": model}
        if self.api == "chat":
            body["messages"] = chat_messages(call.messages)
        else:
            body["prompt"] = completion_prompt(call.messages)
        body.update(
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=call.gen.max_tokens,
            temperature=call.gen.temperature,
            seed=gen_seed(self.seed, item.item_id, call.branch, call.turn),
        )
        body.update(call.plan.fields)
        body.update(self.extra_body)
        return body

    def compile(self, item: WorkItem, model: str) -> Compiled:
        """Pretty JSON bodies of every request, with placeholders for earlier answers."""
        chunks: list[str] = []
        strategies: list[str] = []
        for b, branch in enumerate(item.branches):
            history: list[Message] = list(item.prefix)
            for t, turn in enumerate(branch.turns):
                history.append(Message("user", turn.user))
                call = _Call(b, t, turn.gen, self.plan(turn.gen), tuple(history))
                strategies.append(call.plan.strategy)
                head = f"# branch {b}, turn {t}, gen {turn.gen.name!r}: {self.path} ({call.plan.strategy})"
                if call.plan.error:
                    chunks.append(f"{head}\n# {call.plan.error} (not sent)")
                else:
                    chunks.append(f"{head}\n{json.dumps(self.body(model, item, call), indent=2)}")
                history.append(Message("assistant", PREVIOUS_ANSWER))
        return Compiled(self.engine, item.item_id, "\n\n".join(chunks) + "\n", tuple(strategies))

    async def execute(
        self, client: OpenAIClient, model: str, item: WorkItem, ctx: ExecContext
    ) -> list[CallRecord]:
        """Run every gen of ``item``; branches concurrently, turns in order."""
        if len(item.branches) == 1:
            return await self._branch(client, model, item, ctx, 0)
        per_branch = await asyncio.gather(
            *(self._branch(client, model, item, ctx, b) for b in range(len(item.branches)))
        )
        return [r for recs in per_branch for r in recs]

    async def _branch(
        self, client: OpenAIClient, model: str, item: WorkItem, ctx: ExecContext, b: int
    ) -> list[CallRecord]:
        history: list[Message] = list(item.prefix)
        out: list[CallRecord] = []
        failed = False
        for t, turn in enumerate(item.branches[b].turns):
            history.append(Message("user", turn.user))
            call = _Call(b, t, turn.gen, self.plan(turn.gen), tuple(history))
            if failed or call.plan.error:
                out.append(self.record(item, ctx, call, None, call.plan.error or SKIPPED))
                failed = True
                continue
            res = await client.stream(self.path, self.body(model, item, call), ctx.clock)
            out.append(self.record(item, ctx, call, res, res.error))
            failed = res.error is not None
            history.append(Message("assistant", res.text))
        return out

    def record(
        self, item: WorkItem, ctx: ExecContext, call: _Call, res: StreamResult | None, error: str | None
    ) -> CallRecord:
        """The call record of one gen (``res`` None when nothing was sent)."""
        r = res or StreamResult(t_sent=0.0, t_done=0.0)
        sent = res is not None
        return new_record(
            self.engine,
            item,
            (call.branch, call.turn, call.gen),
            ctx,
            strategy=call.plan.strategy,
            t_sent=r.t_sent if sent else None,
            t_first_token=r.t_first_token,
            t_done=r.t_done if sent else None,
            token_times=r.token_times,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            cached_tokens=r.cached_tokens,
            finish_reason=r.finish_reason,
            text=r.text,
            error=error,
            prompt=call.messages,
        )
