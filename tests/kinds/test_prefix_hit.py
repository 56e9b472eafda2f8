"""The prefix_hit kind: prompts of a set length whose shared share is the target."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from structbench.cells import warmup_split
from structbench.errors import SpecError
from structbench.ir import Message
from structbench.kinds.prefix_hit import (
    APPROX_LABEL,
    BuiltPrompt,
    HitPlan,
    Sizer,
    approximate_sizer,
    build_prompts,
    expand,
)
from structbench.metrics.cache import PrefixTrie
from structbench.records import CallRecord
from structbench.resume import unfinished_items
from structbench.spec.loader import LoadedTask, load_suite, load_tasks
from structbench.spec.tasks import PrefixHitTaskSpec

USER = "Reply with one word."


def _chars_sizer() -> Sizer:
    """A second template and tokenizer: a default system turn first, one token per character.

    Unlike ChatML words, a character tokenizer splits every word into many tokens, so a
    prompt can land exactly on any length, and the shared head is long (the default turn).
    """

    def render(messages: Sequence[Message]) -> str:
        body = "".join(f"[{m.role}] {m.content} [/{m.role}]" for m in messages)
        return "[system] default [/system]" + body + "[assistant]"

    return Sizer(render, lambda text: [ord(c) for c in text], "chars")


def _covered(sizer: Sizer, built: Sequence[BuiltPrompt]) -> list[int]:
    """Tokens of each measured prompt that an infinite cache holds, in arrival order."""
    trie, out = PrefixTrie(), []
    for p in built:
        ids = sizer.ids(p.system, USER)
        if not p.primer:
            out.append(trie.longest_prefix(ids))
        trie.insert(ids)
    return out


@pytest.mark.parametrize("target", [0.0, 0.3, 0.6, 0.9])
@pytest.mark.parametrize(
    ("make", "length", "slack"),
    [(approximate_sizer, 400, 1), (_chars_sizer, 1500, 5)],
    ids=["chatml-words", "chars"],
)
def test_prompts_reach_the_target_at_the_input_length(
    target: float, make: Callable[[], Sizer], length: int, slack: int
) -> None:
    sizer = make()
    plan = HitPlan(target, input_len=length, groups=3, requests=12, user=USER)
    built = build_prompts(sizer, plan, random.Random(1))
    primers, measured = built[:3], built[3:]
    assert [p.primer for p in primers] == [True] * 3 and [p.group for p in primers] == [0, 1, 2]
    assert not any(p.primer for p in measured) and len(measured) == 12
    assert Counter(p.group for p in measured) == {0: 4, 1: 4, 2: 4}
    for p in built:
        # The length the sizer counts is the one recorded, and within half a word of the
        # target (the unique part is cut between words: a word of 2 tokens, or of 9 chars).
        assert p.tokens == len(sizer.ids(p.system, USER))
        assert abs(p.tokens - length) <= slack
    # The shortest shared part that reaches the target (one word at most beyond it), or
    # the template's own head when the target is below it.
    shared_target = round(target * length)
    head = _covered(sizer, [BuiltPrompt(0, "Apple", 0, 0, primer=True), BuiltPrompt(0, "Yellow", 0, 0)])[0]
    for p in built:
        assert max(shared_target, head) <= p.shared <= max(shared_target, head) + 12
    # An infinite cache primed with the primers serves each measured prompt its group's
    # shared part, and no more than the openers' own first tokens can add: none with whole
    # words as tokens (the openers are distinct words), a letter or two with characters.
    extra = [c - p.shared for c, p in zip(_covered(sizer, built), measured, strict=True)]
    assert min(extra) >= 0 and max(extra) <= (0 if slack == 1 else 3)
    rate = sum(p.shared for p in measured) / sum(p.tokens for p in measured)
    assert rate == pytest.approx(max(target, head / length), abs=12 / length)


def test_groups_have_distinct_prefixes_and_the_order_is_seeded() -> None:
    sizer = approximate_sizer()
    plan = HitPlan(0.5, input_len=200, groups=4, requests=8, user=USER)
    a = build_prompts(sizer, plan, random.Random(7))
    b = build_prompts(sizer, plan, random.Random(7))
    c = build_prompts(sizer, plan, random.Random(8))
    assert a == b and a != c
    heads = {p.system[:200] for p in a[:4]}
    assert len(heads) == 4  # each group its own prefix
    # A cache holding only the other groups' primers serves a prompt next to nothing.
    for g in range(4):
        others = [p for p in a[:4] if p.group != g]
        mine = next(p for p in a[4:] if p.group == g)
        trie = PrefixTrie()
        for p in others:
            trie.insert(sizer.ids(p.system, USER))
        assert trie.longest_prefix(sizer.ids(mine.system, USER)) < 10


def test_a_target_with_no_room_left_is_an_error() -> None:
    plan = HitPlan(0.95, input_len=40, groups=1, requests=2, user=USER)
    with pytest.raises(ValueError, match="leaves no room"):
        build_prompts(approximate_sizer(), plan, random.Random(0))


def _task(**kw: object) -> LoadedTask:
    spec = PrefixHitTaskSpec.model_validate({"kind": "prefix_hit", "name": "hit", **kw})
    return LoadedTask(spec, Path("tasks/prefix/hit.yaml"), ({},), None, (), None)


def test_expand_makes_primers_then_measured_items_with_their_figures_in_meta() -> None:
    items = expand(_task(target_hit_rate=0.5, input_len=120, groups=2), random.Random(0), 6)
    assert [it.item_id for it in items[:2]] == ["hit/prime0", "hit/prime1"]
    assert [it.item_id for it in items[2:]] == [f"hit/r{i}" for i in range(6)]
    assert [it.primer for it in items] == [True, True] + [False] * 6
    meta = dict(items[2].meta)
    assert meta["target_hit_rate"] == "0.5" and meta["counted_by"] == APPROX_LABEL
    assert abs(int(meta["prompt_tokens"]) - 120) <= 1 and int(meta["shared_tokens"]) >= 60
    (turn,) = items[2].branches[0].turns
    assert turn.user == "Reply with one word." and turn.gen.max_tokens == 8
    assert items[2].prefix[0].role == "system"
    # Default request count: 4 per group.
    assert len(expand(_task(target_hit_rate=0.2, input_len=60, groups=3), random.Random(0), None)) == 15


def test_expand_reports_an_impossible_target_as_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"target_hit_rate: .*leaves no room"):
        expand(_task(target_hit_rate=0.99, input_len=30), random.Random(0), 2)


def test_the_cell_warms_up_with_the_primers_only() -> None:
    items = expand(_task(target_hit_rate=0.5, input_len=100, groups=2), random.Random(0), 3)
    warm, measured = warmup_split(items, warmup=1)
    assert [it.item_id for it in warm] == ["hit/prime0", "hit/prime1"]
    assert [it.item_id for it in measured] == ["hit/r0", "hit/r1", "hit/r2"]
    # Without primers the suite's warm-up replays the first items, as before.
    plain = measured
    assert warmup_split(plain, 1) == ([plain[0]], plain)


def _ok(item_id: str, warmup: bool = False) -> CallRecord:
    return CallRecord(
        cell_id="c",
        engine="e",
        task="hit",
        item_id=item_id,
        branch=0,
        turn=0,
        gen_name="answer",
        constraint="none",
        warmup=warmup,
    )


def test_resume_reruns_primers_only_with_unfinished_measured_items() -> None:
    items = expand(_task(target_hit_rate=0.5, input_len=100), random.Random(0), 2)
    prime = [_ok("hit/prime0", warmup=True)]
    assert unfinished_items(items, [*prime, _ok("hit/r0"), _ok("hit/r1")]) == []
    todo = unfinished_items(items, [*prime, _ok("hit/r0")])
    assert [it.item_id for it in todo] == ["hit/prime0", "hit/r1"]


TASK = """\
name: hit
kind: prefix_hit
target_hit_rate: {targets}
input_len: 64
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")  # the project root
    path = tmp_path / "hit.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_list_of_targets_loads_as_one_task_per_target(tmp_path: Path) -> None:
    tasks = load_tasks(_write(tmp_path, TASK.format(targets="[0, 0.3, 0.6, 0.905]")))
    assert [t.spec.name for t in tasks] == ["hit-t0", "hit-t30", "hit-t60", "hit-t90.5"]
    assert [t.spec.targets for t in tasks] == [(0.0,), (0.3,), (0.6,), (0.905,)]
    (one,) = load_tasks(_write(tmp_path, TASK.format(targets="0.3")))
    assert one.spec.name == "hit"
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ntasks: [hit.yaml]\n", encoding="utf-8")
    _write(tmp_path, TASK.format(targets="[0.1, 0.2]"))
    assert [t.spec.name for t in load_suite(suite).tasks] == ["hit-t10", "hit-t20"]


