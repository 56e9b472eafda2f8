"""The served model's own tokenizer, for the metrics stage's ideal prefix-cache hit rate.

HTTP engines serve a model whose files may or may not be on this machine (a launched
server: yes; an attached one: maybe). When its folder is local, its tokenizer and chat
template give the exact prompt tokens; otherwise the metrics stage falls back to an
approximation and says so. transformers is imported only here, and only when called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from structbench.engines.base import PromptTokens
from structbench.ir import Message

Render = Callable[[Sequence[Message]], str]


def local_tokenizer(candidates: Sequence[str]) -> tuple[Any, str] | None:
    """The first candidate folder's tokenizer (local files only) and the folder's name, or None."""
    for raw in candidates:
        if not raw:
            continue
        folder = Path(raw).expanduser()
        if not (folder / "tokenizer_config.json").is_file() and not (folder / "tokenizer.json").is_file():
            continue
        try:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True), folder.name
        except Exception:  # transformers raises many types for a bad or foreign folder
            continue
    return None


def chat_render(tok: Any) -> Render:
    """The tokenizer's chat template with the generation prompt, as servers apply it."""

    def render(messages: Sequence[Message]) -> str:
        conv = [{"role": m.role, "content": m.content} for m in messages]
        return str(tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True))

    return render


#: Stands for an answer in the probe conversation that finds the end-of-turn marker.
_ANSWER = "\u2063structbench answer\u2063"


def end_of_turn_ids(
    render_turn: Render, encode: Callable[[str], Sequence[int]], eos_id: object = None
) -> tuple[int, ...]:
    """The token a model ends its answer with, as the next turn's prompt repeats it.

    That is the chat template's end-of-turn marker (what it writes right after an
    assistant message, e.g. ``<|im_end|>``) when it is one token, else the EOS token.

    Args:
        render_turn: Renders messages with the chat template, without the generation prompt.
        encode: Text -> token ids, no special tokens added.
        eos_id: The tokenizer's ``eos_token_id`` (the fallback; anything but an int: none).
    """
    probe = (Message("user", "hi"), Message("assistant", _ANSWER))
    try:
        text = render_turn(probe)
    except Exception:  # a template that rejects the probe (e.g. needs a system turn): use EOS
        text = ""
    _, found, after = text.partition(_ANSWER)
    marker = after.strip() if found else ""
    ids = list(encode(marker)) if marker else []
    if len(ids) == 1:
        return (int(ids[0]),)
    return (eos_id,) if isinstance(eos_id, int) else ()


def prompt_tokens(candidates: Sequence[str], render: Render | None = None) -> PromptTokens | None:
    """The prompt tokens of the first local model folder among ``candidates``.

    Args:
        candidates: Model paths to try, most trusted first.
        render: How the engine renders messages (None: the tokenizer's chat template;
            pass the engine's own renderer when it renders on the client side).
    """
    found = local_tokenizer(candidates)
    if found is None:
        return None
    tok, name = found
    if render is None:
        if not getattr(tok, "chat_template", None):
            return None
        render = chat_render(tok)

    def tokenize(text: str) -> list[int]:
        # The rendered prompt already holds any BOS/special tokens.
        return list(tok.encode(text, add_special_tokens=False))

    def render_turn(messages: Sequence[Message]) -> str:
        conv = [{"role": m.role, "content": m.content} for m in messages]
        return str(tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=False))

    stop = end_of_turn_ids(render_turn, tokenize, tok.eos_token_id)
    return PromptTokens(render, tokenize, f"model tokenizer ({name})", stop_ids=stop)
