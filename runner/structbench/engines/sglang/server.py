"""The SGLang server side: launch command, server facts, and the chat template to render with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from structbench.engines.grammar_backend import check_declared, grammar_extras, libraries_of, library_versions
from structbench.engines.launch import ServerConfig, ServerProcess, command, free_port, server_env
from structbench.engines.sglang.templates import RoleTemplate, derive_template, hf_render_fn
from structbench.engines.stream import HttpClient
from structbench.errors import UserError
from structbench.spec.engines import LaunchSpec


def launch_argv(
    launch: LaunchSpec, port: int, cache: str, grammar_backend: str | None = None
) -> tuple[str, ...]:
    """``python -m sglang.launch_server`` with structbench's flags, then the user's.

    ``--enable-cache-report`` makes the server report cached prompt tokens and
    ``--enable-metrics`` exposes ``/metrics`` (``sglang:cached_tokens_total``), the two
    sources the cache-benefit cross-check reads. ``cache: off`` adds
    ``--disable-radix-cache`` for the cache-off arm; ``grammar_backend`` becomes
    ``--grammar-backend``.
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
    if grammar_backend is not None:
        args += ["--grammar-backend", grammar_backend]
    return command(launch.python, "sglang.launch_server", [*args, *launch.args])


def server_process(
    launch: LaunchSpec, cache: str, workdir: Path, name: str, grammar_backend: str | None = None
) -> tuple[ServerProcess, str]:
    """The (not yet started) server process for a launch spec, and its base URL."""
    port = launch.port or free_port(launch.host)
    url = f"http://{launch.host}:{port}"
    cfg = ServerConfig(
        name="sglang",
        argv=launch_argv(launch, port, cache, grammar_backend),
        log_path=workdir / f"{name}-server.log",
        health_url=f"{url}/health",
        env=server_env(launch.env),
        startup_timeout_s=launch.startup_timeout_s,
    )
    return ServerProcess(cfg), url


#: Where the page size comes from when the server does not report one.
_PAGE_DEFAULT_SOURCE = "SGLang default (1; the server did not say)"


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What the server says about itself (for the manifest)."""

    model_path: str
    version: str
    #: ``/server_info`` without its live scheduler state, as JSON text.
    server_args: str
    #: The radix cache's page size in tokens (SGLang's default is 1: any token prefix).
    page_size: int = 1
    #: The context length the server enforces (None: it did not say).
    context_length: int | None = None
    #: Where ``page_size`` came from.
    page_source: str = _PAGE_DEFAULT_SOURCE


async def server_facts(client: HttpClient, name: str, url: str) -> ServerFacts:
    """Read ``/model_info`` and ``/server_info`` (falling back to the older ``get_`` routes).

    Raises:
        UserError: When the server can't be reached or answers neither route.
    """
    model = await _get_first(client, ("/model_info", "/get_model_info"))
    info = await _get_first(client, ("/server_info", "/get_server_info"))
    if model is None or info is None:
        raise UserError(
            f"engine '{name}': cannot reach the SGLang server at {url} (/model_info, /server_info)"
        )
    info.pop("internal_states", None)
    page = info.get("page_size")
    known = isinstance(page, int) and page > 0
    return ServerFacts(
        model_path=str(model.get("model_path", info.get("model_path", ""))),
        version=str(info.get("version", "")),
        server_args=json.dumps(info, sort_keys=True, default=str),
        page_size=page if known and isinstance(page, int) else 1,
        page_source="server (/server_info page_size)" if known else _PAGE_DEFAULT_SOURCE,
        context_length=await _context_length(client, info),
    )


async def _context_length(client: HttpClient, info: dict[str, Any]) -> int | None:
    """``--context-length`` when the server was given one, else the model's, from ``/v1/models``.

    ``/server_info`` holds the server's arguments, where ``context_length`` is null unless set;
    the OpenAI-compatible model list reports the length the server derived from the model.
    """
    given = info.get("context_length")
    if isinstance(given, int) and given > 0:
        return given
    models = await client.get_json("/v1/models")
    data = models.get("data") if models is not None else None
    entry = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    length = entry.get("max_model_len")
    return length if isinstance(length, int) and length > 0 else None


async def _get_first(client: HttpClient, paths: tuple[str, ...]) -> dict[str, Any] | None:
    for p in paths:
        body = await client.get_json(p)
        if body is not None:
            return body
    return None


def grammar_facts(
    name: str, launch: LaunchSpec | None, declared: str | None, server_args: str
) -> tuple[tuple[str, str], ...]:
    """The grammar backend the server runs (its ``/server_info`` says) and its library versions.

    Blocks (runs the launched server's interpreter): call it off the event loop.

    Raises:
        UserError: The server runs another backend than ``grammar_backend`` says.
    """
    try:
        reported = json.loads(server_args).get("grammar_backend")
    except (ValueError, AttributeError):
        reported = None
    reported = reported if isinstance(reported, str) and reported else None
    check_declared(name, declared, reported)
    backend = reported or declared
    source = "server (/server_info)" if reported else "launch flag" if launch and declared else "unknown"
    versions = None
    if launch is not None:
        versions = library_versions(launch.python, libraries_of(backend or ""), launch.env)
    return grammar_extras(backend, source, versions)


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
