"""The cross-check workload: distinct ~N-token prompts, and their export to each client's format.

One workload serves every arm, so that structbench and the engines' own clients send the
same text:

* ``vllm bench serve --dataset-name custom`` reads JSONL rows ``{"prompt", "output_tokens"}``
  (vLLM 0.26.0, ``vllm/benchmarks/datasets/datasets.py``, ``CustomDataset``); with
  ``--skip-chat-template`` the prompt goes, untemplated, as the one user message of a chat
  request, which is what structbench's vLLM engine sends.
* ``sglang.bench_serving --dataset-name custom`` reads JSONL rows ``{"conversations": [{"from":
  "human", "value": ...}, {"from": "gpt", "value": ...}]}`` and sends the first turn's text as
  it is (no chat template unless ``--apply-chat-template``) (SGLang 0.5.17,
  ``sglang/benchmark/datasets/custom.py``). Its output length comes from
  ``--sharegpt-output-len``; without it, ``sample_custom_requests`` takes
  ``len(tokenizer.encode(gpt turn))`` (special tokens included).

Output lengths. By default every request generates ``output_len`` tokens. In a closed loop that
makes the clients run in lock-step waves (all ``c`` requests end in the same step and the next
``c`` arrive together), so mean TTFT at low concurrency is one or two scheduler steps decided by
sub-millisecond arrival order. ``output_spread`` F > 0 draws per-request lengths once, uniform in
``[L(1-F), L(1+F)]``, and every client sends exactly those: vLLM's client from each row's
``output_tokens`` (with ``--custom-output-len -1``), SGLang's from the token count of each row's
gpt turn (no ``--sharegpt-output-len``), structbench's from ``Workload.output_lens``.

Chat template decision for SGLang's native ``/generate``: structbench renders the chat
client-side there (the model's own template, default system prompt included), so the
reference client gets the *rendered* text (``rendered``) and sends it raw. The OpenAI paths
get the raw user text (``prompts``) and the server applies the same template for both
clients. The template-free alternative (raw text through ``/generate``) would not exercise
structbench's ``/generate`` path as users run it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

# fmt: off
WORDS = (
    "apple", "river", "stone", "cloud", "green", "quick", "table", "window", "garden", "silver",
    "music", "paper", "light", "orange", "forest", "little", "market", "yellow", "winter", "summer",
    "bridge", "family", "number", "island", "mountain", "ocean", "letter", "animal", "simple",
    "pocket", "rabbit", "camera", "dinner", "doctor", "engine", "flower", "guitar", "hammer",
    "jacket", "kitten", "lemon", "planet", "rocket", "sensor", "valley", "harbor", "ticket",
    "carpet", "butter", "castle", "pepper", "shadow", "signal", "bottle", "candle", "circle",
    "copper", "desert", "feather", "garlic", "helmet", "insect", "jungle", "ladder", "magnet",
    "needle", "orchard", "parrot", "puzzle", "saddle", "timber", "velvet", "walnut", "anchor",
    "basket", "cotton", "dragon", "falcon", "glacier", "honey", "iron", "kettle", "lantern",
    "marble", "nickel", "olive", "pillow", "quartz", "ribbon", "spider", "tunnel", "umbrella",
    "violin", "wagon", "yogurt", "zebra", "cabin", "meadow", "canyon", "breeze", "compass",
)
# fmt: on

#: Counts the tokens of a text (the model's tokenizer, no special tokens added).
TokenCounter = Callable[[str], int]


class ChatTokenizer(Protocol):
    """The part of a transformers tokenizer the workload needs."""

    def apply_chat_template(self, conversation: list[dict[str, str]], **kwargs: object) -> object:
        """Render (``tokenize=False``) or tokenize a conversation."""
        ...


@dataclass(frozen=True, slots=True)
class Workload:
    """The prompts every arm sends, with their token counts.

    Attributes:
        prompts: User-message texts, distinct from their first word on.
        rendered: The same prompts as one user turn rendered with the model's chat template
            (what ``/generate`` receives); empty when no tokenizer was available.
        prompt_tokens: Tokens of each raw prompt (None without a tokenizer).
        rendered_tokens: Tokens of each rendered prompt: what a chat request costs the server.
        output_len: Tokens generated per request (``ignore_eos``).
        stop: Stop strings structbench's ``/generate`` path would add (the template's
            end-of-turn marker); recorded, and sent by neither client in the cross-check.
        seed: Seed of the word sequences (and of the output lengths, on its own stream).
        output_spread: F of the per-request lengths (0: every request ``output_len``).
        output_lens: The drawn per-request lengths, one per prompt; empty when F is 0.
    """

    prompts: tuple[str, ...]
    rendered: tuple[str, ...]
    prompt_tokens: tuple[int, ...] | None
    rendered_tokens: tuple[int, ...] | None
    output_len: int
    stop: tuple[str, ...] = ()
    seed: int = 0
    output_spread: float = 0.0
    output_lens: tuple[int, ...] = ()

    def request_output_lens(self) -> tuple[int, ...]:
        """Tokens each request must generate, in prompt order (what every client sends)."""
        return self.output_lens or (self.output_len,) * len(self.prompts)

    def head(self, n: int) -> Workload:
        """The first ``n`` prompts (one concurrency level uses a prefix of the pool)."""
        if n > len(self.prompts):
            raise ValueError(f"workload has {len(self.prompts)} prompts, {n} requested")
        cut = _cut(n)
        return Workload(
            prompts=self.prompts[:n],
            rendered=self.rendered[:n],
            prompt_tokens=cut(self.prompt_tokens),
            rendered_tokens=cut(self.rendered_tokens),
            output_len=self.output_len,
            stop=self.stop,
            seed=self.seed,
            output_spread=self.output_spread,
            output_lens=self.output_lens[:n],
        )


def _cut(n: int) -> Callable[[tuple[int, ...] | None], tuple[int, ...] | None]:
    return lambda xs: None if xs is None else xs[:n]


def load_tokenizer(path: str) -> tuple[ChatTokenizer, TokenCounter, TokenCounter]:
    """The model's tokenizer, a token counter over it (no special tokens added), and SGLang's count.

    SGLang's count is ``len(tokenizer.encode(text))``, special tokens included: how
    ``sample_custom_requests`` turns a gpt turn into an output length.
    """
    from transformers import AutoTokenizer  # the image's transformers; only prepare needs it

    tok: Any = AutoTokenizer.from_pretrained(path)

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    def encoded(text: str) -> int:
        return len(tok.encode(text))

    return cast(ChatTokenizer, tok), count, encoded


def make_prompt(rng: random.Random, target_tokens: int, count: TokenCounter | None) -> str:
    """One prompt of random words, grown or trimmed a word at a time to ``target_tokens``.

    Without a counter, one word stands for one token (a plan or a fake server needs no more).
    The result has at most ``target_tokens`` tokens and is within one word of it.
    """
    n_tokens = count or (lambda text: len(text.split()))
    words = [rng.choice(WORDS) for _ in range(target_tokens)]
    # Most of these words are one token with their leading space: start from the word
    # count, then correct by whole words (one tokenization per step, a few steps).
    while n_tokens(" ".join(words)) < target_tokens:
        words.append(rng.choice(WORDS))
    while len(words) > 1 and n_tokens(" ".join(words)) > target_tokens:
        words.pop()
    return " ".join(words)


def make_prompts(n: int, target_tokens: int, seed: int, count: TokenCounter | None = None) -> tuple[str, ...]:
    """``n`` distinct prompts (one seeded stream of words; duplicates are redrawn)."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        p = make_prompt(rng, target_tokens, count)
        if p not in seen:
            seen.add(p)
            out.append(p)
    return tuple(out)


