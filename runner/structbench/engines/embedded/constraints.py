"""Constraints for the embedded engine: outlines-core indexes and llguidance grammars.

We drive the same machinery that outlines 1.3.3 uses (``outlines_core`` for JSON schema,
regex and choice; ``llguidance`` for its CFG backend) but without ``outlines.Generator``,
which rebuilds the token vocabulary on every call (~0.5 s). Here the vocabulary is built
once per tokenizer, every compiled index is cached by :class:`~structbench.ir.Constraint`,
and each generated row gets its own cheap matcher (they hold per-row state).

The module imports nothing heavy at import time: ``describe_constraint`` and
``strategy_label`` serve the pure ``compile()`` of the engine.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from structbench.engines.embedded.compile_proc import CompileLimitError, CompileLimits, CompileProcess
from structbench.ir import Constraint, Grammar, Regex

if TYPE_CHECKING:
    import torch

_LABELS = {
    "none": "none",
    "json_schema": "outlines.json_schema",
    "regex": "outlines.regex",
    "choice": "outlines.choice",
    "grammar": "outlines.cfg",
}


def choice_regex(choices: tuple[str, ...]) -> str:
    """Regex alternation that matches exactly one of ``choices``."""
    return "(" + "|".join(re.escape(c) for c in choices) + ")"


def strategy_label(c: Constraint) -> str:
    """The strategy recorded for constrained decoding of ``c`` (e.g. ``outlines.regex``)."""
    return _LABELS[c.kind]


def describe_constraint(c: Constraint, whitespace_pattern: str | None) -> str:
    """Readable outlines call for ``c``, as shown by ``structbench compile``."""
    if c.kind == "json_schema":
        return f"outlines.json_schema({c.json_schema!r}, whitespace_pattern={whitespace_pattern!r})"
    if c.kind == "regex":
        return f"outlines.regex({c.regex!r})"
    if c.kind == "choice":
        return f"outlines.regex({choice_regex(c.choices)!r})  # choice {list(c.choices)!r}"
    if c.kind == "grammar":
        return f"outlines.cfg(lark={c.grammar('lark')!r})  # llguidance backend"
    return "none (free text)"


class Matcher(Protocol):
    """Per-row constraint state: writes the allowed-token bitmask and follows the tokens."""

    def fill(self, mask: torch.Tensor) -> None:
        """Write the allowed tokens of the current state into ``mask`` (int32, 1-D, contiguous)."""
        ...

    def advance(self, token: int) -> str | None:
        """Consume a sampled token; return an error text when the matcher rejects it."""
        ...

    def accepting(self) -> bool:
        """True when the text so far is a complete match."""
        ...


@dataclass(frozen=True, slots=True)
class CompiledConstraint:
    """A compiled constraint, shared by every row that uses it.

    Attributes:
        constraint: The source constraint.
        strategy: Label recorded in results.
        index: ``outlines_core.Index`` (json_schema, regex, choice) or None.
        grammar: llguidance grammar text (grammar) or None.
    """

    constraint: Constraint
    strategy: str
    index: Any = None
    grammar: str | None = None


class _GuideMatcher:
    """Row state over an outlines-core index."""

    __slots__ = ("_guide",)

    def __init__(self, index: Any) -> None:
        from outlines_core import Guide

        self._guide = Guide(index)

    def fill(self, mask: torch.Tensor) -> None:
        self._guide.write_mask_into(mask.data_ptr(), mask.numel(), mask.element_size())

    def advance(self, token: int) -> str | None:
        try:
            self._guide.advance(token_id=token, return_tokens=False)
        except Exception as e:  # outlines-core raises its own error types
            return f"constraint rejected token {token}: {e}"
        return None

    def accepting(self) -> bool:
        return bool(self._guide.is_finished())


class _LlgMatcher:
    """Row state over an llguidance grammar (the backend of outlines' CFG)."""

    __slots__ = ("_m",)

    def __init__(self, tokenizer: Any, grammar: str) -> None:
        from llguidance import LLMatcher

        self._m = LLMatcher(tokenizer, grammar)

    def fill(self, mask: torch.Tensor) -> None:
        self._m.unsafe_compute_mask_ptr(mask.data_ptr(), mask.numel() * mask.element_size())

    def advance(self, token: int) -> str | None:
        self._m.consume_token(token)
        if self._m.is_error():
            return f"grammar rejected token {token}: {self._m.get_error()}"
        return None

    def accepting(self) -> bool:
        return bool(self._m.is_accepting())


class ConstraintCompiler:
    """Compiles constraints once per tokenizer and hands out per-row matchers.

    Thread-safe: compiles run on the runtime's compile thread while the decode thread
    creates matchers.

    Args:
        tokenizer: The Hugging Face tokenizer of the model.
        whitespace_pattern: JSON whitespace regex passed to outlines (None = its default).
        limits: Time and memory limits of one outlines-core compile; they run in a child
            process (:mod:`~structbench.engines.embedded.compile_proc`). None: in process,
            unlimited.
    """

    def __init__(
        self, tokenizer: Any, whitespace_pattern: str | None, limits: CompileLimits | None = None
    ) -> None:
        self._tokenizer = tokenizer
        self._ws = whitespace_pattern
        self._limits = limits
        self._proc: CompileProcess | None = None
        self._lock = threading.Lock()
        self._cache: dict[Constraint, CompiledConstraint] = {}
        # A constraint that hit a limit hits it again: its repeats fail at once.
        self._over_limit: dict[Constraint, CompileLimitError] = {}
        self._vocabulary: Any = None
        self._llg_tokenizer: Any = None

    def cached(self, c: Constraint) -> CompiledConstraint | None:
        """Return the compiled form of ``c`` if it is already in the cache."""
        with self._lock:
            return self._cache.get(c)

    def compile(self, c: Constraint) -> CompiledConstraint:
        """Compile ``c`` (cached). Raises ValueError with a readable message when invalid."""
        hit = self.cached(c)
        if hit is not None:
            return hit
        if c in self._over_limit:
            raise self._over_limit[c]
        try:
            compiled = self._build(c)
        except CompileLimitError as e:
            self._over_limit[c] = e
            raise
        with self._lock:
            self._cache[c] = compiled
        return compiled

    def matcher(self, compiled: CompiledConstraint) -> Matcher | None:
        """A fresh per-row matcher, or None for an unconstrained row."""
        if compiled.index is not None:
            return _GuideMatcher(compiled.index)
        if compiled.grammar is not None:
            return _LlgMatcher(self._llg(), compiled.grammar)
        return None

    def _build(self, c: Constraint) -> CompiledConstraint:
        label = strategy_label(c)
        if c.kind == "none":
            return CompiledConstraint(c, label)
        if c.kind == "grammar":
            return CompiledConstraint(c, label, grammar=self._lark(c))
        if self._limits is not None and (self._limits.timeout_s or self._limits.memory_mb):
            if c.kind == "json_schema" and c.json_schema is not None:
                return CompiledConstraint(
                    c, label, index=self._child().index("json_schema", c.json_schema, self._ws)
                )
            return CompiledConstraint(c, label, index=self._child().index("regex", self._regex(c), self._ws))
        return CompiledConstraint(c, label, index=self._index(self._regex(c)))

    def _child(self) -> CompileProcess:
        vocab = self._vocab()  # built here, once, and sent to every child
        with self._lock:
            if self._proc is None:
                assert self._limits is not None
                self._proc = CompileProcess(vocab, self._limits)
            return self._proc

    def close(self) -> None:
        """Stop the compile process, if one runs."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            proc.close()

    def _regex(self, c: Constraint) -> str:
        if c.kind == "json_schema":
            from outlines_core.json_schema import build_regex_from_schema

            if c.json_schema is None:
                raise ValueError("json_schema constraint without a schema")
            try:
                return str(build_regex_from_schema(c.json_schema, self._ws))
            except Exception as e:  # outlines-core raises its own error types
                raise ValueError(f"cannot compile JSON schema: {e}") from e
        if c.kind == "choice":
            if not c.choices:
                raise ValueError("choice constraint without choices")
            return choice_regex(c.choices)
        if not isinstance(c, Regex):
            raise ValueError(f"no regex for a {c.kind} constraint")
        return c.regex

    def _index(self, regex: str) -> Any:
        from outlines_core import Index

        try:
            return Index(regex, self._vocab())
        except Exception as e:
            raise ValueError(f"cannot compile regex {regex!r}: {e}") from e

    def _lark(self, c: Constraint) -> str:
        import llguidance

        text = c.grammar("lark") if isinstance(c, Grammar) else None
        if text is None:
            raise ValueError("grammar constraint without a lark grammar")
        grammar = str(llguidance.grammar_from("lark", text))
        ok, errors = _validate(self._llg(), grammar)
        if not ok:
            raise ValueError(f"cannot compile lark grammar: {errors}")
        return grammar

    def _vocab(self) -> Any:
        with self._lock:
            if self._vocabulary is None:
                from outlines.backends.outlines_core import OutlinesCoreBackend
                from outlines.models.transformers import TransformerTokenizer

                tok = self._tokenizer
                self._vocabulary = OutlinesCoreBackend.create_outlines_core_vocabulary(
                    tok.get_vocab(),
                    tok.eos_token_id,
                    tok.eos_token,
                    TransformerTokenizer(tok).convert_token_to_string,
                )
            return self._vocabulary

    def _llg(self) -> Any:
        with self._lock:
            if self._llg_tokenizer is None:
                import llguidance.hf

                self._llg_tokenizer = llguidance.hf.from_tokenizer(self._tokenizer)
            return self._llg_tokenizer


def _validate(tokenizer: Any, grammar: str) -> tuple[bool, str]:
    """Build a throw-away matcher to surface grammar errors at compile time."""
    from llguidance import LLMatcher

    m = LLMatcher(tokenizer, grammar)
    if m.is_error():
        return False, " ".join(str(m.get_error()).split())
    return True, ""
