"""Program mode: run a compiled ``@sgl.function`` with SGLang's interpreter and collect each gen.

This runs on a worker thread (it blocks on the interpreter's per-variable events), never
on the event loop.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from structbench.engines.base import CallMeasure, Clock
from structbench.engines.sglang.outcome import ToDriver, error_measures, measure_from_meta
from structbench.engines.sglang.plan import ProgramPlan


@dataclass(frozen=True, slots=True)
class ProgramRun:
    """One program execution.

    Attributes:
        program: The ``@sgl.function`` built from ``plan``.
        plan: Its plan (variables, branches).
        backend: The SGLang backend to run on.
        clock: The driver's clock.
        to_driver: Maps backend ``perf_counter`` stamps onto ``clock``.
        timeout_s: How long to wait for each gen before recording a timeout.
    """

    program: Any
    plan: ProgramPlan
    backend: Any
    clock: Clock
    to_driver: ToDriver
    timeout_s: float


def _describe(err: BaseException | None) -> str:
    return "no result from the SGLang interpreter" if err is None else f"{type(err).__name__}: {err}"


def run_program(run: ProgramRun) -> list[CallMeasure]:
    """Run the program and return one outcome per gen, in plan order; never raises.

    ``run()`` only queues the expressions on each state's worker thread; we then wait for
    every variable. When a gen fails, SGLang stops that state's worker, so the later gens
    of the same branch are recorded as skipped.
    """
    calls = run.plan.calls()
    t_sent = run.clock()
    try:
        # temperature: run() would default every gen without one to 1.0; ours all set
        # theirs, and this covers anything that doesn't.
        state = run.program.run(backend=run.backend, temperature=0.0)
        branches: list[Any] = state.ret_value
    except Exception as e:
        return error_measures(len(calls), _describe(e), t_sent, run.clock())
    out: list[CallMeasure] = []
    failed: set[int] = set()
    try:
        for call in calls:
            ex = branches[call.branch].stream_executor
            event = ex.variable_event.get(call.var)
            if event is not None and not event.wait(run.timeout_s):
                out.append(
                    CallMeasure(t_sent=t_sent, t_done=run.clock(), error=f"timeout after {run.timeout_s:g} s")
                )
                continue
            if call.var in ex.meta_info:
                text = ex.variables[call.var]
                out.append(measure_from_meta(str(text), ex.meta_info[call.var], run.to_driver, t_sent))
                continue
            err = (
                "skipped: an earlier gen of this branch failed"
                if call.branch in failed
                else _describe(ex.error_)
            )
            failed.add(call.branch)
            out.append(CallMeasure(t_sent=t_sent, t_done=run.clock(), error=err))
    finally:
        if run.plan.is_fork:
            # Fork states are not ended by run(); end them so their worker threads exit now.
            for st in branches:
                st.stream_executor.end()
        _join_workers([state, *branches])
    return out


def _join_workers(states: list[Any], timeout_s: float = 5.0) -> None:
    """Wait for the ended states' worker threads, so that their ``__del__`` finds them stopped.

    ``ProgramState.__del__`` calls ``is_alive()`` on its worker. On CPython 3.11 that call, on a
    finished but never joined thread, takes ``threading._shutdown_locks_lock``; when the garbage
    collector runs the ``__del__`` inside ``Thread.start()``, which holds that lock, the process
    deadlocks (seen once in a CI rehearsal). A joined thread answers from its stopped flag.
    """
    for st in {id(st): st for st in states}.values():
        worker = getattr(getattr(st, "stream_executor", None), "worker", None)
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout_s)


def perf_to_driver(clock: Clock) -> ToDriver:
    """A converter from ``time.perf_counter()`` stamps to ``clock``, anchored now.

    Exact when the driver clock is ``perf_counter`` or ``monotonic`` (same rate).
    """
    offset = clock() - time.perf_counter()
    return lambda t: t + offset
