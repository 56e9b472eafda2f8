"""Each schema is checked and validated under its own ``$schema`` draft."""

from __future__ import annotations

import json
import os

import pytest
from jsonschema.exceptions import SchemaError

from structbench.schema_drafts import DEFAULT_DRAFT, check_schema, draft_of, validator_for

D4 = "http://json-schema.org/draft-04/schema#"
D7 = "http://json-schema.org/draft-07/schema#"
D2019 = "https://json-schema.org/draft/2019-09/schema"
D2020 = "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(
    ("uri", "draft"),
    [
        (D4, "draft-04"),
        ("https://json-schema.org/draft-04/schema", "draft-04"),
        ("http://json-schema.org/draft-06/schema#", "draft-06"),
        (D7, "draft-07"),
        ("http://json-schema.org/draft-07/schema", "draft-07"),
        (D2019, "2019-09"),
        (D2020 + "#", "2020-12"),
        ("https://example.com/my-meta-schema", DEFAULT_DRAFT),
    ],
)
def test_draft_of_uri_spellings(uri: str, draft: str) -> None:
    assert draft_of({"$schema": uri}) == draft


def test_draft_of_without_schema_keyword() -> None:
    assert draft_of({"type": "object"}) == "2020-12"
    assert draft_of(True) == "2020-12"


def test_draft04_boolean_exclusive_minimum() -> None:
    # Draft-04: exclusiveMinimum is a flag on minimum, so 0 is out and 0.5 is in.
    schema = {"$schema": D4, "type": "number", "minimum": 0, "exclusiveMinimum": True}
    assert check_schema(schema) == "draft-04"
    v = validator_for(schema)
    assert not v.is_valid(0)
    assert v.is_valid(0.5)
    # The same keyword under 2020-12 must be a number: the schema itself is invalid.
    with pytest.raises(SchemaError):
        check_schema({k: val for k, val in schema.items() if k != "$schema"})


def test_draft07_dependencies_apply_and_are_gone_in_2019() -> None:
    body = {"type": "object", "dependencies": {"card": ["billing"]}}
    d7 = validator_for({"$schema": D7, **body})
    assert not d7.is_valid({"card": "1234"})
    assert d7.is_valid({"card": "1234", "billing": "x"})
    # From 2019-09 on, dependencies is an unknown keyword: anything goes.
    assert validator_for({"$schema": D2019, **body}).is_valid({"card": "1234"})
    assert validator_for(body).is_valid({"card": "1234"})


def test_format_checking_is_on_for_old_drafts() -> None:
    v = validator_for({"$schema": D7, "type": "string", "format": "ipv4"})
    assert not v.is_valid("999.1.1.1")
    assert v.is_valid("10.0.0.1")


def test_dangling_refs_follow_each_drafts_ids_and_fetch_nothing() -> None:
    from structbench.schema_drafts import dangling_refs

    draft4 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "id": "http://x.test/root",
        "definitions": {"ok": {}},
        "properties": {
            "a": {"$ref": "#/definitions/ok"},
            "b": {"id": "http://y.test/sub", "properties": {"c": {"$ref": "#/definitions/ok"}}},
            "meta": {"$ref": "http://json-schema.org/draft-04/schema#"},
            "remote": {"$ref": "https://example.com/elsewhere.json"},
        },
    }
    assert dangling_refs(draft4) == [
        (("properties", "b", "properties", "c", "$ref"), "#/definitions/ok"),  # resolved against y.test
        (("properties", "remote", "$ref"), "https://example.com/elsewhere.json"),
    ]
    assert dangling_refs(True) == []


def test_dangling_refs_survive_the_schemas_referencing_mishandles() -> None:
    """Shapes reduced from JSONSchemaBench's JsonSchemaStore config.json and tmlanguage.json.

    referencing 0.37's crawl raised TypeError (a boolean subschema inside a nested draft-04
    resource) and AttributeError (a draft-07 ``dependencies`` with a schema value before an
    array value); both schemas are valid under their own draft-07.
    """
    from structbench.schema_drafts import check_schema, dangling_refs

    refs = {
        "definitions": {"ok": {"type": "string"}},
        "properties": {"x": {"$ref": "#/definitions/ok"}, "y": {"$ref": "#/definitions/missing"}},
    }
    draft4 = "http://json-schema.org/draft-04/schema"
    nested_draft4 = {
        "$schema": D7,
        **refs,
        "patternProperties": {".*": {"$schema": draft4, "properties": {"s": True}}},
    }
    mixed_dependencies = {"$schema": D7, **refs, "dependencies": {"a": {"required": ["b"]}, "b": ["a"]}}
    for schema in (nested_draft4, mixed_dependencies):
        assert check_schema(schema) == "draft-07"
        assert dangling_refs(schema) == [(("properties", "y", "$ref"), "#/definitions/missing")]
    # With an id below the root, the uncrawled registry cannot tell: no ref is called dangling,
    # so that a valid schema is never refused.
    with_sub_id = {
        **mixed_dependencies,
        "properties": {"z": {"$id": "http://x.test/z", "$ref": "#/definitions/q"}},
    }
    assert dangling_refs(with_sub_id) == []


def test_the_invalid_schema_reason_is_the_same_in_every_process() -> None:
    """Two equally relevant meta-schema errors: jsonschema's own pick followed PYTHONHASHSEED."""
    import subprocess
    import sys

    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "definitions": {
            "b": {"enum": ["x", "x"]},
            "A": {"properties": {"c": {"enum": ["y", "y"]}}},
        },
    }
    probe = (
        "import json, sys\n"
        "from jsonschema.exceptions import SchemaError\n"
        "from structbench.schema_drafts import check_schema\n"
        "try:\n"
        "    check_schema(json.loads(sys.argv[1]))\n"
        "except SchemaError as e:\n"
        "    print(list(e.absolute_path), e.message)\n"
    )
    seen = set()
    for seed in ("1", "2", "3", "4", "5", "6"):
        out = subprocess.run(
            [sys.executable, "-c", probe, json.dumps(schema)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        seen.add(out.stdout.strip())
    assert len(seen) == 1 and next(iter(seen)).startswith("['definitions', 'b', 'enum']")
