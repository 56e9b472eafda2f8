"""The SGLang server side: launch command, server facts, and the chat template to render with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from structbench.engines.launch import ServerConfig, ServerProcess, command, free_port, server_env
from structbench.engines.sglang.templates import RoleTemplate, derive_template, hf_render_fn
from structbench.spec.engines import LaunchSpec


def launch_argv(launch: LaunchSpec, port: int, cache: str) -> tuple[str, ...]:
    """``python -m sglang.launch_server`` with structbench's flags, then the user's.

    ``--enable-cache-report`` makes the server report cached prompt tokens and
    ``--enable-metrics`` exposes ``/metrics`` (``sglang:cached_tokens_total``), the two
    sources the cache-benefit cross-check reads. ``cache: off`` adds
    ``--disable-radix-cache`` for the cache-off arm.
    """
    args = [
        "--model-path", launch.model,
        "--host", launch.host,
        "--port", str(port),
        "--enable-cache-report",
        "--enable-metrics",
    ]  # fmt: skip
    if cache == "off":
        args.append("--disable-radix-cache")
    return command(launch.python, "sglang.launch_server", [*args, *launch.args])


def server_process(launch: LaunchSpec, cache: str, workdir: Path, name: str) -> tuple[ServerProcess, str]:
    """The (not yet started) server process for a launch spec, and its base URL."""
    port = launch.port or free_port(launch.host)
    url = f"http://{launch.host}:{port}"
    cfg = ServerConfig(
        name="sglang",
        argv=launch_argv(launch, port, cache),
        log_path=workdir / f"{name}-server.log",
        health_url=f"{url}/health",
        env=server_env(launch.env),
        startup_timeout_s=launch.startup_timeout_s,
    )
    return ServerProcess(cfg), url


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What the server says about itself (for the manifest)."""

    model_path: str
    version: str
    #: ``/server_info`` without its live scheduler state, as JSON text.
    server_args: str


async def server_facts(client: httpx.AsyncClient, url: str) -> ServerFacts:
    """Read ``/model_info`` and ``/server_info`` (falling back to the older ``get_`` routes).

    Raises:
        httpx.HTTPError: When the server can't be reached.
    """
    model = await _get_first(client, url, ("/model_info", "/get_model_info"))
    info = await _get_first(client, url, ("/server_info", "/get_server_info"))
    info.pop("internal_states", None)
    return ServerFacts(
        model_path=str(model.get("model_path", info.get("model_path", ""))),
        version=str(info.get("version", "")),
        server_args=json.dumps(info, sort_keys=True, default=str),
    )


async def _get_first(client: httpx.AsyncClient, url: str, paths: tuple[str, ...]) -> dict[str, Any]:
    last: httpx.Response | None = None
    for p in paths:
        last = await client.get(url + p)
        if last.status_code == 200:
            body = last.json()
            return dict(body) if isinstance(body, dict) else {}
    assert last is not None
    last.raise_for_status()
    return {}


def model_template(model_path: str) -> RoleTemplate | None:
    """The role table derived from the served model's own chat template, or None.

    Reads the transformers tokenizer at ``model_path`` (local files only). None when it
    can't be read or its template is not a plain per-role one; the caller then keeps
    SGLang's own choice by model path.
    """
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    except Exception:
        return None
    return derive_template(f"structbench-{Path(model_path).name}", hf_render_fn(tok))
