"""Scorer names, as task specs reference them, mapped lazily to their functions."""

from __future__ import annotations

import importlib
from typing import cast

from structbench.errors import UserError
from structbench.scoring.base import Scorer

#: name -> "module:function". Adding a scorer is one line here plus its module.
SCORERS: dict[str, str] = {
    "json_parse": "structbench.scoring.json_scorers:json_parse",
    "schema_valid": "structbench.scoring.json_scorers:schema_valid",
    "regex_match": "structbench.scoring.regex_scorers:regex_match",
    "choice_valid": "structbench.scoring.regex_scorers:choice_valid",
    "exact_match": "structbench.scoring.accuracy:exact_match",
    "field_accuracy": "structbench.scoring.accuracy:field_accuracy",
    "final_number": "structbench.scoring.accuracy:final_number",
    "judge": "structbench.scoring.judge:judge",
}

SCORER_NAMES: frozenset[str] = frozenset(SCORERS)

#: One-line descriptions, for ``structbench scorers`` and the report's glossary.
SCORER_HELP: dict[str, str] = {
    "json_parse": "output parses as JSON",
    "schema_valid": "output validates against the JSON schema (Draft 2020-12, formats checked)",
    "regex_match": "whole output matches the regex constraint",
    "choice_valid": "stripped output is one of the choices",
    "exact_match": "output equals the reference (parsed JSON for JSON tasks)",
    "field_accuracy": "fraction of the reference's leaf fields reproduced",
    "final_number": "last number in the output equals the reference's last number",
    "judge": "LLM judge grade / 10 (from the judge pass, judge.jsonl)",
}

#: Scorers that measure whether the constraint held, in order of preference.
VALIDITY_SCORERS: tuple[str, ...] = ("schema_valid", "regex_match", "choice_valid")
#: Scorers that measure whether the answer is right, in order of preference.
ACCURACY_SCORERS: tuple[str, ...] = ("field_accuracy", "exact_match", "final_number", "judge")


def get_scorer(name: str) -> Scorer:
    """Return the scorer function registered under ``name``.

    Raises:
        UserError: when ``name`` is not a known scorer.
    """
    target = SCORERS.get(name)
    if target is None:
        known = ", ".join(sorted(SCORERS))
        raise UserError(f"unknown scorer '{name}' (known: {known})")
    module, attr = target.split(":")
    return cast(Scorer, getattr(importlib.import_module(module), attr))
