"""Which JSON Schema feature families a schema uses: the tags of a ``schema_corpus`` row.

The walk visits schema positions only (``properties`` values, ``items``, ``anyOf``
members ...), never data positions: ``{"const": {"pattern": "x"}}`` uses ``const``, not
``pattern``. The tags are coarse families, the rows of the coverage table; ``format``
is split by format name because engines support formats one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["FEATURES", "detect_features", "feature_order"]

#: Every tag, in report order (``format:<name>`` tags sort after ``format``'s place).
FEATURES: tuple[str, ...] = (
    "ref",
    "recursion",
    "anyOf",
    "oneOf",
    "allOf",
    "if_then_else",
    "enum",
    "const",
    "type_union",
    "pattern",
    "format",
    "string_length",
    "numeric_bounds",
    "multipleOf",
    "array_length",
    "uniqueItems",
    "prefixItems",
    "array_of_objects",
    "additionalProperties:false",
    "additionalProperties:schema",
    "patternProperties",
    "dependentRequired",
)

# Keywords whose value is a schema, a list of schemas, or a mapping of name -> schema.
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")
_LIST = ("prefixItems", "anyOf", "oneOf", "allOf")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SIMPLE: tuple[tuple[str, str], ...] = (
    ("anyOf", "anyOf"),
    ("oneOf", "oneOf"),
    ("allOf", "allOf"),
    ("if", "if_then_else"),
    ("enum", "enum"),
    ("const", "const"),
    ("pattern", "pattern"),
    ("minLength", "string_length"),
    ("maxLength", "string_length"),
    ("minimum", "numeric_bounds"),
    ("maximum", "numeric_bounds"),
    ("exclusiveMinimum", "numeric_bounds"),
    ("exclusiveMaximum", "numeric_bounds"),
    ("multipleOf", "multipleOf"),
    ("minItems", "array_length"),
    ("maxItems", "array_length"),
    ("prefixItems", "prefixItems"),
    ("patternProperties", "patternProperties"),
    ("dependentRequired", "dependentRequired"),
    ("$ref", "ref"),
)


def feature_order(tag: str) -> tuple[int, str]:
    """Sort key that puts tags in :data:`FEATURES` order (unknown tags last, by name)."""
    base = "format" if tag.startswith("format:") else tag
    try:
        return FEATURES.index(base), tag
    except ValueError:
        return len(FEATURES), tag


def detect_features(schema: Any) -> tuple[str, ...]:
    """The feature tags of ``schema``, in :func:`feature_order`.

    Args:
        schema: A JSON schema (a boolean schema has no features).
    """
    tags: set[str] = set()
    for node in _subschemas(schema):
        tags |= _node_features(node, schema)
    if _is_recursive(schema):
        tags.add("recursion")
    return tuple(sorted(tags, key=feature_order))


def _subschemas(schema: Any) -> Iterator[dict[str, Any]]:
    """Every schema object in ``schema``, depth first, the root included."""
    if not isinstance(schema, dict):
        return
    yield schema
    for key in _ONE:
        yield from _subschemas(schema.get(key))
    for key in _LIST:
        value = schema.get(key)
        for sub in value if isinstance(value, list) else ():
            yield from _subschemas(sub)
    for key in _MAP:
        value = schema.get(key)
        for sub in value.values() if isinstance(value, dict) else ():
            yield from _subschemas(sub)


def _node_features(node: dict[str, Any], root: Any) -> set[str]:
    tags = {tag for key, tag in _SIMPLE if key in node}
    if isinstance(node.get("format"), str):
        tags.add(f"format:{node['format']}")
    if node.get("uniqueItems") is True:
        tags.add("uniqueItems")
    if isinstance(node.get("type"), list) and len(node["type"]) > 1:
        tags.add("type_union")
    extra = node.get("additionalProperties")
    if extra is False:
        tags.add("additionalProperties:false")
    elif isinstance(extra, dict):
        tags.add("additionalProperties:schema")
    if _is_object(_resolve(node.get("items"), root)):
        tags.add("array_of_objects")
    return tags


def _is_object(node: Any) -> bool:
    return isinstance(node, dict) and (node.get("type") == "object" or "properties" in node)


def _resolve(node: Any, root: Any) -> Any:
    """Follow one local ``$ref`` (``#/...``); other nodes come back unchanged."""
    if isinstance(node, dict) and isinstance(node.get("$ref"), str):
        return _pointer(root, node["$ref"])
    return node


def _pointer(root: Any, ref: str) -> Any:
    """The node a local JSON pointer names, or None (remote and broken refs)."""
    if not ref.startswith("#"):
        return None
    node = root
    for raw in (p for p in ref[1:].split("/") if p):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _is_recursive(root: Any) -> bool:
    """True when following local ``$ref``s from the root can come back to a ref target."""
    targets: dict[str, list[str]] = {}  # ref -> refs reachable inside its target

    def refs_in(node: Any) -> list[str]:
        return [n["$ref"] for n in _subschemas(node) if isinstance(n.get("$ref"), str)]

    pending = ["#", *refs_in(root)]
    while pending:
        ref = pending.pop()
        if ref in targets:
            continue
        target = root if ref == "#" else _pointer(root, ref)
        targets[ref] = refs_in(target) if target is not None else []
        pending += targets[ref]
    # A cycle in the ref graph, with "#" (the root) as one of the nodes.
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def cyclic(ref: str) -> bool:
        state[ref] = 1
        for nxt in targets.get(ref, ()):
            if state.get(nxt) == 1 or (state.get(nxt) is None and cyclic(nxt)):
                return True
        state[ref] = 2
        return False

    return any(state.get(r) is None and cyclic(r) for r in list(targets))
