"""YAML parsing with positions."""

from __future__ import annotations

import pytest

from structbench.errors import SpecError
from structbench.spec.marks import Pos, format_field, parse_yaml


def test_positions_of_values_and_keys() -> None:
    doc = parse_yaml("a:\n  b: [1, two]\nc: x\n", "f.yaml")
    assert doc.data == {"a": {"b": [1, "two"]}, "c": "x"}
    assert doc.values[("a", "b", 1)] == Pos(2, 10)
    assert doc.keys[("a", "b")] == Pos(2, 3)
    assert doc.pos(("c",)) == Pos(3, 4)
    assert doc.pos(("c",), key=True) == Pos(3, 1)


def test_missing_path_falls_back_to_nearest_parent() -> None:
    doc = parse_yaml("a:\n  b: 1\n", "f.yaml")
    assert doc.pos(("a", "zzz", 3)) == doc.values[("a",)]
    err = doc.error(("a", "zzz"), "boom")
    assert str(err) == "f.yaml:2:3: a.zzz: boom"


def test_yaml_12_scalars() -> None:
    """Dates stay strings and only true/false are booleans (no Norway problem)."""
    doc = parse_yaml("d: 2024-01-05\nc: [yes, no, on, off, NO]\nt: true\nf: False\nn: null\ni: 7\n", "f.yaml")
    assert doc.data == {
        "d": "2024-01-05",
        "c": ["yes", "no", "on", "off", "NO"],
        "t": True,
        "f": False,
        "n": None,
        "i": 7,
    }


def test_anchors_and_merge_keys() -> None:
    doc = parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.data["other"] == {"x": 1, "y": 3}
    assert doc.values[("other", "y")] == Pos(4, 6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\na: 2\n", "f.yaml:2:1: duplicate key 'a'"),
        ("a:\n  b: 1\n  b: 2\n", "f.yaml:3:3: a: duplicate key 'b'"),
        ("? [1]\n: 2\n", "f.yaml:1:3: mapping keys must be strings, got [1]"),
        (
            "a: 1\n---\nb: 2\n",
            "f.yaml:2:1: YAML syntax error: expected a single document in the stream: but found "
            "another document",
        ),
        (
            "a: !!python/object:os.system x\n",
            "f.yaml:1:4: YAML error: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object:os.system'",
        ),
    ],
)
def test_bad_yaml(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_yaml(text, "f.yaml")
    assert str(info.value) == expected


def test_alias_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import structbench.spec.marks as marks

    monkeypatch.setattr(marks, "_MAX_NODES", 1000)
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 6)]
    with pytest.raises(SpecError, match="document too large"):
        parse_yaml("\n".join(lines) + "\n", "f.yaml")


def test_format_field() -> None:
    assert format_field(()) == ""
    assert format_field(("scorers", 1)) == "scorers[1]"
    assert format_field(("load", "concurrency", 0)) == "load.concurrency[0]"
    assert format_field(("engines", 0, "launch", "env")) == "engines[0].launch.env"
