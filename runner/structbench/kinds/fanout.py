"""The ``fanout`` kind: G groups, each one shared prefix followed by M distinct questions.

This is the prefix-cache workload. The prefix of a group is a system message: the task's
``system`` prompt, then either the document of ``prefix_file`` or seeded pseudo-text of
about ``prefix_tokens`` tokens. Each of the M branches asks one question of about
``question_tokens`` tokens, rendered from a data row with ``prompt`` when the task has
one, else generated.

``as_fork: true`` makes one item per group with M branches (SGLang ``fork(M)``, M
concurrent requests elsewhere). ``as_fork: false`` makes one item per (group, branch),
in group-major order (``ordered``) or shuffled; ``popularity: zipf`` draws the group of
each item with Zipf weights, so a few prefixes are hot and the rest cold.

With a ``prefix_file``, every group gets the same document, preceded by a short header
that names the group: the G prefixes then differ from their first lines, as G different
documents would, and no group reuses another's prefix. ``groups: 1`` gives one document
shared by every question.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from structbench.errors import SpecError
from structbench.ir import Branch, Gen, Message, Turn, WorkItem
from structbench.spec.loaded import LoadedTask
from structbench.spec.paths import display_path
from structbench.spec.tasks import FanoutTaskSpec
from structbench.templates import TemplateError, render

#: (group, branch) of one question.
Slot = tuple[int, int]


def expand(task: LoadedTask, rng: random.Random, num_requests: int | None) -> list[WorkItem]:
    """Build the fan-out work items of ``task``.

    Args:
        task: A loaded ``fanout`` task.
        rng: Seeds the pseudo-text, the generated questions, the order and the Zipf draws.
        num_requests: Items to make (None = one per group with ``as_fork``, else one per
            question); groups or questions repeat when it asks for more.

    Returns:
        The items, in arrival order.
    """
    spec = task.spec
    if not isinstance(spec, FanoutTaskSpec):
        raise TypeError(f"fanout.expand got a '{spec.kind}' task")
    prefixes = [_prefix(task, spec, g, rng) for g in range(spec.groups)]
    questions = {
        (g, b): _question(task, spec, g, b, rng) for g in range(spec.groups) for b in range(spec.branches)
    }
    if spec.as_fork:
        groups = _pick_groups(spec, rng, spec.groups if num_requests is None else num_requests)
        return [
            _fork_item(spec, g, prefixes[g], [questions[g, b] for b in range(spec.branches)], rep)
            for g, rep in _numbered(groups)
        ]
    n = spec.groups * spec.branches if num_requests is None else num_requests
    return [
        _branch_item(spec, slot, prefixes[slot[0]], questions[slot], rep)
        for slot, rep in _numbered(_slots(spec, rng, n))
    ]


def zipf_weights(n: int, s: float) -> list[float]:
    """Zipf weights ``1 / rank**s`` for ranks 1..n (group 0 is the most popular)."""
    return [1.0 / (rank**s) for rank in range(1, n + 1)]


def _pick_groups(spec: FanoutTaskSpec, rng: random.Random, n: int) -> list[int]:
    """The group of each fork item, in arrival order."""
    if spec.popularity == "zipf":
        picks = rng.choices(range(spec.groups), weights=zipf_weights(spec.groups, spec.zipf_s), k=n)
        return sorted(picks) if spec.order == "ordered" else picks
    return _cycled(list(range(spec.groups)), n, rng if spec.order == "shuffled" else None)


def _slots(spec: FanoutTaskSpec, rng: random.Random, n: int) -> list[Slot]:
    """The (group, branch) of each single-question item, in arrival order."""
    if spec.popularity == "zipf":
        groups = rng.choices(range(spec.groups), weights=zipf_weights(spec.groups, spec.zipf_s), k=n)
        asked = [0] * spec.groups
        slots: list[Slot] = []
        for g in groups:
            # A hot group asks its questions in turn, then starts over.
            slots.append((g, asked[g] % spec.branches))
            asked[g] += 1
        # Stable sort: group-major, each group's questions still in the order drawn.
        return sorted(slots, key=lambda s: s[0]) if spec.order == "ordered" else slots
    every = [(g, b) for g in range(spec.groups) for b in range(spec.branches)]
    return _cycled(every, n, rng if spec.order == "shuffled" else None)


def _cycled(units: list[Any], n: int, rng: random.Random | None) -> list[Any]:
    """``n`` units: the list over and over, each pass reshuffled when ``rng`` is given."""
    out: list[Any] = []
    while len(out) < n:
        batch = list(units)
        if rng is not None:
            rng.shuffle(batch)
        out.extend(batch)
    return out[:n]


def _numbered(units: Sequence[Any]) -> list[tuple[Any, int]]:
    """Pair each unit with how many times it came before (for unique item ids)."""
    seen: dict[Any, int] = {}
    out = []
    for u in units:
        out.append((u, seen.get(u, 0)))
        seen[u] = seen.get(u, 0) + 1
    return out


def _prefix(task: LoadedTask, spec: FanoutTaskSpec, g: int, rng: random.Random) -> tuple[Message, ...]:
    """The shared prefix of group ``g``: the system message, then any few-shot turns."""
    if task.prefix_text is not None:
        body = f"Session {g + 1} of {spec.groups}. Reference document:\n\n{task.prefix_text.strip()}"
    else:
        body = pseudo_text(rng, spec.prefix_tokens)
    # The prefix is shared by every branch, so its templates render with the first row only.
    system = _render(task, "system", spec.system, 0) if spec.system is not None else None
    shots: list[Message] = []
    for k, shot in enumerate(spec.few_shot):
        shots.append(Message("user", _render(task, f"few_shot[{k}].user", shot.user, 0)))
        shots.append(Message("assistant", _render(task, f"few_shot[{k}].assistant", shot.assistant, 0)))
    return (Message("system", f"{system}\n\n{body}" if system else body), *shots)


def _question(
    task: LoadedTask, spec: FanoutTaskSpec, g: int, b: int, rng: random.Random
) -> tuple[str, str | None]:
    """The user message and reference of branch ``b`` of group ``g``."""
    if not spec.prompt:
        return pseudo_question(rng, g, b, spec.question_tokens), None
    # Spread the rows over all questions, so M <= rows gives distinct questions per group.
    i = (g * spec.branches + b) % len(task.rows)
    ref = _render(task, "reference", spec.reference, i) if spec.reference is not None else None
    return _render(task, "prompt", spec.prompt, i), ref


def _render(task: LoadedTask, field: str, template: str, i: int) -> str:
    try:
        return render(template, task.rows[i])
    except TemplateError as e:  # the loader tried row 0 only
        raise SpecError(display_path(task.path), 0, 0, field, f"template fails on row {i}: {e}") from None


def _gen(spec: FanoutTaskSpec, b: int, ref: str | None) -> Gen:
    return Gen(name=f"answer{b}", max_tokens=spec.max_tokens, temperature=spec.temperature, reference=ref)


def _fork_item(
    spec: FanoutTaskSpec,
    g: int,
    prefix: tuple[Message, ...],
    questions: Sequence[tuple[str, str | None]],
    rep: int,
) -> WorkItem:
    branches = tuple(Branch((Turn(q, _gen(spec, b, ref)),)) for b, (q, ref) in enumerate(questions))
    return WorkItem(
        item_id=f"{spec.name}/g{g}{_rep(rep)}",
        task=spec.name,
        kind="fanout",
        prefix=prefix,
        branches=branches,
        meta=(("group", str(g)), ("branches", str(spec.branches))),
    )


def _branch_item(
    spec: FanoutTaskSpec, slot: Slot, prefix: tuple[Message, ...], question: tuple[str, str | None], rep: int
) -> WorkItem:
    g, b = slot
    q, ref = question
    return WorkItem(
        item_id=f"{spec.name}/g{g}b{b}{_rep(rep)}",
        task=spec.name,
        kind="fanout",
        prefix=prefix,
        branches=(Branch((Turn(q, _gen(spec, b, ref)),)),),
        meta=(("group", str(g)), ("branch", str(b))),
    )


def _rep(rep: int) -> str:
    return f"#{rep}" if rep else ""


# Plain, common words: a BPE vocabulary holds nearly all of them as one token each, so
# the token estimate below stays close for any English-trained tokenizer.
_WORDS = tuple(
    """
    able about above across after again against air almost along also always amount animal answer
    apple area around arrive away baby back ball bank base basket beach bear become bed before begin
    behind bell below best better between big bird black blue board boat body bone book both bottle
    box boy bread bridge bright bring brother brown build busy butter cake call camp car card care
    carry case cat catch chair change cheap child city class clean clear clock close cloth cloud coat
    cold color come common cook corner cost count country cover cow cup cut dark day deep desk dinner
    dog door down draw dream dress drink drive dry during early earth east easy eat edge egg end
    enough evening every eye face fact fall family far farm fast father field fill find fine fire
    first fish floor flower fly follow food foot forest fork free fresh friend front fruit full game
    garden gate gift girl glass gold good grass great green ground group grow half hall hand happy
    hard hat head hear heart heavy help high hill hold home horse hot hour house idea inside iron
    island jump keep key kind king kitchen lake lamp land large last late laugh leaf learn left leg
    letter light line lion list little long low machine make map market meal measure meet middle
    milk mind minute money month moon morning mother mountain move music name near neck never new
    next night noise north note number ocean office old open orange order paper park part pass path
    pen people pencil picture piece place plant plate play pocket point pool poor post pull push
    quick quiet rain read ready red region rest rich ride right ring river road rock roof room rope
    round rule salt sand school sea season seat second seed send sheep shelf ship shirt shoe shop
    short side sign silver simple sister sky sleep slow small smile snow soft soil song sound soup
    south space spring square stair star station step stick stone store storm story street strong
    sugar summer sun table tail talk tall tea teacher test thing thin time tired today tool top town
    toy train tree true turn under uncle valley village visit voice wait walk wall warm wash watch
    water wave way weather week west wheel white wide wind window winter wood word work world year
    yellow young
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
#: The pseudo-text's words, for other kinds that need distinct common words.
COMMON_WORDS: tuple[str, ...] = _WORDS
_VERBS = (
    "keeps",
    "holds",
    "finds",
    "moves",
    "brings",
    "opens",
    "turns",
    "shows",
    "needs",
    "follows",
    "meets",
)


