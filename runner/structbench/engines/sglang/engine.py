"""The SGLang engine: native ``@sgl.function`` programs on a server or on the embedded CPU runtime.

* backend ``runtime``: SGLang's ``RuntimeEndpoint`` on a server that structbench attaches
  to (``url``) or launches (``launch``); backend ``embedded``: the same programs on
  :class:`~structbench.engines.sglang.backend.EmbeddedSglBackend` (no server).
* mode ``program``: SGLang's interpreter runs each item's program (on a worker thread);
  mode ``generate``: each gen is its own streaming ``/generate`` call (per-call TTFT).

sglang, torch and transformers are imported only when the engine starts.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from structbench.engines.base import Capabilities, Compiled, EngineInfo, ExecContext
from structbench.engines.embedded.api import Runtime
from structbench.engines.launch import ServerProcess
from structbench.engines.registry import EngineEnv
from structbench.engines.sglang.generate import (
    BackendSelect,
    Caller,
    HttpGenerate,
    Route,
    RuntimeGenerate,
    run_generate,
)
from structbench.engines.sglang.outcome import CallOutcome, error_outcomes, to_records
from structbench.engines.sglang.plan import ProgramPlan, plan_item
from structbench.engines.sglang.program_run import ProgramRun, perf_to_driver, run_program
from structbench.engines.sglang.source import plan_source
from structbench.engines.sglang.templates import SMOLLM2_TEMPLATE, RoleTemplate
from structbench.errors import UserError
from structbench.ir import ConstraintKind, GrammarSyntax, WorkItem
from structbench.records import CallRecord
from structbench.spec.engines import SglangEngineSpec

#: Interpreter work is blocking (threads waiting on SGLang's events), so it gets its own
#: pool, sized for benchmark concurrency rather than asyncio's default (cores + 4).
_MAX_THREADS = 1024


def capabilities_for(backend: str, mode: str) -> Capabilities:
    """What the engine runs for a backend and mode.

    Grammar gens need per-call requests: the SGLang frontend's ``sgl.gen`` has no grammar
    parameter, so program mode declares them unsupported. The server takes GBNF (as
    ``ebnf``); the embedded runtime takes Lark. Per-token times exist in generate mode
    and on the embedded runtime; cached prompt tokens only on a server.
    """
    kinds: set[ConstraintKind] = {"none", "json_schema", "regex", "choice"}
    syntaxes: frozenset[GrammarSyntax] = frozenset()
    if mode == "generate":
        kinds.add("grammar")
        syntaxes = frozenset({"gbnf"} if backend == "runtime" else {"lark"})
    return Capabilities(
        constraints=frozenset(kinds),
        grammar_syntaxes=syntaxes,
        streaming=mode == "generate" or backend == "embedded",
        cached_tokens=backend == "runtime",
    )


class SglangEngine:
    """SGLang native programs (see the module docstring).

    Args:
        spec: The engine spec.
        env: Run-level context (the server log goes to ``env.workdir``).
    """

    def __init__(self, spec: SglangEngineSpec, env: EngineEnv) -> None:
        self.spec = spec
        self.env = env
        self.name = spec.name
        self.capabilities = capabilities_for(spec.backend, spec.mode)
        self.max_concurrency: int | None = None
        self._syntaxes: tuple[GrammarSyntax, ...] = tuple(sorted(self.capabilities.grammar_syntaxes))
        self._pool = ThreadPoolExecutor(_MAX_THREADS, thread_name_prefix=f"sglang-{spec.name}")
        self._backend: Any = None
        self._runtime: Runtime | None = None
        self._server: ServerProcess | None = None
        self._client: httpx.AsyncClient | None = None
        self._template: RoleTemplate | None = None
        self._url = spec.url.rstrip("/") if spec.url else ""

    # -- compile ---------------------------------------------------------------------

    def _plan(self, item: WorkItem) -> ProgramPlan:
        return plan_item(item, self.spec.mode, self._syntaxes)

    def compile(self, item: WorkItem) -> Compiled:
        """The item's ``@sgl.function`` source and per-gen strategies (pure)."""
        plan = self._plan(item)
        return Compiled(
            engine=self.name,
            item_id=item.item_id,
            source=plan_source(plan, self.spec.mode),
            strategies=tuple(c.strategy for c in plan.calls()),
        )

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> EngineInfo:
        """Load the embedded runtime, or attach to / launch the server.

        Raises:
            UserError: When the model or the server can't be brought up.
        """
        try:
            if self.spec.backend == "embedded":
                return await self._start_embedded()
            return await self._start_runtime()
        except BaseException:
            await self.close()
            raise

    async def _start_embedded(self) -> EngineInfo:
        from structbench.engines.embedded.runtime import load_runtime, versions

        loop = asyncio.get_running_loop()
        self._runtime = await loop.run_in_executor(self._pool, load_runtime, self.spec.embedded)
        self._backend = await loop.run_in_executor(self._pool, _embedded_backend, self._runtime)
        self._template = self._backend.template
        derived = self._template is not SMOLLM2_TEMPLATE
        source = "derived from the runtime's chat template" if derived else "fallback: SmolLM2 ChatML"
        return EngineInfo(
            name=self.name,
            kind="sglang",
            model=self._runtime.model_id,
            version=f"sglang {_sglang_version()} (frontend) on embedded: {versions()}",
            extra=self._extra(source),
        )

    async def _start_runtime(self) -> EngineInfo:
        from structbench.engines.sglang.server import server_facts, server_process

        if not self._url and self.spec.launch is None:
            # Checked here, not in __init__: compile() works on a bare spec.
            raise UserError(f"engine '{self.name}': backend 'runtime' needs 'url' or 'launch'")
        if self.spec.launch is not None and not self._url:
            self._server, self._url = server_process(
                self.spec.launch, self.spec.cache, self.env.workdir, self.name
            )
            await self._server.start()
        headers = {"Authorization": f"Bearer {key}"} if (key := self._api_key()) else {}
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(self.spec.request_timeout_s, connect=30.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
        )
        try:
            facts = await server_facts(self._client, self._url)
        except httpx.HTTPError as e:
            raise UserError(
                f"engine '{self.name}': cannot reach the SGLang server at {self._url}: {e}"
            ) from e
        loop = asyncio.get_running_loop()
        try:
            self._backend, self._template, source = await loop.run_in_executor(
                self._pool, _runtime_backend, self._url, self._api_key(), facts.model_path
            )
        except Exception as e:  # RuntimeEndpoint raises plain errors on HTTP failures
            raise UserError(f"engine '{self.name}': SGLang RuntimeEndpoint({self._url}) failed: {e}") from e
        return EngineInfo(
            name=self.name,
            kind="sglang",
            model=facts.model_path,
            version=f"sglang {facts.version}",
            url=self._url,
            extra=(
                *self._extra(source),
                ("server_version", facts.version),
                ("server_info", facts.server_args),
            ),
        )

    def _api_key(self) -> str | None:
        return os.environ.get(self.spec.api_key_env) if self.spec.api_key_env else None

    def _extra(self, template_source: str) -> tuple[tuple[str, str], ...]:
        t = self._template
        return (
            ("backend", self.spec.backend),
            ("mode", self.spec.mode),
            ("cache", self.spec.cache),
            ("chat_template", f"{t.name if t else '?'} ({template_source})"),
            ("frontend_version", _sglang_version()),
        )

    async def reset_prefix_cache(self) -> bool:
        """Drop the server's radix cache (``POST /flush_cache``), so cells don't warm each other.

        Returns False on the embedded backend (it has no prefix cache) or when the server refuses
        (SGLang refuses while requests are in flight).
        """
        if self._client is None or not self._url:
            return False
        try:
            reply = await self._client.post(f"{self._url}/flush_cache")
        except httpx.HTTPError:
            return False
        return reply.status_code == 200

    async def metrics_snapshot(self) -> dict[str, float] | None:
        """Prometheus counters summed per name (needs ``--enable-metrics``), or None."""
        if self._client is None or not self._url:
            return None
        try:
            reply = await self._client.get(f"{self._url}/metrics")
        except httpx.HTTPError:
            return None
        if reply.status_code != 200:
            return None
        from structbench.engines.prom import parse_metrics

        return parse_metrics(reply.text)

    async def close(self) -> None:
        """Close connections, free the runtime, stop a launched server."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._runtime is not None:
            runtime, self._runtime = self._runtime, None
            await asyncio.to_thread(runtime.close)
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.stop)
        self._backend = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- execute ---------------------------------------------------------------------

    async def execute(self, item: WorkItem, ctx: ExecContext) -> list[CallRecord]:
        """Run every gen of the item; one record per gen; never raises."""
        plan = self._plan(item)
        n = len(plan.calls())
        try:
            if self._backend is None:
                outcomes = error_outcomes(n, "engine not started", ctx.clock(), ctx.clock())
            elif self.spec.mode == "program":
                outcomes = await self._execute_program(plan, ctx)
            else:
                outcomes = await run_generate(plan, self._require_template(), self._caller(ctx), ctx.clock)
        except Exception as e:  # a bug of ours must still become records, not a crash of the cell
            now = ctx.clock()
            outcomes = error_outcomes(n, f"{type(e).__name__}: {e}", now, now)
        return to_records(self.name, item, plan, outcomes, ctx)

    async def _execute_program(self, plan: ProgramPlan, ctx: ExecContext) -> list[CallOutcome]:
        from structbench.engines.sglang.compiler import build_plan_program

        reason = plan.unsupported()
        if reason is not None:
            # A program can't run with a hole in it: the unsupported gen gets its reason,
            # the rest of the item is recorded as not run.
            skipped = f"skipped: the program has an unsupported gen ({reason})"
            return [CallOutcome(error=c.unsupported or skipped) for c in plan.calls()]
        run = ProgramRun(
            program=build_plan_program(plan),
            plan=plan,
            backend=self._backend,
            clock=ctx.clock,
            to_driver=perf_to_driver(ctx.clock),
            timeout_s=self.spec.request_timeout_s,
        )
        return await asyncio.get_running_loop().run_in_executor(self._pool, run_program, run)

    def _caller(self, ctx: ExecContext) -> Caller:
        to_driver = perf_to_driver(ctx.clock)
        stops = self._require_template().stop
        select = BackendSelect(self._backend, self._pool, ctx.clock, to_driver)
        if self._runtime is not None:
            return Route(RuntimeGenerate(self._runtime, stops, to_driver), select)
        assert self._client is not None
        return Route(HttpGenerate(self._client, self._url, stops, ctx.clock), select)

    def _require_template(self) -> RoleTemplate:
        assert self._template is not None, "engine not started"
        return self._template


def _sglang_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("sglang")
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _embedded_backend(runtime: Runtime) -> Any:
    # Imported here: `import sglang` takes seconds, so it runs on a pool thread.
    from structbench.engines.sglang.backend import EmbeddedSglBackend

    return EmbeddedSglBackend(runtime)


def _runtime_backend(url: str, api_key: str | None, model_path: str) -> tuple[Any, RoleTemplate, str]:
    from structbench.engines.sglang.backend import TimedRuntimeEndpoint
    from structbench.engines.sglang.server import model_template
    from structbench.engines.sglang.templates import from_sgl_chat_template, to_sgl_chat_template

    ep = TimedRuntimeEndpoint(url, api_key=api_key)
    derived = model_template(model_path)
    if derived is None:
        # SGLang's own pick by model path. Generate mode renders with our copy of it,
        # which matches for SGLang's PLAIN-style templates (all but llama-2-chat).
        return ep, from_sgl_chat_template(ep.chat_template), f"sglang built-in '{ep.chat_template.name}'"
    ep.chat_template = to_sgl_chat_template(derived)
    return ep, derived, "derived from the model's chat template"
