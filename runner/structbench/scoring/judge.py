"""The LLM judge: a 1-10 grade per chat turn, MT-Bench "single answer grading" style.

Judging needs an engine, so it runs as its own pass after the cells
(:func:`judge_records`): every answered turn becomes a ``judge`` work item (the
conversation so far, the question, the reference if any, the answer), the judge engine
runs it through the same ``execute()`` as any workload, and the grade is decoded under
the regex ``\\[\\[(10|[1-9])\\]\\]`` so it always parses. Grades stream to
``judge.jsonl`` in the run folder. The per-call ``judge`` scorer then only looks the
grade up (``ScoreOptions.judge_grades``, filled from that file by :func:`grades_by_record`).

On the CPU default the judge is SmolLM2-135M: its grades show the mechanics, not the
quality of the answers. Point ``judge_engine`` at a strong model for real grading.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from structbench.engines.base import Engine, ExecContext
from structbench.ir import NO_CONSTRAINT, Branch, Constraint, Gen, Message, Turn, WorkItem, item_from_dict
from structbench.records import CallRecord, JsonlAppender, open_text, read_records
from structbench.scoring.base import Score, ScoreOptions
from structbench.scoring.common import not_applicable

#: The grade as the judge must write it.
GRADE_REGEX = r"\[\[(10|[1-9])\]\]"
#: Item kind of the judge's own work items.
JUDGE_KIND = "judge"
JUDGE_FILE = "judge.jsonl"

_GRADE = re.compile(GRADE_REGEX)
# Unconstrained judges write "[[ 7 ]]" or "[[7.5]]" too; read those, and clamp nothing.
_LOOSE_GRADE = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")

JUDGE_SYSTEM = (
    "You grade the answers of an AI assistant. You are strict and fair. You see a user's "
    "question and the assistant's answer, sometimes with a reference answer and the earlier "
    "turns of the conversation. Grade only the answer to the last question. Correctness "
    "matters most; then helpfulness, relevance, depth and clarity. When a reference answer "
    "is given, an answer that disagrees with it is wrong, however well written. Do not reward "
    "length. Grades run from 1 (wrong or useless) to 10 (correct and excellent), and you "
    "write a grade as two brackets around the number, for example [[6]]."
)
_ASK_GRADE = "Grade the assistant's answer to the last question. Reply with the grade only, as [[N]]."
_ASK_REASON = (
    "In two or three sentences, say how good the assistant's answer to the last question is. "
    "Do not give a grade yet."
)
_ASK_GRADE_AFTER_REASON = "Now give your grade, as [[N]]."


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    """How the judge pass runs.

    Attributes:
        max_tokens: Token limit of the grade (``[[10]]`` is a handful of tokens).
        temperature: Judge sampling temperature (0 = greedy, reproducible).
        concurrency: Judge items in flight at once.
        explain: Ask for a short rationale first (a free turn), then the grade.
        explain_max_tokens: Token limit of the rationale.
        max_answer_chars: Longer answers are cut (and marked) to bound the judge's prompt.
        tasks: Only judge records of these tasks (None = every record given).
    """

    max_tokens: int = 8
    temperature: float = 0.0
    concurrency: int = 8
    explain: bool = False
    explain_max_tokens: int = 96
    max_answer_chars: int = 4000
    tasks: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class JudgeScore:
    """The judge's verdict on one answered turn (one line of ``judge.jsonl``).

    The first seven fields identify the judged call record; ``grade`` is None when the
    judge call failed or its output held no grade (``error`` says which).
    """

    cell_id: str
    engine: str
    task: str
    item_id: str
    branch: int
    turn: int
    attempt: int
    category: str
    judge_engine: str
    grade: int | None
    #: False when the judge engine can't run regex constraints and the grade was parsed
    #: from free text instead.
    constrained: bool = True
    text: str = ""
    rationale: str = ""
    error: str | None = None

    @property
    def key(self) -> tuple[str, str, int, int, int]:
        """The judged record's key, as ``score_run.record_key`` builds it."""
        return (self.cell_id, self.item_id, self.branch, self.turn, self.attempt)


