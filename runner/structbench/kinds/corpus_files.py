"""Reading schema files for ``kind: schema_corpus``: folders, and the shape of a row.

Two folder layouts: ``schema_dir`` (``*.json`` files, tagged by an ``index.json``) and
``subsets_dir``, laid out like the public JSONSchemaBench repository
(``data/<subset>/*.json``, one raw schema per file; the subset is recorded). Every schema
is meta-validated under its own ``$schema`` draft, with the error at the offending keyword.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from structbench.errors import SpecError
from structbench.kinds.corpus_features import detect_features, feature_order
from structbench.spec.checks import Refs
from structbench.spec.marks import MarkedDoc, format_field, parse_yaml
from structbench.spec.paths import PathEscape, display_path, resolve_ref
from structbench.spec.tasks import SchemaCorpusTaskSpec

__all__ = ["ROW_KEYS", "check_schema", "dir_rows", "make_row", "schema_text", "subset_rows", "tags"]

#: Keys of a corpus row, as prompt templates see them.
ROW_KEYS = (
    "schema_id",
    "schema",
    "schema_text",
    "features",
    "prompt",
    "example",
    "title",
    "description",
    "subset",
)


def dir_rows(refs: Refs, spec: SchemaCorpusTaskSpec) -> list[dict[str, Any]]:
    """Rows of a ``schema_dir`` folder: its ``*.json`` files, tagged by its index file."""
    assert spec.schema_dir is not None
    folder = _resolve_folder(refs, "schema_dir", spec.schema_dir)
    if not folder.is_dir():
        raise refs.doc.error(("schema_dir",), f"not a folder: {display_path(folder)}")
    skip = {spec.index, spec.examples}
    files = sorted(p for p in folder.glob("*.json") if p.name not in skip)
    if not files:
        raise refs.doc.error(("schema_dir",), f"no *.json schema files in {display_path(folder)}")
    index = _json_map(folder / spec.index, "a list of feature names")
    examples = _json_map(folder / spec.examples, "an instance")
    names = {p.name for p in files}
    for listing, mapping in ((spec.index, index), (spec.examples, examples)):
        for name in mapping:
            if name not in names:
                shown = display_path(folder / listing)
                raise SpecError(shown, 0, 0, name, "no such schema file in the folder")
    out = []
    for path, schema in _readable(files, spec):
        listed = index.get(path.name)
        features = tags(listed, display_path(folder / spec.index), path.name) if listed is not None else None
        sid = path.name.removesuffix(".json").removesuffix(".schema")
        out.append(make_row(sid, schema, features, None, examples.get(path.name)))
    return out


def _readable(files: Sequence[Path], spec: SchemaCorpusTaskSpec) -> Iterator[tuple[Path, Any]]:
    """Each file with its schema, under the task's ``invalid_schemas`` policy (skip drops, else raise
    or keep: ``count`` keeps an invalid schema for its own verdict)."""
    keep = spec.invalid_schemas == "count"
    for path in files:
        try:
            schema = _read_schema(path, keep)
        except SpecError:
            if spec.invalid_schemas == "skip":
                continue
            raise
        yield path, schema


def _resolve_folder(refs: Refs, field: str, ref: str) -> Path:
    try:
        return resolve_ref(ref, refs.base_dir, refs.root)
    except PathEscape as e:
        raise refs.doc.error((field,), str(e)) from None


def subset_rows(refs: Refs, spec: SchemaCorpusTaskSpec) -> list[dict[str, Any]]:
    """Rows of a JSONSchemaBench-layout folder: ``data/<subset>/*.json``, ids ``<subset>/<file>``."""
    assert spec.subsets_dir is not None
    root = _resolve_folder(refs, "subsets_dir", spec.subsets_dir)
    if not root.exists():
        # Corpora such as a JSONSchemaBench sample are written locally, never committed: say
        # plainly that the folder is missing rather than that it has no subsets.
        raise refs.doc.error(("subsets_dir",), f"no such folder: {display_path(root)}")
    data = root / "data" if (root / "data").is_dir() else root
    found = {p.name: p for p in data.iterdir() if p.is_dir()} if data.is_dir() else {}
    if not found:
        raise refs.doc.error(("subsets_dir",), f"no subset folders (data/<subset>/) in {display_path(root)}")
    for i, name in enumerate(spec.subsets):
        if name not in found:
            raise refs.doc.error(("subsets", i), f"no subset '{name}' (have: {', '.join(sorted(found))})")
    out = []
    for name in spec.subsets or tuple(sorted(found)):
        files = sorted(found[name].glob("*.json"))[: spec.limit_per_subset]
        for path, schema in _readable(files, spec):
            sid = f"{name}/{path.name.removesuffix('.json')}"
            out.append(make_row(sid, schema, None, None, None, subset=name))
    return out


def _json_map(path: Path, what: str) -> dict[str, Any]:
    """A ``{file name: value}`` JSON file, or {} when it does not exist."""
    if not path.is_file():
        return {}
    shown = display_path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SpecError(shown, e.lineno, e.colno, "", f"invalid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise SpecError(shown, 1, 1, "", f"must map each schema file name to {what}")
    return data


def tags(value: Any, shown: str, field: str) -> tuple[str, ...]:
    """Feature tags from a list or comma-separated text, in tag order."""
    if isinstance(value, str):
        value = [t for t in value.split(",") if t.strip()]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise SpecError(shown, 0, 0, field, "features must be a list of names (or comma-separated text)")
    return tuple(sorted({t.strip() for t in value}, key=feature_order))


def _read_schema(path: Path, keep_invalid: bool = False) -> Any:
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(shown, 0, 0, "", f"cannot read schema: {e}") from None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(shown, e.lineno, e.colno, "", f"invalid JSON: {e.msg}") from None
    check_schema(schema, shown, "", lambda: _marks(text, shown), keep_invalid)
    return schema


def _marks(text: str, shown: str) -> MarkedDoc | None:
    try:  # positions are a nicety: YAML reads almost every JSON file
        return parse_yaml(text, shown)
    except SpecError:
        return None


def check_schema(
    schema: Any,
    shown: str,
    field: str,
    marks: Callable[[], MarkedDoc | None] | None = None,
    keep_invalid: bool = False,
) -> None:
    """Meta-validation under the schema's own ``$schema`` draft, the error at the offending keyword.

    With ``keep_invalid`` (``invalid_schemas: count``) a schema that is JSON but invalid
    under its draft passes: it is sent, and scoring reports it as ``invalid_schema``.
    """
    # Imported here: jsonschema's format checkers take seconds to import on a busy machine.
    from jsonschema.exceptions import SchemaError

    from structbench.schema_drafts import check_schema as check_under_draft
    from structbench.schema_drafts import draft_of

    if not isinstance(schema, dict | bool):
        raise SpecError(shown, 0, 0, field, f"a schema must be a JSON object, got {type(schema).__name__}")
    try:
        check_under_draft(schema)
    except SchemaError as e:
        if keep_invalid:
            return
        inner = tuple(e.absolute_path)
        doc = marks() if marks is not None else None
        at = doc.pos(inner) if doc is not None else None
        where = ".".join(p for p in (field, format_field(inner)) if p)
        line, col = (at.line, at.col) if at else (0, 0)
        msg = f"invalid JSON schema: {e.message} (under {draft_of(schema)})"
        raise SpecError(shown, line, col, where, msg) from None


def make_row(
    sid: str,
    schema: Any,
    features: tuple[str, ...] | None,
    prompt: str | None,
    example: Any,
    subset: str = "",
) -> dict[str, Any]:
    """One corpus row with the keys of :data:`ROW_KEYS`."""
    obj = schema if isinstance(schema, dict) else {}
    return {
        "schema_id": sid,
        "schema": schema,
        "schema_text": schema_text(schema),
        "features": list(features if features is not None else detect_features(schema)),
        "prompt": prompt,
        "example": example,
        "title": str(obj.get("title") or ""),
        "description": str(obj.get("description") or ""),
        "subset": subset,
    }


def schema_text(schema: Any) -> str:
    """Compact JSON in the schema's own key order (engines emit properties in it)."""
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
