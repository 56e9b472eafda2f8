"""The LLM-judge phase (through the load driver) and the ``judge`` scorer, with a scripted fake judge."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from structbench.engines.base import Call, CallMeasure, Capabilities, Clock, EngineInfo, Plan
from structbench.ir import Branch, ConstraintKind, Gen, Message, Turn, WorkItem, item_to_dict
from structbench.judge_phase import judge_records, run_judge_pass
from structbench.records import CallRecord, RecordWriter, cell_records_path, read_records
from structbench.scoring.base import ScoreOptions
from structbench.scoring.judge import (
    GRADE_REGEX,
    JudgeConfig,
    JudgeScore,
    grades_by_record,
    judge,
    judged_tasks,
    mean_grade_per_category,
    mean_grade_per_turn,
    parse_grade,
    read_judge,
)


@dataclass
class FakeJudge:
    """Answers every gen with a scripted text; remembers what it was asked."""

    reply: str = "[[7]]"
    regex: bool = True
    fail: str | None = None
    explode: bool = False
    name: str = "fake-judge"
    max_concurrency: int | None = 2
    #: Every call the judge was asked, in send order.
    seen: list[Call] = field(default_factory=list)
    capabilities: Capabilities = field(init=False)

    def __post_init__(self) -> None:
        kinds: frozenset[ConstraintKind] = frozenset({"none", "regex"} if self.regex else {"none"})
        self.capabilities = Capabilities(constraints=kinds)

    def plan(self, gen: Gen) -> Plan:
        return Plan("fake", self.capabilities.unsupported_reason(gen.constraint))

    def render(self, call: Call) -> str:
        return ""

    async def start(self) -> EngineInfo:
        return EngineInfo(self.name, "fake", "fake")

    async def generate(self, call: Call, clock: Clock) -> CallMeasure:
        self.seen.append(call)
        if self.explode:
            raise RuntimeError("boom")
        await asyncio.sleep(0)
        now = clock()
        text = "it is fine" if call.gen.name == "rationale" else self.reply
        return CallMeasure(t_sent=now, t_done=now, error=self.fail, text="" if self.fail else text)

    async def close(self) -> None:
        return None


ITEM = WorkItem(
    item_id="mt/101",
    task="mt",
    kind="chat",
    prefix=(),
    branches=(
        Branch(
            (
                Turn("What is 2+3?", Gen("turn0", reference="5")),
                Turn("Double it.", Gen("turn1", reference="10")),
            )
        ),
    ),
    meta=(("category", "math"), ("question_id", "101")),
)


def _rec(turn: int, text: str, **kw: object) -> CallRecord:
    base: dict[str, object] = dict(
        cell_id="emb.mt.c4", engine="emb", task="mt", item_id="mt/101", branch=0, turn=turn,
        gen_name=f"turn{turn}", constraint="none", text=text,
    )  # fmt: skip
    base.update(kw)
    return CallRecord(**base)  # type: ignore[arg-type]


RECORDS = [
    _rec(0, "2+3 = 5."),
    _rec(1, "That gives 10."),
    _rec(0, "warm", warmup=True, item_id="mt/101~warmup0"),
    _rec(0, "", error="http 500", cell_id="emb.mt.c8"),
    _rec(0, "other task", task="json"),
]


@pytest.mark.parametrize(
    ("text", "grade"),
    [
        ("[[7]]", 7),
        ("[[10]]", 10),
        ("[[1]]", 1),
        ("Rating: [[ 8 ]] overall", 8),
        ("[[7.6]]", 8),
        ("[[0]]", None),
        ("[[11]]", None),
        ("seven out of ten", None),
        ("", None),
    ],
)
def test_parse_grade(text: str, grade: int | None) -> None:
    assert parse_grade(text) == grade


def test_grade_regex_admits_only_1_to_10() -> None:
    ok = [f"[[{n}]]" for n in range(1, 11)]
    assert all(re.fullmatch(GRADE_REGEX, s) for s in ok)
    assert not any(re.fullmatch(GRADE_REGEX, s) for s in ["[[0]]", "[[11]]", "[[05]]", "[7]", "[[7]] "])


def test_judge_pass_grades_answered_turns(tmp_path: Path) -> None:
    eng = FakeJudge()
    out = tmp_path / "judge.jsonl"
    cfg = JudgeConfig(tasks=frozenset({"mt"}))
    scores = asyncio.run(judge_records(RECORDS, [ITEM], eng, out, cfg))
    # Warm-up, failed and other-task records are not judged.
    assert [(s.turn, s.grade, s.category, s.constrained, s.error) for s in scores] == [
        (0, 7, "math", True, None),
        (1, 7, "math", True, None),
    ]
    first, second = sorted(eng.seen[:2], key=lambda c: "Double it." in c.messages[-1].content)
    assert first.gen.constraint.kind == "regex" and first.gen.constraint.regex == GRADE_REGEX
    q1, q2 = first.messages[-1].content, second.messages[-1].content
    assert "[Reference answer]\n5" in q1 and "2+3 = 5." in q1
    assert "[Earlier turns]" not in q1
    # Turn 1 is graded with the conversation so far and its own reference.
    assert "User: What is 2+3?\nAssistant: 2+3 = 5." in q2
    assert "[Last question]\nDouble it." in q2 and "[Reference answer]\n10" in q2
    assert all(c.messages[0].role == "system" for c in eng.seen)
    assert sorted(read_judge(out), key=lambda s: s.turn) == scores
    # The judge's calls are ordinary call records of a cell of its own.
    calls = list(read_records(out))
    assert [(r.cell_id, r.gen_name, r.constraint) for r in calls] == [("judge.mt", "grade", "regex")] * 2
    assert all(r.t_scheduled is not None and not r.warmup for r in calls)


@pytest.mark.parametrize("layout", ["cells", "version 1"])
def test_run_judge_pass_reads_the_run_folder(tmp_path: Path, layout: str) -> None:
    with (tmp_path / "items.jsonl").open("w") as fh:
        fh.write(json.dumps({"task": "mt", "item": item_to_dict(ITEM)}) + "\n")
    for r in RECORDS:  # each cell's own file, or (version 1 folders) one run-level file
        path = cell_records_path(tmp_path, r.cell_id) if layout == "cells" else tmp_path / "requests.jsonl"
        with RecordWriter(path) as w:
            w.write(r)
    scores = asyncio.run(run_judge_pass(tmp_path, FakeJudge(reply="[[9]]"), ["mt"]))
    assert [(s.turn, s.grade) for s in scores] == [(0, 9), (1, 9)]
    assert len(read_judge(tmp_path / "judge.jsonl")) == 2
    assert asyncio.run(run_judge_pass(tmp_path, FakeJudge(), ["other"])) == []


def test_unconstrained_judge_parses_free_text() -> None:
    eng = FakeJudge(reply="I would give it [[ 6 ]].", regex=False)
    scores = asyncio.run(judge_records(RECORDS[:1], [ITEM], eng))
    assert scores[0].grade == 6 and not scores[0].constrained
    assert eng.seen[0].gen.constraint.kind == "none"


def test_judge_failures_become_verdicts_without_grade() -> None:
    failed = asyncio.run(judge_records(RECORDS[:1], [ITEM], FakeJudge(fail="timeout")))
    assert failed[0].grade is None and failed[0].error == "timeout"
    raised = asyncio.run(judge_records(RECORDS[:1], [ITEM], FakeJudge(explode=True)))
    assert raised[0].grade is None and raised[0].error == "engine raised RuntimeError: boom"
    junk = asyncio.run(judge_records(RECORDS[:1], [ITEM], FakeJudge(reply="great")))
    assert junk[0].grade is None and junk[0].error is not None and "no [[N]]" in junk[0].error


def test_explain_mode_asks_rationale_first() -> None:
    eng = FakeJudge()
    scores = asyncio.run(judge_records(RECORDS[:1], [ITEM], eng, cfg=JudgeConfig(explain=True)))
    turns = eng.seen
    assert [t.gen.name for t in turns] == ["rationale", "grade"]
    assert turns[0].gen.constraint.kind == "none" and turns[1].gen.constraint.kind == "regex"
    assert scores[0].rationale == "it is fine" and scores[0].grade == 7


def test_unknown_item_is_skipped() -> None:
    assert asyncio.run(judge_records(RECORDS[:2], [], FakeJudge())) == []


def _verdict(engine: str, category: str, turn: int, grade: int | None) -> JudgeScore:
    return JudgeScore(
        cell_id="c", engine=engine, task="mt", item_id=f"{category}{turn}", branch=0, turn=turn, attempt=1,
        category=category, judge_engine="j", grade=grade,
    )  # fmt: skip


def test_mean_grades() -> None:
    vs = [
        _verdict("a", "math", 0, 6),
        _verdict("a", "math", 1, 9),
        _verdict("a", "writing", 0, None),
        _verdict("b", "math", 0, 3),
    ]
    by_cat = mean_grade_per_category(vs)
    assert by_cat[("a", "math")].mean == pytest.approx(7.5) and by_cat[("a", "math")].n == 2
    assert by_cat[("a", "writing")].mean is None and by_cat[("a", "writing")].failed == 1
    by_turn = mean_grade_per_turn(vs)
    assert by_turn[("a", 0)].mean == pytest.approx(6.0) and by_turn[("a", 0)].failed == 1
    assert by_turn[("b", 0)].mean == pytest.approx(3.0)


def test_judge_scorer_looks_grades_up() -> None:
    rec, gen = RECORDS[0], ITEM.branches[0].turns[0].gen
    assert judge(rec, gen, ScoreOptions()).value is None
    grades = grades_by_record([_verdict("emb", "math", 0, 8)])
    assert judge(rec, gen, ScoreOptions(judge_grades=grades)).reason == "not judged"
    v = JudgeScore(
        cell_id=rec.cell_id, engine="emb", task="mt", item_id=rec.item_id, branch=0, turn=0, attempt=1,
        category="math", judge_engine="j", grade=8,
    )  # fmt: skip
    score = judge(rec, gen, ScoreOptions(judge_grades=grades_by_record([v])))
    assert score.value == pytest.approx(0.8) and score.reason == "grade 8/10"
    no_grade = {v.key: None}
    assert judge(rec, gen, ScoreOptions(judge_grades=no_grade)).value is None
    assert judge(RECORDS[3], gen, ScoreOptions(judge_grades={})).reason == "call failed"


def test_judged_tasks() -> None:
    assert judged_tasks({"mt": ("final_number", "judge"), "json": ("schema_valid",)}) == ["mt"]


def test_judge_prompt_keeps_messages_plain() -> None:
    # The judge sees the question text exactly, not a repr.
    item = WorkItem("x/1", "x", "chat", (Message("system", "S"),), (Branch((Turn("Q?", Gen("turn0")),)),))
    rec = CallRecord("c", "e", "x", "x/1", 0, 0, "turn0", "none", text="A.")
    eng = FakeJudge()
    asyncio.run(judge_records([rec], [item], eng))
    assert "[Last question]\nQ?\n\n[Assistant's answer]\nA." in eng.seen[0].messages[-1].content


@pytest.mark.embedded
def test_real_embedded_judge_always_parses(tmp_path: Path) -> None:
    """SmolLM2 as the judge: its grades mean little, but the regex makes them parse."""
    pytest.importorskip("torch")
    pytest.importorskip("outlines")
    from structbench.engines.embedded.engine import EmbeddedEngine
    from structbench.engines.registry import EngineEnv
    from structbench.spec.engines import EmbeddedEngineSpec

    async def go() -> list[JudgeScore]:
        engine = EmbeddedEngine(EmbeddedEngineSpec(name="judge"), EngineEnv(tmp_path, seed=0))
        await engine.start()
        try:
            return await judge_records(RECORDS[:2], [ITEM], engine, tmp_path / "judge.jsonl")
        finally:
            await engine.close()

    scores = asyncio.run(go())
    assert [s.turn for s in scores] == [0, 1]
    for s in scores:
        assert s.error is None and s.constrained and s.grade is not None and 1 <= s.grade <= 10
        assert re.fullmatch(GRADE_REGEX, s.text)
    assert len(read_judge(tmp_path / "judge.jsonl")) == 2


def test_each_task_is_a_judge_cell_and_a_later_pass_wins(tmp_path: Path) -> None:
    other = WorkItem("json/1", "json", "json", (), (Branch((Turn("Q?", Gen("answer")),)),))
    answer = _rec(0, "{}", cell_id="emb.json.c4", task="json", item_id="json/1", gen_name="answer")
    out = tmp_path / "judge.jsonl"
    asyncio.run(judge_records([*RECORDS[:2], answer], [ITEM, other], FakeJudge(reply="[[3]]"), out))
    assert {r.cell_id for r in read_records(out)} == {"judge.mt", "judge.json"}
    asyncio.run(judge_records(RECORDS[:1], [ITEM], FakeJudge(reply="[[9]]"), out))
    grades = grades_by_record(read_judge(out))
    assert grades[("emb.mt.c4", "mt/101", 0, 0, 1)] == 9 and grades[("emb.mt.c4", "mt/101", 0, 1, 1)] == 3
    assert len(grades) == 3


def test_read_judge_reads_old_verdict_lines(tmp_path: Path) -> None:
    # Run folders from before the judge went through the driver hold one verdict per line.
    old = _verdict("emb", "math", 0, 8)
    path = tmp_path / "judge.jsonl"
    path.write_text(json.dumps(dataclasses.asdict(old)) + "\n" + '{"torn": ')
    assert read_judge(path) == [old]
