"""``kind: schema_corpus``: the team corpus, loading from folders and datasets, expansion."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from structbench.errors import SpecError
from structbench.ir import JsonSchema, WorkItem
from structbench.kinds.corpus_features import FEATURES, detect_features
from structbench.kinds.registry import KINDS, expand_task
from structbench.kinds.schema_corpus import corpus_prompt
from structbench.records import CallRecord
from structbench.scoring.base import ScoreOptions
from structbench.scoring.guard import close_shared_checker
from structbench.scoring.json_scorers import schema_valid
from structbench.spec.loader import LoadedTask, load_suite, load_task

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "grammars" / "corpus"
TOKENIZER = Path.home() / ".cache/structbench/smollm2-135m-instruct-hf/tokenizer.json"
#: The feature families the corpus must cover, each by at least one schema.
FAMILIES = (
    "ref",
    "recursion",
    "anyOf",
    "oneOf",
    "allOf",
    "enum",
    "const",
    "pattern",
    "format:date-time",
    "format:email",
    "format:uuid",
    "format:ipv4",
    "string_length",
    "numeric_bounds",
    "multipleOf",
    "array_length",
    "uniqueItems",
    "prefixItems",
    "additionalProperties:false",
    "additionalProperties:schema",
    "patternProperties",
    "dependentRequired",
    "if_then_else",
    "array_of_objects",
)


def _files() -> list[Path]:
    return sorted(p for p in CORPUS.glob("*.json") if p.name not in ("index.json", "examples.json"))


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _expand(task: LoadedTask, n: int | None = None, seed: int = 0) -> list[WorkItem]:
    return expand_task(task, random.Random(seed), n)


def _write(folder: Path, name: str, data: Any) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the corpus itself


def test_corpus_size_index_and_families() -> None:
    files = _files()
    index = _json(CORPUS / "index.json")
    assert len(files) >= 60
    assert sorted(index) == [p.name for p in files]
    covered = {tag for tags in index.values() for tag in tags}
    missing = [f for f in FAMILIES if f not in covered]
    assert not missing, f"no schema covers {missing}"


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.stem)
def test_corpus_schema_is_valid_tagged_and_has_a_valid_example(path: Path) -> None:
    schema = _json(path)
    Draft202012Validator.check_schema(schema)
    assert schema.get("title") and schema.get("description"), "the prompt template needs both"
    # The hand tags and the detector must agree: each checks the other.
    assert tuple(_json(CORPUS / "index.json")[path.name]) == detect_features(schema)
    example = _json(CORPUS / "examples.json")[path.name]
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [e.message for e in validator.iter_errors(example)]
    assert not errors, errors


@pytest.mark.skipif(not TOKENIZER.exists(), reason="the converted SmolLM2 checkpoint is not cached")
def test_corpus_examples_fit_the_token_budget() -> None:
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(TOKENIZER))
    examples = _json(CORPUS / "examples.json")
    sizes = {
        name: len(tok.encode(json.dumps(ex, ensure_ascii=False, separators=(",", ":"))).ids)
        for name, ex in examples.items()
    }
    too_long = {k: v for k, v in sizes.items() if v > 96}
    assert not too_long, too_long  # the suite's max_tokens: a compact instance must fit


# ---------------------------------------------------------------- feature detection


def test_detect_features_walks_schema_positions_only() -> None:
    schema = {
        "type": "object",
        "properties": {
            "fixed": {"const": {"pattern": "not a keyword here", "enum": [1]}},
            "when": {"type": "string", "format": "date-time"},
            "rows": {"type": "array", "items": {"$ref": "#/$defs/row"}, "maxItems": 2},
        },
        "$defs": {"row": {"type": "object", "properties": {"n": {"type": ["integer", "null"]}}}},
        "examples": [{"pattern": "data"}],
    }
    assert detect_features(schema) == (
        "ref",
        "const",
        "type_union",
        "format:date-time",
        "array_length",
        "array_of_objects",
    )
    assert set(detect_features(schema)) - {"format:date-time"} <= set(FEATURES)


@pytest.mark.parametrize(
    ("schema", "recursive"),
    [
        ({"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}, True),
        ({"$defs": {"a": {"properties": {"b": {"$ref": "#/$defs/b"}}}, "b": {"$ref": "#/$defs/a"}}}, True),
        ({"$defs": {"a": {"type": "string"}}, "properties": {"x": {"$ref": "#/$defs/a"}}}, False),
        ({"properties": {"x": {"$ref": "https://example.com/s.json"}}}, False),
    ],
)
def test_detect_recursion(schema: dict[str, Any], recursive: bool) -> None:
    assert ("recursion" in detect_features(schema)) is recursive


def test_corpus_prompt_names_title_description_and_fields() -> None:
    schema = _json(CORPUS / "db_connection.schema.json")
    prompt = corpus_prompt(schema)
    assert prompt.splitlines()[0] == "Write one realistic database connection as JSON."
    assert "PostgreSQL" in prompt
    assert "host (ipv4)" in prompt and "port (integer)" in prompt
    assert prompt.endswith("Reply with the JSON only.")
    assert corpus_prompt(True) == "Write one realistic record as JSON.\nReply with the JSON only."


# ---------------------------------------------------------------- the repo's task files


def test_registry_has_the_kind() -> None:
    assert KINDS["schema_corpus"] == "structbench.kinds.schema_corpus:expand"


def test_corpus_task_expands_in_rounds_with_meta() -> None:
    task = load_task(REPO / "tasks/coverage/corpus.yaml")
    n = len(task.rows)
    items = _expand(task)
    assert len(items) == 2 * n
    assert [it.item_id for it in (items[0], items[n - 1], items[n])] == [
        "corpus/0/r0",
        f"corpus/{n - 1}/r0",
        "corpus/0/r1",
    ]
    first, repeat = items[0], items[n]
    meta = dict(first.meta)
    assert meta["schema_id"] == task.rows[0]["schema_id"] == "address_form"
    assert meta["features"] == "enum,pattern,string_length"
    assert (meta["repeat"], meta["mode"], meta["unique"], meta["pair"]) == ("0", "constrained", "0", "corpus")
    assert dict(repeat.meta)["repeat"] == "1"
    gen = first.branches[0].turns[0].gen
    assert gen.constraint.kind == "json_schema" and gen.max_tokens == 96
    text = gen.constraint.json_schema or ""
    assert json.loads(text) == _json(CORPUS / "address_form.schema.json")
    assert " " not in text.replace("postal address", "").split('"description"')[0]  # compact
    # The repeat carries the very same constraint, so an engine can reuse its grammar.
    assert repeat.branches[0].turns[0].gen.constraint == gen.constraint
    assert first.prefix[0].role == "system"


def test_free_twin_sends_the_same_prompts_without_constraint() -> None:
    corpus = _expand(load_task(REPO / "tasks/coverage/corpus.yaml"))
    free = _expand(load_task(REPO / "tasks/coverage/corpus_free.yaml"))
    assert [it.branches[0].turns[0].user for it in free] == [
        it.branches[0].turns[0].user for it in corpus[: len(free)]
    ]
    assert {it.branches[0].turns[0].gen.constraint.kind for it in free} == {"none"}
    assert dict(free[0].meta)["mode"] == "free"


def test_unique_schemas_differ_per_request_and_are_seeded() -> None:
    task = load_task(REPO / "tasks/coverage/corpus_unique.yaml")
    texts = [it.branches[0].turns[0].gen.constraint.json_schema or "" for it in _expand(task, 6)]
    again = [it.branches[0].turns[0].gen.constraint.json_schema or "" for it in _expand(task, 6)]
    other = [it.branches[0].turns[0].gen.constraint.json_schema or "" for it in _expand(task, 6, seed=1)]
    assert len(set(texts)) == 6 and texts == again and texts != other
    schema = json.loads(texts[0])
    assert schema.pop("$comment").startswith("structbench request ")
    assert schema == _json(CORPUS / "address_form.schema.json")
    assert list(json.loads(texts[0]))[-1] == "$comment"  # properties keep their order


def test_num_requests_cycles_schemas() -> None:
    task = load_task(REPO / "tasks/coverage/corpus_free.yaml")
    n = len(task.rows)
    items = _expand(task, n + 2)
    assert items[n].item_id == "corpus_free/0#1"
    assert len(_expand(task, 3)) == 3


def test_coverage_suite_loads() -> None:
    suite = load_suite(REPO / "suites/coverage.yaml")
    assert [t.spec.name for t in suite.tasks] == ["corpus", "corpus_free"]
    assert [e.kind for e in suite.spec.engines] == ["embedded"]


# ---------------------------------------------------------------- folders: errors and exotic schemas


def _dir_task(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "pyproject.toml").write_text("")  # the project root marker
    return _write(tmp_path, "tasks/t.yaml", f"name: t\nkind: schema_corpus\nschema_dir: ../schemas\n{extra}")


def test_exotic_but_valid_schemas_load(tmp_path: Path) -> None:
    _write(tmp_path, "schemas/a.json", {"type": "object", "x-vendor": 1, "unevaluatedProperties": False})
    _write(tmp_path, "schemas/b.schema.json", {"$dynamicRef": "#meta", "contentEncoding": "base64"})
    _write(tmp_path, "schemas/c.json", True)
    _write(tmp_path, "schemas/index.json", {"a.json": ["vendor", "unevaluated"]})
    task = load_task(_dir_task(tmp_path, "limit: 2\n"))
    assert [r["schema_id"] for r in task.rows] == ["a", "b"]
    assert task.rows[0]["features"] == ["unevaluated", "vendor"]  # tags from the index
    assert task.rows[1]["features"] == []  # detected: nothing in the families


def test_invalid_schema_error_names_file_line_and_field(tmp_path: Path) -> None:
    _write(tmp_path, "schemas/ok.json", {"type": "string"})
    text = '{\n  "type": "object",\n  "properties": {\n    "n": {"type": "integr"}\n  }\n}\n'
    _write(tmp_path, "schemas/bad.json", text)
    with pytest.raises(SpecError) as e:
        load_task(_dir_task(tmp_path))
    assert e.value.path.endswith("schemas/bad.json")
    assert e.value.line == 4
    assert e.value.field == "properties.n.type"
    assert "invalid JSON schema" in e.value.message


def test_schemas_are_meta_validated_under_their_own_draft(tmp_path: Path) -> None:
    # Valid draft-04 (boolean exclusiveMinimum), invalid if it were read as 2020-12.
    d4 = {"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 0, "exclusiveMinimum": True}
    _write(tmp_path, "schemas/d4.json", d4)
    assert [r["schema_id"] for r in load_task(_dir_task(tmp_path)).rows] == ["d4"]
    # The same keywords claiming 2020-12 are refused, and the message names the draft.
    _write(tmp_path, "schemas/d4.json", {**d4, "$schema": "https://json-schema.org/draft/2020-12/schema"})
    with pytest.raises(SpecError) as e:
        load_task(_dir_task(tmp_path))
    assert e.value.field == "exclusiveMinimum" and "(under 2020-12)" in e.value.message


def test_invalid_schemas_count_keeps_them_for_the_report(tmp_path: Path) -> None:
    _write(tmp_path, "schemas/good.json", {"type": "string"})
    _write(tmp_path, "schemas/bad.json", {"type": "objekt"})
    with pytest.raises(SpecError):
        load_task(_dir_task(tmp_path))
    skipped = load_task(_dir_task(tmp_path, "invalid_schemas: skip\n"))
    assert [r["schema_id"] for r in skipped.rows] == ["good"]
    task = load_task(_dir_task(tmp_path, "invalid_schemas: count\n"))
    assert [r["schema_id"] for r in task.rows] == ["bad", "good"]
    bad = _expand(task)[0]
    gen = bad.branches[0].turns[0].gen
    assert isinstance(gen.constraint, JsonSchema)
    rec = CallRecord("c", "e", "t", bad.item_id, 0, 0, "answer", "json_schema", text='"x"')
    try:
        score = schema_valid(rec, gen, ScoreOptions(schema_timeout_s=5.0))
    finally:
        close_shared_checker()
    assert score.value is None and score.reason.startswith("invalid schema under 2020-12: $.type:")


def _bench_task(tmp_path: Path, extra: str = "", where: str = "../bench") -> Path:
    """A task over a small folder laid out like the JSONSchemaBench dataset repository."""
    d4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "number", "exclusiveMinimum": True}
    _write(tmp_path, "bench/data/Github_easy/o2.json", {"type": "object", "title": "Two"})
    _write(tmp_path, "bench/data/Github_easy/o1.json", {"type": "string"})
    _write(tmp_path, "bench/data/Kubernetes/k1.json", {**d4, "minimum": 0})
    _write(tmp_path, "bench/README.md", "not a subset")
    (tmp_path / "pyproject.toml").write_text("")
    text = f"name: jsb\nkind: schema_corpus\nsubsets_dir: {where}\n{extra}"
    return _write(tmp_path, "tasks/jsb.yaml", text)


def test_jsonschemabench_layout_loads_every_subset(tmp_path: Path) -> None:
    task = load_task(_bench_task(tmp_path))
    rows = [(r["subset"], r["schema_id"]) for r in task.rows]
    assert rows == [
        ("Github_easy", "Github_easy/o1"),
        ("Github_easy", "Github_easy/o2"),
        ("Kubernetes", "Kubernetes/k1"),
    ]
    items = _expand(task)
    assert [dict(it.meta)["subset"] for it in items] == ["Github_easy", "Github_easy", "Kubernetes"]
    # The repository's data/ folder given directly reads the same.
    again = load_task(_bench_task(tmp_path, where="../bench/data"))
    assert [r["schema_id"] for r in again.rows] == [r["schema_id"] for r in task.rows]


def test_jsonschemabench_layout_subset_selection_and_limit(tmp_path: Path) -> None:
    task = load_task(_bench_task(tmp_path, "subsets: [Kubernetes, Github_easy]\nlimit_per_subset: 1\n"))
    assert [r["schema_id"] for r in task.rows] == ["Kubernetes/k1", "Github_easy/o1"]


@pytest.mark.parametrize(
    ("extra", "where", "expect"),
    [
        (
            "subsets: [Github_easy, Nope]\n",
            "../bench",
            r"tasks/jsb.yaml:4:24: subsets\[1\]: no subset 'Nope' \(have: Github_easy, Kubernetes\)$",
        ),
        ("", "../tasks", r"subsets_dir: no subset folders"),
        ("", "../not-written", r"tasks/jsb.yaml:3:14: subsets_dir: no such folder: .*not-written$"),
        ("schema_dir: ../bench\n", "../bench", r"give one of schema_dir, subsets_dir or dataset"),
    ],
)
def test_jsonschemabench_layout_errors_are_located(
    tmp_path: Path, extra: str, where: str, expect: str
) -> None:
    with pytest.raises(SpecError, match=expect):
        load_task(_bench_task(tmp_path, extra, where))


def test_subset_field_of_a_dataset(tmp_path: Path) -> None:
    rows = '{"json_schema": {"type": "string"}, "cfg": "Glaiveai2K"}\n{"json_schema": {"type": "integer"}}\n'
    _write(tmp_path, "tasks/rows.jsonl", rows)
    (tmp_path / "pyproject.toml").write_text("")
    text = "name: t\nkind: schema_corpus\ndataset: {path: rows.jsonl}\n"
    text += "schema_field: json_schema\nsubset_field: cfg\n"
    task = load_task(_write(tmp_path, "tasks/t.yaml", text))
    assert [r["subset"] for r in task.rows] == ["Glaiveai2K", ""]


@pytest.mark.parametrize(
    ("files", "extra", "expect"),
    [
        ({"a.json": "{oops"}, "", "invalid JSON"),
        ({"index.json": {"gone.json": []}, "a.json": {}}, "", "no such schema file"),
        ({"index.json": {"a.json": 3}, "a.json": {}}, "", "features must be a list"),
        ({"index.json": {}}, "", "no *.json schema files"),
        ({"a.json": {}}, "dataset:\n  rows: [{schema: {}}]\n", "give one of schema_dir, subsets_dir"),
    ],
)
def test_folder_errors(tmp_path: Path, files: dict[str, Any], extra: str, expect: str) -> None:
    for name, data in files.items():
        _write(tmp_path, f"schemas/{name}", data)
    with pytest.raises(SpecError, match=expect.replace("*", r"\*")):
        load_task(_dir_task(tmp_path, extra))


def test_missing_folder_and_missing_source(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not a folder") as e:
        load_task(_dir_task(tmp_path))
    assert e.value.line == 3  # the schema_dir line of the task file
    path = _write(tmp_path, "tasks/u.yaml", "name: u\nkind: schema_corpus\n")
    with pytest.raises(SpecError, match="give schema_dir"):
        load_task(path)


# ---------------------------------------------------------------- datasets


def _jsonl_task(tmp_path: Path, rows: list[dict[str, Any]], extra: str = "") -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    _write(tmp_path, "tasks/rows.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    body = "name: d\nkind: schema_corpus\ndataset:\n  path: rows.jsonl\nschema_field: json_schema\n"
    return _write(tmp_path, "tasks/d.yaml", body + extra)


def test_jsonl_rows_with_text_schemas_ids_prompts_and_tags(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {"id": "s1", "json_schema": json.dumps({"type": "string", "pattern": "^a+$"}), "prompt": "Say aaa."},
        {"id": "s2", "json_schema": {"enum": [1, 2]}, "features": "mine, theirs"},
    ]
    task = load_task(_jsonl_task(tmp_path, rows, "id_field: id\n"))
    assert [r["schema_id"] for r in task.rows] == ["s1", "s2"]
    assert task.rows[0]["features"] == ["pattern"] and task.rows[1]["features"] == ["mine", "theirs"]
    items = _expand(task)
    assert items[0].branches[0].turns[0].user == "Say aaa."
    assert items[1].branches[0].turns[0].user.startswith("Write one realistic record as JSON.")
    assert json.loads(items[0].branches[0].turns[0].gen.constraint.json_schema or "") == {
        "type": "string",
        "pattern": "^a+$",
    }


def test_prompt_template_over_the_row(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"json_schema": {"title": "pet", "type": "object"}}]
    task = load_task(_jsonl_task(tmp_path, rows, "prompt: 'Make a {{ title }}: {{ schema_text }}'\n"))
    assert _expand(task)[0].branches[0].turns[0].user == 'Make a pet: {"title":"pet","type":"object"}'


@pytest.mark.parametrize(
    ("rows", "expect"),
    [
        ([{"json_schema": {"type": 5}}], r"dataset row 0 \('row0'\): json_schema\.type: invalid JSON schema"),
        ([{"json_schema": "{nope"}], r"dataset row 0 \('row0'\): json_schema: not JSON"),
        ([{"other": 1}], "row 0 has no column 'json_schema'"),
        ([{"json_schema": {}, "id": "x"}, {"json_schema": {}, "id": "x"}], "duplicate schema id 'x'"),
    ],
)
def test_dataset_errors(tmp_path: Path, rows: list[dict[str, Any]], expect: str) -> None:
    with pytest.raises(SpecError, match=expect):
        load_task(_jsonl_task(tmp_path, rows, "id_field: id\n"))


def test_invalid_schemas_skip(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"json_schema": {"type": 5}}, {"json_schema": {"type": "string"}}]
    task = load_task(_jsonl_task(tmp_path, rows, "invalid_schemas: skip\n"))
    assert [r["schema_id"] for r in task.rows] == ["row1"]
    with pytest.raises(SpecError, match="every schema failed"):
        load_task(_jsonl_task(tmp_path, rows[:1], "invalid_schemas: skip\n"))


def test_hf_code_path_with_a_local_builder(tmp_path: Path) -> None:
    """The Hugging Face path (``hf:``), run offline through the ``json`` builder."""
    pytest.importorskip("datasets")
    (tmp_path / "pyproject.toml").write_text("")
    rows = [
        {"unique_id": f"u{i}", "json_schema": json.dumps({"type": "integer", "minimum": i})} for i in range(3)
    ]
    _write(tmp_path, "tasks/bench.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    body = (
        "name: hfb\nkind: schema_corpus\ndataset:\n  hf: json\n  data_files: bench.jsonl\n  limit: 2\n"
        "schema_field: json_schema\nid_field: unique_id\n"
    )
    task = load_task(_write(tmp_path, "tasks/hfb.yaml", body))
    assert [r["schema_id"] for r in task.rows] == ["u0", "u1"]
    assert task.rows[1]["features"] == ["numeric_bounds"]
