"""VllmEngine without a server: constraint mapping, compile, attach, launch errors (fakes)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from http_fake import serve
from structbench.engines.base import ExecContext
from structbench.engines.registry import EngineEnv
from structbench.engines.vllm import VllmEngine, block_size_and_source, launch_argv, vllm_constraint
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
    Regex,
    Turn,
    WorkItem,
)
from structbench.program import compile_item, run_item
from structbench.spec.engines import LaunchSpec, VllmEngineSpec

SCHEMA = json.dumps(
    {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}, sort_keys=True
)
CONSTRAINTS = {
    "none": NoConstraint(),
    "json_schema": JsonSchema(SCHEMA),
    "regex": Regex(r"\d{3}"),
    "choice": Choice(("yes", "no")),
    "gbnf": Grammar((("gbnf", 'root ::= "a" | "b"'),)),
    "lark": Grammar((("lark", 'start: "a" | "b"'),)),
}

METRICS = """# HELP vllm:prefix_cache_hits_total hits
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 64.0
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 128.0
"""


def _item(*constraints: Constraint, strategy: str = "constrained") -> WorkItem:
    turns = tuple(
        Turn(f"q{i}", Gen(f"g{i}", c, max_tokens=4, choice_strategy=strategy))  # type: ignore[arg-type]
        for i, c in enumerate(constraints)
    )
    return WorkItem("t/0", "t", "json", (Message("system", "sys"),), (Branch(turns),))


class FakeVllm:
    """A scripted vLLM server: /v1/models, /version, /metrics and streaming chat."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, req: httpx.Request) -> httpx.Response:
        path = req.url.path
        if path == "/v1/models":
            return httpx.Response(
                200, json={"data": [{"id": "smol", "root": "/ckpt", "max_model_len": 2048}]}
            )
        if path == "/version":
            return httpx.Response(200, json={"version": "0.32.0"})
        if path == "/metrics":
            return httpx.Response(200, text=METRICS)
        self.bodies.append(json.loads(req.content))
        chunks = [
            {"choices": [{"delta": {"content": "7"}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1}},
        ]
        text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, content=text.encode())


def _engine(tmp_path: Path, url: str = "http://fake:8000", **kw: Any) -> VllmEngine:
    return VllmEngine(VllmEngineSpec(url=url), EngineEnv(tmp_path, seed=3), **kw)


def _keys(obj: object) -> list[str]:
    if isinstance(obj, dict):
        return [k for k, v in obj.items() for k in (k, *_keys(v))]
    if isinstance(obj, list):
        return [k for v in obj for k in _keys(v)]
    return []


def test_constraint_mapping() -> None:
    plan = vllm_constraint(Gen("g", CONSTRAINTS["json_schema"]))
    assert plan.strategy == "response_format.json_schema"
    assert dict(plan.fields)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": json.loads(SCHEMA), "strict": True},
    }
    assert dict(vllm_constraint(Gen("g", CONSTRAINTS["regex"])).fields) == {
        "structured_outputs": {"regex": r"\d{3}"}
    }
    plan = vllm_constraint(Gen("g", CONSTRAINTS["choice"]))
    assert plan.strategy == "structured_outputs.choice"
    assert dict(plan.fields) == {"structured_outputs": {"choice": ["yes", "no"]}}
    plan = vllm_constraint(Gen("g", CONSTRAINTS["lark"]))
    assert dict(plan.fields) == {"structured_outputs": {"grammar": 'start: "a" | "b"'}}
    both = Grammar((("lark", "start: x"), ("gbnf", "root ::= x")))
    assert dict(vllm_constraint(Gen("g", both)).fields) == {"structured_outputs": {"grammar": "root ::= x"}}
    assert vllm_constraint(Gen("g")).fields == ()
    sel = vllm_constraint(Gen("g", CONSTRAINTS["choice"], choice_strategy="select"))
    assert sel.error is not None and sel.error.startswith("unsupported:")


def test_execute_never_sends_guided_fields(tmp_path: Path) -> None:
    fake = FakeVllm()

    async def go() -> list[Any]:
        async with serve(fake) as url:
            eng = _engine(tmp_path, url)
            await eng.start()
            recs = await run_item(eng, _item(*CONSTRAINTS.values()), ExecContext("c", lambda: 0.0, 0.0))
            await eng.close()
            return recs

    recs = asyncio.run(go())
    assert len(fake.bodies) == len(CONSTRAINTS) and all(r.ok for r in recs)
    assert not [k for b in fake.bodies for k in _keys(b) if k.startswith("guided_")]
    assert [r.strategy for r in recs] == [
        "none",
        "response_format.json_schema",
        "structured_outputs.regex",
        "structured_outputs.choice",
        "structured_outputs.grammar.gbnf",
        "structured_outputs.grammar.lark",
    ]
    assert all(b["model"] == "smol" for b in fake.bodies)


def test_select_is_recorded_unsupported_and_not_sent(tmp_path: Path) -> None:
    fake = FakeVllm()

    async def go() -> list[Any]:
        async with serve(fake) as url:
            eng = _engine(tmp_path, url)
            await eng.start()
            recs = await run_item(
                eng, _item(CONSTRAINTS["choice"], strategy="select"), ExecContext("c", lambda: 0.0, 0.0)
            )
            await eng.close()
            return recs

    [rec] = asyncio.run(go())
    assert rec.unsupported and rec.t_sent is None and fake.bodies == []


