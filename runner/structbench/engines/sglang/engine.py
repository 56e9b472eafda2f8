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
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from structbench.engines.base import Call, CallMeasure, Capabilities, Clock, EngineInfo, Plan, PromptTokens
from structbench.engines.counters import neutral_counters
from structbench.engines.embedded.api import Runtime
from structbench.engines.launch import ServerProcess, flag_value
from structbench.engines.prom import scrape
from structbench.engines.registry import EngineEnv
from structbench.engines.sglang.generate import (
    BackendSelect,
    RuntimeGenerate,
    generate_body,
    http_generate,
    render_body,
)
from structbench.engines.sglang.outcome import error_measures
from structbench.engines.sglang.plan import GenCall, ProgramPlan, plan_gen, plan_item
from structbench.engines.sglang.program_run import ProgramRun, perf_to_driver, run_program
from structbench.engines.sglang.source import plan_source
from structbench.engines.sglang.templates import SMOLLM2_TEMPLATE, RoleTemplate, render
from structbench.engines.stream import ClientConfig, HttpClient
from structbench.engines.tokenize import prompt_tokens
from structbench.errors import UserError
from structbench.ir import ConstraintKind, Gen, GrammarSyntax, Message, WorkItem
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
        extra_body: Sampling parameters added to every ``/generate`` request, for
            benchmarks (e.g. ``{"ignore_eos": True}``); not part of the YAML spec on purpose.
    """

    def __init__(
        self, spec: SglangEngineSpec, env: EngineEnv, extra_body: Mapping[str, object] | None = None
    ) -> None:
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
        self._client: HttpClient | None = None
        self._template: RoleTemplate | None = None
        self._url = spec.url.rstrip("/") if spec.url else ""
        self._extra = dict(extra_body or {})
        self._model_path = ""
        self._calls: dict[Gen, GenCall] = {}

    # -- plan and compile (pure) -------------------------------------------------------

    def _plan(self, item: WorkItem) -> ProgramPlan:
        return plan_item(item, self.spec.mode, self._syntaxes)

    def _gen_call(self, gen: Gen) -> GenCall:
        call = self._calls.get(gen)
        if call is None:
            call = self._calls[gen] = plan_gen(gen, self.spec.mode, self._syntaxes)
        return call

    def plan(self, gen: Gen) -> Plan:
        """The ``sgl.gen`` strategy of ``gen``, or why this mode can't run it."""
        call = self._gen_call(gen)
        return Plan(call.strategy, call.unsupported)

    @property
    def native_mode(self) -> bool:
        """Program mode: SGLang's interpreter runs whole items."""
        return self.spec.mode == "program"

    def native_source(self, item: WorkItem) -> str:
        """The item's ``@sgl.function`` source (pure)."""
        return plan_source(self._plan(item), self.spec.mode)

    def render(self, call: Call) -> str:
        """The ``/generate`` request of one call (generate mode), or its ``select`` (pure)."""
        gen_call = self._gen_call(call.gen)
        template = self._template or SMOLLM2_TEMPLATE
        prompt = render(template, call.messages, True)
        if gen_call.choices:
            return f"# sgl.select over {list(gen_call.choices)!r} (logprob scoring) after:\n{prompt}"
        note = (
            "" if self._template else "# prompt rendered with the SmolLM2 template until the engine starts\n"
        )
        return note + render_body(generate_body(prompt, gen_call, self._stops(template), self._extra))

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
        from structbench.engines.embedded.runtime import grammar_info, load_runtime, versions

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
            extra=(*self._info_extra(source), *grammar_info()),
            dtype=self.spec.embedded.dtype,
        )

    async def _start_runtime(self) -> EngineInfo:
        from structbench.engines.server_log import read_head, sglang_facts
        from structbench.engines.sglang.server import grammar_facts, server_facts, server_process

        if not self._url and self.spec.launch is None:
            # Checked here, not in __init__: compile() works on a bare spec.
            raise UserError(f"engine '{self.name}': backend 'runtime' needs 'url' or 'launch'")
        if self.spec.launch is not None and not self._url:
            self._server, self._url = server_process(
                self.spec.launch, self.spec.cache, self.env.workdir, self.name, self.spec.grammar_backend
            )
            await self._server.start()
        self._client = HttpClient(
            ClientConfig(self.name, self._url, self.spec.request_timeout_s, self.spec.api_key_env)
        )
        self._client.open()
        facts = await server_facts(self._client, self.name, self._url)
        self._model_path = facts.model_path
        loop = asyncio.get_running_loop()
        try:
            self._backend, self._template, source = await loop.run_in_executor(
                self._pool, _runtime_backend, self._url, self._client.api_key, facts.model_path
            )
        except Exception as e:  # RuntimeEndpoint raises plain errors on HTTP failures
            raise UserError(f"engine '{self.name}': SGLang RuntimeEndpoint({self._url}) failed: {e}") from e
        grammar = await loop.run_in_executor(
            self._pool,
            grammar_facts,
            self.name,
            self.spec.launch,
            self.spec.grammar_backend,
            facts.server_args,
        )
        return EngineInfo(
            name=self.name,
            kind="sglang",
            model=facts.model_path,
            version=f"sglang {facts.version}",
            url=self._url,
            extra=(
                *self._info_extra(source),
                ("server_version", facts.version),
                ("server_info", facts.server_args),
                *sglang_facts(
                    json.loads(facts.server_args or "{}"),
                    read_head(self._server.cfg.log_path if self._server is not None else None),
                ),
                *grammar,
            ),
            cache_block_size=facts.page_size,
            context_length=facts.context_length,
            cache_block_source=facts.page_source,
            dtype=flag_value(self.spec.launch.args, "--dtype") if self.spec.launch is not None else None,
        )

    def _info_extra(self, template_source: str) -> tuple[tuple[str, str], ...]:
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
        if self._client is None:
            return False
        reply = await self._client.fetch("POST", "/flush_cache")
        return reply is not None and reply.status == 200

    def prompt_tokens(self) -> PromptTokens | None:
        """The served model's tokenizer over the role template both modes send (engines/tokenize.py).

        A call that stopped generated the template's stop string, which the radix cache
        holds; in program mode the interpreter prefills each fork's shared prefix (the text
        so far, without the generation prompt) before the branches.
        """
        template = self._template
        if template is None:
            return None

        def prompt(msgs: Sequence[Message]) -> str:
            return render(template, msgs, True)

        def fork_prefix(msgs: Sequence[Message]) -> str:
            return render(template, msgs, False)

        if self._runtime is not None:
            rt = self._runtime
            found: PromptTokens | None = PromptTokens(prompt, rt.encode, f"model tokenizer ({rt.model_id})")
        else:
            found = prompt_tokens([self._model_path], prompt)
        if found is None:
            return None
        stop = tuple(found.tokenize(template.stop[0])) if template.stop else found.stop_ids
        return replace(found, stop_ids=stop, fork_prefix=fork_prefix if self.native_mode else None)

    async def metrics_snapshot(self) -> dict[str, float] | None:
        """Prometheus counters summed per name (needs ``--enable-metrics``), or None.

        The prefix-cache counters are also given engine-neutral names
        (:func:`structbench.engines.counters.neutral_counters`).
        """
        if self._client is None:
            return None
        snap = await scrape(self._client)
        return None if snap is None else {**snap, **neutral_counters(snap)}

    async def close(self) -> None:
        """Close connections, free the runtime, stop a launched server."""
        if self._client is not None:
            await self._client.close()
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

    async def native(self, item: WorkItem, clock: Clock) -> list[CallMeasure]:
        """Program mode: run the item's ``@sgl.function`` with SGLang's interpreter."""
        from structbench.engines.sglang.compiler import build_plan_program

        plan = self._plan(item)
        if self._backend is None:
            now = clock()
            return error_measures(len(plan.calls()), "engine not started", now, now)
        run = ProgramRun(
            program=build_plan_program(plan),
            plan=plan,
            backend=self._backend,
            clock=clock,
            to_driver=perf_to_driver(clock),
            timeout_s=self.spec.request_timeout_s,
        )
        return await asyncio.get_running_loop().run_in_executor(self._pool, run_program, run)

    async def generate(self, call: Call, clock: Clock) -> CallMeasure:
        """Generate mode: one gen as its own request (``select`` through the backend)."""
        if self._backend is None or self._template is None:
            return CallMeasure(error="engine not started")
        gen_call = self._gen_call(call.gen)
        prompt = render(self._template, call.messages, True)
        if gen_call.choices:
            return await BackendSelect(self._backend, self._pool)(
                prompt, gen_call, clock, perf_to_driver(clock)
            )
        if self._runtime is not None:
            runtime = RuntimeGenerate(self._runtime, self._template.stop)
            return await runtime(prompt, gen_call, perf_to_driver(clock), call.seed)
        assert self._client is not None
        body = generate_body(prompt, gen_call, self._stops(self._template), self._extra)
        return await http_generate(self._client, body, clock)

    def _stops(self, template: RoleTemplate) -> tuple[str, ...]:
        """The template's end-of-turn strings, unless ``ignore_eos`` asks for the full length.

        SGLang ends a generation on a stop string even with ``ignore_eos``; a benchmark that
        asks for ``max_tokens`` tokens per request means the end-of-turn marker too.
        """
        return () if self._extra.get("ignore_eos") else template.stop

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
