"""Accuracy scorers: compare the output with the gen's reference answer."""

from __future__ import annotations

import math
import re
from typing import Any

from structbench.ir import Gen
from structbench.records import CallRecord
from structbench.scoring.base import Score, ScoreOptions
from structbench.scoring.common import not_applicable, parse_json

NUMBER_TOLERANCE = 1e-6
# Thousands separators only in proper groups, so "1,2,3" reads as three numbers.
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


def _reference(rec: CallRecord, gen: Gen) -> str | None:
    # The gen (from items.jsonl) is the source of truth; the record's copy covers a run
    # whose items file is missing.
    return gen.reference if gen.reference is not None else rec.reference


def _is_number(x: object) -> bool:
    # bool is an int subclass in Python, but true/1 are different JSON values.
    return isinstance(x, int | float) and not isinstance(x, bool)


def json_equal(a: Any, b: Any) -> bool:
    """Structural JSON equality: 1 == 1.0, but ``true`` != 1 and key order is ignored."""
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def exact_match(rec: CallRecord, gen: Gen, opts: ScoreOptions) -> Score:
    """1 when the output equals the reference.

    JSON gens compare parsed values (so whitespace and key order don't matter);
    everything else compares the stripped text.
    """
    na = not_applicable("exact_match", rec)
    if na is not None:
        return na
    ref = _reference(rec, gen)
    if ref is None:
        return Score("exact_match", None, "no reference")
    if gen.constraint.kind == "json_schema":
        want, bad_ref = parse_json(ref)
        if bad_ref:
            return Score("exact_match", None, f"reference is not JSON: {bad_ref}")
        got, bad = parse_json(rec.text)
        if bad:
            return Score("exact_match", 0.0, f"output is not JSON: {bad}")
        ok = json_equal(want, got)
    else:
        ok = rec.text.strip() == ref.strip()
    return Score("exact_match", float(ok), "" if ok else "differs from reference")


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Leaf fields as ``(dotted.path[index], leaf)`` pairs, in document order.

    Empty objects and arrays are leaves themselves, so ``{"tags": []}`` still has one
    field to get right.
    """
    if isinstance(value, dict) and value:
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out.extend(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value:
        out = []
        for i, v in enumerate(value):
            out.extend(flatten(v, f"{prefix}[{i}]"))
        return out
    return [(prefix or "$", value)]


def leaf_equal(want: Any, got: Any) -> bool:
    """Field comparison: strings case-insensitively after strip, numbers within 1e-6."""
    if isinstance(want, str) and isinstance(got, str):
        return want.strip().casefold() == got.strip().casefold()
    if _is_number(want) and _is_number(got):
        return abs(float(want) - float(got)) <= NUMBER_TOLERANCE
    return json_equal(want, got)


def field_accuracy(rec: CallRecord, gen: Gen, opts: ScoreOptions) -> Score:
    """Fraction of the reference's leaf fields that the output reproduces.

    ``detail`` holds a 0/1 per field path (``items[0].price``); a missing field counts 0
    and extra output fields are ignored. An output that isn't JSON scores 0 on every
    field.
    """
    na = not_applicable("field_accuracy", rec)
    if na is not None:
        return na
    ref = _reference(rec, gen)
    if ref is None:
        return Score("field_accuracy", None, "no reference")
    want, bad_ref = parse_json(ref)
    if bad_ref or not isinstance(want, dict | list):
        return Score("field_accuracy", None, "reference is not a JSON object")
    fields = flatten(want)
    got, bad = parse_json(rec.text)
    got_fields = dict(flatten(got)) if bad is None else {}
    missing = object()
    detail = tuple((path, float(leaf_equal(leaf, got_fields.get(path, missing)))) for path, leaf in fields)
    value = sum(v for _, v in detail) / len(detail)
    reason = f"output is not JSON: {bad}" if bad else f"{int(sum(v for _, v in detail))}/{len(detail)} fields"
    return Score("field_accuracy", value, reason, detail)


def last_number(text: str) -> float | None:
    """The last number written in ``text`` (thousands separators allowed), or None."""
    found = _NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def final_number(rec: CallRecord, gen: Gen, opts: ScoreOptions) -> Score:
    """1 when the last number in the output equals the last number in the reference."""
    na = not_applicable("final_number", rec)
    if na is not None:
        return na
    ref = _reference(rec, gen)
    want = last_number(ref) if ref is not None else None
    if want is None:
        return Score("final_number", None, "no number in the reference")
    got = last_number(rec.text)
    if got is None:
        return Score("final_number", 0.0, "no number in the output")
    ok = math.isclose(got, want, rel_tol=1e-9, abs_tol=NUMBER_TOLERANCE)
    return Score("final_number", float(ok), "" if ok else f"got {got:g}, expected {want:g}")