def draw_output_lens(n: int, mean: int, spread: float, seed: int) -> tuple[int, ...]:
    """``n`` per-request output lengths, uniform in ``[L(1-F), L(1+F)]`` and of mean exactly L.

    Drawn in mirrored pairs (x, 2L - x), so that every even-length head of the list (each arm
    sends a head) generates exactly as many tokens as the fixed-length workload: the server's
    total work stays the same, only its timing de-synchronizes. A lone last element is L. The
    stream is seeded apart from the prompts' (a string seed), so the prompts stay as they were.
    """
    if spread == 0:
        return (mean,) * n
    lo = round(mean * (1 - spread))
    if not 0 < spread < 1 or lo < 2:
        # SGLang's loader drops rows whose output is under 2 tokens: that arm would be short.
        raise ValueError(f"output spread {spread} with mean {mean} must keep every length >= 2")
    rng = random.Random(f"output-lens/{seed}")
    out: list[int] = []
    for _ in range(n // 2):
        x = rng.randint(lo, 2 * mean - lo)
        out += (x, 2 * mean - x)
    return tuple(out + [mean] * (n % 2))


def make_text_of(rng: random.Random, n_tokens: int, count: TokenCounter | None) -> str:
    """Random words of exactly ``n_tokens`` tokens under ``count`` (one word a token without one).

    :func:`make_prompt` lands within one word under the target; words that add one token each
    (tried in a seeded order) fill the rest. Raises ValueError when no word fits.
    """
    n_tok = count or (lambda text: len(text.split()))
    text = make_prompt(rng, n_tokens, count)
    have = n_tok(text)
    while have < n_tokens:
        for word in rng.sample(WORDS, len(WORDS)):
            got = n_tok(f"{text} {word}")
            if have < got <= n_tokens:
                text, have = f"{text} {word}", got
                break
        else:
            raise ValueError(f"no word brings {have} tokens to exactly {n_tokens}")
    if have != n_tokens:
        raise ValueError(f"a text of {n_tokens} tokens came out at {have}")
    return text


def make_answers(lens: Sequence[int], seed: int, count: TokenCounter | None) -> tuple[str, ...]:
    """One gpt-turn text per length, each of exactly that many tokens under ``count``.

    For ``sglang.bench_serving --dataset-name custom`` without ``--sharegpt-output-len``: its
    loader takes each row's output length from the gpt turn, so ``count`` must be its count,
    ``len(tokenizer.encode(text))`` (special tokens included).
    """
    rng = random.Random(f"answers/{seed}")
    return tuple(make_text_of(rng, n, count) for n in lens)


_MARK = "\u2063XCHECKMARK\u2063"


def render_user(tok: ChatTokenizer, prompt: str) -> str:
    """One user turn rendered with the model's template, generation prompt included."""
    text = tok.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
    return str(text)


def template_stop(tok: ChatTokenizer) -> tuple[str, ...]:
    """The end-of-turn stop string that structbench's SGLang path derives from the template.

    Same rule as ``structbench.engines.sglang.templates.derive_template``: the assistant
    message's suffix, stripped (``<|im_end|>`` for ChatML models).
    """
    conv = [{"role": "user", "content": "u"}, {"role": "assistant", "content": _MARK}]
    text = str(tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=False))
    tail = text.split(_MARK, 1)[1].strip() if _MARK in text else ""
    return (tail,) if tail else ()


