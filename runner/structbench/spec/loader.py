"""Load a suite (or a task) YAML and everything it references, validated completely.

Every problem raises one :class:`~structbench.errors.SpecError` that reads
``tasks/json/invoice.yaml:14:5: scorers[1]: unknown scorer 'schema_vald'``, before any
engine is touched. Files named in a suite or task resolve relative to the file that
names them and must stay inside the project root (see :mod:`structbench.spec.paths`).
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from structbench.datasets import DatasetError, load_rows
from structbench.errors import SpecError
from structbench.kinds.schema_corpus import load_corpus
from structbench.spec.checks import (
    Refs,
    check_choices,
    check_constraint_regex,
    check_name,
    check_regex,
    check_rows,
    check_scorers,
    check_templates,
    load_grammars,
    load_schema,
)
from structbench.spec.engine_checks import engine_problems
from structbench.spec.loaded import LoadedSuite, LoadedTask
from structbench.spec.marks import MarkedDoc, parse_yaml
from structbench.spec.paths import display_path, find_root
from structbench.spec.resolved import resolved_dict
from structbench.spec.suite import SuiteSpec, suite_model
from structbench.spec.tasks import (
    ChoiceTaskSpec,
    FanoutTaskSpec,
    GrammarTaskSpec,
    JsonTaskSpec,
    PrefixHitTaskSpec,
    RegexTaskSpec,
    SchemaCorpusTaskSpec,
    TaskSpec,
)
from structbench.spec.validate import validate

__all__ = [
    "LoadedSuite",
    "LoadedTask",
    "load_path",
    "load_suite",
    "load_task",
    "load_tasks",
    "read_doc",
    "resolved_dict",
]

_TASK: TypeAdapter[TaskSpec] = TypeAdapter(TaskSpec)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What ``api_key_env`` may hold: a variable name (a key pasted there would reach the manifest)."""


def load_suite(path: str | Path) -> LoadedSuite:
    """Load and validate a suite and every task it names.

    Raises:
        SpecError: On the first problem found, located in the file that has it.
    """
    path = Path(path)
    root = find_root(path.parent)
    doc = read_doc(path, "suite")
    spec = validate(_suite_adapter(suite_model()), doc)
    check_name(doc, ("name",), spec.name)
    warnings = _check_engines(doc, spec)
    refs = Refs(doc, path.parent, root)
    tasks: list[tuple[int, LoadedTask]] = []  # with the index of the entry that named it
    for i, ref in enumerate(spec.tasks):
        for task in load_tasks(refs.file(("tasks", i), ref), seed=spec.seed, root=root):
            _check_unique(doc, i, task, tasks)
            tasks.append((i, task))
    return LoadedSuite(spec, path, tuple(t for _, t in tasks), warnings)


def _check_unique(doc: MarkedDoc, i: int, task: LoadedTask, before: list[tuple[int, LoadedTask]]) -> None:
    for j, other in before:
        if other.spec.name == task.spec.name:
            where = "listed twice" if other.path == task.path else f"also in {display_path(other.path)}"
            raise doc.error(("tasks", i), f"duplicate task name '{task.spec.name}' ({where}, tasks[{j}])")


def load_tasks(path: str | Path, *, seed: int = 0, root: Path | None = None) -> tuple[LoadedTask, ...]:
    """Load one task file as the tasks it runs: itself, or one task per swept value.

    A ``prefix_hit`` task with a list of targets is a sweep: each target becomes its own
    task, named ``<name>-t<percent>``, so that each gets its own cells (own cache flush,
    warm-up and counters) and the report lists them side by side.

    Raises:
        SpecError: On the first problem found.
    """
    task = load_task(path, seed=seed, root=root)
    spec = task.spec
    if not isinstance(spec, PrefixHitTaskSpec) or not isinstance(spec.target_hit_rate, tuple):
        return (task,)
    out = []
    for t in spec.targets:
        name = f"{spec.name}-t{round(t * 100, 2):g}"
        doc = read_doc(task.path, "task")
        check_name(doc, ("name",), name)
        one = spec.model_copy(update={"name": name, "target_hit_rate": t})
        out.append(replace(task, spec=one))
    return tuple(out)


def load_task(path: str | Path, *, seed: int = 0, root: Path | None = None) -> LoadedTask:
    """Load and validate one task file: its data rows, schema, grammars, templates.

    Args:
        path: The task YAML.
        seed: Seeds the dataset shuffle (with the task name, so tasks shuffle
            independently of their order in the suite).
        root: Project root that referenced files must stay in (found from ``path``
            when None).

    Raises:
        SpecError: On the first problem found.
    """
    path = Path(path)
    doc = read_doc(path, "task")
    spec = validate(_TASK, doc)
    refs = Refs(doc, path.parent, root or find_root(path.parent))
    check_name(doc, ("name",), spec.name)
    if "scorers" in doc.data:
        check_scorers(doc, spec.scorers)
    _check_patterns(doc, spec)
    rows = _load_rows(refs, spec, seed)
    if isinstance(spec, SchemaCorpusTaskSpec):
        # The kind owns its row format; it imports only spec modules that come before this one.
        rows = load_corpus(refs, spec, rows)
    schema = load_schema(refs, spec) if isinstance(spec, JsonTaskSpec) else None
    grammars = load_grammars(refs, spec) if isinstance(spec, GrammarTaskSpec) else ()
    prefix = None
    if isinstance(spec, FanoutTaskSpec) and spec.prefix_file is not None:
        prefix = refs.text(("prefix_file",), spec.prefix_file)[1]
    if isinstance(spec, PrefixHitTaskSpec) and spec.tokenizer is not None:
        spec = spec.model_copy(update={"tokenizer": _tokenizer_folder(doc, path.parent, spec.tokenizer)})
    check_rows(doc, spec, rows[0])
    check_templates(doc, spec, rows[0])
    return LoadedTask(spec, path, tuple(rows), schema, grammars, prefix)


