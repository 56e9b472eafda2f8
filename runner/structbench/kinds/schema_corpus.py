"""``kind: schema_corpus``: one item per JSON schema of a corpus, for coverage and cost.

Rows are schemas: files of a folder (``schema_dir``, tagged by its ``index.json``), of a
JSONSchemaBench-layout folder (``subsets_dir``: ``data/<subset>/*.json``, the subset
recorded), or a dataset column (local JSONL, or a Hugging Face id such as
``epfl-dlab/JSONSchemaBench`` with ``schema_field: json_schema``). :func:`load_corpus`
turns each into rows with fixed keys (:data:`ROW_KEYS`), checked under each schema's own
``$schema`` draft at load time: a schema that is valid but exotic passes, since whether
an engine supports it is what is measured.

Every item's meta carries ``schema_id``, ``features`` (comma-separated), ``repeat``,
``mode``, ``unique``, ``pair`` and ``subset``: the metrics in
:mod:`structbench.metrics.coverage` and :mod:`structbench.metrics.cost` read them back.
"""

from __future__ import annotations

import json
import random
from typing import Any

from structbench.errors import SpecError
from structbench.ir import NO_CONSTRAINT, Branch, Gen, JsonSchema, Turn, WorkItem
from structbench.kinds.common import item_id, prefix_messages, render_field, row_plan
from structbench.kinds.corpus_files import (
    ROW_KEYS,
    check_schema,
    dir_rows,
    make_row,
    schema_text,
    subset_rows,
    tags,
)
from structbench.spec.checks import Refs
from structbench.spec.loaded import LoadedTask
from structbench.spec.tasks import SchemaCorpusTaskSpec

__all__ = ["ROW_KEYS", "corpus_prompt", "expand", "load_corpus", "schema_text"]

_MAX_FIELDS = 8


# ---------------------------------------------------------------- loading


