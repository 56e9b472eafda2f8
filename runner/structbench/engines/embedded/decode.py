"""Batched decoding over a transformers causal LM with one shared, left-padded KV cache.

:class:`Decoder` is the :class:`~structbench.engines.embedded.batcher.BatchExecutor` of
the real runtime. Rows join at step boundaries: newcomers are prefilled together, then
their cache is left-padded to the running batch's length (or the batch's to theirs) and
concatenated along the batch axis. Rows leave as soon as they finish, and the leading
columns that only padding uses are trimmed, so a long prompt does not tax the batch
after it is done. Each row samples under its own constraint mask, temperature and
seeded generator.

The cache surgery relies on plain ``DynamicCache`` layers (full attention: Llama,
Qwen, SmolLM and most decoder-only models). Models whose cache is not a list of
key/value tensors fail their requests with an error record.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from structbench.engines.embedded.api import GenResult
from structbench.engines.embedded.batcher import GenJob, ScoreJob, fail_job
from structbench.engines.embedded.constraints import CompiledConstraint, ConstraintCompiler, Matcher
from structbench.engines.embedded.select import score_job
from structbench.engines.embedded.tensors import left_pad_batch, lpad, merge_caches, select_rows

_AUTO_SEED_BASE = 0x5EED


@dataclass(frozen=True, slots=True)
class ModelHandle:
    """A loaded model and what decoding needs to know about it.

    Attributes:
        model: The ``PreTrainedModel`` in eval mode.
        tokenizer: Its Hugging Face tokenizer.
        compiler: Constraint compiler bound to the tokenizer.
        eos_ids: Token ids that end a free-text row.
        pad_id: Token id used for left padding (always masked out).
        max_positions: Context length, when the config declares one.
    """

    model: Any
    tokenizer: Any
    compiler: ConstraintCompiler
    eos_ids: frozenset[int]
    pad_id: int
    max_positions: int | None = None


@dataclass(slots=True)
class _Row:
    job: GenJob
    strategy: str
    matcher: Matcher | None
    #: Allowed tokens for the next sample (int32 bitmask), None when unconstrained.
    mask: torch.Tensor | None
    prompt_len: int
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    text: str | None = None
    peak_batch: int = 1
    done: bool = False


class Decoder:
    """Continuous micro-batch decoding; only the worker thread calls it.

    Args:
        handle: The loaded model.
    """

    def __init__(self, handle: ModelHandle) -> None:
        self._h = handle
        self._vocab = int(handle.model.get_output_embeddings().weight.shape[0])
        self._words = (self._vocab + 31) // 32
        self._bits = torch.ones(1, dtype=torch.int64) << torch.arange(32, dtype=torch.int64)
        eos = int(handle.tokenizer.eos_token_id)
        bit = 1 << (eos % 32)
        self._eos_word, self._eos_val = eos // 32, bit - (1 << 32) if bit >= 1 << 31 else bit
        self._auto_seed = itertools.count()
        self._reset()

    def _reset(self) -> None:
        self._rows: list[_Row] = []
        #: The batch's DynamicCache; kept across steps and rebuilt only when rows join or leave.
        self._cache: Any = None
        self._attn = torch.zeros((0, 0), dtype=torch.long)
        self._pos = torch.zeros(0, dtype=torch.long)
        self._next = torch.zeros(0, dtype=torch.long)

    @property
    def active(self) -> int:
        """Rows currently decoding."""
        return len(self._rows)

    # ---- admission -------------------------------------------------------------------

    def admit(self, jobs: list[GenJob]) -> None:
        """Prefill ``jobs`` together and merge them into the running batch."""
        with torch.inference_mode():
            self._admit(jobs)

    def _admit(self, jobs: list[GenJob]) -> None:
        rows: list[_Row] = []
        prompts: list[list[int]] = []
        for job in jobs:
            made = self._new_row(job)
            if made is not None:
                rows.append(made[0])
                prompts.append(made[1])
        if not rows:
            return
        try:
            logits, cache, attn = self._prefill(prompts)
        except Exception as e:  # only the newcomers fail; the running batch goes on
            for r in rows:
                self._finish(r, "error", f"prefill failed: {type(e).__name__}: {e}")
            return
        tokens = self._sample(rows, logits)
        now = time.perf_counter()
        for r, t in zip(rows, tokens, strict=True):
            self._accept(r, t, now)
        self._merge(rows, cache, attn, tokens)
        self._retire()

    def _new_row(self, job: GenJob) -> tuple[_Row, list[int]] | None:
        req = job.req
        try:
            ids = self._validate(job)
            compiled = job.payload if isinstance(job.payload, CompiledConstraint) else None
            matcher = self._h.compiler.matcher(compiled) if compiled else None
            mask = None
            if matcher is not None:
                mask = torch.zeros(self._words, dtype=torch.int32)
                matcher.fill(mask)
        except Exception as e:
            fail_job(job, str(e) or type(e).__name__)
            return None
        gen = None
        if req.temperature > 0:
            # Unseeded requests still differ from each other (fan-out samples must not all
            # agree) yet repeat from run to run: seeds follow the submission order.
            seed = req.seed if req.seed is not None else _AUTO_SEED_BASE + next(self._auto_seed)
            gen = torch.Generator().manual_seed(seed)
        strategy = compiled.strategy if compiled else "none"
        return _Row(job, strategy, matcher, mask, len(ids), gen), ids

    def _validate(self, job: GenJob) -> list[int]:
        req = job.req
        if req.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1 (got {req.max_tokens})")
        if req.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (got {req.temperature})")
        ids: list[int] = self._h.tokenizer.encode(req.prompt, add_special_tokens=False)
        if not ids:
            raise ValueError("empty prompt")
        limit = self._h.max_positions
        if limit is not None and len(ids) + req.max_tokens > limit:
            raise ValueError(
                f"prompt ({len(ids)} tokens) + max_tokens ({req.max_tokens}) exceeds the context ({limit})"
            )
        return ids

    def _prefill(self, prompts: list[list[int]]) -> tuple[torch.Tensor, Any, torch.Tensor]:
        from transformers import DynamicCache

        ids, attn, pos = left_pad_batch(prompts, self._h.pad_id)
        cache = DynamicCache()
        out = self._h.model(
            input_ids=ids,
            attention_mask=attn,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :], out.past_key_values, attn

    def _merge(
        self,
        rows: list[_Row],
        cache: Any,
        attn: torch.Tensor,
        tokens: list[int],
    ) -> None:
        pos = torch.tensor([r.prompt_len for r in rows], dtype=torch.long)
        nxt = torch.tensor(tokens, dtype=torch.long)
        if not self._rows:
            self._cache, self._attn, self._pos, self._next = cache, attn, pos, nxt
        else:
            width = max(self._attn.shape[1], attn.shape[1])
            self._cache = merge_caches(self._cache, cache, width)
            self._attn = torch.cat([lpad(self._attn, width), lpad(attn, width)])
            self._pos = torch.cat([self._pos, pos])
            self._next = torch.cat([self._next, nxt])
        self._rows.extend(rows)
        for r in self._rows:
            r.peak_batch = max(r.peak_batch, len(self._rows))

    # ---- decoding --------------------------------------------------------------------

    def step(self) -> None:
        """Decode one token for every active row."""
        with torch.inference_mode():
            self._step()

    def _step(self) -> None:
        attn = torch.cat([self._attn, torch.ones((len(self._rows), 1), dtype=torch.long)], dim=1)
        out = self._h.model(
            input_ids=self._next[:, None],
            attention_mask=attn,
            position_ids=self._pos[:, None],
            past_key_values=self._cache,
            use_cache=True,
        )
        self._attn = attn
        self._pos = self._pos + 1
        tokens = self._sample(self._rows, out.logits[:, -1, :])
        now = time.perf_counter()
        for r, t in zip(self._rows, tokens, strict=True):
            self._accept(r, t, now)
        self._next = torch.tensor(tokens, dtype=torch.long)
        self._retire()

    def _sample(self, rows: list[_Row], logits: torch.Tensor) -> list[int]:
        logits = logits.float()
        masked = [i for i, r in enumerate(rows) if r.mask is not None]
        if masked:
            words = torch.stack([m for m in (rows[i].mask for i in masked) if m is not None])
            allowed = ((words.to(torch.int64).unsqueeze(-1) & self._bits) != 0).flatten(1)
            idx = torch.tensor(masked)
            logits[idx] = logits[idx].masked_fill(~allowed[:, : logits.shape[1]], float("-inf"))
        tokens: list[int] = logits.argmax(dim=-1).tolist()
        for i, r in enumerate(rows):
            if r.generator is not None:
                probs = torch.softmax(logits[i] / r.job.req.temperature, dim=-1)
                tokens[i] = int(torch.multinomial(probs, 1, generator=r.generator).item())
        return tokens

    def _accept(self, row: _Row, token: int, now: float) -> None:
        row.times.append(now)
        if token in self._h.eos_ids and (row.matcher is None or row.matcher.accepting()):
            self._finish(row, "stop")
            return
        row.tokens.append(token)
        if row.matcher is not None and row.mask is not None:
            err = row.matcher.advance(token)
            if err is not None:
                self._finish(row, "error", err)
                return
            row.matcher.fill(row.mask)
            if self._only_eos(row.mask):  # the constraint is complete: end the row now
                self._finish(row, "stop")
                return
            if not bool(row.mask.any()):
                ok = row.matcher.accepting()
                self._finish(
                    row, "stop" if ok else "error", None if ok else "constraint has no valid continuation"
                )
                return
        if row.job.req.stop and self._hit_stop(row):
            return
        if len(row.times) >= row.job.req.max_tokens:
            self._finish(row, "length")

    def _only_eos(self, mask: torch.Tensor) -> bool:
        return int(mask[self._eos_word]) == self._eos_val and int(torch.count_nonzero(mask)) == 1

    def _hit_stop(self, row: _Row) -> bool:
        text = self._decode(row.tokens)
        cut = min((i for i in (text.find(s) for s in row.job.req.stop if s) if i >= 0), default=-1)
        if cut < 0:
            return False
        row.text = text[:cut]
        self._finish(row, "stop")
        return True

    def _retire(self) -> None:
        keep = [i for i, r in enumerate(self._rows) if not r.done]
        if len(keep) == len(self._rows):
            return
        if not keep:
            self._reset()
            return
        idx = torch.tensor(keep)
        attn = self._attn[idx]
        # Columns that only the departed rows used are padding for everyone left.
        first = int(attn.any(dim=0).long().argmax())
        self._cache = select_rows(self._cache, idx, first)
        self._attn = attn[:, first:]
        self._pos, self._next = self._pos[idx], self._next[idx]
        self._rows = [self._rows[i] for i in keep]

    def _finish(self, row: _Row, reason: str, error: str | None = None) -> None:
        row.done = True
        times = row.times
        res = GenResult(
            text=row.text if row.text is not None else self._decode(row.tokens),
            prompt_tokens=row.prompt_len,
            completion_tokens=len(times),
            finish_reason=reason,
            t_start=row.job.t_submit,
            t_first_token=times[0] if times else None,
            t_done=time.perf_counter(),
            token_times=tuple(times[1:]),
            error=error,
            strategy=row.strategy,
            batch_size=row.peak_batch,
        )
        if not row.job.future.done():
            row.job.future.set_result(res)

    def _decode(self, tokens: list[int]) -> str:
        return str(self._h.tokenizer.decode(tokens, skip_special_tokens=True))

    def fail_all(self, error: str) -> None:
        """Resolve every active row with ``error`` and drop the batch."""
        for r in self._rows:
            if not r.done:
                self._finish(r, "error", error)
        self._reset()

    # ---- choice scoring --------------------------------------------------------------

    def score(self, job: ScoreJob) -> None:
        """Length-normalised log-probability of each choice after the prompt."""
        score_job(self._h.model, self._h.tokenizer, self._h.pad_id, job)
