"""Checks a task spec needs beyond its types: files, schemas, regexes, grammars, templates.

Each check raises a :class:`SpecError` at the YAML node that caused the problem, so the
user fixes ``tasks/x.yaml:12:3`` instead of reading a traceback from an engine an hour
into a run.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from structbench.errors import SpecError
from structbench.ir import GrammarSyntax
from structbench.spec.marks import DataPath, MarkedDoc, format_field, parse_yaml
from structbench.spec.paths import PathEscape, display_path, resolve_ref
from structbench.spec.tasks import ChatTaskSpec, ChoiceTaskSpec, GrammarTaskSpec, JsonTaskSpec, TaskSpec
from structbench.templates import TemplateError, render

__all__ = [
    "FALLBACK_SCORERS",
    "Refs",
    "check_choices",
    "check_constraint_regex",
    "check_name",
    "check_regex",
    "check_rows",
    "check_scorers",
    "check_templates",
    "load_grammars",
    "load_schema",
    "scorer_names",
]

#: Used while ``structbench.scoring.registry`` is absent (a partial install or checkout).
FALLBACK_SCORERS = frozenset(
    {
        "json_parse",
        "schema_valid",
        "regex_match",
        "choice_valid",
        "exact_match",
        "field_accuracy",
        "final_number",
        "judge",
    }
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_GRAMMAR_START: dict[GrammarSyntax, tuple[str, re.Pattern[str]]] = {
    "lark": ("start", re.compile(r"^\s*\??start\s*:", re.MULTILINE)),
    "gbnf": ("root", re.compile(r"^\s*root\s*::=", re.MULTILINE)),
}


@dataclass(frozen=True, slots=True)
class Refs:
    """Resolves the files a YAML document names, with errors at the naming node."""

    doc: MarkedDoc
    base_dir: Path
    root: Path

    def file(self, field: DataPath, ref: str) -> Path:
        """The existing file ``ref`` names, relative to the document's folder."""
        try:
            path = resolve_ref(ref, self.base_dir, self.root)
        except PathEscape as e:
            raise self.doc.error(field, str(e)) from None
        if not path.exists():
            raise self.doc.error(field, f"file not found: {display_path(path)}")
        if not path.is_file():
            raise self.doc.error(field, f"not a file: {display_path(path)}")
        return path

    def text(self, field: DataPath, ref: str) -> tuple[Path, str]:
        """The path and UTF-8 text of the file ``ref`` names."""
        path = self.file(field, ref)
        try:
            return path, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise self.doc.error(field, f"not UTF-8 text: {display_path(path)}") from None
        except OSError as e:
            raise self.doc.error(field, f"cannot read {display_path(path)}: {e.strerror}") from None


def scorer_names() -> frozenset[str]:
    """Names of the registered scorers."""
    try:
        from structbench.scoring.registry import SCORER_NAMES
    except ModuleNotFoundError as e:
        if e.name not in ("structbench.scoring.registry", "structbench.scoring"):
            raise
        return FALLBACK_SCORERS
    return SCORER_NAMES


def check_name(doc: MarkedDoc, field: DataPath, name: str) -> None:
    """Names become folder names and item ids: keep them to a safe alphabet."""
    if not _NAME.fullmatch(name):
        raise doc.error(field, f"invalid name '{name}': use up to 64 letters, digits, '.', '_' or '-'")


def check_scorers(doc: MarkedDoc, scorers: tuple[str, ...]) -> None:
    """Every scorer name must be registered."""
    known = scorer_names()
    for i, name in enumerate(scorers):
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(known))})"
            raise doc.error(("scorers", i), f"unknown scorer '{name}'{hint}")


def check_regex(doc: MarkedDoc, field: DataPath, pattern: str) -> None:
    """The pattern must compile (Python syntax, the common subset engines accept)."""
    try:
        re.compile(pattern)
    except re.error as e:
        where = f" at position {e.pos}" if e.pos is not None else ""
        raise doc.error(field, f"invalid regex: {e.msg}{where}") from None


#: What Python's regex parser calls the constructs engines cannot constrain with, and their names.
_UNSUPPORTED_RE: dict[str, str] = {
    "GROUPREF": "a backreference",
    "GROUPREF_EXISTS": "a conditional group (?(...)...)",
}


def check_constraint_regex(doc: MarkedDoc, field: DataPath, pattern: str) -> None:
    """A regex decoded under must avoid what the engines' regex grammars lack.

    xgrammar (vLLM, SGLang) and outlines (embedded) compile a regex into an automaton, which
    has no lookaround and no backreference: the engine rejects such a pattern when the first
    request is sent, so we reject it here. Scoring-only regexes (``match_regex``) run in
    Python's ``re`` and may use them.
    """
    import re._parser as sre  # the parser behind re.compile; its tree names each construct

    found = _first_unsupported(sre.parse(pattern), sre)
    if found is not None:
        raise doc.error(
            field,
            f"{found} is not supported in a constraint regex (engines compile regexes to automata, "
            "which have no lookaround or backreferences)",
        )


def _first_unsupported(tree: Any, sre: Any) -> str | None:
    for op, arg in tree:
        name = str(op)
        if name in ("ASSERT", "ASSERT_NOT"):
            ahead = arg[0] >= 0  # the direction: 1 looks ahead, -1 behind
            return "a lookahead (?=...) or (?!...)" if ahead else "a lookbehind (?<=...) or (?<!...)"
        if name in _UNSUPPORTED_RE:
            return _UNSUPPORTED_RE[name]
        for child in arg if isinstance(arg, tuple | list) else (arg,):
            subs = child if isinstance(child, list) else [child]
            for sub in subs:
                if isinstance(sub, sre.SubPattern) and (inner := _first_unsupported(sub, sre)) is not None:
                    return inner
    return None