def _tokenizer_folder(doc: MarkedDoc, base: Path, ref: str) -> str:
    """The absolute model folder ``ref`` names (like ``launch.model``: not fenced to the project).

    Only its files are checked here: loading the tokenizer needs transformers, which
    ``validate`` never imports.
    """
    folder = Path(ref).expanduser()
    folder = folder if folder.is_absolute() else (base / folder)
    if not folder.is_dir():
        raise doc.error(("tokenizer",), f"not a folder: {ref}")
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise doc.error(("tokenizer",), f"no tokenizer.json or tokenizer_config.json in {ref}")
    return str(folder.resolve())


def load_path(path: str | Path) -> LoadedSuite | LoadedTask:
    """Load a suite, or a task when the file has a top-level ``kind`` (for ``validate``)."""
    doc = read_doc(Path(path), "suite or task")
    return load_task(path) if "kind" in doc.data else load_suite(path)


def read_doc(path: Path, what: str) -> MarkedDoc:
    """Parse ``path`` as a mapping of fields (``what`` names the file kind in errors).

    Raises:
        SpecError: Unreadable, not YAML, or not a mapping.
    """
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(shown, 0, 0, "", "file not found") from None
    except IsADirectoryError:
        raise SpecError(shown, 0, 0, "", f"is a folder, not a {what} file") from None
    except UnicodeDecodeError:
        raise SpecError(shown, 0, 0, "", "not UTF-8 text") from None
    except OSError as e:
        raise SpecError(shown, 0, 0, "", f"cannot read: {e.strerror}") from None
    doc = parse_yaml(text, shown)
    if not isinstance(doc.data, dict):
        got = "an empty file" if doc.data is None else f"a {type(doc.data).__name__}"
        raise SpecError(shown, 1, 1, "", f"a {what} file must be a mapping of fields, got {got}")
    return doc


def _check_engines(doc: MarkedDoc, spec: SuiteSpec) -> tuple[str, ...]:
    """Raise the first engine problem; return the located warnings (problems only ``run`` refuses)."""
    warnings: list[str] = []
    seen: dict[str, int] = {}
    for i, engine in enumerate(spec.engines):
        check_name(doc, ("engines", i, "name"), engine.name)
        if engine.name in seen:
            first = seen[engine.name]
            msg = f"duplicate engine name '{engine.name}' (engines[{first}] has it; give each a name)"
            raise doc.error(("engines", i, "name"), msg)
        seen[engine.name] = i
        key_env = engine.key_env
        if key_env is not None and not ENV_NAME.fullmatch(key_env):
            # Refuse what looks like a key pasted in: the spec goes into the manifest.
            raise doc.error(
                ("engines", i, "api_key_env"),
                "must name an environment variable (e.g. OPENAI_API_KEY), not hold a key",
            )
        for problem in engine_problems(engine):
            err = doc.error(("engines", i, *problem.field), problem.message)
            if not problem.run_only:
                raise err
            warnings.append(str(err))
    return tuple(warnings)


@lru_cache(maxsize=8)
def _suite_adapter(model: type[SuiteSpec]) -> TypeAdapter[SuiteSpec]:
    # One adapter per suite model (the model changes only when the engine registry does).
    return TypeAdapter(model)


def _check_patterns(doc: MarkedDoc, spec: TaskSpec) -> None:
    if isinstance(spec, RegexTaskSpec):
        check_regex(doc, ("regex",), spec.regex)
        check_constraint_regex(doc, ("regex",), spec.regex)
    elif isinstance(spec, GrammarTaskSpec) and spec.match_regex is not None:
        check_regex(doc, ("match_regex",), spec.match_regex)
    elif isinstance(spec, ChoiceTaskSpec):
        check_choices(doc, spec)


def _load_rows(refs: Refs, spec: TaskSpec, seed: int) -> list[dict[str, Any]]:
    ds = spec.dataset
    # Resolve here first, so a missing or escaping file is reported at its YAML node.
    if ds.path is not None:
        refs.file(("dataset", "path"), ds.path)
    if isinstance(ds.data_files, str):
        refs.file(("dataset", "data_files"), ds.data_files)
    elif ds.data_files is not None:
        for i, f in enumerate(ds.data_files):
            refs.file(("dataset", "data_files", i), f)
    try:
        return load_rows(ds, refs.base_dir, random.Random(f"{seed}:{spec.name}"))
    except DatasetError as e:
        raise refs.doc.error(("dataset", *e.field), e.message) from None
