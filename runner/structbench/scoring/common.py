"""Helpers shared by the scorer modules."""

from __future__ import annotations

import json
from typing import Any

from structbench.records import CallRecord
from structbench.scoring.base import Score


def not_applicable(name: str, rec: CallRecord) -> Score | None:
    """The "does not apply" score for a failed or unsupported call, else None.

    Failed calls are counted by the metrics as failures; scoring them as 0 too would
    count them twice, so they get ``value=None``.
    """
    if rec.error is None:
        return None
    return Score(name, None, "unsupported" if rec.unsupported else "call failed")


def parse_json(text: str) -> tuple[Any, str | None]:
    """Parse ``text`` as JSON; return ``(value, None)`` or ``(None, reason)``.

    The reason tells a truncated output (the decoder ran off the end, typically
    ``max_tokens``) from one that is malformed part-way, since the fixes differ.
    """
    if not text.strip():
        return None, "empty output"
    try:
        return json.loads(text), None
    except RecursionError:
        return None, "too deeply nested to parse"
    except json.JSONDecodeError as e:
        at_end = e.pos >= len(text.rstrip())
        kind = "truncated" if at_end else "invalid"
        hint = " (wrapped in a ``` code fence)" if text.lstrip().startswith("```") else ""
        return None, f"{kind}: {e.msg} at {e.lineno}:{e.colno}{hint}"
    except ValueError as e:  # valid JSON Python refuses: an integer past its 4300-digit limit
        return None, f"unparsable: {str(e)[:200]}"
