"""The in-process runtime interface shared by the embedded engine and the SGLang CPU backend.

Both the ``embedded`` engine and structbench's SGLang ``BaseBackend`` drive one
:class:`Runtime`: a model on its own worker thread with a micro-batcher, so callers on
any thread (the asyncio loop, SGLang's interpreter threads) submit requests and wait on
futures without blocking the event loop.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from structbench.ir import Constraint


@dataclass(frozen=True, slots=True)
class GenRequest:
    """One generation on the runtime.

    ``prompt`` is already rendered with the chat template (the runtime never templates
    again: outlines would otherwise wrap it a second time).
    """

    prompt: str
    constraint: Constraint
    max_tokens: int
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class GenResult:
    """What the runtime returns. Times are ``time.perf_counter()`` seconds."""

    #: Decoded completion; EOS and stop strings are not part of it.
    text: str
    prompt_tokens: int
    #: Tokens sampled, including a final EOS when one was sampled.
    completion_tokens: int
    #: "stop" (EOS, stop string, or the constraint complete), "length", or "error".
    finish_reason: str
    #: When ``submit`` was called (queueing and constraint compiling count toward TTFT).
    t_start: float
    t_first_token: float | None
    t_done: float
    #: When each token after the first was produced (as ``CallRecord.token_times``).
    token_times: tuple[float, ...] = ()
    error: str | None = None
    strategy: str = ""
    #: Largest number of rows decoding together while this request ran.
    batch_size: int = 1
    extra: tuple[tuple[str, str], ...] = field(default=())


class Runtime(Protocol):
    """A loaded model with a micro-batching worker thread."""

    model_id: str
    #: Positions the model has (prompt and output together); None when it declares none.
    context_length: int | None

    def chat_prompt(self, messages: list[tuple[str, str]], add_generation_prompt: bool = True) -> str:
        """Render messages with the model's own chat template."""
        ...

    def submit(self, req: GenRequest) -> Future[GenResult]:
        """Queue a request; the future never raises (errors are in ``GenResult.error``)."""
        ...

    def score_choices(self, prompt: str, choices: list[str]) -> list[float]:
        """Length-normalised log-probabilities of each choice after ``prompt``."""
        ...

    def count_tokens(self, text: str) -> int:
        """Token count of ``text`` (no special tokens added)."""
        ...

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        ...

    def close(self) -> None:
        """Stop the worker thread and free the model."""
        ...