@dataclass(frozen=True, slots=True)
class GradeStat:
    """Mean grade of a group of judged turns."""

    n: int
    mean: float | None
    #: Turns whose judge call gave no grade (not in ``n`` or ``mean``).
    failed: int = 0


def parse_grade(text: str) -> int | None:
    """The grade in ``[[N]]`` form, or None.

    The strict form (1 to 10) comes first; a looser ``[[ 7 ]]`` or ``[[7.5]]`` (rounded)
    is accepted from unconstrained judges when it lies in 1 to 10.
    """
    m = _GRADE.search(text)
    if m:
        return int(m.group(1))
    m = _LOOSE_GRADE.search(text)
    if m:
        value = round(float(m.group(1)))
        return value if 1 <= value <= 10 else None
    return None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...answer cut...]"


def judge_prompt(questions: Sequence[str], answers: Sequence[str], reference: str | None, limit: int) -> str:
    """The user message that asks for a grade of the last answer.

    Args:
        questions: User messages up to and including the graded turn.
        answers: Assistant answers, one per question (the last one is graded).
        reference: The reference answer of the graded turn, if any.
        limit: Answers are cut at this many characters.
    """
    parts: list[str] = []
    if len(questions) > 1:
        parts.append("[Earlier turns]")
        for q, a in zip(questions[:-1], answers[:-1], strict=True):
            parts.append(f"User: {q}\nAssistant: {_cut(a, limit)}")
    parts.append(f"[Last question]\n{questions[-1]}")
    if reference is not None:
        parts.append(f"[Reference answer]\n{reference}")
    parts.append(f"[Assistant's answer]\n{_cut(answers[-1], limit)}")
    return "\n\n".join(parts)


def build_judge_item(
    item: WorkItem, rec: CallRecord, earlier: Sequence[str], cfg: JudgeConfig, constrained: bool
) -> WorkItem:
    """The judge work item that grades ``rec``, one answered turn of ``item``.

    Args:
        item: The judged work item (its questions and references).
        rec: The judged call record (its answer).
        earlier: Answers of the earlier turns of the same branch, in order.
        cfg: Judge settings.
        constrained: Decode the grade under :data:`GRADE_REGEX`.
    """
    turns = item.branches[rec.branch].turns[: rec.turn + 1]
    body = judge_prompt(
        [t.user for t in turns], [*earlier, rec.text], turns[-1].gen.reference, cfg.max_answer_chars
    )
    grade = Gen(
        name="grade",
        constraint=Constraint(kind="regex", regex=GRADE_REGEX) if constrained else NO_CONSTRAINT,
        # Free text needs room for a sentence around the grade.
        max_tokens=cfg.max_tokens if constrained else max(cfg.max_tokens, 32),
        temperature=cfg.temperature,
    )
    steps: tuple[Turn, ...]
    if cfg.explain:
        why = Gen(name="rationale", max_tokens=cfg.explain_max_tokens, temperature=cfg.temperature)
        steps = (Turn(f"{body}\n\n{_ASK_REASON}", why), Turn(_ASK_GRADE_AFTER_REASON, grade))
    else:
        steps = (Turn(f"{body}\n\n{_ASK_GRADE}", grade),)
    return WorkItem(
        item_id=f"judge/{rec.cell_id}/{rec.item_id}/b{rec.branch}t{rec.turn}a{rec.attempt}",
        task=rec.task,
        kind=JUDGE_KIND,
        prefix=(Message("system", JUDGE_SYSTEM),),
        branches=(Branch(steps),),
        meta=(("judged_engine", rec.engine), ("judged_item", rec.item_id)),
    )


def _category(item: WorkItem, rec: CallRecord) -> str:
    for key, value in (*item.meta, *rec.meta):
        if key == "category":
            return value
    return ""


@dataclass(frozen=True, slots=True)
class _Job:
    rec: CallRecord
    item: WorkItem
    judge_item: WorkItem