def load_corpus(refs: Refs, spec: SchemaCorpusTaskSpec, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The corpus rows of a task: from ``schema_dir``, else from the dataset ``rows``.

    Args:
        refs: Resolves files relative to the task file, with errors at its nodes.
        spec: The task spec.
        rows: The dataset rows the loader read (unused with ``schema_dir``).

    Returns:
        Rows with the keys of :data:`ROW_KEYS`, at most ``spec.limit`` of them.

    Raises:
        SpecError: On a missing folder, a malformed file, an invalid schema, or a
            duplicate schema id, located at the file and field that has it.
    """
    if spec.schema_dir is not None:
        out = dir_rows(refs, spec)
    elif spec.subsets_dir is not None:
        out = subset_rows(refs, spec)
    else:
        out = _dataset_rows(refs, spec, rows)
    if not out:
        raise refs.doc.error(("invalid_schemas",), "every schema failed meta-validation and was skipped")
    if spec.limit is not None:
        out = out[: spec.limit]
    seen: dict[str, int] = {}
    for i, row in enumerate(out):
        if row["schema_id"] in seen:
            msg = f"duplicate schema id '{row['schema_id']}' (rows {seen[row['schema_id']]} and {i})"
            raise refs.doc.error((_source_field(spec),), msg)
        seen[row["schema_id"]] = i
    return out


def _source_field(spec: SchemaCorpusTaskSpec) -> str:
    """The spec field that names where the rows came from (for errors about the rows)."""
    if spec.id_field:
        return spec.id_field
    return "subsets_dir" if spec.subsets_dir is not None else "schema_dir"


def _dataset_rows(refs: Refs, spec: SchemaCorpusTaskSpec, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shown = refs.doc.file
    keep = spec.invalid_schemas == "count"
    out = []
    for i, raw in enumerate(rows):
        sid = str(raw[spec.id_field]) if spec.id_field and raw.get(spec.id_field) is not None else f"row{i}"
        where = f"dataset row {i} ('{sid}'): {spec.schema_field}"
        if spec.schema_field not in raw:
            cols = ", ".join(sorted(map(str, raw))) or "none"
            raise refs.doc.error(
                ("schema_field",), f"row {i} has no column '{spec.schema_field}' (columns: {cols})"
            )
        try:
            schema = _parse_cell(raw[spec.schema_field], shown, where, keep)
        except SpecError:
            if spec.invalid_schemas == "skip":
                continue
            raise
        raw_tags = raw.get(spec.features_field)
        features = tags(raw_tags, shown, where) if raw_tags not in (None, "", []) else None
        prompt = raw.get(spec.prompt_field)
        subset = str(raw.get(spec.subset_field) or "") if spec.subset_field else ""
        text = prompt if isinstance(prompt, str) and prompt else None
        out.append(make_row(sid, schema, features, text, None, subset=subset))
    return out


def _parse_cell(value: Any, shown: str, where: str, keep_invalid: bool = False) -> Any:
    """A dataset cell's schema: an object, or its JSON text; meta-validated."""
    schema = value
    if isinstance(value, str):
        try:
            schema = json.loads(value)
        except json.JSONDecodeError as e:
            raise SpecError(shown, 0, 0, where, f"not JSON: {e.msg} at {e.lineno}:{e.colno}") from None
    check_schema(schema, shown, where, keep_invalid=keep_invalid)
    return schema


# ---------------------------------------------------------------- prompts


def corpus_prompt(schema: Any) -> str:
    """The team's prompt for a schema without one: what to write, and its fields.

    Short on purpose (prefill is the slow part on a CPU): the title or description,
    then up to eight top-level fields with a hint of their type.
    """
    obj = schema if isinstance(schema, dict) else {}
    what = str(obj.get("title") or "record").strip()
    lines = [f"Write one realistic {what} as JSON."]
    if obj.get("description"):
        lines.append(str(obj["description"]).strip())
    fields = [_field_hint(name, sub) for name, sub in _top_properties(obj)[:_MAX_FIELDS]]
    if fields:
        lines.append("Fields: " + ", ".join(fields) + ".")
    lines.append("Reply with the JSON only.")
    return "\n".join(lines)


def _top_properties(obj: dict[str, Any]) -> list[tuple[str, Any]]:
    node = obj
    ref = obj.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        node = (obj.get("$defs") or {}).get(ref.removeprefix("#/$defs/"), {})
    props = node.get("properties") if isinstance(node, dict) else None
    return list(props.items()) if isinstance(props, dict) else []


def _field_hint(name: str, sub: Any) -> str:
    if not isinstance(sub, dict):
        return name
    if "const" in sub:
        return f"{name} ({json.dumps(sub['const'])})"
    if isinstance(sub.get("enum"), list):
        return f"{name} (one of {', '.join(map(str, sub['enum'][:6]))})"
    hint = sub.get("format") or sub.get("type")
    if isinstance(hint, list):
        hint = " or ".join(map(str, hint))
    return f"{name} ({hint})" if isinstance(hint, str) else name


# ---------------------------------------------------------------- expansion


def expand(task: LoadedTask, rng: random.Random, num_requests: int | None) -> list[WorkItem]:
    """Items for every planned schema, ``repeats`` times: all first copies, then the second ...

    Copies go in rounds so a repeat reaches the engine after its first copy (when there
    are more schemas than requests in flight), which makes it a warm repeat.

    Args:
        task: A loaded ``schema_corpus`` task.
        rng: Seeds the ``$comment`` that makes each schema unique (``unique_schemas``).
        num_requests: Schemas to send (rows cycle when fewer); None = each once.
    """
    spec = task.spec
    if not isinstance(spec, SchemaCorpusTaskSpec):
        raise TypeError(f"task '{spec.name}' is not a schema_corpus task")
    plan = row_plan(len(task.rows), num_requests)
    items = []
    for k in range(spec.repeats):
        for i, cycle in plan:
            base = item_id(spec.name, i, cycle)
            iid = f"{base}/r{k}" if spec.repeats > 1 else base
            nonce = f"{rng.getrandbits(64):016x}" if spec.unique_schemas else None
            items.append(_item(task, spec, (i, k), iid, nonce))
    return items


def _item(
    task: LoadedTask, spec: SchemaCorpusTaskSpec, at: tuple[int, int], iid: str, nonce: str | None
) -> WorkItem:
    i, k = at
    row: dict[str, Any] = task.rows[i]
    schema = row["schema"]
    if nonce is not None and isinstance(schema, dict):
        # Last, so the properties keep their order; any engine treats $comment as a no-op.
        schema = {**schema, "$comment": f"structbench request {nonce}"}
    constraint = NO_CONSTRAINT
    if spec.mode == "constrained":
        constraint = JsonSchema(schema_text(schema))
    ref = None if spec.reference is None else render_field(task, "reference", spec.reference, i, row)
    gen = Gen("answer", constraint, spec.max_tokens, spec.temperature, reference=ref)
    meta = (
        ("row", str(i)),
        ("schema_id", str(row["schema_id"])),
        ("features", ",".join(row["features"])),
        ("repeat", str(k)),
        ("mode", spec.mode),
        ("unique", "1" if spec.unique_schemas else "0"),
        ("pair", spec.pair or ""),
        ("subset", str(row.get("subset") or "")),
    )
    turn = Turn(_prompt(task, spec, i, row), gen)
    return WorkItem(iid, spec.name, spec.kind, prefix_messages(task, i, row), (Branch((turn,)),), meta)


def _prompt(task: LoadedTask, spec: SchemaCorpusTaskSpec, i: int, row: dict[str, Any]) -> str:
    if row.get("prompt"):
        return str(row["prompt"])
    if spec.prompt:
        return render_field(task, "prompt", spec.prompt, i, row)
    return corpus_prompt(row["schema"])
