"""Embedded engine logic that needs no model: labels, resolution, unsupported records, clocks."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from structbench.engines.base import ExecContext
from structbench.engines.embedded.constraints import choice_regex, describe_constraint, strategy_label
from structbench.engines.embedded.engine import CAPABILITIES, EmbeddedEngine, _timebase
from structbench.engines.embedded.runtime import resolve_model
from structbench.engines.registry import EngineEnv
from structbench.errors import UserError
from structbench.ir import (
    Branch,
    Choice,
    Constraint,
    Gen,
    Grammar,
    JsonSchema,
    Message,
    NoConstraint,
    Turn,
    WorkItem,
)
from structbench.program import run_item
from structbench.spec.engines import EmbeddedEngineSpec


def test_choice_regex_matches_exactly_the_choices() -> None:
    choices = ("a+b", "yes", "no (maybe)", "y")
    rx = re.compile(choice_regex(choices))
    assert all(rx.fullmatch(c) for c in choices)
    assert not rx.fullmatch("aab") and not rx.fullmatch("yesno") and not rx.fullmatch("")


def test_labels_and_descriptions() -> None:
    js = JsonSchema('{"type":"object"}')
    assert strategy_label(js) == "outlines.json_schema"
    assert strategy_label(Choice(("a",))) == "outlines.choice"
    text = describe_constraint(js, "[ ]?")
    assert text.startswith("outlines.json_schema(") and "whitespace_pattern='[ ]?'" in text
    lark = Grammar((("lark", "start: /a+/"),))
    assert "start: /a+/" in describe_constraint(lark, None)


def test_capabilities_take_lark_only() -> None:
    assert CAPABILITIES.unsupported_reason(Grammar((("lark", "x"),))) is None
    reason = CAPABILITIES.unsupported_reason(Grammar((("gbnf", "x"),)))
    assert reason is not None and reason.startswith("unsupported:")


def test_resolve_model(tmp_path: Path) -> None:
    gguf = tmp_path / "m.Q4.gguf"
    gguf.write_bytes(b"")
    src = resolve_model(str(gguf))
    assert (src.path, src.gguf_file, src.model_id) == (str(tmp_path), "m.Q4.gguf", str(gguf))
    assert resolve_model(str(tmp_path)).gguf_file is None
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct").path == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(UserError, match="does not exist"):
        resolve_model(str(tmp_path / "missing.gguf"))


def _item(*turn_constraints: Constraint) -> WorkItem:
    turns = tuple(Turn(f"q{i}", Gen(f"g{i}", c, max_tokens=4)) for i, c in enumerate(turn_constraints))
    return WorkItem("t/0", "t", "grammar", (Message("system", "s"),), (Branch(turns),), meta=(("k", "v"),))


def test_unsupported_and_not_started_become_records() -> None:
    engine = EmbeddedEngine(EmbeddedEngineSpec(name="emb"), EngineEnv(Path(".")))
    gbnf = Grammar((("gbnf", 'root ::= "a"'),))
    ctx = ExecContext("cell", time.perf_counter, t_scheduled=1.0, warmup=True, attempt=2)
    recs = asyncio.run(run_item(engine, _item(gbnf, NoConstraint()), ctx))
    assert [r.turn for r in recs] == [0, 1]
    # Turn 1 has no real previous answer: skipped, as on every engine (the shared walker).
    assert [r.status for r in recs] == ["unsupported", "skipped"]
    first = recs[0]
    assert first.engine == "emb" and first.cell_id == "cell" and first.t_scheduled == 1.0
    assert first.warmup and first.attempt == 2 and first.meta == (("k", "v"),)
    assert first.prompt == (Message("system", "s"), Message("user", "q0"))
    assert first.t_sent is None and first.constraint == "grammar"
    (rec,) = asyncio.run(run_item(engine, _item(NoConstraint()), ctx))
    assert rec.error == "engine not started"


def test_timebase_identity_for_perf_counter_and_offset_otherwise() -> None:
    assert _timebase(time.perf_counter, 5.0, 100.0)(101.5) == 101.5
    assert _timebase(lambda: 0.0, 5.0, 100.0)(101.5) == pytest.approx(6.5)


def test_importing_the_engine_loads_no_heavy_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys, structbench.engines.embedded.engine\n"
        "names = ('torch', 'transformers', 'outlines', 'outlines_core', 'llguidance')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
