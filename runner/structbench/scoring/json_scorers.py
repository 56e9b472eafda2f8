"""JSON scorers: does the output parse, and does it satisfy the task's schema."""

from __future__ import annotations

from structbench.ir import Gen, JsonSchema
from structbench.records import CallRecord
from structbench.scoring.base import Score, ScoreOptions
from structbench.scoring.common import not_applicable, parse_json
from structbench.scoring.guard import shared_checker


def json_parse(rec: CallRecord, gen: Gen, opts: ScoreOptions) -> Score:
    """1 when the output parses with ``json.loads``, else 0 with the parser's complaint."""
    na = not_applicable("json_parse", rec)
    if na is not None:
        return na
    _, reason = parse_json(rec.text)
    return Score("json_parse", 0.0 if reason else 1.0, reason or "")


def schema_valid(rec: CallRecord, gen: Gen, opts: ScoreOptions) -> Score:
    """1 when the output validates against the gen's JSON schema (its ``$schema`` draft, formats on).

    Validation runs in a worker process under ``opts.schema_timeout_s``; an overrun is
    not judged (value None, reason "timeout: ..."), and neither is a schema invalid under
    its own draft (reason "invalid schema under <draft>: ..."). The reason of a failure is the most
    relevant error's JSON path and message.
    """
    na = not_applicable("schema_valid", rec)
    if na is not None:
        if isinstance(gen.constraint, JsonSchema):
            # A schema broken under its own draft is the corpus's fault whatever the
            # engine did with it, so it is named even when the call failed.
            res = shared_checker().check_schema(gen.constraint.json_schema, "null", opts.schema_timeout_s)
            if res.passed is None and res.reason.startswith("invalid schema"):
                return Score("schema_valid", None, res.reason)
        return na
    if not isinstance(gen.constraint, JsonSchema):
        return Score("schema_valid", None, "no JSON schema on this gen")
    _, reason = parse_json(rec.text)
    if reason:
        return Score("schema_valid", 0.0, f"not JSON: {reason}")
    res = shared_checker().check_schema(gen.constraint.json_schema, rec.text, opts.schema_timeout_s)
    value = None if res.passed is None else float(res.passed)
    return Score("schema_valid", value, res.reason)
