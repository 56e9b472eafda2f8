"""backend: runtime end to end against a scripted SGLang server that structbench launches.

The server (fake_sglang_server.py) is started exactly as a real one would be
(``python -m sglang.launch_server ...``), through a stand-in ``sglang`` package on the
child's PYTHONPATH. Programs run on SGLang's real ``RuntimeEndpoint`` and interpreter.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("sglang")

from sgl_fakes import CHOICE_C, GRAMMAR_C, JSON_C, REGEX_C, SCHEMA, fanout, multi_turn, one_gen

from structbench.engines.base import ExecContext
from structbench.engines.registry import EngineEnv
from structbench.engines.sglang.engine import SglangEngine
from structbench.engines.sglang.server import launch_argv
from structbench.ir import WorkItem
from structbench.program import compile_item, run_item
from structbench.records import CallRecord
from structbench.spec.engines import LaunchSpec, SglangEngineSpec

pytestmark = [pytest.mark.sglang, pytest.mark.timeout(180)]

FAKE = Path(__file__).with_name("fake_sglang_server.py")
SMOL = Path.home() / ".cache" / "structbench" / "smollm2-135m-instruct-hf"


def _spec(
    tmp_path: Path, model: str, mode: str, cache: str = "on", extra: tuple[str, ...] = ()
) -> tuple[SglangEngineSpec, Path]:
    pkg = tmp_path / "shadow" / "sglang"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "launch_server.py").write_text(
        f"import runpy\nrunpy.run_path({str(FAKE)!r}, run_name='__main__')\n"
    )
    log = tmp_path / "requests.jsonl"
    launch = LaunchSpec(
        model=model,
        python=sys.executable,
        args=("--mem-fraction-static", "0.5", *extra),
        env={"PYTHONPATH": str(pkg.parent), "FAKE_SGL_LOG": str(log)},
        startup_timeout_s=60,
    )
    spec = SglangEngineSpec(name="sgl", backend="runtime", mode=mode, launch=launch, cache=cache)  # type: ignore[arg-type]
    return spec, log


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _go(engine: SglangEngine, items: list[WorkItem]) -> tuple[Any, list[list[CallRecord]], str]:
    async def main() -> tuple[Any, list[list[CallRecord]], str]:
        info = await engine.start()
        try:
            ctx = ExecContext(cell_id="c", clock=time.perf_counter, t_scheduled=time.perf_counter())
            recs = list(await asyncio.gather(*(run_item(engine, i, ctx) for i in items)))
        finally:
            url = info.url
            await engine.close()
        return info, recs, url

    return asyncio.run(main())


def _down(url: str) -> bool:
    try:
        httpx.get(url + "/health", timeout=2)
    except httpx.HTTPError:
        return True
    return False


def test_launch_argv() -> None:
    launch = LaunchSpec(model="/m", python="py", args=("--tp", "2"), host="0.0.0.0")
    on = launch_argv(launch, 31000, "on")
    assert on == (
        "py", "-m", "sglang.launch_server", "--model-path", "/m", "--host", "0.0.0.0", "--port", "31000",
        "--enable-cache-report", "--enable-metrics", "--tp", "2",
    )  # fmt: skip
    assert "--disable-radix-cache" in launch_argv(launch, 1, "off")


@pytest.mark.skipif(not SMOL.is_dir(), reason="converted SmolLM2 checkpoint not cached")
def test_program_mode_on_a_launched_server(tmp_path: Path) -> None:
    spec, log = _spec(tmp_path, str(SMOL), "program")
    engine = SglangEngine(spec, EngineEnv(workdir=tmp_path))
    items = [
        one_gen(JSON_C),
        one_gen(CHOICE_C, strategy="select"),
        one_gen(CHOICE_C),
        multi_turn(),
        fanout(3),
    ]
    info, (js, sel, con, chat, fan), url = _go(engine, items)
    assert _down(url), "the launched server must be stopped on close"
    extra = dict(info.extra)
    assert info.version == "sglang 0.5.17-fake" and info.model == str(SMOL)
    assert info.context_length == 2048  # no --context-length: the model card's max_model_len
    assert "derived from the model's chat template" in extra["chat_template"]
    assert "internal_states" not in json.loads(extra["server_info"])
    assert (tmp_path / "sgl-server.log").is_file()

    assert js[0].ok and json.loads(js[0].text) == {"name": "Ada", "age": 36}
    assert js[0].strategy == "sgl.gen.json_schema" and js[0].finish_reason == "stop"
    r = js[0]
    assert r.t_first_token is None and r.t_sent is not None and r.t_done is not None and r.t_sent < r.t_done
    assert sel[0].ok and sel[0].text == "green" and sel[0].strategy == "sgl.select"
    assert con[0].text == "red" and con[0].strategy == "sgl.gen.regex_choice"
    assert [x.text for x in chat] == [js[0].text, "555-0100"]
    assert [x.text for x in fan] == ["555-0100"] * 3
    assert all((x.cached_tokens or 0) > 0 for x in fan), "fork branches share the committed prefix"

    entries = _log(log)
    argv = entries[0]["argv"]
    assert {"--enable-cache-report", "--enable-metrics", "--mem-fraction-static"} <= set(argv)
    assert "--disable-radix-cache" not in argv
    bodies = [e["body"] for e in entries if e.get("path") == "/generate"]
    schema_bodies = [b for b in bodies if b["sampling_params"].get("json_schema")]
    assert schema_bodies and all(b["sampling_params"]["json_schema"] == SCHEMA for b in schema_bodies)
    # Items run concurrently, so the single-gen JSON item's body is any one of them.
    assert any(
        b["text"].startswith("<|im_start|>system\nAnswer tersely.<|im_end|>\n<|im_start|>user\n")
        for b in schema_bodies
    )
    # SGLang commits the shared prefix (max_new_tokens 0) before forking.
    assert any(
        b["sampling_params"].get("max_new_tokens") == 0 and str(b.get("text", "")).endswith("Ok.<|im_end|>\n")
        for b in bodies
    )


def test_generate_mode_cache_off_and_builtin_template(tmp_path: Path) -> None:
    # No local tokenizer at this path, so SGLang's own template pick ("qwen") is used.
    qwen = "/nonexistent/Qwen2-0.5B-Instruct"
    spec, log = _spec(tmp_path, qwen, "generate", cache="off", extra=("--context-length", "512"))
    engine = SglangEngine(spec, EngineEnv(workdir=tmp_path))
    assert engine.capabilities.grammar_syntaxes == frozenset({"gbnf"}) and engine.capabilities.cached_tokens
    items = [
        multi_turn(),
        one_gen(GRAMMAR_C),
        one_gen(CHOICE_C, strategy="select"),
        one_gen(REGEX_C, system=None),
    ]
    info, (chat, gram, sel, rx), _ = _go(engine, items)
    assert "sglang built-in 'qwen'" in dict(info.extra)["chat_template"]
    assert info.context_length == 512  # the server's own --context-length wins
    assert all(r.ok for r in chat + gram + sel + rx), [r.error for r in chat + gram + sel + rx]
    assert gram[0].text == "yes" and gram[0].strategy == "sgl.gen.ebnf"
    assert sel[0].text == "green"
    r = chat[0]
    assert r.t_sent is not None and r.t_first_token is not None and r.t_done is not None
    assert r.t_sent <= r.t_first_token <= r.t_done and len(r.token_times) == 2
    assert all(x.cached_tokens == 0 for x in chat)  # --disable-radix-cache
    entries = _log(log)
    assert "--disable-radix-cache" in entries[0]["argv"]
    streamed = [e["body"] for e in entries if e.get("path") == "/generate" and e["body"].get("stream")]
    assert any(b["sampling_params"].get("ebnf") == 'root ::= "yes" | "no"' for b in streamed)
    assert all(b["sampling_params"]["stop"] == ["<|im_end|>"] for b in streamed)
    (rx_body,) = [b for b in streamed if "Question?" in b["text"] and b["sampling_params"].get("regex")]
    assert rx_body["text"].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")


def test_attach_failure_is_a_user_error(tmp_path: Path) -> None:
    from structbench.engines.launch import free_port
    from structbench.errors import UserError

    spec = SglangEngineSpec(backend="runtime", url=f"http://127.0.0.1:{free_port()}", request_timeout_s=5)
    engine = SglangEngine(spec, EngineEnv(workdir=tmp_path))
    with pytest.raises(UserError, match="cannot reach the SGLang server"):
        asyncio.run(engine.start())
    bare = SglangEngine(SglangEngineSpec(), EngineEnv(workdir=tmp_path))
    assert compile_item(bare, one_gen(JSON_C)).strategies == (
        "sgl.gen.json_schema",
    )  # compile needs no server
    with pytest.raises(UserError, match="needs 'url' or 'launch'"):
        asyncio.run(bare.start())
