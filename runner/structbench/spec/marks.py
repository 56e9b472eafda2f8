"""YAML with positions: plain data plus the line and column of every node.

Errors found long after parsing (by pydantic, by a schema check, by a template render)
must still point at ``file:line:col``. So we compose the YAML node graph ourselves and
record, for every data path such as ``("scorers", 1)``, where its value (and its key)
starts.

Two YAML 1.1 surprises are switched off, because specs are data, not documents:
only ``true``/``false`` are booleans (``choices: [yes, no]`` stays two strings), and
dates stay strings (so rows and the manifest remain plain JSON).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from structbench.errors import SpecError

__all__ = ["DataPath", "MarkedDoc", "Pos", "format_field", "parse_yaml"]

DataPath = tuple[str | int, ...]
_MAX_NODES = 2_000_000  # alias bombs expand exponentially; real specs are far smaller
_BOOL = "tag:yaml.org,2002:bool"
_DROP = {"tag:yaml.org,2002:timestamp", _BOOL}


_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 dates and yes/no/on/off booleans."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


@dataclass(frozen=True, slots=True)
class Pos:
    """A 1-based line and column."""

    line: int
    col: int


@dataclass(frozen=True, slots=True)
class MarkedDoc:
    """A parsed YAML (or JSON) file and where each of its nodes starts.

    Attributes:
        data: Plain Python data (dict, list, str, int, float, bool, None).
        file: The file name used in error messages.
        values: Start of the value at each data path.
        keys: Start of the mapping key for each data path that is a mapping entry.
    """

    data: Any
    file: str
    values: dict[DataPath, Pos]
    keys: dict[DataPath, Pos]

    def pos(self, path: DataPath, *, key: bool = False) -> Pos:
        """Position of ``path`` (its key when ``key``), else of its nearest marked parent."""
        for n in range(len(path), -1, -1):
            p = path[:n]
            found = (self.keys.get(p) if key and n == len(path) else None) or self.values.get(p)
            if found is not None:
                return found
        return Pos(0, 0)

    def error(
        self, path: DataPath, message: str, *, key: bool = False, field: DataPath | None = None
    ) -> SpecError:
        """A :class:`SpecError` located at ``path``, naming ``field`` (default: ``path``)."""
        at = self.pos(path, key=key)
        return SpecError(self.file, at.line, at.col, format_field(path if field is None else field), message)


def format_field(path: DataPath) -> str:
    """``("load", "concurrency", 0)`` -> ``load.concurrency[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_yaml(text: str, file: str) -> MarkedDoc:
    """Parse one YAML document, keeping positions.

    Args:
        text: The YAML (JSON is accepted too, as far as YAML reads it).
        file: The name used in error messages.

    Raises:
        SpecError: On a syntax error, several documents, a duplicate key, or a
            non-scalar key.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        parts = [str(p) for p in (e.context, e.problem) if p]
        problem = " ".join(": ".join(parts or ["invalid YAML"]).split())
        raise SpecError(file, line, col, "", f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as e:
        raise SpecError(file, 0, 0, "", f"YAML error: {e}") from None
    finally:
        loader.dispose()
    builder = _Builder(loader, file)
    data = None if node is None else builder.build(node, ())
    return MarkedDoc(data, file, builder.values, builder.keys)


def _pos(node: Node) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Turns a node graph into plain data while recording positions."""

    def __init__(self, loader: _Loader, file: str) -> None:
        self.loader, self.file = loader, file
        self.values: dict[DataPath, Pos] = {}
        self.keys: dict[DataPath, Pos] = {}
        self.count = 0

    def fail(self, node: Node, message: str) -> SpecError:
        at = _pos(node)
        return SpecError(self.file, at.line, at.col, "", message)

    def build(self, node: Node, path: DataPath) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise self.fail(node, f"document too large (over {_MAX_NODES} nodes after expanding aliases)")
        self.values[path] = _pos(node)
        if isinstance(node, MappingNode | SequenceNode) and node.tag not in _COLLECTION_TAGS:
            # Collections are built here, not by the loader, so a tag on one (e.g.
            # ``!!python/object/apply:os.system [...]``) must be refused here too.
            raise self.fail(node, f"YAML error: unsupported tag '{node.tag}'")
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as e:
            raise self.fail(node, f"YAML error: {e.problem}") from None

    def _mapping(self, node: MappingNode, path: DataPath) -> dict[Any, Any]:
        own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        try:
            self.loader.flatten_mapping(node)  # resolves ``<<: *anchor`` merges
        except yaml.constructor.ConstructorError as e:
            raise self.fail(node, f"YAML error: {e.problem}") from None
        merged = len(node.value) - own  # merged pairs come first; own keys may override them
        out: dict[Any, Any] = {}
        own_keys: set[Any] = set()
        for i, (knode, vnode) in enumerate(node.value):
            key = self.loader.construct_object(knode, deep=True)
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise self.fail(knode, f"mapping keys must be strings, got {key!r}")
            if i >= merged:
                if key in own_keys:
                    at = _pos(knode)
                    raise SpecError(self.file, at.line, at.col, format_field(path), f"duplicate key '{key}'")
                own_keys.add(key)
            self.keys[(*path, key)] = _pos(knode)
            out[key] = self.build(vnode, (*path, key))
        return out
