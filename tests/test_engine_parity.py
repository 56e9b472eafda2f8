"""The same multi-turn and fork programs through every engine give the same record shapes.

Statuses, seeds, identity fields and the set of record fields must not depend on the
engine: the walk (turns, fork, skip policy, seeds) is shared (``structbench.program``).
Each engine runs against its real wire protocol on a scripted server (vLLM and a generic
OpenAI server in process; SGLang's native API through a launched stand-in server, in
both program and generate mode) or a scripted runtime (embedded, SGLang-on-embedded).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from http_fake import serve
from structbench.engines.base import Engine, ExecContext
from structbench.engines.embedded.engine import EmbeddedEngine
from structbench.engines.openai import OpenAIEngine
from structbench.engines.registry import EngineEnv
from structbench.engines.vllm import VllmEngine
from structbench.ir import Branch, Gen, Grammar, JsonSchema, Message, Regex, Turn, WorkItem
from structbench.program import gen_seed, run_item
from structbench.records import CallRecord
from structbench.spec.engines import (
    EmbeddedEngineSpec,
    LaunchSpec,
    OpenAIEngineSpec,
    SglangEngineSpec,
    VllmEngineSpec,
)

sys.path.insert(0, str(Path(__file__).parent / "engines" / "sglang"))
from sgl_fakes import FakeRuntime

SCHEMA = json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
JSON_C = JsonSchema(SCHEMA)
REGEX_C = Regex("[0-9]{3}")
#: No engine here takes this grammar syntax in every mode: it makes the branch stop early.
GRAMMAR_C = Grammar(())
SEED = 11
FAKE_SGL = Path(__file__).parent / "engines" / "sglang" / "fake_sglang_server.py"


def items() -> list[WorkItem]:
    """A multi-turn chat, a fork, and a chat whose first turn no engine supports."""
    chat = Branch(
        (Turn("first?", Gen("a", JSON_C, max_tokens=16)), Turn("then?", Gen("b", REGEX_C, max_tokens=8)))
    )
    fork = tuple(Branch((Turn(f"q{i}?", Gen("ans", REGEX_C, max_tokens=8)),)) for i in range(3))
    holed = Branch((Turn("x?", Gen("g", GRAMMAR_C)), Turn("y?", Gen("h", REGEX_C))))
    sys_msg = (Message("system", "Be brief."),)
    return [
        WorkItem("chat/0", "t", "chat", sys_msg, (chat,)),
        WorkItem("fan/0", "t", "fanout", sys_msg, fork),
        WorkItem("hole/0", "t", "chat", sys_msg, (holed,)),
    ]


def openai_handler(req: httpx.Request) -> httpx.Response:
    """A scripted OpenAI-compatible server: constraint-valid answers, usage, [DONE]."""
    if req.url.path == "/v1/models":
        return httpx.Response(200, json={"data": [{"id": "m", "root": "/nonexistent/m"}]})
    if req.url.path in ("/version", "/metrics"):
        return httpx.Response(404)
    body = json.loads(req.content)
    text = '{"n": 1}' if "response_format" in body else "123"
    chunks = [
        {"choices": [{"delta": {"content": text}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    ]
    return httpx.Response(
        200, content=("".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n")
    )


def _sglang_spec(tmp_path: Path, mode: str) -> SglangEngineSpec:
    pkg = tmp_path / mode / "shadow" / "sglang"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "launch_server.py").write_text(
        f"import runpy\nrunpy.run_path({str(FAKE_SGL)!r}, run_name='__main__')\n"
    )
    launch = LaunchSpec(
        model="/nonexistent/model",
        python=sys.executable,
        env={"PYTHONPATH": str(pkg.parent)},
        startup_timeout_s=60,
    )
    return SglangEngineSpec(name=f"sglang-{mode}", mode=mode, launch=launch)  # type: ignore[arg-type]


async def _records(engine: Engine) -> list[CallRecord]:
    await engine.start()
    try:
        ctx = ExecContext("cell", time.perf_counter, time.perf_counter(), seed=SEED)
        per_item = await asyncio.gather(*(run_item(engine, it, ctx) for it in items()))
    finally:
        await engine.close()
    return [r for recs in per_item for r in recs]


def _engines(tmp_path: Path, url: str) -> dict[str, Engine]:
    env = EngineEnv(tmp_path, seed=SEED)
    embedded = EmbeddedEngine(EmbeddedEngineSpec(name="embedded"), env)
    embedded._runtime = FakeRuntime(delay_s=0.01)  # type: ignore[assignment]  # a scripted model
    out: dict[str, Engine] = {
        "vllm": VllmEngine(VllmEngineSpec(name="vllm", url=url), env),
        "openai": OpenAIEngine(
            OpenAIEngineSpec(name="openai", url=url, constraints=("json_schema", "regex")), env
        ),
        "embedded": embedded,
    }
    if _has_sglang():
        from structbench.engines.sglang.engine import SglangEngine

        for mode in ("generate", "program"):
            out[f"sglang-{mode}"] = SglangEngine(_sglang_spec(tmp_path, mode), env)
    return out


def _has_sglang() -> bool:
    try:
        import sglang  # noqa: F401
    except ImportError:
        return False
    return True


def _shape(r: CallRecord) -> tuple[Any, ...]:
    return (r.item_id, r.branch, r.turn, r.gen_name, r.constraint, r.status, r.seed, r.cell_id, r.prompt[-1])


@pytest.mark.timeout(180)
def test_every_engine_walks_programs_identically(tmp_path: Path) -> None:
    async def main() -> dict[str, list[CallRecord]]:
        async with serve(openai_handler) as url:
            engines = _engines(tmp_path, url)
            return {name: await _records(e) for name, e in engines.items()}

    runs = asyncio.run(main())
    assert len(runs) == (5 if _has_sglang() else 3)
    shapes = {name: [_shape(r) for r in recs] for name, recs in runs.items()}
    first = next(iter(shapes.values()))
    for name, shape in shapes.items():
        assert shape == first, f"{name} walks differently"
        assert {tuple(asdict(r)) for r in runs[name]} == {tuple(asdict(runs["vllm"][0]))}
    statuses = [s[5] for s in first]
    assert statuses == ["ok", "ok", "ok", "ok", "ok", "unsupported", "skipped"]
    # Seeds: one formula, per (item, branch, turn): the branches of the fork differ.
    assert [s[6] for s in first[2:5]] == [gen_seed(SEED, "fan/0", b, 0) for b in range(3)]
    for name, recs in runs.items():
        chat = [r for r in recs if r.item_id == "chat/0"]
        # The second turn saw the first turn's real answer, on every engine.
        assert chat[1].prompt[-2] == Message("assistant", chat[0].text), name
        skipped = [r for r in recs if r.status == "skipped"]
        assert all(
            r.t_sent is None and (r.error or "").startswith("skipped: turn 0 of branch 0") for r in skipped
        )
