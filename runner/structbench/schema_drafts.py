"""Which JSON Schema draft a schema is written in, and its jsonschema validator class.

Real-world corpora (JSONSchemaBench among them) mix drafts, and some keywords changed
meaning between them: ``exclusiveMinimum: true`` is a flag on ``minimum`` in draft-04 and
a type error from draft-06 on; ``dependencies`` constrains instances up to draft-07 and
is ignored from 2019-09 on. Validating every schema as 2020-12 would blame engines for
the corpus's drafts, so spec loading and scoring both pick the class here.

A schema without ``$schema``, or with a URI outside the five drafts below, is read as
2020-12: the newest draft, and the one engines' grammar compilers follow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = ["DEFAULT_DRAFT", "DRAFTS", "check_schema", "draft_of", "validator_class", "validator_for"]

#: The drafts structbench honours, oldest first.
DRAFTS: tuple[str, ...] = ("draft-04", "draft-06", "draft-07", "2019-09", "2020-12")
DEFAULT_DRAFT = "2020-12"

#: ``$schema`` URIs without scheme and trailing ``#``/``/`` → draft name. Schemas in the
#: wild write http and https, with and without the empty fragment, for the same draft.
_URIS: dict[str, str] = {
    "json-schema.org/draft-04/schema": "draft-04",
    "json-schema.org/draft-06/schema": "draft-06",
    "json-schema.org/draft-07/schema": "draft-07",
    "json-schema.org/draft/2019-09/schema": "2019-09",
    "json-schema.org/draft/2020-12/schema": "2020-12",
}


def draft_of(schema: Any) -> str:
    """The draft name of a schema from its ``$schema`` (:data:`DEFAULT_DRAFT` when absent or unknown)."""
    uri = schema.get("$schema") if isinstance(schema, dict) else None
    if not isinstance(uri, str):
        return DEFAULT_DRAFT
    key = uri.strip().split("://", 1)[-1].rstrip("#").rstrip("/")
    return _URIS.get(key, DEFAULT_DRAFT)


def validator_class(schema: Any) -> type[Validator]:
    """The jsonschema validator class for the schema's draft."""
    # Imported here: jsonschema's format checkers take seconds to import on a busy machine.
    from jsonschema import (
        Draft4Validator,
        Draft6Validator,
        Draft7Validator,
        Draft201909Validator,
        Draft202012Validator,
    )

    classes: dict[str, type[Validator]] = {
        "draft-04": Draft4Validator,
        "draft-06": Draft6Validator,
        "draft-07": Draft7Validator,
        "2019-09": Draft201909Validator,
        "2020-12": Draft202012Validator,
    }
    return classes[draft_of(schema)]


def check_schema(schema: Any) -> str:
    """Meta-validate a schema under its own draft; the draft name.

    Raises:
        jsonschema.exceptions.SchemaError: The schema is invalid under its draft.
    """
    from jsonschema.exceptions import SchemaError, best_match

    cls = validator_class(schema)
    # jsonschema's own check_schema reports best_match over the errors in the order it finds them,
    # and that order follows set iteration inside jsonschema, so with two equally relevant errors
    # the reason changed with PYTHONHASHSEED (a JSONSchemaBench schema with two bad enums named
    # either one). Sorted first, ties go to the first path: the same reason in every process.
    errors = sorted(
        cls(cls.META_SCHEMA).iter_errors(schema),
        key=lambda e: ([str(p) for p in e.absolute_path], e.message),
    )
    err = best_match(errors)
    if err is not None:
        raise SchemaError.create_from(err)
    return draft_of(schema)


def validator_for(schema: Any) -> Validator:
    """A validator of the schema's draft with that draft's format checker on."""
    cls = validator_class(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def dangling_refs(schema: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Every ``$ref`` of ``schema`` that resolves nowhere: (the data path of the ``$ref`` key, the ref).

    Refs resolve as a validator of the schema's draft resolves them: against the schema's own
    ``$id``s, ``$anchor``s and JSON pointers, and the drafts' meta-schemas. Nothing is fetched,
    as no engine's grammar compiler fetches either, so a remote ref is dangling too.
    """
    from jsonschema_specifications import REGISTRY as METASCHEMAS
    from referencing import Resource, Specification
    from referencing.exceptions import Unresolvable

    spec = _specification(draft_of(schema))
    root: Resource[Any] = spec.create_resource(schema)
    registry = METASCHEMAS.with_resource(root.id() or "", root)
    try:
        registry = registry.crawl()
    except _REFERENCING_BUGS:
        # referencing 0.37 trips over a few valid real-world schemas (JSONSchemaBench's
        # JsonSchemaStore config.json and tmlanguage.json): a boolean subschema inside a nested
        # draft-04 resource, and a draft-06/07 `dependencies` whose schema value precedes an
        # array value. Uncrawled, the registry knows the root alone: that answers every ref
        # only when nothing below the root has an id or anchor, else no ref is judged.
        if _has_nested_ids(schema):
            return []
    # subresources_of walks only schema keywords (not enum/const/properties' names): map each
    # subschema back to where it sits in the document, by identity, for the error's position.
    paths: dict[int, tuple[str | int, ...]] = {}
    _index(schema, (), paths)
    out: list[tuple[tuple[str | int, ...], str]] = []

    def walk(node: Any, resolver: Any, spec: Specification[Any]) -> None:
        if not isinstance(node, dict):
            return
        if node is not schema and spec.id_of(node) is not None:
            resolver = resolver.in_subresource(spec.create_resource(node))
        ref = node.get("$ref")
        if isinstance(ref, str):
            try:
                resolver.lookup(ref)
            except Unresolvable:
                out.append(((*paths.get(id(node), ()), "$ref"), ref))
        for sub in spec.subresources_of(node):
            walk(sub, resolver, spec)

    walk(schema, registry.resolver(base_uri=root.id() or ""), spec)
    return out


# What referencing raises on the schemas it mishandles (see dangling_refs), instead of Unresolvable.
_REFERENCING_BUGS = (TypeError, AttributeError)
_ID_KEYS = frozenset({"$id", "id", "$anchor", "$dynamicAnchor"})


def _has_nested_ids(node: Any, root: bool = True) -> bool:
    """Whether an id or anchor keyword appears below the root (a property named ``id`` counts too)."""
    if isinstance(node, dict):
        if not root and _ID_KEYS & node.keys():
            return True
        return any(_has_nested_ids(v, False) for v in node.values())
    if isinstance(node, list):
        return any(_has_nested_ids(v, False) for v in node)
    return False


def _specification(draft: str) -> Any:
    import referencing.jsonschema as rj

    return {
        "draft-04": rj.DRAFT4,
        "draft-06": rj.DRAFT6,
        "draft-07": rj.DRAFT7,
        "2019-09": rj.DRAFT201909,
        "2020-12": rj.DRAFT202012,
    }[draft]


def _index(node: Any, path: tuple[str | int, ...], out: dict[int, tuple[str | int, ...]]) -> None:
    if isinstance(node, dict):
        out.setdefault(id(node), path)
        for k, v in node.items():
            _index(v, (*path, k), out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _index(v, (*path, i), out)