def _plan(
    records: Iterable[CallRecord], items: Iterable[WorkItem], cfg: JudgeConfig, constrained: bool
) -> list[_Job]:
    """One job per answered, non-warm-up turn of a judged task whose item is known."""
    by_id = {(it.task, it.item_id): it for it in items}
    recs = [r for r in records if not r.warmup and (cfg.tasks is None or r.task in cfg.tasks)]
    # Earlier answers of the same conversation: the same cell, item, branch and attempt.
    answers = {(r.cell_id, r.item_id, r.branch, r.attempt, r.turn): r.text for r in recs if r.ok}
    jobs: list[_Job] = []
    for r in recs:
        item = by_id.get((r.task, r.item_id))
        if not r.ok or item is None or r.branch >= len(item.branches):
            continue
        earlier = [answers.get((r.cell_id, r.item_id, r.branch, r.attempt, t), "") for t in range(r.turn)]
        jobs.append(_Job(r, item, build_judge_item(item, r, earlier, cfg, constrained)))
    return jobs


def _verdict(job: _Job, judge_engine: str, constrained: bool, out: Sequence[CallRecord]) -> JudgeScore:
    r = job.rec
    last = out[-1] if out else None
    rationale = out[0].text if len(out) > 1 else ""
    error = "judge returned no record" if last is None else last.error
    text = last.text if last is not None else ""
    grade = parse_grade(text) if error is None else None
    if error is None and grade is None:
        error = "no [[N]] grade in the judge's output"
    return JudgeScore(
        cell_id=r.cell_id, engine=r.engine, task=r.task, item_id=r.item_id, branch=r.branch, turn=r.turn,
        attempt=r.attempt, category=_category(job.item, r), judge_engine=judge_engine, grade=grade,
        constrained=constrained, text=text, rationale=rationale, error=error,
    )  # fmt: skip


async def judge_records(
    records: Iterable[CallRecord],
    items: Iterable[WorkItem],
    engine: Engine,
    out_path: Path | None = None,
    cfg: JudgeConfig = JudgeConfig(),
) -> list[JudgeScore]:
    """Grade every answered turn with ``engine`` (already started); never raises per call.

    Args:
        records: Call records of the run (warm-up and failed ones are skipped).
        items: The run's work items (``items.jsonl``), for questions and references.
        engine: The judge engine, started by the caller (who also closes it).
        out_path: ``judge.jsonl`` to append each verdict to as it arrives (None = don't).
        cfg: Judge settings.

    Returns:
        One :class:`JudgeScore` per judged turn, in record order.
    """
    constrained = engine.capabilities.unsupported_reason(Constraint(kind="regex", regex=GRADE_REGEX)) is None
    jobs = _plan(records, items, cfg, constrained)
    gate = asyncio.Semaphore(max(1, min(cfg.concurrency, engine.max_concurrency or cfg.concurrency)))
    sink = JsonlAppender(out_path) if out_path is not None else None

    async def one(job: _Job) -> JudgeScore:
        async with gate:
            ctx = ExecContext(cell_id="judge", clock=time.perf_counter, t_scheduled=time.perf_counter())
            try:
                out = await engine.execute(job.judge_item, ctx)
            except Exception as e:  # an engine bug must not lose the other verdicts
                out = [_failed(job, engine.name, f"{type(e).__name__}: {e}")]
            verdict = _verdict(job, engine.name, constrained, out)
        if sink is not None:
            sink.write_line(json.dumps(asdict(verdict), ensure_ascii=False, separators=(",", ":")))
        return verdict

    try:
        return list(await asyncio.gather(*(one(j) for j in jobs)))
    finally:
        if sink is not None:
            sink.close()


