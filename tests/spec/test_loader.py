"""Suite/task loading: bad inputs give one located error line; good suites load."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from structbench.errors import SpecError, UserError
from structbench.spec.loader import LoadedSuite, LoadedTask, load_path, load_suite, load_task
from structbench.spec.tasks import GrammarTaskSpec, JsonTaskSpec

REPO = Path(__file__).resolve().parents[2]

SUITE = """\
name: s
tasks:
  - ../tasks/t.yaml
"""
TASK = """\
name: t
kind: json
dataset:
  path: data.jsonl
json_schema: schema.json
prompt: "Extract: {{ text }}"
reference: "{{ expected | tojson }}"
scorers: [json_parse, schema_valid]
"""
SCHEMA = '{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}'
DATA = '{"text": "a is 1", "expected": {"a": 1}}\n{"text": "a is 2", "expected": {"a": 2}}\n'
REGEX_TASK = """\
name: r
kind: regex
regex: "[A-Z]{3}"
prompt: "{{ q }}"
dataset:
  rows:
    - q: hello
"""
GRAMMAR_TASK = """\
name: g
kind: grammar
grammar:
  lark: g.lark
prompt: hi
"""


def task(old: str, new: str) -> dict[str, str]:
    """The base task with one substring replaced."""
    assert old in TASK
    return {"tasks/t.yaml": TASK.replace(old, new)}


def suite(old: str, new: str) -> dict[str, str]:
    """The base suite with one substring replaced."""
    assert old in SUITE
    return {"suites/s.yaml": SUITE.replace(old, new)}


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, str]
    #: The exact error line, or its start when ``prefix``.
    expected: str
    prefix: bool = False
    load: str = "suites/s.yaml"
    env: dict[str, str] = field(default_factory=dict)


CASES = [
    Case(
        "unknown-scorer",
        task("schema_valid]", "schema_vald]"),
        "tasks/t.yaml:8:23: scorers[1]: unknown scorer 'schema_vald' (did you mean 'schema_valid'?)",
    ),
    Case(
        "missing-task-file",
        suite("../tasks/t.yaml", "../tasks/nope.yaml"),
        "suites/s.yaml:3:5: tasks[0]: file not found: tasks/nope.yaml",
    ),
    Case(
        "unknown-top-field", task("name: t\n", "name: t\nfoo: 1\n"), "tasks/t.yaml:2:1: unknown field 'foo'"
    ),
    Case(
        "unknown-nested-field",
        {"suites/s.yaml": SUITE + "load:\n  concurency: [2]\n"},
        "suites/s.yaml:5:3: load: unknown field 'concurency'",
    ),
    Case(
        "wrong-type",
        task("name: t\n", "name: t\nmax_tokens: many\n"),
        "tasks/t.yaml:2:13: max_tokens: input should be a valid integer, "
        "unable to parse string as an integer, got 'many'",
    ),
    Case(
        "wrong-type-in-list",
        {"suites/s.yaml": SUITE + "load:\n  concurrency: [4, eight]\n"},
        "suites/s.yaml:5:20: load.concurrency[1]: input should be a valid integer",
        prefix=True,
    ),
    Case(
        "not-positive",
        {"suites/s.yaml": SUITE + "load:\n  concurrency: 0\n"},
        "suites/s.yaml:5:16: load.concurrency: input should be greater than 0, got 0",
    ),
    Case(
        "yaml-syntax",
        task("prompt: ", "prompt: [oops\n# "),
        "tasks/t.yaml:8:1: YAML syntax error: while parsing a flow sequence: expected ',' or ']', but got",
        prefix=True,
    ),
    Case(
        "duplicate-yaml-key",
        task("kind: json\n", "kind: json\nname: u\n"),
        "tasks/t.yaml:3:1: duplicate key 'name'",
    ),
    Case(
        "invalid-schema-file",
        {"tasks/schema.json": '{\n  "type": "objekt"\n}\n'},
        "tasks/schema.json:2:11: json_schema.type: invalid JSON schema: 'objekt' is not valid",
        prefix=True,
    ),
    Case(
        "invalid-inline-schema",
        task("json_schema: schema.json", "json_schema:\n  type: object\n  properties:\n    a: {type: 5}"),
        "tasks/t.yaml:8:15: json_schema.properties.a.type: invalid JSON schema: 5 is not valid",
        prefix=True,
    ),
    Case(
        "schema-file-bad-json",
        {"tasks/schema.json": '{\n  "type": "object",\n}\n'},
        "tasks/schema.json:3:1: invalid JSON: Expecting property name enclosed in double quotes",
    ),
    Case(
        "schema-union-type",
        task("json_schema: schema.json", "json_schema: 5"),
        "tasks/t.yaml:5:14: json_schema: input should be a valid string, got 5 "
        "or input should be a valid dictionary, got 5",
    ),
    Case(
        "bad-regex",
        {"tasks/t.yaml": REGEX_TASK.replace('"[A-Z]{3}"', '"[A-Z"')},
        "tasks/t.yaml:3:8: regex: invalid regex: unterminated character set at position 0",
    ),
    Case(
        "template-undefined",
        task("{{ text }}", "{{ txt }}"),
        "tasks/t.yaml:6:9: prompt: template fails on row 0: 'txt' is undefined",
    ),
    Case(
        "template-syntax",
        task("name: t\n", "name: t\nsystem: '{% if %}'\n"),
        "tasks/t.yaml:2:9: system: template fails on row 0: template syntax error at line 1:",
        prefix=True,
    ),
    Case(
        "reference-not-json",
        task("{{ expected | tojson }}", "{{ text }}"),
        "tasks/t.yaml:7:12: reference: a json task's reference must render to JSON, row 0 gives 'a is 1' "
        "(try {{ row.x | tojson }})",
    ),
    Case(
        "missing-dataset-file",
        task("data.jsonl", "nope.jsonl"),
        "tasks/t.yaml:4:9: dataset.path: file not found: tasks/nope.jsonl",
    ),
    Case(
        "bad-dataset-line",
        {"tasks/data.jsonl": '{"text": "x", "expected": {"a": 1}}\n{"text": oops}\n'},
        "tasks/data.jsonl:2:10: invalid JSON: Expecting value",
    ),
    Case(
        "dataset-row-not-object",
        {"tasks/data.jsonl": "[1, 2]\n"},
        "tasks/data.jsonl:1:1: each row must be a JSON object, got list",
    ),
    Case(
        "dataset-two-sources",
        task("  path: data.jsonl\n", "  path: data.jsonl\n  rows: [{text: x}]\n"),
        "tasks/t.yaml:4:3: dataset: give exactly one of path, rows or hf (found path and rows)",
    ),
    Case(
        "dataset-unknown-column",
        task("  path: data.jsonl\n", "  path: data.jsonl\n  fields: {question: q}\n"),
        "tasks/t.yaml:5:22: dataset.fields.question: column 'q' not in row 0 (columns: expected, text)",
    ),
    Case(
        "unknown-task-kind",
        task("kind: json", "kind: jsn"),
        "tasks/t.yaml:2:7: kind: unknown task kind 'jsn' "
        "(expected one of 'json', 'regex', 'choice', 'grammar', 'chat', 'fanout', 'prefix_hit', "
        "'schema_corpus')",
    ),
    Case("missing-kind", task("kind: json\n", ""), "tasks/t.yaml:1:1: missing required field 'kind'"),
    Case(
        "missing-required",
        task("json_schema: schema.json\n", ""),
        "tasks/t.yaml:1:1: missing required field 'json_schema'",
    ),
    Case(
        "unknown-engine-kind",
        {"suites/s.yaml": SUITE + "engines:\n  - kind: vlm\n"},
        "suites/s.yaml:5:11: engines[0].kind: unknown engine kind 'vlm' (expected one of 'embedded', 'vllm', "
        "'sglang', 'openai')",
    ),
    Case(
        "engine-unknown-field",
        {"suites/s.yaml": SUITE + "engines:\n  - kind: vllm\n    url: http://a:1\n    bogus: 1\n"},
        "suites/s.yaml:7:5: engines[0]: unknown field 'bogus'",
    ),
    Case(
        "engine-nested-field",
        {"suites/s.yaml": SUITE + "engines:\n  - kind: sglang\n    embedded: {dtype: f8}\n"},
        "suites/s.yaml:6:23: engines[0].embedded.dtype: input should be 'float32', 'bfloat16' or 'float16', "
        "got 'f8'",
    ),
    Case(
        "engine-missing-field",
        {"suites/s.yaml": SUITE + "engines:\n  - kind: openai\n"},
        "suites/s.yaml:5:5: engines[0]: missing required field 'url'",
    ),
    Case(
        "engine-url-and-launch",
        {
            "suites/s.yaml": SUITE
            + "engines:\n  - kind: sglang\n    url: http://a:1\n    launch: {model: m}\n"
        },
        "suites/s.yaml:5:5: engines[0]: engine 'sglang': give 'url' (attach to a running server) or 'launch' "
        "(start one), not both",
    ),
    Case(
        "engine-without-kind",
        {"suites/s.yaml": SUITE + "engines:\n  - name: x\n"},
        "suites/s.yaml:5:5: engines[0]: missing required field 'kind'",
    ),
    Case(
        "duplicate-engine-name",
        {
            "suites/s.yaml": SUITE
            + "engines:\n  - {kind: vllm, url: 'http://a:1'}\n  - {kind: vllm, url: 'http://b:1'}\n"
        },
        "suites/s.yaml:6:5: engines[1].name: duplicate engine name 'vllm' "
        "(engines[0] has it; give each a name)",
    ),
    Case(
        "key-in-api-key-env",
        {
            "suites/s.yaml": SUITE
            + "engines:\n  - kind: openai\n    url: http://h:1\n    api_key_env: sk-abc123\n"
        },
        "suites/s.yaml:7:18: engines[0].api_key_env: "
        "must name an environment variable (e.g. OPENAI_API_KEY), not hold a key",
    ),
    Case(
        "duplicate-task-name",
        {
            "suites/s.yaml": SUITE + "  - ../tasks/t2.yaml\n",
            "tasks/t2.yaml": TASK.replace("name: t\n", "name: t  # same\n"),
        },
        "suites/s.yaml:4:5: tasks[1]: duplicate task name 't' (also in tasks/t.yaml, tasks[0])",
    ),
    Case(
        "task-listed-twice",
        {"suites/s.yaml": SUITE + "  - ../tasks/t.yaml\n"},
        "suites/s.yaml:4:5: tasks[1]: duplicate task name 't' (listed twice, tasks[0])",
    ),
    Case(
        "path-escapes-root",
        suite("../tasks/t.yaml", "../../outside.yaml"),
        "suites/s.yaml:3:5: tasks[0]: path '../../outside.yaml' leaves the project root . "
        "(set STRUCTBENCH_ALLOW_OUTSIDE_PATHS=1 to allow paths outside it)",
        prefix=True,
    ),
    Case(
        "dataset-escapes-root",
        task("data.jsonl", "../../secrets.jsonl"),
        "tasks/t.yaml:4:9: dataset.path: path '../../secrets.jsonl' leaves the project root",
        prefix=True,
    ),
    Case(
        "bad-name",
        task("name: t\n", "name: a/b\n"),
        "tasks/t.yaml:1:7: name: invalid name 'a/b'",
        prefix=True,
    ),
    Case(
        "no-tasks",
        suite("tasks:\n  - ../tasks/t.yaml\n", "tasks: []\n"),
        "suites/s.yaml:2:8: tasks: list should have at least 1 item, not 0",
    ),
    Case(
        "empty-file",
        {"tasks/t.yaml": "# nothing yet\n"},
        "tasks/t.yaml:1:1: a task file must be a mapping of fields, got an empty file",
        load="tasks/t.yaml",
    ),
    Case(
        "suite-is-a-list",
        {"suites/s.yaml": "- a\n- b\n"},
        "suites/s.yaml:1:1: a suite file must be a mapping of fields, got a list",
    ),
    Case(
        "grammar-without-start",
        {"tasks/t.yaml": GRAMMAR_TASK, "tasks/g.lark": "expr: NUMBER\nNUMBER: /[0-9]+/\n"},
        "tasks/t.yaml:4:9: grammar.lark: tasks/g.lark has no 'start' rule",
    ),
    Case(
        "grammar-none",
        {"tasks/t.yaml": GRAMMAR_TASK.replace("  lark: g.lark\n", "  lark: null\n")},
        "tasks/t.yaml:4:3: grammar: give at least one of lark or gbnf",
    ),
    Case(
        "duplicate-choice",
        {"tasks/t.yaml": "name: c\nkind: choice\nchoices: [a, b, a]\nprompt: pick\n"},
        "tasks/t.yaml:3:17: choices[2]: duplicate choice 'a'",
    ),
    Case(
        "yes-no-stay-strings",
        {"tasks/t.yaml": "name: c\nkind: choice\nchoices: [yes, no, yes]\nprompt: pick\n"},
        "tasks/t.yaml:3:20: choices[2]: duplicate choice 'yes'",
    ),
    Case("file-not-found", {}, "nope.yaml: file not found", load="nope.yaml"),
    Case(
        "dangling-ref-inline",
        task("json_schema: schema.json", "json_schema:\n  properties:\n    a: {$ref: '#/$defs/gone'}"),
        "tasks/t.yaml:7:15: json_schema.properties.a.$ref: $ref '#/$defs/gone' resolves nowhere in this "
        "schema (remote refs are not fetched)",
    ),
    Case(
        "dangling-ref-file",
        {"tasks/schema.json": '{\n  "$defs": {"a": {}},\n  "items": {"$ref": "#/$defs/b"}\n}\n'},
        "tasks/schema.json:3:21: json_schema.items.$ref: $ref '#/$defs/b' resolves nowhere",
        prefix=True,
    ),
    Case(
        # referencing 0.37 raised AttributeError on this draft-07 `dependencies` (a schema value, then
        # an array): `structbench validate` printed a traceback instead of the one-line error.
        "dangling-ref-beside-mixed-dependencies",
        {
            "tasks/schema.json": '{"$schema": "http://json-schema.org/draft-07/schema#",\n'
            ' "dependencies": {"a": {"required": ["b"]}, "b": ["a"]},\n'
            ' "items": {"$ref": "#/definitions/b"}}\n'
        },
        "tasks/schema.json:3:20: json_schema.items.$ref: $ref '#/definitions/b' resolves nowhere",
        prefix=True,
    ),
    Case(
        "lookahead-regex",
        {"tasks/t.yaml": REGEX_TASK.replace('"[A-Z]{3}"', '"(?![A-Z]{4})[A-Z]+"')},
        "tasks/t.yaml:3:8: regex: a lookahead (?=...) or (?!...) is not supported in a constraint regex",
        prefix=True,
        load="tasks/t.yaml",
    ),
    Case(
        "lookbehind-in-a-group",
        {"tasks/t.yaml": REGEX_TASK.replace('"[A-Z]{3}"', '"x(a|(?<=x)b)*"')},
        "tasks/t.yaml:3:8: regex: a lookbehind (?<=...) or (?<!...) is not supported",
        prefix=True,
        load="tasks/t.yaml",
    ),
    Case(
        "backreference-regex",
        {"tasks/t.yaml": REGEX_TASK.replace('"[A-Z]{3}"', "'(?P<w>[a-z]+) (?P=w)'")},
        "tasks/t.yaml:3:8: regex: a backreference is not supported",
        prefix=True,
        load="tasks/t.yaml",
    ),
]


def write_project(root: Path, files: dict[str, str]) -> None:
    base = {
        "pyproject.toml": "",
        "suites/s.yaml": SUITE,
        "tasks/t.yaml": TASK,
        "tasks/schema.json": SCHEMA,
        "tasks/data.jsonl": DATA,
    }
    for rel, text in {**base, **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project (a pyproject.toml marks the root) as the working directory."""
    root = tmp_path / "proj"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.delenv("STRUCTBENCH_ALLOW_OUTSIDE_PATHS", raising=False)
    return root


