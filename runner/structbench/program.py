"""The one program walker: work items -> calls -> records, the same for every engine.

A :class:`~structbench.ir.WorkItem` is a shared prefix and one or more branches of turns.
The walker runs the branches of a fork concurrently and the turns of a branch in order,
each turn seeing the real earlier answers. For every gen it asks the engine for a
:class:`~structbench.engines.base.Plan` and then for one
:class:`~structbench.engines.base.CallMeasure` (:meth:`Engine.generate`), and it alone
decides the skip policy, the seeds, the placeholders of ``structbench compile`` and the
record fields, so two engines can never disagree on them.

Skip policy: once a call of a branch is not ``ok`` (failed, unsupported, cancelled), the
branch's later turns are not sent, because their conversation would lack a real previous
answer; they are recorded as ``skipped``. An engine that runs whole items natively
(:class:`~structbench.engines.base.NativeProgram`, SGLang's interpreter) can't run a
program with a hole in it: an unsupported gen makes every other gen of the item
``skipped``.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence

from structbench.engines.base import (
    Call,
    CallMeasure,
    Compiled,
    Engine,
    ExecContext,
    NativeProgram,
    Plan,
    new_record,
)
from structbench.ir import Gen, Message, WorkItem
from structbench.records import CallRecord, Status


def gen_seed(seed: int, item_id: str, branch: int, turn: int) -> int:
    """A stable per-call sampling seed, so the branches of a fork sample independently."""
    return zlib.crc32(f"{seed}:{item_id}:{branch}:{turn}".encode()) & 0x7FFFFFFF


def placeholder(gen: Gen) -> str:
    """What stands for an earlier answer in ``structbench compile`` (unknown before running)."""
    return f"<<answer of gen '{gen.name}'>>"


def skip_reason(cause: CallRecord) -> str:
    """The ``error`` text of a call skipped because ``cause`` did not complete."""
    why = " ".join((cause.error or cause.status).split())[:200]
    return f"skipped: turn {cause.turn} of branch {cause.branch} did not complete ({why})"


def _call(item: WorkItem, b: int, t: int, messages: tuple[Message, ...], seed: int) -> Call:
    gen = item.branches[b].turns[t].gen
    return Call(item.item_id, b, t, gen, messages, gen_seed(seed, item.item_id, b, t))


def branch_messages(item: WorkItem, b: int, answers: Sequence[str]) -> list[tuple[Message, ...]]:
    """The chat each turn of branch ``b`` answers, given the answers of its earlier turns."""
    history = list(item.prefix)
    out: list[tuple[Message, ...]] = []
    for t, turn in enumerate(item.branches[b].turns):
        history.append(Message("user", turn.user))
        out.append(tuple(history))
        answer = answers[t] if t < len(answers) else placeholder(turn.gen)
        history.append(Message("assistant", answer))
    return out


# ---- compile ---------------------------------------------------------------------------


def compile_item(engine: Engine, item: WorkItem, seed: int = 0) -> Compiled:
    """The native form of ``item`` on ``engine``: a native program, or each call's wire form.

    Answers of earlier turns are unknown before running and appear as placeholders.
    """
    plans = [engine.plan(gen) for _, _, gen in item.gens()]
    strategies = tuple("unsupported" if p.unsupported else p.strategy for p in plans)
    if isinstance(engine, NativeProgram) and engine.native_mode:
        unsupported = list(dict.fromkeys(p.unsupported for p in plans if p.unsupported))
        if unsupported:
            # As in a run (_unsupported_program): a program with a hole in it never runs, so
            # there is no program to show, only why.
            why = "\n".join(f"# {u}" for u in unsupported)
            return Compiled(
                engine.name, item.item_id, f"{why}\n# (no program: the item is not run)\n", strategies
            )
        return Compiled(engine.name, item.item_id, engine.native_source(item), strategies)
    chunks: list[str] = []
    plan_of = iter(plans)
    for b in range(len(item.branches)):
        for t, messages in enumerate(branch_messages(item, b, ())):
            plan = next(plan_of)
            gen = item.branches[b].turns[t].gen
            head = f"# branch {b}, turn {t}, gen {gen.name!r}: {plan.strategy}"
            if plan.unsupported:
                chunks.append(f"{head}\n# {plan.unsupported} (not sent)")
            else:
                chunks.append(f"{head}\n{engine.render(_call(item, b, t, messages, seed))}")
    return Compiled(engine.name, item.item_id, "\n\n".join(chunks) + "\n", strategies)


# ---- run ---------------------------------------------------------------------------------


def _record(
    engine: str, call: Call, item: WorkItem, ctx: ExecContext, plan: Plan, m: CallMeasure, status: Status
) -> CallRecord:
    sent = status in ("ok", "error")
    return new_record(
        engine,
        item,
        (call.branch, call.turn, call.gen),
        ctx,
        status=status,
        seed=call.seed,
        strategy=m.strategy or plan.strategy,
        t_sent=m.t_sent if sent else None,
        t_first_token=m.t_first_token if sent else None,
        t_done=m.t_done if sent else None,
        token_times=m.token_times if sent else (),
        prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens,
        cached_tokens=m.cached_tokens,
        finish_reason=m.finish_reason,
        text=m.text,
        error=m.error,
        prompt=call.messages,
    )


async def _generate(engine: Engine, call: Call, ctx: ExecContext) -> CallMeasure:
    try:
        return await engine.generate(call, ctx.clock)
    except Exception as e:  # engines must not raise; a bug of theirs still becomes a record
        now = ctx.clock()
        return CallMeasure(t_sent=now, t_done=now, error=f"engine raised {type(e).__name__}: {e}")


async def _branch(engine: Engine, item: WorkItem, b: int, ctx: ExecContext) -> list[CallRecord]:
    history = list(item.prefix)
    out: list[CallRecord] = []
    cause: CallRecord | None = None
    for t, turn in enumerate(item.branches[b].turns):
        history.append(Message("user", turn.user))
        call = _call(item, b, t, tuple(history), ctx.seed)
        plan = engine.plan(turn.gen)
        if cause is not None:
            rec = _record(
                engine.name, call, item, ctx, plan, CallMeasure(error=skip_reason(cause)), "skipped"
            )
        elif plan.unsupported:
            rec = _record(
                engine.name, call, item, ctx, plan, CallMeasure(error=plan.unsupported), "unsupported"
            )
        else:
            m = await _generate(engine, call, ctx)
            rec = _record(engine.name, call, item, ctx, plan, m, "ok" if m.error is None else "error")
        out.append(rec)
        if cause is None and not rec.ok:
            cause = rec
        history.append(Message("assistant", rec.text))
    return out


def _native_records(
    engine: Engine, item: WorkItem, ctx: ExecContext, plans: Sequence[Plan], measures: Sequence[CallMeasure]
) -> list[CallRecord]:
    """Records of a natively run item, with the same skip policy as the per-call walk."""
    out: list[CallRecord] = []
    it = iter(zip(plans, measures, strict=True))
    for b in range(len(item.branches)):
        cause: CallRecord | None = None
        answers: list[str] = []
        for t in range(len(item.branches[b].turns)):
            plan, m = next(it)
            messages = branch_messages(item, b, answers)[t]
            call = _call(item, b, t, messages, ctx.seed)
            if cause is not None:
                rec = _record(
                    engine.name, call, item, ctx, plan, CallMeasure(error=skip_reason(cause)), "skipped"
                )
            else:
                rec = _record(engine.name, call, item, ctx, plan, m, "ok" if m.error is None else "error")
                cause = None if rec.ok else rec
            answers.append(rec.text)
            out.append(rec)
    return out


def _unsupported_program(
    engine: Engine, item: WorkItem, ctx: ExecContext, plans: Sequence[Plan]
) -> list[CallRecord]:
    """A native program with an unsupported gen can't run at all.

    The unsupported gens are ``unsupported``; the later turns of their branch are skipped as
    in a per-call walk, and every other gen is skipped because the program has a hole.
    """
    first = next(p.unsupported for p in plans if p.unsupported)
    hole = f"skipped: the native program has an unsupported gen ({first})"
    out: list[CallRecord] = []
    causes: dict[int, CallRecord] = {}
    for (b, t, _), plan in zip(item.gens(), plans, strict=True):
        call = _call(item, b, t, branch_messages(item, b, ())[t], ctx.seed)
        cause = causes.get(b)
        if cause is None and plan.unsupported:
            rec = _record(
                engine.name, call, item, ctx, plan, CallMeasure(error=plan.unsupported), "unsupported"
            )
            causes[b] = rec
        else:
            why = skip_reason(cause) if cause is not None else hole
            rec = _record(engine.name, call, item, ctx, plan, CallMeasure(error=why), "skipped")
        out.append(rec)
    return out


async def run_item(engine: Engine, item: WorkItem, ctx: ExecContext) -> list[CallRecord]:
    """Run every gen of ``item`` on ``engine``; one record per gen, in ``item.gens()`` order.

    Never raises for failed calls (they are records); the driver adds the context.
    """
    if isinstance(engine, NativeProgram) and engine.native_mode:
        plans = [engine.plan(gen) for _, _, gen in item.gens()]
        if any(p.unsupported for p in plans):
            return _unsupported_program(engine, item, ctx, plans)
        try:
            measures = await engine.native(item, ctx.clock)
        except Exception as e:  # a bug of the engine still becomes records
            now = ctx.clock()
            failed = CallMeasure(t_sent=now, t_done=now, error=f"engine raised {type(e).__name__}: {e}")
            measures = [failed] * len(plans)
        return _native_records(engine, item, ctx, plans, measures)
    if len(item.branches) == 1:
        return await _branch(engine, item, 0, ctx)
    per_branch = await asyncio.gather(*(_branch(engine, item, b, ctx) for b in range(len(item.branches))))
    return [r for recs in per_branch for r in recs]