def estimate_tokens(text: str) -> int:
    """A tokenizer-free token estimate.

    One token per word, digit or punctuation mark, plus one per 7 letters beyond the
    first 7 of a long word (rare words split into pieces). On English prose it lands
    within about 15 % of SmolLM2's tokenizer.
    """
    return sum(1 + max(0, len(w) - 7) // 7 for w in _WORDISH.findall(text))


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 6))]
    words.insert(rng.randint(1, len(words) - 1), rng.choice(_VERBS))
    words += ["and", "the"] + [rng.choice(_WORDS) for _ in range(rng.randint(2, 5))]
    return " ".join(words).capitalize() + "."


def pseudo_text(rng: random.Random, tokens: int) -> str:
    """Seeded pseudo-English of about ``tokens`` tokens (by :func:`estimate_tokens`)."""
    sentences: list[str] = []
    used = 0
    while used < tokens:
        s = _sentence(rng)
        sentences.append(s)
        used += estimate_tokens(s)
    # Paragraphs of five sentences read like a document, not one endless line.
    paras = [" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5)]
    return "\n\n".join(paras)


def pseudo_question(rng: random.Random, g: int, b: int, tokens: int) -> str:
    """A distinct question of about ``tokens`` tokens about the text of group ``g``."""
    a, c = rng.sample(_WORDS, 2)
    head = f"Question {g + 1}.{b + 1}: what does the text above say about the {a} and the {c}?"
    tail = " Answer in one short sentence."
    filler: list[str] = []
    budget = tokens - estimate_tokens(head + tail)
    while budget > 0:
        s = _sentence(rng)
        filler.append(s)
        budget -= estimate_tokens(s)
    context = f" Context: {' '.join(filler)}" if filler else ""
    return head + context + tail


# Digits apart: Llama-style tokenizers (SmolLM2's included) split numbers digit by digit.
_WORDISH = re.compile(r"\d|[^\W\d]+|[^\w\s]")
