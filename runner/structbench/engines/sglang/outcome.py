"""Reading SGLang's results into :class:`~structbench.engines.base.CallMeasure`.

Program mode reads each variable's ``meta_info`` (:func:`measure_from_meta`); generate
mode reads the native ``/generate`` stream through the shared client with
:class:`GenerateReader`. Both give times on the driver's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from structbench.engines.base import CallMeasure
from structbench.engines.stream import stream_error

#: Maps a ``time.perf_counter()`` stamp onto the driver's clock.
ToDriver = Callable[[float], float]

#: meta_info keys the backends add (see ``backend.py``; repeated here to keep this module light).
_T_START, _T_FIRST, _T_DONE, _TOKEN_TIMES = "sb_t_start", "sb_t_first_token", "sb_t_done", "sb_token_times"


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def finish_reason_of(v: Any) -> str | None:
    """SGLang's finish reason (``{"type": "stop", ...}`` or a string) as a string."""
    if isinstance(v, Mapping):
        t = v.get("type")
        return None if t is None else str(t)
    return None if v is None else str(v)


def measure_from_meta(
    text: str, meta: Mapping[str, Any] | None, to_driver: ToDriver, t_sent: float
) -> CallMeasure:
    """Build a measure from a variable's ``meta_info``.

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
    return CallMeasure(
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


def error_measures(n: int, error: str, t_sent: float | None, t_done: float | None) -> list[CallMeasure]:
    """``n`` failed measures with the same error."""
    return [CallMeasure(t_sent=t_sent, t_done=t_done, error=error) for _ in range(n)]


@dataclass(slots=True)
class GenerateReader:
    """Reads SGLang's native ``/generate`` stream (one reader per request).

    Each event carries the cumulative text so far (SGLang's default, without
    ``--incremental-streaming-output``) and the ``meta_info`` so far. Token times follow
    SGLang's own ``bench_serving``: the first token is the first event with text; an event
    that brings ``k`` new tokens (``meta_info.completion_tokens`` grew by ``k``) adds ``k``
    token times spread evenly since the previous event, so its gap counts as ``k`` equal
    inter-token latencies; an event with no new tokens adds none.
    """

    text: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    t_first: float | None = None
    times: list[float] = field(default_factory=list)
    seen: int = 0
    t_last: float = 0.0
    error: str | None = None
    done: bool = False

    def feed(self, obj: Any, t: float) -> None:
        """Take one parsed event that arrived at ``t``."""
        if not isinstance(obj, dict):
            self.error = f"bad stream event: {str(obj)[:200]}"
            return
        self.error = stream_error(obj)
        if self.error is not None:
            return
        meta = obj.get("meta_info") or {}
        self.meta = meta
        text = obj.get("text")
        if isinstance(text, str):
            self.text = text
        n = _int(meta.get("completion_tokens"))
        if self.t_first is None:
            if text:
                self.t_first, self.t_last, self.seen = t, t, n if n is not None else 1
            return
        new = 1 if n is None else n - self.seen
        if new <= 0:
            return
        step = (t - self.t_last) / new
        self.times.extend(self.t_last + step * i for i in range(1, new))
        self.times.append(t)
        self.t_last, self.seen = t, self.seen + new

    def finish(self, t_sent: float, t_done: float) -> CallMeasure:
        """The measure; a stream with no event, or that just stops, is an error."""
        m = self.meta
        error = self.error
        reason = finish_reason_of(m.get("finish_reason"))
        if error is None and not self.done and reason is None:
            error = "stream ended early (no finish_reason, no [DONE])"
        return CallMeasure(
            text=self.text,
            t_sent=t_sent,
            t_first_token=self.t_first,
            t_done=t_done,
            token_times=tuple(self.times),
            prompt_tokens=_int(m.get("prompt_tokens")),
            completion_tokens=_int(m.get("completion_tokens")),
            cached_tokens=_int(m.get("cached_tokens")),
            finish_reason=reason,
            error=error,
        )
