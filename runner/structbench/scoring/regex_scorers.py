"""Pattern scorers: full regex match and choice membership."""

from __future__ import annotations

from structbench.ir import Choice, Gen, Regex
from structbench.records import CallRecord
from structbench.scoring.base import Score, ScoreOptions
from structbench.scoring.common import not_applicable
from structbench.scoring.guard import shared_checker


def regex_match(rec: CallRecord, gen: Gen, opts: ScoreOptions) -> Score:
    """1 when the whole output matches the gen's regex constraint (``re.fullmatch``).

    The output is not stripped: a constraint that was applied yields exactly the
    pattern. Matching runs under ``opts.schema_timeout_s`` in the checker process, so a
    pattern with catastrophic backtracking can't hang the report. Gens without a regex
    constraint (a grammar task, for instance) get None.
    """
    na = not_applicable("regex_match", rec)
    if na is not None:
        return na
    if not isinstance(gen.constraint, Regex):
        return Score("regex_match", None, f"no regex on this gen (constraint {gen.constraint.kind})")
    res = shared_checker().fullmatch(gen.constraint.regex, rec.text, opts.schema_timeout_s)
    value = None if res.passed is None else float(res.passed)
    return Score("regex_match", value, res.reason)


def choice_valid(rec: CallRecord, gen: Gen, opts: ScoreOptions) -> Score:
    """1 when the stripped output is exactly one of the gen's choices."""
    na = not_applicable("choice_valid", rec)
    if na is not None:
        return na
    choices = gen.constraint.choices if isinstance(gen.constraint, Choice) else ()
    if not choices:
        return Score("choice_valid", None, "no choices on this gen")
    out = rec.text.strip()
    if out in choices:
        return Score("choice_valid", 1.0)
    shown = out if len(out) <= 40 else out[:39] + "…"
    return Score("choice_valid", 0.0, f"{shown!r} is not one of {len(choices)} choices")
