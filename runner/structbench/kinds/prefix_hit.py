"""The ``prefix_hit`` kind: prompts built to reach a target prefix-cache hit rate.

Every prompt is ``input_len`` tokens of the rendered chat, counted with the model's own
tokenizer and chat template. Its system message holds a group's shared text, then text
that no other prompt starts with; the user message is the task's fixed ``prompt``. The
shared part (the template's head, the shared text, the separator) is ``target`` of the
prompt, so a cache holding the group's prefix serves that share of every prompt, and
nothing after it: each prompt's own part opens with a word no other prompt of its group
opens with.

Lengths are measured, not estimated: the shared length of a group is the common token
prefix of two probe prompts that differ only after it, and each prompt's own part is
cut, word by word, to bring the whole prompt to ``input_len``. The shared part is the
shortest that reaches the target, so an engine's block rounding (down to whole blocks)
falls inside the tolerance of the check, never below it.

Each group gets one primer: a prompt with the group's prefix and its own unique part,
run as the cell's warm-up (:func:`structbench.cells.warmup_split`), so that measured
prompts find their prefix cached and the cell's counters leave the primers out.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from structbench.errors import SpecError, UserError
from structbench.ir import Branch, Gen, Message, Turn, WorkItem
from structbench.kinds.fanout import COMMON_WORDS, pseudo_text
from structbench.spec.loaded import LoadedTask
from structbench.spec.paths import display_path
from structbench.spec.tasks import PrefixHitTaskSpec
from structbench.templates import TemplateError, render

APPROX_LABEL = "approximate (words and punctuation over ChatML; set tokenizer for the model's own)"
#: Measured requests per group when the load does not say how many.
DEFAULT_PER_GROUP = 4


@dataclass(frozen=True, slots=True)
class Sizer:
    """Counts a chat's tokens as the engine sees them (chat template, then tokenizer)."""

    render: Callable[[Sequence[Message]], str]
    tokenize: Callable[[str], Sequence[int]]
    label: str

    def ids(self, system: str, user: str) -> list[int]:
        """Token ids of the rendered two-message chat."""
        return list(self.tokenize(self.render((Message("system", system), Message("user", user)))))


@dataclass(frozen=True, slots=True)
class HitPlan:
    """What to build: ``requests`` measured prompts over ``groups`` shared prefixes."""

    target: float
    input_len: int
    groups: int
    requests: int
    #: The user message of every prompt.
    user: str


@dataclass(frozen=True, slots=True)
class BuiltPrompt:
    """One prompt as built: its system text and its token counts."""

    group: int
    system: str
    #: Tokens of the whole rendered prompt.
    tokens: int
    #: Leading tokens it shares with the other prompts of its group.
    shared: int
    primer: bool = False


def build_prompts(sizer: Sizer, plan: HitPlan, rng: random.Random) -> list[BuiltPrompt]:
    """The primers (one per group, first), then the measured prompts in arrival order.

    Raises:
        ValueError: when the target leaves no room for a unique part at ``input_len``,
            or ``input_len`` is shorter than the fixed parts of the chat.
    """
    shared_target = _ceil(plan.target * plan.input_len)
    prefixes = [_group_prefix(sizer, plan, shared_target, rng) for _ in range(plan.groups)]
    # Opening words of the unique parts, each used once over all groups (with an empty
    # shared text, all groups start alike): a shared opening word would be shared tokens
    # the target did not ask for.
    openers = _openers(rng)
    out = [
        _prompt(sizer, plan, g, prefixes[g], _opener(openers, g), rng, primer=True)
        for g in range(plan.groups)
    ]
    order = [r % plan.groups for r in range(plan.requests)]
    rng.shuffle(order)
    for i, g in enumerate(order, start=plan.groups):
        out.append(_prompt(sizer, plan, g, prefixes[g], _opener(openers, i), rng, primer=False))
    return out


@dataclass(frozen=True, slots=True)
class _Prefix:
    text: str
    #: Tokens shared by every prompt of the group.
    shared: int


def _ceil(x: float) -> int:
    # 0.3 * 1000 is 300.00000000000006 in floating point: round off the noise first.
    r = round(x, 6)
    return int(r) if r == int(r) else int(r) + 1


def _join(prefix: str, unique: str) -> str:
    return f"{prefix}\n\n{unique}" if prefix else unique


def _shared_len(sizer: Sizer, prefix: str, user: str) -> int:
    """Common leading tokens of two prompts that differ only after ``prefix``."""
    a = sizer.ids(_join(prefix, "Apple tree."), user)
    b = sizer.ids(_join(prefix, "Yellow sky."), user)
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _group_prefix(sizer: Sizer, plan: HitPlan, shared_target: int, rng: random.Random) -> _Prefix:
    """The shortest word prefix of fresh pseudo-text whose shared length reaches the target."""
    words = pseudo_text(rng, plan.input_len + 16).split()
    lo, hi = 0, len(words)  # the answer lies in [lo, hi]
    if _shared_len(sizer, " ".join(words), plan.user) < shared_target:
        raise ValueError(f"could not build a shared part of {shared_target} tokens")
    while lo < hi:
        mid = (lo + hi) // 2
        if _shared_len(sizer, " ".join(words[:mid]), plan.user) >= shared_target:
            hi = mid
        else:
            lo = mid + 1
    text = " ".join(words[:lo])
    return _Prefix(text, _shared_len(sizer, text, plan.user))


def _openers(rng: random.Random) -> list[str]:
    words = [w.capitalize() for w in COMMON_WORDS]
    rng.shuffle(words)
    return words


