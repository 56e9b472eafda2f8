"""Any other OpenAI-compatible server (llama.cpp, TGI, SGLang's OpenAI API, ...).

The spec declares which constraints the server enforces. ``json_schema`` goes as
``response_format`` (the OpenAI form); ``regex``, ``choice`` and ``grammar`` go in vLLM's
``structured_outputs`` extra body, and only when declared: a server that ignores an
unknown field would otherwise produce unconstrained output under a constrained label.
Undeclared constraints become "unsupported" records and are not sent.
"""

from __future__ import annotations

from collections.abc import Mapping

from structbench.engines.base import Call, CallMeasure, Capabilities, Clock, EngineInfo, Plan, PromptTokens
from structbench.engines.openai_wire import ConstraintPlan, OpenAIWire, completion_prompt
from structbench.engines.prom import Snapshot
from structbench.engines.registry import EngineEnv
from structbench.engines.stream import ClientConfig, HttpClient, ServerFacts
from structbench.engines.tokenize import prompt_tokens
from structbench.engines.vllm import vllm_constraint
from structbench.ir import ConstraintKind, Gen, GrammarSyntax
from structbench.spec.engines import OpenAIEngineSpec


def openai_capabilities(spec: OpenAIEngineSpec) -> Capabilities:
    """Capabilities from the declared constraints (grammars in GBNF or Lark, as vLLM takes)."""
    none: ConstraintKind = "none"
    kinds = frozenset((*spec.constraints, none))
    both: tuple[GrammarSyntax, ...] = ("gbnf", "lark")
    syntaxes = frozenset(both if "grammar" in kinds else ())
    return Capabilities(constraints=kinds, grammar_syntaxes=syntaxes, streaming=True, cached_tokens=True)


class OpenAIEngine:
    """A generic OpenAI-compatible server, attached by URL.

    Args:
        spec: The engine spec.
        env: Run-level context.
        extra_body: Fields added to every request body, for benchmarks (e.g.
            ``{"ignore_eos": True}``); not part of the YAML spec on purpose.
    """

    def __init__(
        self, spec: OpenAIEngineSpec, env: EngineEnv, extra_body: Mapping[str, object] | None = None
    ) -> None:
        self.spec, self.env = spec, env
        self.name = spec.name
        self.capabilities = openai_capabilities(spec)
        self.max_concurrency: int | None = None
        self._wire = OpenAIWire(spec.api, self._constraint, tuple((extra_body or {}).items()))
        self._client = HttpClient(
            ClientConfig(spec.name, spec.url.rstrip("/"), spec.request_timeout_s, spec.api_key_env)
        )
        self._facts: ServerFacts | None = None

    def _constraint(self, gen: Gen) -> ConstraintPlan:
        reason = self.capabilities.unsupported_reason(gen.constraint)
        if reason is not None:
            return ConstraintPlan(gen.constraint.kind, error=reason)
        return vllm_constraint(gen)

    def plan(self, gen: Gen) -> Plan:
        """The request fields' strategy for ``gen``, or why the server can't run it (pure)."""
        return self._wire.plan(gen)

    def render(self, call: Call) -> str:
        """The JSON request body of one call (pure)."""
        model = self._facts.model if self._facts else (self.spec.model or "<served model>")
        return self._wire.render(model, call)

    async def start(self) -> EngineInfo:
        """Open the connection pool and read the served model (and /version when present)."""
        self._client.open()
        try:
            self._facts = facts = await self._client.discover(self.spec.model)
        except BaseException:
            await self._client.close()
            raise
        return EngineInfo(
            self.name, "openai", facts.model, facts.version, self.spec.url, context_length=facts.max_model_len
        )

    async def generate(self, call: Call, clock: Clock) -> CallMeasure:
        """Stream one call through the shared client; failures come back in ``error``."""
        if self._facts is None:
            return CallMeasure(error=f"engine '{self.name}' used before start()")
        return await self._wire.generate(self._client, self._facts.model, call, clock)

    def prompt_tokens(self) -> PromptTokens | None:
        """The served model's tokenizer when its folder is on this machine (see engines/tokenize.py)."""
        paths = [self._facts.root, self._facts.model] if self._facts else []
        return prompt_tokens(paths, completion_prompt if self.spec.api == "completions" else None)

    async def metrics_snapshot(self) -> Snapshot | None:
        """Generic servers have no known /metrics counters: always None."""
        return None

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()
