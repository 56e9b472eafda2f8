"""SGLang frontend backends that structbench runs programs on.

* :class:`EmbeddedSglBackend` runs native SGLang programs on CPU with no SGLang server:
  a ``BaseBackend`` whose ``generate``/``select`` go to the embedded runtime.
* :class:`TimedRuntimeEndpoint` is SGLang's own ``RuntimeEndpoint``, unchanged except
  that each ``generate``/``select`` call stamps its start and end times into its
  ``meta_info``, so records get per-gen send/done times.

Both put these extra keys into each gen's ``meta_info`` (times are ``time.perf_counter()``):
:data:`T_START`, :data:`T_DONE`, and on the embedded backend :data:`T_FIRST` and
:data:`TOKEN_TIMES`. This module imports sglang at import time; import it lazily.
"""

from __future__ import annotations

import time
from typing import Any

from sglang.lang.backend.base_backend import BaseBackend
from sglang.lang.backend.runtime_endpoint import RuntimeEndpoint
from sglang.lang.choices import ChoicesDecision, ChoicesSamplingMethod, TokenLengthNormalized

from structbench.engines.embedded.api import GenRequest, GenResult, Runtime
from structbench.engines.sglang.templates import (
    SMOLLM2_TEMPLATE,
    RoleTemplate,
    derive_template,
    to_sgl_chat_template,
)
from structbench.ir import NO_CONSTRAINT, Constraint, JsonSchema, Regex

T_START = "sb_t_start"
T_FIRST = "sb_t_first_token"
T_DONE = "sb_t_done"
TOKEN_TIMES = "sb_token_times"
#: What the embedded runtime says it ran (e.g. "outlines.json"), for the record's meta.
RUNTIME_STRATEGY = "sb_runtime_strategy"


def constraint_of(sampling_params: Any) -> Constraint:
    """The structbench constraint carried by SGLang sampling params (json_schema or regex)."""
    if sampling_params.json_schema is not None:
        return JsonSchema(str(sampling_params.json_schema))
    if sampling_params.regex is not None:
        return Regex(str(sampling_params.regex))
    return NO_CONSTRAINT


def _stops(stop: Any) -> tuple[str, ...]:
    if not stop:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(str(s) for s in stop)


def trim_at_stop(text: str, stops: tuple[str, ...]) -> str:
    """Cut ``text`` at the first stop string, as the SGLang server does."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


def runtime_template(runtime: Runtime) -> RoleTemplate:
    """The runtime's own chat template as an SGLang role table (SmolLM2's ChatML if not derivable)."""
    derived = derive_template(f"structbench-{runtime.model_id}", runtime.chat_prompt)
    return derived if derived is not None else SMOLLM2_TEMPLATE


class EmbeddedSglBackend(BaseBackend):  # type: ignore[misc]
    """An SGLang frontend backend over structbench's embedded runtime (CPU, in process).

    SGLang's interpreter renders the chat into ``s.text_`` with this backend's chat
    template, so ``generate`` sends that text as is. Forks and ``run_batch`` threads call
    it concurrently; the runtime's ``submit`` is thread-safe and batches them.

    Args:
        runtime: The loaded embedded runtime.
        template: Role table to render chats with; derived from the runtime when None.
    """

    def __init__(self, runtime: Runtime, template: RoleTemplate | None = None) -> None:
        super().__init__()
        self.runtime = runtime
        self.template = template if template is not None else runtime_template(runtime)
        self.chat_template = to_sgl_chat_template(self.template)

    def get_model_name(self) -> str:
        """The runtime's model id."""
        return self.runtime.model_id

    def generate(self, s: Any, sampling_params: Any) -> tuple[str, dict[str, Any]]:
        """Run one ``sgl.gen`` on the runtime; raise on failure so the program stops there.

        Returns:
            The text and SGLang-style ``meta_info`` (prompt/completion/cached tokens,
            finish_reason, e2e_latency) plus structbench's timestamps.
        """
        stops = _stops(sampling_params.stop)
        req = GenRequest(
            prompt=s.text_,
            constraint=constraint_of(sampling_params),
            max_tokens=int(sampling_params.max_new_tokens),
            temperature=float(sampling_params.temperature),
            stop=stops,
        )
        res: GenResult = self.runtime.submit(req).result()
        if res.error is not None:
            raise RuntimeError(res.error)
        return trim_at_stop(res.text, stops), _meta(res)

    def select(
        self,
        s: Any,
        choices: list[str],
        temperature: float,
        choices_method: ChoicesSamplingMethod | None = None,
    ) -> ChoicesDecision:
        """SGLang's select: the choice with the highest length-normalised logprob.

        Only SGLang's default ``token_length_normalized`` method is implemented (it is
        what the runtime's ``score_choices`` computes and what structbench compiles).
        """
        if choices_method is not None and not isinstance(choices_method, TokenLengthNormalized):
            raise NotImplementedError(f"choices_method {type(choices_method).__name__} is not supported")
        t0 = time.perf_counter()
        # Scoring is queued on the runtime's worker thread, so concurrent forks are safe.
        scores = self.runtime.score_choices(s.text_, list(choices))
        t1 = time.perf_counter()
        best = max(range(len(choices)), key=lambda i: scores[i])
        meta: dict[str, Any] = {
            "normalized_prompt_logprobs": list(scores),
            "prompt_tokens": self.runtime.count_tokens(s.text_),
            "completion_tokens": None,
            "cached_tokens": 0,
            "finish_reason": {"type": "select"},
            "e2e_latency": t1 - t0,
            T_START: t0,
            T_DONE: t1,
        }
        return ChoicesDecision(decision=choices[best], meta_info=meta)


def _meta(res: GenResult) -> dict[str, Any]:
    return {
        "prompt_tokens": res.prompt_tokens,
        "completion_tokens": res.completion_tokens,
        # The embedded runtime has no prefix cache to report.
        "cached_tokens": 0,
        "finish_reason": {"type": res.finish_reason},
        "e2e_latency": res.t_done - res.t_start,
        T_START: res.t_start,
        T_FIRST: res.t_first_token,
        T_DONE: res.t_done,
        TOKEN_TIMES: res.token_times,
        RUNTIME_STRATEGY: res.strategy,
    }


class TimedRuntimeEndpoint(RuntimeEndpoint):  # type: ignore[misc]
    """SGLang's ``RuntimeEndpoint`` with per-call start/end times in ``meta_info``.

    Requests, prefix caching (``commit_lazy_operations`` before a fork) and the logprob
    select are SGLang's own; only the timestamps are added.
    """

    def generate(self, s: Any, sampling_params: Any) -> tuple[Any, dict[str, Any]]:
        """``RuntimeEndpoint.generate``, timed."""
        t0 = time.perf_counter()
        text, meta = super().generate(s, sampling_params)
        t1 = time.perf_counter()
        return text, {**meta, T_START: t0, T_DONE: t1}

    def select(
        self,
        s: Any,
        choices: list[str],
        temperature: float,
        choices_method: ChoicesSamplingMethod,
    ) -> ChoicesDecision:
        """``RuntimeEndpoint.select``, timed."""
        t0 = time.perf_counter()
        d = super().select(s, choices, temperature, choices_method)
        t1 = time.perf_counter()
        return ChoicesDecision(
            decision=d.decision, meta_info={**(d.meta_info or {}), T_START: t0, T_DONE: t1}
        )
