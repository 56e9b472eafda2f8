"""Pydantic validation whose errors point at ``file:line:col: field``.

Pydantic reports a ``loc`` tuple that mixes data keys with names it invents: the tag of a
discriminated union (``("engines", 0, <kind>, "url")``) and the member of a plain union
(``("json_schema", "str")``). We walk the ``loc`` along the parsed data, skipping those
invented names, to find the node the user wrote, and fall back to the nearest parent
that exists (a missing field has no node of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from structbench.errors import SpecError
from structbench.spec.marks import DataPath, MarkedDoc

__all__ = ["validate"]

T = TypeVar("T")
_MAX_INPUT_REPR = 40


@dataclass(frozen=True, slots=True)
class _Located:
    path: DataPath
    """The deepest data path that exists in the document."""
    message: str
    key: bool
    """Point at the key (unknown fields) rather than the value."""
    member: bool = False
    """A member of a plain union failed (pydantic tries each member and reports all)."""


def validate(adapter: TypeAdapter[T], doc: MarkedDoc) -> T:
    """Validate ``doc.data`` with ``adapter``.

    Raises:
        SpecError: For the first problem in file order; the count of the others is
            appended so that the user knows there is more to fix.
    """
    try:
        return adapter.validate_python(doc.data)
    except ValidationError as e:
        raise _to_spec_error(e, doc) from None


def _to_spec_error(err: ValidationError, doc: MarkedDoc) -> SpecError:
    located = [_locate(e, doc.data) for e in err.errors()]

    def order(item: _Located) -> tuple[int, int]:
        at = doc.pos(item.path, key=item.key)
        return at.line, at.col

    located.sort(key=order)  # stable: pydantic's order breaks ties
    first = located[0]
    message = first.message
    if first.member:  # "a valid string or a valid dictionary", not two errors
        same = [x.message for x in located if x.path == first.path and x.member]
        message = " or ".join(dict.fromkeys(same))
    # Further errors at the same node are consequences of the first: count other nodes only.
    others = len({(x.path, x.key) for x in located} - {(first.path, first.key)})
    if others:
        message += f" (and {others} more error{'s' if others > 1 else ''})"
    field = first.path[:-1] if first.key else first.path
    return doc.error(first.path, message, key=first.key, field=field)


def _walk(loc: Sequence[str | int], data: Any) -> tuple[DataPath, list[str | int]]:
    """Follow ``loc`` through ``data``: (the path that exists, the loc parts left over)."""
    path: list[str | int] = []
    node = data
    skipped_tag = False
    for i, part in enumerate(loc):
        if isinstance(node, dict):
            if not skipped_tag and isinstance(part, str) and node.get("kind") == part:
                skipped_tag = True  # a discriminated-union tag, not a key
                continue
            if part in node:
                path.append(part)
                node, skipped_tag = node[part], False
                continue
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node, skipped_tag = node[part], False
            continue
        return tuple(path), list(loc[i:])
    return tuple(path), []


def _locate(e: Any, data: Any) -> _Located:
    path, rest = _walk(e["loc"], data)
    kind, ctx = e["type"], e.get("ctx") or {}
    if kind == "extra_forbidden":
        return _Located(path, f"unknown field '{path[-1] if path else ''}'", key=True)
    if kind == "missing":
        return _Located(path, f"missing required field '{rest[0] if rest else ''}'", key=False)
    if kind == "union_tag_invalid":
        what = "engine " if "engines" in path else "task " if not path else ""
        expected = ctx.get("expected_tags", "")
        return _Located(
            (*path, "kind"), f"unknown {what}kind '{ctx.get('tag')}' (expected one of {expected})", False
        )
    if kind == "union_tag_not_found":
        return _Located(path, "missing required field 'kind'", key=False)
    member = bool(rest) and isinstance(rest[0], str)
    msg = str(e["msg"]).removeprefix("Value error, ").replace(" after validation", "")
    # YAML has lists, not tuples (the models use tuples to stay immutable).
    msg = msg.replace("Tuple should", "List should").replace("valid tuple", "valid list")
    msg = msg[:1].lower() + msg[1:]
    value = e.get("input")
    if isinstance(value, str | int | float | bool) or value is None:
        shown = repr(value)
        if len(shown) > _MAX_INPUT_REPR:
            shown = shown[: _MAX_INPUT_REPR - 3] + "..."
        msg += f", got {shown}"
    return _Located(path, msg, key=False, member=member)
