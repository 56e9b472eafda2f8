"""Figures that need the model's files: the ideal prefix-cache hit rate and the roofline.

:func:`enrich_cells` adds them to already summarized cells. The ideal hit rate counts
each cell's prompts with the served model's own tokenizer and chat template when the
model folder exists on this machine (``transformers`` is imported lazily, only then),
else with :func:`structbench.cache.piece_tokenizer` over ChatML; the report names the
tokenizer used. ``CallRecord.prompt`` holds the chat messages for every engine (the
SGLang backends record the messages too, not rendered text), so rendering them here
applies the template exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from structbench.cache import (
    VLLM_BLOCK_SIZE,
    IdealCache,
    Render,
    Tokenize,
    chatml_render,
    covered_prefix_lengths,
    piece_tokenizer,
)
from structbench.ir import Message
from structbench.metrics import CellSummary
from structbench.metrics.roofline import roofline
from structbench.records import CallRecord
from structbench.report.model_facts import EngineModel, RunModels, local_model_size

APPROX_LABEL = "approximate (word pieces over ChatML; model tokenizer not available here)"


@dataclass(frozen=True, slots=True)
class PromptCounter:
    """Renders chat messages as the engine did and tokenizes them."""

    render: Render
    tokenize: Tokenize
    label: str


def approximate_counter() -> PromptCounter:
    """The tokenizer-free stand-in (a fresh vocabulary per call)."""
    return PromptCounter(chatml_render, piece_tokenizer(), APPROX_LABEL)


def model_counter(folder: Path) -> PromptCounter | None:
    """The model's own tokenizer and chat template, or None when they cannot be loaded."""
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer_config.json").is_file():
        return None
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception:  # transformers raises many types for a bad or foreign folder
        return None
    if not getattr(tok, "chat_template", None):
        return None

    def render(messages: Sequence[Message]) -> str:
        conv = [{"role": m.role, "content": m.content} for m in messages]
        return str(tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True))

    def tokenize(text: str) -> list[int]:
        # The template already wrote any BOS/special tokens into the text.
        return list(tok.encode(text, add_special_tokens=False))

    return PromptCounter(render, tokenize, f"model tokenizer ({folder.name})")


def counters_by_engine(models: Mapping[str, EngineModel]) -> dict[str, PromptCounter]:
    """One counter per engine, loading each distinct tokenizer once."""
    loaded: dict[Path, PromptCounter | None] = {}
    out: dict[str, PromptCounter] = {}
    for name, model in models.items():
        folder = model.local_dir()
        if folder is not None and folder not in loaded:
            loaded[folder] = model_counter(folder)
        found = loaded.get(folder) if folder is not None else None
        counter = found or approximate_counter()
        if model.api == "completions":
            # The plain-text prompt the engine sent, with no chat template applied.
            from structbench.engines.http_program import completion_prompt

            counter = replace(counter, render=completion_prompt, label=f"{counter.label}, completions text")
        out[name] = counter
    return out


def cell_ideal(records: Sequence[CallRecord], counter: PromptCounter, block_size: int) -> IdealCache:
    """The ideal hit rate of one cell's measured prompts, in send order.

    Warm-up prompts were sent to the same cache first, so they count as already seen
    (they can cover a measured prompt) but are not counted themselves; otherwise the
    achieved rate could beat the "ideal".
    """
    sent = sorted((r for r in records if r.t_sent is not None), key=lambda r: r.t_sent or 0.0)
    ids = [list(counter.tokenize(counter.render(r.prompt))) for r in sent]
    covered = covered_prefix_lengths(ids)
    measured = [(c, p) for c, p, r in zip(covered, ids, sent, strict=True) if not r.warmup]
    blocks = sum((min(c, max(len(p) - 1, 0)) // block_size) * block_size for c, p in measured)
    return IdealCache(
        prompts=len(measured),
        prompt_tokens=sum(len(p) for _, p in measured),
        covered_tokens=sum(c for c, _ in measured),
        block_size=block_size,
        covered_block_tokens=blocks,
    )


def _ideal_cells(
    cells: Sequence[CellSummary], records: Sequence[CallRecord], models: RunModels
) -> dict[str, CellSummary]:
    by_cell: dict[str, list[CallRecord]] = {}
    for r in records:
        by_cell.setdefault(r.cell_id, []).append(r)
    engines = {c.info.engine for c in cells}
    counters = counters_by_engine({e: models.engines.get(e, EngineModel(e)) for e in engines})
    out: dict[str, CellSummary] = {}
    for engine in engines:
        kind = models.engines.get(engine, EngineModel(engine)).kind
        # vLLM reuses whole 16-token blocks only; SGLang's radix cache (page size 1)
        # and the others reuse any token prefix.
        block = VLLM_BLOCK_SIZE if kind == "vllm" else 1
        counter = counters[engine]
        for c in (c for c in cells if c.info.engine == engine):
            ideal = cell_ideal(by_cell.get(c.info.cell_id, ()), counter, block)
            if not ideal.prompt_tokens:
                continue
            cache = replace(
                c.cache,
                ideal_hit_rate=ideal.block_hit_rate,
                ideal_token_hit_rate=ideal.hit_rate,
                ideal_basis=f"blocks of {block}" if block > 1 else "tokens",
                ideal_tokenizer=counter.label,
            )
            out[c.info.cell_id] = replace(c, cache=cache)
    return out


def enrich_cells(
    cells: Sequence[CellSummary], records: Sequence[CallRecord], models: RunModels
) -> tuple[CellSummary, ...]:
    """Cells with the ideal prefix-cache hit rate and the roofline filled in where known.

    Args:
        cells: Summarized cells.
        records: The run's call records (all cells).
        models: The run's model facts (:func:`structbench.report.model_facts.run_models`).
    """
    with_ideal = _ideal_cells(cells, records, models)
    sizes = {name: local_model_size(m) for name, m in models.engines.items()}
    out = []
    for c in cells:
        c = with_ideal.get(c.info.cell_id, c)
        roof = roofline(c.latency.tpot.mean, sizes.get(c.info.engine), models.gpu)
        out.append(replace(c, roofline=roof) if roof is not None else c)
    return tuple(out)