async def run_judge_pass(
    run_dir: Path, engine: Engine, tasks: Iterable[str], cfg: JudgeConfig = JudgeConfig()
) -> list[JudgeScore]:
    """Judge a run folder's records of ``tasks`` and append the verdicts to its ``judge.jsonl``.

    Reads ``requests.jsonl`` and ``items.jsonl``; ``engine`` is started and closed by the
    caller. This is what ``run_suite`` calls after the cells, with the suite's
    ``judge_engine`` (or first engine) and the tasks that list ``judge``.
    """
    with open_text(run_dir / "items.jsonl") as fh:
        items = [item_from_dict(json.loads(line)["item"]) for line in fh if line.strip()]
    records = list(read_records(run_dir / "requests.jsonl"))
    return await judge_records(
        records, items, engine, run_dir / JUDGE_FILE, replace(cfg, tasks=frozenset(tasks))
    )


def _failed(job: _Job, engine: str, error: str) -> CallRecord:
    return CallRecord(
        cell_id="judge", engine=engine, task=job.rec.task, item_id=job.judge_item.item_id,
        branch=0, turn=0, gen_name="grade", constraint="regex", error=error,
    )  # fmt: skip


def read_judge(path: Path) -> list[JudgeScore]:
    """Read ``judge.jsonl``; a torn last line (crash mid-write) is skipped."""
    names = {f.name for f in fields(JudgeScore)}
    out: list[JudgeScore] = []
    with open_text(path) as fh:
        for line in fh:
            try:
                d: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError:
                continue
            out.append(JudgeScore(**{k: v for k, v in d.items() if k in names}))
    return out


def grades_by_record(scores: Iterable[JudgeScore]) -> dict[tuple[str, str, int, int, int], int | None]:
    """Grade per judged record key, for ``ScoreOptions.judge_grades`` (the last verdict wins)."""
    return {s.key: s.grade for s in scores}


def judge(rec: CallRecord, gen: Gen, opts: ScoreOptions) -> Score:
    """The ``judge`` scorer: the judge's grade of this turn, scaled to [0, 1] (grade / 10).

    It reads the grades of the judge pass from ``opts.judge_grades``; without them (the
    pass did not run) or without a grade for this record, the score is "not applicable".
    """
    na = not_applicable("judge", rec)
    if na is not None:
        return na
    if opts.judge_grades is None:
        return Score("judge", None, "judge pass not run")
    key = (rec.cell_id, rec.item_id, rec.branch, rec.turn, rec.attempt)
    if key not in opts.judge_grades:
        return Score("judge", None, "not judged")
    grade = opts.judge_grades[key]
    if grade is None:
        return Score("judge", None, "judge gave no grade")
    return Score("judge", grade / 10.0, f"grade {grade}/10")


K = TypeVar("K")


def mean_grade_by(scores: Iterable[JudgeScore], key: Callable[[JudgeScore], K]) -> dict[K, GradeStat]:
    """Mean grade per group; groups in first-seen order."""
    groups: dict[K, list[JudgeScore]] = {}
    for s in scores:
        groups.setdefault(key(s), []).append(s)
    out: dict[K, GradeStat] = {}
    for k, group in groups.items():
        grades = [s.grade for s in group if s.grade is not None]
        mean = sum(grades) / len(grades) if grades else None
        out[k] = GradeStat(n=len(grades), mean=mean, failed=len(group) - len(grades))
    return out


def mean_grade_per_category(scores: Iterable[JudgeScore]) -> dict[tuple[str, str], GradeStat]:
    """Mean grade per ``(engine, category)``: engines side by side."""
    return mean_grade_by(scores, lambda s: (s.engine, s.category))


def mean_grade_per_turn(scores: Iterable[JudgeScore]) -> dict[tuple[str, int], GradeStat]:
    """Mean grade per ``(engine, turn)`` (turn 0 = first user message)."""
    return mean_grade_by(scores, lambda s: (s.engine, s.turn))


def judged_tasks(scorers_by_task: Mapping[str, Sequence[str]]) -> list[str]:
    """Names of the tasks that list the ``judge`` scorer (the pass runs only for those)."""
    return [t for t, names in scorers_by_task.items() if "judge" in names]
