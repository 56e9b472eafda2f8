"""The LLM judge: a 1-10 grade per chat turn, MT-Bench "single answer grading" style.

Judging is a phase of the run, after the cells (:mod:`structbench.judge_phase` drives
it): every answered turn becomes a ``judge`` work item (the conversation so far, the
question, the reference if any, the answer), and the judge engine runs those items
through the load driver like any workload, in a cell of its own (``judge.<task>``), so
its calls are ordinary call records. They go to ``judge.jsonl`` in the run folder, not
to ``requests.jsonl``: the benchmark's cells never count them. The grade is decoded
under the regex ``\\[\\[(10|[1-9])\\]\\]`` so it always parses.

This module is the pure part: it builds the judge items and reads grades back from the
judge's records (:func:`read_judge`, :func:`verdicts_from_records`); the per-call
``judge`` scorer looks the grade up (``ScoreOptions.judge_grades``). Run folders written
before the judge went through the driver hold one verdict per line instead; they still
read.

On the CPU default the judge is SmolLM2-135M: its grades show the mechanics, not the
quality of the answers. Point ``judge_engine`` at a strong model for real grading.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from structbench.ir import NO_CONSTRAINT, Branch, Gen, Message, Regex, Turn, WorkItem
from structbench.records import CallRecord, open_text
from structbench.scoring.base import Score, ScoreOptions
from structbench.scoring.common import not_applicable

#: A judged record's key, as ``score_run.record_key`` builds it.
RecordKey = tuple[str, str, int, int, int]

#: The grade as the judge must write it.
GRADE_REGEX = r"\[\[(10|[1-9])\]\]"
#: Item kind of the judge's own work items.
JUDGE_KIND = "judge"
#: The judge's call records, in the run folder.
JUDGE_FILE = "judge.jsonl"
#: The constraint the grade is decoded under, where the judge engine can run it.
GRADE_CONSTRAINT = Regex(GRADE_REGEX)

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
    """The judge's verdict on one answered turn, read back from its call records.

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
    def key(self) -> RecordKey:
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


def judge_cell_id(task: str) -> str:
    """The cell id of the judge's calls for one judged task (never a benchmark cell's id)."""
    return f"{JUDGE_KIND}.{task}"


def _category(item: WorkItem, rec: CallRecord) -> str:
    for key, value in (*item.meta, *rec.meta):
        if key == "category":
            return value
    return ""


def build_judge_item(
    item: WorkItem, rec: CallRecord, earlier: Sequence[str], cfg: JudgeConfig, constrained: bool
) -> WorkItem:
    """The judge work item that grades ``rec``, one answered turn of ``item``.

    The judged record's identity travels in the item's ``meta`` (``judged_*`` keys), which
    engines copy into the judge's call records: the grade is matched to the record by it.

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
        constraint=GRADE_CONSTRAINT if constrained else NO_CONSTRAINT,
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
    judged = (
        ("judged_cell", rec.cell_id),
        ("judged_engine", rec.engine),
        ("judged_item", rec.item_id),
        ("judged_branch", str(rec.branch)),
        ("judged_turn", str(rec.turn)),
        ("judged_attempt", str(rec.attempt)),
    )
    return WorkItem(
        item_id=f"judge/{rec.cell_id}/{rec.item_id}/b{rec.branch}t{rec.turn}a{rec.attempt}",
        task=rec.task,
        kind=JUDGE_KIND,
        prefix=(Message("system", JUDGE_SYSTEM),),
        branches=(Branch(steps),),
        meta=(*judged, ("category", _category(item, rec))),
    )


def plan_judge_items(
    records: Iterable[CallRecord], items: Iterable[WorkItem], cfg: JudgeConfig, constrained: bool
) -> list[WorkItem]:
    """One judge item per answered, non-warm-up turn of a judged task whose item is known.

    Args:
        records: Call records of the run.
        items: The run's work items, for questions and references.
        cfg: Judge settings (``cfg.tasks`` selects the tasks).
        constrained: The judge engine can decode the grade under :data:`GRADE_REGEX`.

    Returns:
        The judge items, in record order.
    """
    by_id = {(it.task, it.item_id): it for it in items}
    recs = [r for r in records if not r.warmup and (cfg.tasks is None or r.task in cfg.tasks)]
    # Earlier answers of the same conversation: the same cell, item, branch and attempt.
    answers = {(r.cell_id, r.item_id, r.branch, r.attempt, r.turn): r.text for r in recs if r.ok}
    out: list[WorkItem] = []
    for r in recs:
        item = by_id.get((r.task, r.item_id))
        if not r.ok or item is None or r.branch >= len(item.branches):
            continue
        earlier = [answers.get((r.cell_id, r.item_id, r.branch, r.attempt, t), "") for t in range(r.turn)]
        out.append(build_judge_item(item, r, earlier, cfg, constrained))
    return out


def judged_key(meta: Iterable[tuple[str, str]]) -> RecordKey | None:
    """The judged record's key from a judge item's or record's ``meta``; None if absent."""
    m = dict(meta)
    try:
        return (
            m["judged_cell"], m["judged_item"], int(m["judged_branch"]), int(m["judged_turn"]),
            int(m["judged_attempt"]),
        )  # fmt: skip
    except (KeyError, ValueError):
        return None


def _verdict(key: RecordKey, rec: CallRecord, rationale: str) -> JudgeScore:
    meta = dict(rec.meta)
    grade = parse_grade(rec.text) if rec.error is None else None
    error = rec.error
    if error is None and grade is None:
        error = "no [[N]] grade in the judge's output"
    return JudgeScore(
        cell_id=key[0], engine=meta.get("judged_engine", ""), task=rec.task, item_id=key[1], branch=key[2],
        turn=key[3], attempt=key[4], category=meta.get("category", ""), judge_engine=rec.engine,
        grade=grade, constrained=rec.constraint == GRADE_CONSTRAINT.kind, text=rec.text,
        rationale=rationale, error=error,
    )  # fmt: skip


def verdicts_from_records(records: Iterable[CallRecord]) -> dict[RecordKey, JudgeScore]:
    """The judge's verdicts, parsed from its call records, by judged record key.

    A judge item's last call (``grade``) holds the grade; with ``explain`` its first call
    holds the rationale. Records of a later judge pass over the same record win.
    """
    rationale: dict[str, str] = {}
    out: dict[RecordKey, JudgeScore] = {}
    for r in records:
        key = judged_key(r.meta)
        if key is None:
            continue
        if r.gen_name == "rationale":
            rationale[r.item_id] = r.text
        elif r.gen_name == "grade":
            out[key] = _verdict(key, r, rationale.get(r.item_id, ""))
    return out


def read_judge(path: Path) -> list[JudgeScore]:
    """The verdicts in a run's ``judge.jsonl``; a torn last line (crash mid-write) is skipped.

    Lines are the judge's call records; lines of older runs are verdicts already.
    """
    names = {f.name for f in fields(JudgeScore)}
    old: list[JudgeScore] = []
    records: list[CallRecord] = []
    with open_text(path) as fh:
        for line in fh:
            try:
                d: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "gen_name" in d:
                records.append(CallRecord.from_dict(d))
            else:
                old.append(JudgeScore(**{k: v for k, v in d.items() if k in names}))
    return [*old, *verdicts_from_records(records).values()]


def grades_by_record(scores: Iterable[JudgeScore]) -> dict[RecordKey, int | None]:
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