def test_start_attach_info_metrics_and_extra_body(tmp_path: Path) -> None:
    fake = FakeVllm()

    async def go() -> tuple[Any, Any, str]:
        async with serve(fake) as url:
            eng = _engine(tmp_path, url, extra_body={"ignore_eos": True})
            info = await eng.start()
            snap = await eng.metrics_snapshot()
            await run_item(eng, _item(NoConstraint()), ExecContext("c", lambda: 0.0, 0.0))
            await eng.close()
            return info, snap, url

    info, snap, url = asyncio.run(go())
    assert (info.kind, info.model, info.version, info.url) == ("vllm", "smol", "0.32.0", url)
    assert ("max_model_len", "2048") in info.extra and ("launched", "false") in info.extra
    assert snap == {
        "vllm:prefix_cache_hits_total": 64.0,
        "vllm:prefix_cache_queries_total": 128.0,
        # Engine-neutral names, so that metrics never need vLLM's counter names.
        "prefix_cache_hit_tokens": 64.0,
        "prefix_cache_query_tokens": 128.0,
    }
    assert fake.bodies[0]["ignore_eos"] is True


def test_compile_shows_bodies_with_placeholders(tmp_path: Path) -> None:
    eng = _engine(tmp_path)
    c = compile_item(
        eng,
        _item(
            CONSTRAINTS["json_schema"],
            CONSTRAINTS["regex"],
            Choice(("a",)),
            strategy="constrained",
        ),
    )
    assert c.strategies == (
        "response_format.json_schema",
        "structured_outputs.regex",
        "structured_outputs.choice",
    )
    assert "\"<<answer of gen 'g0'>>\"" in c.source and '"response_format"' in c.source
    assert "guided_" not in c.source and "<served model>" in c.source
    # Each body parses as JSON after its comment header and its endpoint line.
    chunks = [chunk.split("\n", 2) for chunk in c.source.strip().split("\n\n# ") if chunk]
    assert all(ch[1] == "POST /v1/chat/completions" for ch in chunks)
    bodies = [json.loads(ch[2]) for ch in chunks]
    assert [b["messages"][-1]["content"] for b in bodies] == ["q0", "q1", "q2"]
    assert bodies[2]["messages"][2] == {"role": "assistant", "content": "<<answer of gen 'g0'>>"}


def test_launch_argv() -> None:
    launch = LaunchSpec(model="/ckpt", python="/venv/bin/python", args=("--dtype", "float32"), port=9)
    argv = launch_argv(launch, 8123, "off")
    assert argv[:3] == ("/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server")
    assert "--enable-prompt-tokens-details" in argv and "--no-enable-prefix-caching" in argv
    assert argv[-2:] == ("--dtype", "float32")
    assert argv[argv.index("--port") + 1] == "8123"
    assert "--no-enable-prefix-caching" not in launch_argv(launch, 1, "on")


@pytest.mark.parametrize(
    ("args", "backend"),
    [
        (("--tensor-parallel-size", "2"), "mp"),  # several workers: vLLM's own processes, not Ray
        (("-tp=4",), "mp"),
        (("--pipeline-parallel-size", "2"), "mp"),
        (("--tensor-parallel-size", "2", "--distributed-executor-backend", "ray"), "ray"),  # the user's
        (("--tensor-parallel-size", "1"), None),  # one worker: no executor to choose
        ((), None),
    ],
)
def test_a_parallel_server_uses_its_own_multiprocessing_executor(
    args: tuple[str, ...], backend: str | None
) -> None:
    argv = launch_argv(LaunchSpec(model="/ckpt", args=args), 1, "on")
    flag = "--distributed-executor-backend"
    assert argv.count(flag) == (0 if backend is None else 1)
    if backend is not None:
        assert argv[argv.index(flag) + 1] == backend


def test_needs_url_or_launch(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="url"):
        VllmEngine(VllmEngineSpec(), EngineEnv(tmp_path))


def test_launch_failure_names_the_log(tmp_path: Path) -> None:
    # This interpreter has no vllm module, so the "server" exits at once.
    spec = VllmEngineSpec(name="v", launch=LaunchSpec(model="m", python=sys.executable, startup_timeout_s=60))
    eng = VllmEngine(spec, EngineEnv(tmp_path))
    with pytest.raises(UserError) as err:
        asyncio.run(eng.start())
    msg = str(err.value)
    assert str(tmp_path / "v-server.log") in msg and "No module named" in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("config", "args", "expected"),
    [
        ({"block_size": "128"}, ("--block-size", "32"), (128, "server (/metrics vllm:cache_config_info)")),
        ({}, ("--dtype", "float32", "--block-size", "32"), (32, "launch flag --block-size")),
        ({}, ("--block-size=64",), (64, "launch flag --block-size")),
        ({"block_size": "x"}, ("--block-size", "0"), (16, "vLLM default (16; the server did not say)")),
    ],
)
def test_block_size_comes_from_the_server_then_the_flags_then_the_default(
    config: dict[str, str], args: tuple[str, ...], expected: tuple[int, str]
) -> None:
    assert block_size_and_source(config, args) == expected
