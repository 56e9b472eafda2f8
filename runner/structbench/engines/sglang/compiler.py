"""Work items as native SGLang programs (``@sgl.function``), run by SGLang's interpreter.

The program of an item is what an SGLang user would write by hand: the prefix messages
as ``sgl.system/user/assistant``, then each turn as ``sgl.user(text)`` followed by
``sgl.assistant(sgl.gen(...))``. Several branches fork the state after the prefix
(``s.fork(n)``), so the shared prefix is one KV-cache prefix on the server. The program
returns its branch states, so the engine can read each variable and its ``meta_info``.

sglang is imported lazily, inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

from typing import Any

from structbench.engines.sglang.plan import GenCall, PlanTurn, ProgramPlan, plan_item
from structbench.ir import WorkItem

#: An ``sgl.function`` (SglFunction). sglang ships no type information.
SglProgram = Any


def gen_expr(sgl: Any, call: GenCall) -> Any:
    """The ``sgl.gen`` expression for one gen call.

    Temperature and max tokens are always passed explicitly, because ``run()`` would
    otherwise apply its own default temperature of 1.0.

    Raises:
        ValueError: When the call is unsupported in program mode (a grammar gen).
    """
    if call.unsupported:
        raise ValueError(call.unsupported)
    g = call.gen
    if call.choices:
        return sgl.gen(call.var, choices=list(call.choices), temperature=g.temperature)
    return sgl.gen(
        call.var,
        max_tokens=g.max_tokens,
        temperature=g.temperature,
        json_schema=call.json_schema,
        regex=call.regex,
    )


def _role(sgl: Any, role: str) -> Any:
    return {"system": sgl.system, "user": sgl.user, "assistant": sgl.assistant}[role]


def _run_turns(sgl: Any, s: Any, turns: tuple[PlanTurn, ...]) -> None:
    # Adding to a state only queues the expression on the state's worker thread, so a
    # fork's turns run concurrently with the other forks, and each gen sees the real
    # answers of the turns before it.
    for t in turns:
        s += sgl.user(t.user)
        s += sgl.assistant(gen_expr(sgl, t.call))


def _settle(s: Any) -> None:
    """Wait until the state has rendered everything queued so far (no-op while tracing).

    ``fork()`` commits the shared prefix to the backend (one prefill on an SGLang server,
    so every branch then hits the radix cache), but it decides whether there is a prefix
    by reading the text *before* waiting for the queued prefix to render. Without this
    wait, whether the prefix is committed would depend on thread timing.
    """
    from sglang.lang.tracer import TracerProgramState

    if not isinstance(s, TracerProgramState):
        s.sync()


def build_plan_program(plan: ProgramPlan) -> SglProgram:
    """Build the ``@sgl.function`` for a plan.

    The function takes no arguments besides the state and returns the list of branch
    states: ``[s]`` for a linear program, the fork states otherwise.

    Raises:
        ValueError: When the plan has a gen that program mode can't run.
    """
    import sglang as sgl

    reason = plan.unsupported()
    if reason:
        raise ValueError(reason)

    def program(s: Any) -> list[Any]:
        for m in plan.prefix:
            s += _role(sgl, m.role)(m.content)
        if not plan.is_fork:
            _run_turns(sgl, s, plan.branches[0])
            return [s]
        _settle(s)
        forks = s.fork(len(plan.branches))
        for i, turns in enumerate(plan.branches):
            _run_turns(sgl, forks[i], turns)
        return [forks[i] for i in range(len(plan.branches))]

    program.__name__ = program.__qualname__ = "structbench_program"
    return sgl.function(program)


def build_program(item: WorkItem) -> tuple[SglProgram, list[tuple[int, int, str]]]:
    """Compile a work item into a native SGLang program.

    Args:
        item: The engine-agnostic work item.

    Returns:
        The ``@sgl.function`` and, in ``item.gens()`` order, ``(branch, turn, var)`` for
        each gen: the variable to read from the state of that branch.

    Raises:
        ValueError: When the item has a gen that program mode can't run (grammar).
    """
    plan = plan_item(item, "program")
    return build_plan_program(plan), [(c.branch, c.turn, c.var) for c in plan.calls()]