def _opener(words: Sequence[str], i: int) -> str:
    # Past the word list, a number makes the opener unique again (its first token may repeat).
    return words[i % len(words)] + (str(i // len(words)) if i >= len(words) else "")


def _prompt(
    sizer: Sizer, plan: HitPlan, g: int, prefix: _Prefix, opener: str, rng: random.Random, *, primer: bool
) -> BuiltPrompt:
    """A prompt of the group whose unique part brings it closest to ``input_len`` tokens."""
    filler = pseudo_text(rng, plan.input_len).split()

    def system(j: int) -> str:
        return _join(prefix.text, " ".join([opener, *filler[:j]]))

    @functools.cache
    def length(j: int) -> int:
        return len(sizer.ids(system(j), plan.user))

    base = length(0)
    if base > plan.input_len:
        room = plan.input_len - (base - prefix.shared)
        raise ValueError(
            f"input_len {plan.input_len} leaves no room: the shared part is {prefix.shared} tokens and "
            f"the rest of the chat needs {base - prefix.shared} (at most target "
            f"{max(room, 0) / plan.input_len:.3f} at this length)"
        )
    lo = _first_reaching(length, plan.input_len, len(filler))
    # The word before may land closer (a word can be several tokens).
    best = min((j for j in (lo - 1, lo) if j >= 0), key=lambda j: (abs(length(j) - plan.input_len), j))
    return BuiltPrompt(g, system(best), length(best), prefix.shared, primer)


def _first_reaching(length: Callable[[int], int], target: int, n: int) -> int:
    """The smallest ``j`` in [0, n] with ``length(j) >= target`` (``n`` when none does).

    ``length`` grows with ``j``. Tokenizing is the builder's whole cost, so the search
    starts from a guess at the mean tokens per word and widens a bracket around it,
    rather than bisecting all of [0, n].
    """
    base, full = length(0), length(n)
    if full < target or n == 0:
        return n
    guess = min(max(round((target - base) * n / max(full - base, 1)), 0), n)
    step = 2
    lo, hi = max(guess - step, 0), min(guess + step, n)
    while lo > 0 and length(lo) >= target:
        lo, step = max(lo - 2 * step, 0), 2 * step
    while hi < n and length(hi) < target:
        hi, step = min(hi + 2 * step, n), 2 * step
    # Now length(lo) < target or lo == 0, and length(hi) >= target or hi == n.
    while lo < hi:
        mid = (lo + hi) // 2
        if length(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


_WORDISH = re.compile(r"\d|[^\W\d]+|[^\w\s]|\n")


def approximate_sizer() -> Sizer:
    """Words, digits, punctuation and newlines as tokens over ChatML, when no tokenizer is given."""
    vocab: dict[str, int] = {}

    def tokenize(text: str) -> list[int]:
        return [vocab.setdefault(p, len(vocab)) for p in _WORDISH.findall(text)]

    def chatml(messages: Sequence[Message]) -> str:
        body = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
        return body + "<|im_start|>assistant\n"

    return Sizer(chatml, tokenize, APPROX_LABEL)


@functools.lru_cache(maxsize=4)
def model_sizer(folder: str) -> Sizer:
    """The tokenizer and chat template of a local model folder (loaded once per folder).

    Raises:
        UserError: when the folder's tokenizer cannot be loaded or has no chat template.
    """
    # transformers is imported only here, and only for a task that names a tokenizer.
    from structbench.engines.tokenize import prompt_tokens

    found = prompt_tokens([folder])
    if found is None:
        raise UserError(f"tokenizer {folder}: cannot load its tokenizer with a chat template")
    return Sizer(found.render, found.tokenize, found.label)


def expand(task: LoadedTask, rng: random.Random, num_requests: int | None) -> list[WorkItem]:
    """The primers, then the measured items, of a one-target ``prefix_hit`` task.

    Args:
        task: A loaded ``prefix_hit`` task with one target (the loader splits a sweep).
        rng: Seeds the texts and the order of the groups.
        num_requests: Measured items (None: 4 per group).
    """
    spec = task.spec
    if not isinstance(spec, PrefixHitTaskSpec):
        raise TypeError(f"prefix_hit.expand got a '{spec.kind}' task")
    where = display_path(task.path)
    try:
        user = render(spec.prompt, task.rows[0])
    except TemplateError as e:
        raise SpecError(where, 0, 0, "prompt", str(e)) from None
    sizer = model_sizer(spec.tokenizer) if spec.tokenizer is not None else approximate_sizer()
    plan = HitPlan(
        spec.targets[0], spec.input_len, spec.groups, num_requests or DEFAULT_PER_GROUP * spec.groups, user
    )
    try:
        built = build_prompts(sizer, plan, rng)
    except ValueError as e:
        raise SpecError(where, 0, 0, "target_hit_rate", str(e)) from None
    return _items(spec, plan, built, sizer.label)


def _items(
    spec: PrefixHitTaskSpec, plan: HitPlan, built: Sequence[BuiltPrompt], label: str
) -> list[WorkItem]:
    out = []
    n = 0
    for p in built:
        item_id = f"{spec.name}/prime{p.group}" if p.primer else f"{spec.name}/r{n}"
        n += not p.primer
        gen = Gen(name="answer", max_tokens=spec.max_tokens, temperature=spec.temperature)
        meta = (
            ("group", str(p.group)),
            ("target_hit_rate", f"{plan.target:g}"),
            ("prompt_tokens", str(p.tokens)),
            ("shared_tokens", str(p.shared)),
            ("counted_by", label),
        )
        out.append(
            WorkItem(
                item_id=item_id,
                task=spec.name,
                kind="prefix_hit",
                prefix=(Message("system", p.system),),
                branches=(Branch((Turn(plan.user, gen),)),),
                meta=meta,
                primer=p.primer,
            )
        )
    return out