@pytest.mark.parametrize(
    ("targets", "extra", "message"),
    [
        ("[0, 30]", "", "hit.yaml:3:18: target_hit_rate: targets must be in [0, 1) (a fraction"),
        ("[0.3, 0.3]", "", "hit.yaml:3:18: target_hit_rate: a target is listed twice"),
        ("0.3", "system: hi\n", "writes its own system message"),
        ("0.3", "tokenizer: nowhere\n", "hit.yaml:5:12: tokenizer: not a folder: nowhere"),
    ],
)
def test_bad_prefix_hit_tasks_are_located_errors(
    tmp_path: Path, targets: str, extra: str, message: str
) -> None:
    path = _write(tmp_path, TASK.format(targets=targets) + extra)
    with pytest.raises(SpecError) as e:
        load_tasks(path)
    assert message in str(e.value)


def test_loading_a_task_with_a_tokenizer_imports_no_transformers(tmp_path: Path) -> None:
    # validate loads tasks; only expanding one (run, compile) loads the tokenizer.
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")
    path = _write(tmp_path, TASK.format(targets="[0.2, 0.4]") + "tokenizer: model\n")
    code = (
        "import sys\nfrom structbench.spec.loader import load_tasks\n"
        f"ts = load_tasks({str(path)!r})\n"
        "print(ts[0].spec.tokenizer, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == [str(folder.resolve()), "False"]
