"""EmbeddedSglBackend and SglangEngine (backend: embedded) through SGLang's real interpreter.

The runtime is a scripted fake; the interpreter, forks and threads are SGLang's own.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sglang")

from sgl_fakes import (
    CHOICE_C,
    GRAMMAR_C,
    JSON_C,
    LARK,
    REGEX,
    REGEX_C,
    SCHEMA,
    SMOL_DEFAULT,
    FakeRuntime,
    chatml,
    fanout,
    multi_turn,
    one_gen,
)

from structbench.engines.base import Engine, ExecContext
from structbench.engines.registry import EngineEnv
from structbench.engines.sglang.backend import EmbeddedSglBackend
from structbench.engines.sglang.compiler import build_program
from structbench.engines.sglang.engine import SglangEngine
from structbench.engines.sglang.templates import SMOLLM2_TEMPLATE
from structbench.ir import WorkItem
from structbench.program import compile_item, run_item
from structbench.records import CallRecord
from structbench.spec.engines import SglangEngineSpec

pytestmark = pytest.mark.sglang


def _run(item: WorkItem, rt: FakeRuntime) -> tuple[Any, list[tuple[int, int, str]]]:
    program, slots = build_program(item)
    state = program.run(backend=EmbeddedSglBackend(rt), temperature=0.0)
    for b, _, var in slots:
        state.ret_value[b].get_meta_info(var)  # wait for every gen
    return state, slots


def test_template_is_derived_from_the_runtime() -> None:
    be = EmbeddedSglBackend(FakeRuntime())
    assert be.template.prefixes == SMOLLM2_TEMPLATE.prefixes
    assert be.template.default_system_prompt == SMOLLM2_TEMPLATE.default_system_prompt == SMOL_DEFAULT
    assert be.get_chat_template().stop_str == ("<|im_end|>",)


def test_json_program_sends_the_models_own_chat_text() -> None:
    rt = FakeRuntime()
    state, _ = _run(one_gen(JSON_C), rt)
    (req,) = rt.requests
    assert req.prompt == chatml([("system", "Answer tersely."), ("user", "Question?")])
    assert req.constraint == JSON_C  # same canonical schema text: the runtime's cache hits
    assert req.temperature == 0.0 and req.max_tokens == 24 and "<|im_end|>" in req.stop
    assert json.loads(state["answer"]) == {"name": "Ada", "age": 36}  # stop string trimmed
    meta = state.get_meta_info("answer")
    assert meta["completion_tokens"] == 7 and meta["cached_tokens"] == 0
    assert meta["finish_reason"] == {"type": "stop"}


def test_default_system_prompt_when_the_item_has_none() -> None:
    rt = FakeRuntime()
    _run(one_gen(REGEX_C, system=None), rt)
    assert rt.requests[0].prompt.startswith(
        f"<|im_start|>system\n{SMOL_DEFAULT}<|im_end|>\n<|im_start|>user\n"
    )
    assert rt.requests[0].constraint.regex == REGEX


def test_select_scores_choices_and_constrained_uses_regex() -> None:
    rt = FakeRuntime()
    state, _ = _run(one_gen(CHOICE_C, strategy="select"), rt)
    assert state["answer"] == "b.lue"  # the fake prefers the last choice
    assert rt.requests == [] and rt.scored[0][1] == ["red", "green", "b.lue"]
    assert rt.scored[0][0].endswith("<|im_start|>assistant\n")
    rt2 = FakeRuntime()
    state2, _ = _run(one_gen(CHOICE_C), rt2)
    assert rt2.requests[0].constraint.regex == r"(red|green|b\.lue)"
    assert state2["answer"] == "red"


def test_multi_turn_sees_the_real_first_answer() -> None:
    rt = FakeRuntime()
    _run(multi_turn(), rt)
    first, second = rt.requests
    answer = json.dumps({"name": "Ada", "age": 36})
    assert second.prompt == chatml(
        [("system", "Be brief."), ("user", "First question?"), ("assistant", answer), ("user", "Second?")]
    )
    assert first.constraint == JSON_C and second.constraint == REGEX_C


def test_fork_runs_branches_concurrently_on_the_shared_prefix() -> None:
    rt = FakeRuntime(delay_s=0.3)
    t0 = time.perf_counter()
    state, slots = _run(fanout(3), rt)
    elapsed = time.perf_counter() - t0
    assert rt.max_in_flight == 3, "forks should call the backend concurrently"
    assert elapsed < 0.85
    prefix = chatml(
        [("system", "Shared context."), ("user", "Long shared doc."), ("assistant", "Ok.")], False
    )
    prompts = sorted(r.prompt for r in rt.requests)
    assert all(p.startswith(prefix) for p in prompts)
    assert [p[len(prefix) :] for p in prompts] == [
        f"<|im_start|>user\nQ{i}?<|im_end|>\n<|im_start|>assistant\n" for i in range(3)
    ]
    assert [state.ret_value[b][v] for b, _, v in slots] == ["555-0100"] * 3


# -- the engine over the fake runtime -------------------------------------------------


class Clock:
    def __call__(self) -> float:
        return time.perf_counter()


def _engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rt: FakeRuntime, mode: str = "program"
) -> SglangEngine:
    import structbench.engines.embedded.runtime as runtime_mod

    monkeypatch.setattr(runtime_mod, "load_runtime", lambda spec: rt)
    spec = SglangEngineSpec(name="sgl-cpu", backend="embedded", mode=mode)  # type: ignore[arg-type]
    return SglangEngine(spec, EngineEnv(workdir=tmp_path))


def _execute(engine: SglangEngine, *items: WorkItem) -> list[list[CallRecord]]:
    async def go() -> list[list[CallRecord]]:
        info = await engine.start()
        assert info.kind == "sglang" and info.model == "fake-smollm2"
        try:
            ctx = ExecContext(cell_id="c0", clock=Clock(), t_scheduled=time.perf_counter())
            return list(await asyncio.gather(*(run_item(engine, it, ctx) for it in items)))
        finally:
            await engine.close()

    return asyncio.run(go())


def test_engine_program_mode_records(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rt = FakeRuntime()
    engine = _engine(monkeypatch, tmp_path, rt)
    assert isinstance(engine, Engine)
    items = [
        one_gen(JSON_C),
        one_gen(CHOICE_C, strategy="select"),
        multi_turn(),
        fanout(2),
        one_gen(GRAMMAR_C),
    ]
    out = _execute(engine, *items)
    assert rt.closed
    js, sel, chat, fan, gram = out
    assert [r.strategy for r in js] == ["sgl.gen.json_schema"] and js[0].ok
    assert json.loads(js[0].text)["age"] == 36 and js[0].constraint == "json_schema"
    r = js[0]
    assert (
        r.t_scheduled is not None
        and r.t_sent is not None
        and r.t_first_token is not None
        and r.t_done is not None
    )
    assert r.t_sent <= r.t_first_token <= r.t_done and r.token_times
    assert (r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.finish_reason) == (
        r.prompt_tokens,
        7,
        0,
        "stop",
    )
    assert sel[0].strategy == "sgl.select" and sel[0].text == "b.lue" and sel[0].completion_tokens is None
    assert [(x.branch, x.turn, x.gen_name, x.strategy) for x in chat] == [
        (0, 0, "first", "sgl.gen.json_schema"),
        (0, 1, "second", "sgl.gen.regex"),
    ]
    assert chat[1].prompt[-2].content == chat[0].text  # the real first answer, recorded
    assert [(x.branch, x.text) for x in fan] == [(0, "555-0100"), (1, "555-0100")]
    assert gram[0].unsupported and "program mode" in (gram[0].error or "")


@pytest.mark.filterwarnings("ignore:Error in stream_executor")
def test_engine_failure_becomes_records(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rt = FakeRuntime(fail_on="First question?")
    (recs,) = _execute(_engine(monkeypatch, tmp_path, rt), multi_turn())
    assert recs[0].error is not None and "scripted failure" in recs[0].error
    assert recs[1].error is not None and recs[1].error.startswith("skipped:")


def test_engine_generate_mode_on_the_runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rt = FakeRuntime()
    engine = _engine(monkeypatch, tmp_path, rt, mode="generate")
    assert engine.capabilities.grammar_syntaxes == frozenset({"lark"})
    chat, gram, sel = _execute(engine, multi_turn(), one_gen(GRAMMAR_C), one_gen(CHOICE_C, strategy="select"))
    assert all(r.ok for r in chat + gram + sel)
    # Same text as the program mode: the second prompt carries the real first answer.
    (second,) = [r for r in rt.requests if "Second?" in r.prompt]
    assert second.prompt.endswith(
        f"<|im_start|>assistant\n{chat[0].text}<|im_end|>\n<|im_start|>user\nSecond?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert gram[0].strategy == "sgl.gen.grammar_lark" and gram[0].text == "yes"
    assert [r.constraint.grammars for r in rt.requests if r.constraint.kind == "grammar"] == [
        (("lark", LARK),)
    ]
    assert sel[0].text == "b.lue" and sel[0].strategy == "sgl.select"
    assert chat[0].t_first_token is not None


def test_compile_is_pure_and_labels_strategies(tmp_path: Path) -> None:
    engine = SglangEngine(SglangEngineSpec(backend="embedded"), EngineEnv(workdir=tmp_path))
    c = compile_item(engine, multi_turn())
    assert c.strategies == ("sgl.gen.json_schema", "sgl.gen.regex")
    assert "@sgl.function" in c.source and SCHEMA in c.source
    assert engine.capabilities.constraints == frozenset({"none", "json_schema", "regex", "choice"})