def test_table_has_enough_cases() -> None:
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_gives_located_error(case: Case, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(project, case.files)
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    load = load_task if case.load.startswith("tasks/") else load_suite
    with pytest.raises(SpecError) as info:
        load(case.load)
    msg = str(info.value)
    if case.prefix:
        assert msg.startswith(case.expected), msg
    else:
        assert msg == case.expected
    assert "\n" not in msg


def test_error_fields_are_structured(project: Path) -> None:
    write_project(project, task("schema_valid]", "schema_vald]"))
    with pytest.raises(SpecError) as info:
        load_suite("suites/s.yaml")
    e = info.value
    assert (e.path, e.line, e.col, e.field) == ("tasks/t.yaml", 8, 23, "scorers[1]")
    assert isinstance(e, UserError) and e.exit_code == 2


def test_outside_paths_allowed_by_env(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(project, suite("../tasks/t.yaml", "../../outside/t.yaml"))
    outside = project.parent / "outside"
    outside.mkdir()
    (outside / "t.yaml").write_text(REGEX_TASK, encoding="utf-8")
    with pytest.raises(SpecError, match="leaves the project root"):
        load_suite("suites/s.yaml")
    monkeypatch.setenv("STRUCTBENCH_ALLOW_OUTSIDE_PATHS", "1")
    loaded = load_suite("suites/s.yaml")
    assert [t.spec.name for t in loaded.tasks] == ["r"]


def test_later_row_problem_is_not_a_load_error(project: Path) -> None:
    """Only row 0 is rendered at load time; expansion reports the others (see kinds tests)."""
    write_project(project, {"tasks/data.jsonl": DATA + '{"expected": {"a": 3}}\n'})
    assert len(load_suite("suites/s.yaml").tasks[0].rows) == 3


def test_good_project_loads(project: Path) -> None:
    write_project(project, {})
    loaded = load_suite(Path("suites/s.yaml"))
    assert isinstance(loaded, LoadedSuite)
    t = loaded.tasks[0]
    assert isinstance(t.spec, JsonTaskSpec)
    assert t.schema == json.loads(SCHEMA)
    assert t.rows == ({"text": "a is 1", "expected": {"a": 1}}, {"text": "a is 2", "expected": {"a": 2}})
    assert t.path == Path("suites/../tasks/t.yaml") or t.path.name == "t.yaml"
    assert loaded.spec.engines[0].kind == "embedded"
    assert "suite 's'" in str(loaded) and "t (json, 2 rows)" in str(loaded)


def test_task_schema_is_checked_under_its_own_draft(project: Path) -> None:
    d7 = {"$schema": "http://json-schema.org/draft-07/schema#", "dependencies": {"a": ["b"]}}
    write_project(project, {"tasks/schema.json": json.dumps(d7)})
    assert load_suite("suites/s.yaml").tasks[0].schema == d7
    # draft-04's boolean exclusiveMinimum loads as draft-04 and is refused as 2020-12.
    d4 = {"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 0, "exclusiveMinimum": True}
    write_project(project, {"tasks/schema.json": json.dumps(d4)})
    assert load_suite("suites/s.yaml").tasks[0].schema == d4
    d4.pop("$schema")
    write_project(project, {"tasks/schema.json": json.dumps(d4)})
    with pytest.raises(SpecError, match=r"exclusiveMinimum: invalid JSON schema: .* \(under 2020-12\)$"):
        load_suite("suites/s.yaml")


def test_valid_refs_and_plain_regexes_load(project: Path) -> None:
    """The dangling-ref and regex checks refuse only what they name (no false alarms)."""
    schema = {
        "$id": "https://example.com/root.json",
        "$defs": {"n": {"$anchor": "num", "type": "number"}, "o": {"$id": "other.json", "type": "string"}},
        "properties": {"a": {"$ref": "#/$defs/n"}, "b": {"$ref": "#num"}, "c": {"$ref": "other.json"}},
        "enum": [{"$ref": "not a schema, a value"}],
    }
    regex = REGEX_TASK.replace('"[A-Z]{3}"', r'"(?:[A-Z]{3}|\\(x\\))-[0-9]+"')
    write_project(project, {"tasks/schema.json": json.dumps(schema), "tasks/r.yaml": regex})
    assert load_task("tasks/t.yaml").schema == schema
    assert load_task("tasks/r.yaml").spec.name == "r"


def test_match_regex_may_use_lookaround(project: Path) -> None:
    """A grammar task's ``match_regex`` only scores (Python's re), so lookaround stays allowed."""
    grammar = GRAMMAR_TASK + 'match_regex: "(?=a)a+"\n'
    write_project(project, {"tasks/t.yaml": grammar, "tasks/g.lark": "start: /a+/\n"})
    assert load_task("tasks/t.yaml").spec.name == "g"


def test_load_path_picks_task_or_suite(project: Path) -> None:
    write_project(project, {"tasks/empty.yaml": ""})
    assert isinstance(load_path("tasks/t.yaml"), LoadedTask)
    assert isinstance(load_path("suites/s.yaml"), LoadedSuite)
    with pytest.raises(SpecError, match=r"^tasks/empty.yaml:1:1: a suite or task file must be a mapping"):
        load_path("tasks/empty.yaml")


def test_shuffle_is_seeded_per_task(project: Path) -> None:
    rows = "".join(json.dumps({"text": str(i), "expected": {"a": i}}) + "\n" for i in range(30))
    write_project(
        project,
        {"tasks/data.jsonl": rows, **task("  path: data.jsonl\n", "  path: data.jsonl\n  shuffle: true\n")},
    )
    a = load_task("tasks/t.yaml", seed=1).rows
    assert a == load_task("tasks/t.yaml", seed=1).rows
    assert a != load_task("tasks/t.yaml", seed=2).rows
    assert sorted(r["expected"]["a"] for r in a) == list(range(30))


def test_scalar_concurrency_becomes_a_sweep_of_one(project: Path) -> None:
    write_project(project, {"suites/s.yaml": SUITE + "load:\n  concurrency: 4\n  rate: .inf\n"})
    load = load_suite("suites/s.yaml").spec.load
    assert load.concurrency == (4,)
    assert load.rate == (float("inf"),)


def test_grammar_and_prefix_files_are_read(project: Path) -> None:
    lark = "start: WORD\nWORD: /[a-z]+/\n"
    files = {
        "tasks/t.yaml": GRAMMAR_TASK.replace("  lark: g.lark\n", "  lark: g.lark\n  gbnf: g.gbnf\n"),
        "tasks/g.lark": lark,
        "tasks/g.gbnf": "root ::= [a-z]+\n",
    }
    write_project(project, files)
    t = load_task("tasks/t.yaml")
    assert isinstance(t.spec, GrammarTaskSpec)
    assert t.grammars == (("lark", lark), ("gbnf", "root ::= [a-z]+\n"))


@pytest.mark.parametrize("suite_path", ["suites/json.yaml", "suites/kinds.yaml"])
def test_repo_suites_load(suite_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    loaded = load_suite(suite_path)
    assert loaded.tasks
    assert all(len(t.rows) >= 1 for t in loaded.tasks)


def test_json_suite_content() -> None:
    loaded = load_suite(REPO / "suites/json.yaml")
    s = loaded.spec
    assert s.name == "json"
    assert [e.kind for e in s.engines] == ["embedded"]
    assert (s.load.mode, s.load.concurrency, s.load.warmup, s.seed) == ("concurrency", (8,), 1, 0)
    kinds = [t.spec.kind for t in loaded.tasks]
    assert kinds == ["json", "json", "json", "regex"]
    canary = loaded.tasks[-1].spec
    assert canary.kind == "regex" and canary.canary
    for t in loaded.tasks[:3]:
        assert len(t.rows) >= 20
        assert {"json_parse", "schema_valid", "field_accuracy"} <= set(t.spec.scorers)


def test_kinds_suite_has_one_task_per_constrained_kind() -> None:
    loaded = load_suite(REPO / "suites/kinds.yaml")
    assert sorted(t.spec.kind for t in loaded.tasks) == ["choice", "grammar", "json", "regex"]
    assert loaded.spec.load.num_requests is not None and loaded.spec.load.num_requests <= 3
