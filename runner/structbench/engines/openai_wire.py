"""OpenAI-compatible wire form of one call: the request body, and its constraint fields.

An engine module supplies only its constraint mapping (a :data:`ConstraintMapper`);
:class:`OpenAIWire` turns a :class:`~structbench.engines.base.Call` into a chat or
completions body and streams it through the shared
:class:`~structbench.engines.stream.HttpClient`. Multi-turn, fork and skip policy are the
walker's (:mod:`structbench.program`).

The ``completions`` API has no chat template on the client side, so its prompt is the
messages joined as ``"<role>: <content>"`` paragraphs followed by ``"assistant:"``: a
plain-text approximation, meant for servers without a chat endpoint. ``chat`` is the
default and the tested path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from structbench.engines.base import Call, CallMeasure, Clock, Plan
from structbench.engines.stream import HttpClient, JsonBody, OpenAIReader
from structbench.ir import Gen, Message

Api = Literal["chat", "completions"]
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


@dataclass(frozen=True, slots=True)
class OpenAIWire:
    """Turns calls into OpenAI-compatible requests for one engine.

    Attributes:
        api: ``chat`` or ``completions``.
        mapper: The engine's constraint mapping.
        extra_body: Fields added to every body (e.g. ``ignore_eos`` for benchmarks).
    """

    api: Api
    mapper: ConstraintMapper
    extra_body: tuple[tuple[str, object], ...] = ()
    #: Plans per gen: mapping a schema parses JSON, which the request path shouldn't redo.
    _plans: dict[Gen, ConstraintPlan] = field(default_factory=dict, compare=False, repr=False)

    def constraint(self, gen: Gen) -> ConstraintPlan:
        """The (cached) constraint plan of ``gen``."""
        plan = self._plans.get(gen)
        if plan is None:
            plan = self._plans[gen] = self.mapper(gen)
        return plan

    def plan(self, gen: Gen) -> Plan:
        """The strategy of ``gen``, or why it is unsupported."""
        c = self.constraint(gen)
        return Plan(c.strategy, c.error)

    @property
    def path(self) -> str:
        """Endpoint path for the API."""
        return _PATHS[self.api]

    def body(self, model: str, call: Call) -> JsonBody:
        """The JSON body of one call."""
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
            seed=call.seed,
        )
        body.update(self.constraint(call.gen).fields)
        body.update(self.extra_body)
        return body

    def render(self, model: str, call: Call) -> str:
        """The pretty JSON body and endpoint of one call."""
        return f"POST {self.path}\n{json.dumps(self.body(model, call), indent=2)}"

    async def generate(self, client: HttpClient, model: str, call: Call, clock: Clock) -> CallMeasure:
        """Stream one call; failures come back in ``error``."""
        return await client.stream(self.path, self.body(model, call), clock, OpenAIReader())
