"""What one SGLang gen produced, and its :class:`~structbench.records.CallRecord`.

Both modes (program and generate) reduce each gen to a :class:`CallOutcome` with times on
the driver's clock; :func:`to_records` then builds the records in ``WorkItem.gens()``
order, with the prompt messages each gen saw (including the real earlier answers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from structbench.engines.base import ExecContext, new_record
from structbench.engines.sglang.plan import ProgramPlan
from structbench.ir import Message, WorkItem
from structbench.records import CallRecord

#: Maps a ``time.perf_counter()`` stamp onto the driver's clock.
ToDriver = Callable[[float], float]

#: meta_info keys the backends add (see ``backend.py``; repeated here to keep this module light).
_T_START, _T_FIRST, _T_DONE, _TOKEN_TIMES = "sb_t_start", "sb_t_first_token", "sb_t_done", "sb_token_times"


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The result of one gen. Times are on the driver's clock."""

    text: str = ""
    t_sent: float | None = None
    t_first_token: float | None = None
    t_done: float | None = None
    token_times: tuple[float, ...] = ()
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def finish_reason_of(v: Any) -> str | None:
    """SGLang's finish reason (``{"type": "stop", ...}`` or a string) as a string."""
    if isinstance(v, Mapping):
        t = v.get("type")
        return None if t is None else str(t)
    return None if v is None else str(v)


def outcome_from_meta(
    text: str, meta: Mapping[str, Any] | None, to_driver: ToDriver, t_sent: float
) -> CallOutcome:
    """Build an outcome from a variable's ``meta_info``.

    Args:
        text: The variable's value.
        meta: ``state.get_meta_info(var)``; SGLang keys plus structbench's timestamps.
        to_driver: Converts backend ``perf_counter`` stamps to the driver clock.
        t_sent: Fallback send time (driver clock) when the backend stamped none.
    """
    m: Mapping[str, Any] = meta or {}

    def stamp(key: str) -> float | None:
        v = m.get(key)
        return None if v is None else to_driver(float(v))

    start = stamp(_T_START)
    return CallOutcome(
        text=text,
        t_sent=t_sent if start is None else start,
        t_first_token=stamp(_T_FIRST),
        t_done=stamp(_T_DONE),
        token_times=tuple(to_driver(float(t)) for t in m.get(_TOKEN_TIMES) or ()),
        prompt_tokens=_int(m.get("prompt_tokens")),
        completion_tokens=_int(m.get("completion_tokens")),
        cached_tokens=_int(m.get("cached_tokens")),
        finish_reason=finish_reason_of(m.get("finish_reason")),
    )


def error_outcomes(n: int, error: str, t_sent: float | None, t_done: float | None) -> list[CallOutcome]:
    """``n`` failed outcomes with the same error."""
    return [CallOutcome(t_sent=t_sent, t_done=t_done, error=error) for _ in range(n)]


def prompts(plan: ProgramPlan, outcomes: list[CallOutcome]) -> list[tuple[Message, ...]]:
    """The chat each gen answered: prefix, earlier turns with their real answers, its user turn."""
    texts = iter(o.text for o in outcomes)
    out: list[tuple[Message, ...]] = []
    for turns in plan.branches:
        msgs = list(plan.prefix)
        for t in turns:
            msgs.append(Message("user", t.user))
            out.append(tuple(msgs))
            msgs.append(Message("assistant", next(texts)))
    return out


def to_records(
    engine: str, item: WorkItem, plan: ProgramPlan, outcomes: list[CallOutcome], ctx: ExecContext
) -> list[CallRecord]:
    """One record per gen, in ``item.gens()`` order."""
    recs: list[CallRecord] = []
    for call, o, prompt in zip(plan.calls(), outcomes, prompts(plan, outcomes), strict=True):
        recs.append(
            new_record(
                engine,
                item,
                (call.branch, call.turn, call.gen),
                ctx,
                strategy=call.strategy,
                t_sent=o.t_sent,
                t_first_token=o.t_first_token,
                t_done=o.t_done,
                token_times=o.token_times,
                prompt_tokens=o.prompt_tokens,
                completion_tokens=o.completion_tokens,
                cached_tokens=o.cached_tokens,
                finish_reason=o.finish_reason,
                text=o.text,
                error=o.error,
                prompt=prompt,
            )
        )
    return recs