def build_workload(
    n: int,
    target_tokens: int,
    output_len: int,
    seed: int,
    tok: ChatTokenizer | None,
    count: TokenCounter | None,
    output_spread: float = 0.0,
) -> Workload:
    """The prompt pool, rendered and counted when a tokenizer is given."""
    prompts = make_prompts(n, target_tokens, seed, count)
    lens = draw_output_lens(n, output_len, output_spread, seed) if output_spread else ()
    if tok is None or count is None:
        return Workload(prompts, (), None, None, output_len, (), seed, output_spread, lens)
    rendered = tuple(render_user(tok, p) for p in prompts)
    return Workload(
        prompts=prompts,
        rendered=rendered,
        prompt_tokens=tuple(count(p) for p in prompts),
        rendered_tokens=tuple(count(r) for r in rendered),
        output_len=output_len,
        stop=template_stop(tok),
        seed=seed,
        output_spread=output_spread,
        output_lens=lens,
    )


def _write_jsonl(path: Path, rows: Sequence[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def export_vllm_custom(w: Workload, path: Path) -> Path:
    """Rows for ``vllm bench serve --dataset-name custom`` (raw prompts: the server templates).

    ``output_tokens`` is each request's length; vLLM reads it only with ``--custom-output-len -1``.
    """
    rows = zip(w.prompts, w.request_output_lens(), strict=True)
    return _write_jsonl(path, [{"prompt": p, "output_tokens": n} for p, n in rows])


def export_sglang_custom(texts: Sequence[str], path: Path, answers: Sequence[str] | None = None) -> Path:
    """Rows for ``sglang.bench_serving --dataset-name custom``; it sends ``value`` as it is.

    The assistant turn is required by the loader (conversations of fewer than two turns are
    dropped). With ``--sharegpt-output-len`` its length is not used ("ok"); without it, the
    loader counts its tokens as the output length, so pass ``answers`` (:func:`make_answers`).
    """
    if answers is not None and len(answers) != len(texts):
        raise ValueError(f"{len(texts)} prompts but {len(answers)} answers")
    gpt = answers if answers is not None else ["ok"] * len(texts)
    turns = (
        [{"from": "human", "value": t}, {"from": "gpt", "value": a}] for t, a in zip(texts, gpt, strict=True)
    )
    rows: list[dict[str, object]] = [{"conversations": c} for c in turns]
    return _write_jsonl(path, rows)


def output_lens_meta(w: Workload) -> dict[str, object]:
    """The output-length rule as ``crosscheck.json`` records it (the lengths too, when drawn)."""
    if not w.output_lens:
        return {"output_len_rule": f"fixed: every request {w.output_len} tokens", "output_len_spread": 0.0}
    lo, hi = min(w.output_lens), max(w.output_lens)
    return {
        "output_len_rule": f"uniform in [L(1-F), L(1+F)], L={w.output_len}, F={w.output_spread}, mirrored "
        f"pairs (x, 2L-x) so every even head has mean L; drawn in [{lo}, {hi}]; "
        f'random.Random("output-lens/{w.seed}"); SGLang gpt turns from random.Random("answers/{w.seed}")',
        "output_len_spread": w.output_spread,
        "output_len_seed": w.seed,
        "output_lens": list(w.output_lens),
    }


def check_output_lens(w: Workload, output_len: int, spread: float) -> None:
    """Refuse a prepared workload whose output-length rule is not the one asked for.

    A work folder prepared under another rule would have the arms compare lengths that no
    command line shows; SystemExit says to prepare a fresh one.
    """
    if (w.output_len, w.output_spread) != (output_len, spread):
        raise SystemExit(
            f"the workload was prepared with output length {w.output_len} and spread {w.output_spread}, "
            f"not {output_len} and {spread}: use a fresh --workdir (XC_WORKDIR)"
        )


def save_workload(w: Workload, path: Path) -> Path:
    """The whole workload as one JSON file (read back by :func:`load_workload`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, object] = {
        "prompts": list(w.prompts),
        "rendered": list(w.rendered),
        "prompt_tokens": None if w.prompt_tokens is None else list(w.prompt_tokens),
        "rendered_tokens": None if w.rendered_tokens is None else list(w.rendered_tokens),
        "output_len": w.output_len,
        "stop": list(w.stop),
        "seed": w.seed,
    }
    if w.output_lens:  # only then: a fixed-length workload's file stays as it always was
        doc |= {"output_spread": w.output_spread, "output_lens": list(w.output_lens)}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def load_workload(path: Path) -> Workload:
    """Read a file written by :func:`save_workload`."""
    d = json.loads(path.read_text(encoding="utf-8"))

    def ints(key: str) -> tuple[int, ...] | None:
        v = d.get(key)
        return None if v is None else tuple(int(x) for x in v)

    return Workload(
        prompts=tuple(str(p) for p in d["prompts"]),
        rendered=tuple(str(p) for p in d.get("rendered", ())),
        prompt_tokens=ints("prompt_tokens"),
        rendered_tokens=ints("rendered_tokens"),
        output_len=int(d["output_len"]),
        stop=tuple(str(s) for s in d.get("stop", ())),
        seed=int(d.get("seed", 0)),
        output_spread=float(d.get("output_spread", 0.0)),
        output_lens=ints("output_lens") or (),
    )