def check_choices(doc: MarkedDoc, spec: ChoiceTaskSpec) -> None:
    """Choices must be distinct, non-empty, and free of edge whitespace (scoring strips)."""
    seen: set[str] = set()
    for i, choice in enumerate(spec.choices):
        if not choice.strip():
            raise doc.error(("choices", i), "empty choice")
        if choice != choice.strip():
            raise doc.error(("choices", i), f"choice '{choice}' has leading or trailing whitespace")
        if choice in seen:
            raise doc.error(("choices", i), f"duplicate choice '{choice}'")
        seen.add(choice)


def load_schema(refs: Refs, spec: JsonTaskSpec) -> dict[str, Any]:
    """The task's JSON schema (inline, or from a .json/.yaml file), checked under its ``$schema`` draft."""
    # Imported here: jsonschema's format checkers take seconds to import on a busy machine.
    from jsonschema.exceptions import SchemaError

    from structbench.schema_drafts import check_schema, dangling_refs, draft_of

    if isinstance(spec.json_schema, str):
        path, text = refs.text(("json_schema",), spec.json_schema)
        shown = display_path(path)
        schema, marks = _parse_schema_file(path, text, shown)
        prefix: DataPath = ()
    else:
        schema, marks, shown, prefix = spec.json_schema, refs.doc, refs.doc.file, ("json_schema",)
    if not isinstance(schema, dict):
        raise SpecError(
            shown, 1, 1, "json_schema", f"a schema must be a JSON object, got {type(schema).__name__}"
        )
    try:
        check_schema(schema)
    except SchemaError as e:
        inner = tuple(e.absolute_path)
        at = marks.pos((*prefix, *inner)) if marks else None
        field = format_field(("json_schema", *inner))
        line, col = (at.line, at.col) if at else (0, 0)
        msg = f"invalid JSON schema: {e.message} (under {draft_of(schema)})"
        raise SpecError(shown, line, col, field, msg) from None
    # A ref to nowhere passes the meta-schema; engines then fail to compile it at the first request.
    for inner, ref in dangling_refs(schema)[:1]:
        at = marks.pos((*prefix, *inner)) if marks else None
        line, col = (at.line, at.col) if at else (0, 0)
        msg = f"$ref '{ref}' resolves nowhere in this schema (remote refs are not fetched)"
        raise SpecError(shown, line, col, format_field(("json_schema", *inner)), msg)
    return schema


def _parse_schema_file(path: Path, text: str, shown: str) -> tuple[Any, MarkedDoc | None]:
    if path.suffix.lower() in (".yaml", ".yml"):
        doc = parse_yaml(text, shown)
        return doc.data, doc
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(shown, e.lineno, e.colno, "", f"invalid JSON: {e.msg}") from None
    try:  # positions are a nicety: YAML reads almost every JSON file
        return schema, parse_yaml(text, shown)
    except SpecError:
        return schema, None


def load_grammars(refs: Refs, spec: GrammarTaskSpec) -> tuple[tuple[GrammarSyntax, str], ...]:
    """The grammar text in each syntax the task gives (at least one)."""
    files: dict[GrammarSyntax, str | None] = {"lark": spec.grammar.lark, "gbnf": spec.grammar.gbnf}
    if not any(files.values()):
        raise refs.doc.error(("grammar",), "give at least one of lark or gbnf")
    out: list[tuple[GrammarSyntax, str]] = []
    for syntax, ref in files.items():
        if ref is None:
            continue
        path, text = refs.text(("grammar", syntax), ref)
        rule, start = _GRAMMAR_START[syntax]
        if not start.search(text):
            raise refs.doc.error(("grammar", syntax), f"{display_path(path)} has no '{rule}' rule")
        out.append((syntax, text))
    return tuple(out)


def check_rows(doc: MarkedDoc, spec: TaskSpec, row: dict[str, Any]) -> None:
    """Kind-specific columns the first row must have."""
    if isinstance(spec, ChatTaskSpec):
        turns = row.get(spec.turns_field)
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            cols = ", ".join(sorted(row)) or "none"
            raise doc.error(
                ("turns_field",),
                f"row 0 needs '{spec.turns_field}': a non-empty list of strings (columns: {cols})",
            )


def check_templates(doc: MarkedDoc, spec: TaskSpec, row: dict[str, Any]) -> None:
    """Every template renders on ``row``; a json task's reference renders to JSON."""
    fields: list[tuple[DataPath, str | None]] = [(("system",), spec.system), (("prompt",), spec.prompt)]
    for i, shot in enumerate(spec.few_shot):
        fields += [(("few_shot", i, "user"), shot.user), (("few_shot", i, "assistant"), shot.assistant)]
    fields.append((("reference",), spec.reference))
    for field, template in fields:
        if template is None:
            continue
        try:
            text = render(template, row)
        except TemplateError as e:
            raise doc.error(field, f"template fails on row 0: {e}") from None
        if field == ("reference",) and isinstance(spec, JsonTaskSpec):
            _check_json_text(doc, text)


def _check_json_text(doc: MarkedDoc, text: str) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise doc.error(
            ("reference",),
            f"a json task's reference must render to JSON, row 0 gives {shown!r} "
            "(try {{ row.x | tojson }})",
        ) from None
