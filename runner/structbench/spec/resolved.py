"""The fully resolved spec of a suite, as JSON, for the run manifest.

The manifest is shared with results, so nothing secret may reach it. API keys are never
read into a spec (only the *name* of their environment variable is), but a launch
``env``, server ``args`` or a URL can still carry one: those values are redacted here.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from structbench.spec.paths import find_root

if TYPE_CHECKING:
    from pathlib import Path

    from structbench.spec.loaded import LoadedSuite, LoadedTask

__all__ = ["REDACTED", "is_secret_name", "redact_args", "resolved_dict"]

REDACTED = "<redacted>"
# Names of things that hold secrets: HF_TOKEN, OPENAI_API_KEY, --api-key, --hf-token, but
# not --max-num-batched-tokens or --tokenizer.
_SECRET = re.compile(r"api[-_]?key|(^|[-_])(token|auth|key)$|secret|passw|credential", re.IGNORECASE)


def resolved_dict(suite: LoadedSuite) -> dict[str, Any]:
    """A JSON-able dict of the resolved suite: specs, schemas, grammars, row counts, paths.

    Paths are relative to the project root, so manifests from different machines
    compare. Rows are summarised by count and SHA-256 (a changed dataset shows up
    without copying the data into every manifest).
    """
    root = find_root(suite.path.parent)
    return {
        "path": _rel(suite.path, root),
        "suite": _scrub(_jsonable(suite.spec.model_dump())),
        "tasks": [_task(t, root) for t in suite.tasks],
    }


def _task(task: LoadedTask, root: Path) -> dict[str, Any]:
    prefix = task.prefix_text
    return {
        "name": task.spec.name,
        "kind": task.spec.kind,
        "path": _rel(task.path, root),
        "spec": _jsonable(task.spec.model_dump()),
        "rows": len(task.rows),
        "rows_sha256": _sha256(json.dumps(task.rows, sort_keys=True, ensure_ascii=False, default=str)),
        "schema": task.schema,
        "grammars": dict(task.grammars),
        "prefix": None if prefix is None else {"chars": len(prefix), "sha256": _sha256(prefix)},
    }


def _rel(path: Path, root: Path) -> str:
    full = path.absolute()
    return str(full.relative_to(root)) if full.is_relative_to(root) else str(full)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _jsonable(value: Any) -> Any:
    """Tuples to lists, and non-finite floats to strings (JSON has no ``Infinity``)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _scrub(value: Any, key: str = "") -> Any:
    """Redact values stored under secret-looking names, in args, and in URLs."""
    if isinstance(value, dict):
        return {k: _scrub_entry(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return _scrub_args(value) if key == "args" else [_scrub(v) for v in value]
    if isinstance(value, str) and key == "url":
        return _scrub_url(value)
    return value


def _scrub_entry(key: str, value: Any) -> Any:
    # ``api_key_env`` holds a variable *name*, which is exactly what should be recorded.
    if isinstance(value, str) and _SECRET.search(key) and not key.endswith("_env"):
        return REDACTED
    return _scrub(value, key)


def is_secret_name(name: str) -> bool:
    """True for a variable or flag name that holds a secret (``HF_TOKEN``, ``--api-key``).

    ``*_env`` names hold the *name* of a variable, which is fine to record.
    """
    return bool(_SECRET.search(name.lstrip("-"))) and not name.endswith("_env")


def redact_args(args: list[Any]) -> list[Any]:
    """A command line with the values of secret-looking flags replaced by :data:`REDACTED`."""
    return _scrub_args(args)


def _scrub_args(args: list[Any]) -> list[Any]:
    out: list[Any] = []
    redact_next = False
    for arg in args:
        text = str(arg)
        if redact_next:
            out.append(REDACTED)
            redact_next = False
        elif text.startswith("-") and _SECRET.search((flag := text.partition("=")[0]).lstrip("-")):
            eq = "=" in text
            out.append(f"{flag}={REDACTED}" if eq else text)
            redact_next = not eq
        else:
            out.append(arg)
    return out


def _scrub_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    netloc = parts.netloc
    if parts.password is not None or parts.username is not None:
        netloc = f"{REDACTED}@{parts.hostname or ''}" + (f":{port}" if port else "")
    query = [
        (k, REDACTED if _SECRET.search(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="<>"), parts.fragment))
