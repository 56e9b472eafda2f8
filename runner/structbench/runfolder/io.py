"""JSON files of the run folder: atomic writes, and reads that fail as one-line user errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from structbench.errors import UserError

_M = TypeVar("_M", bound=BaseModel)


def write_model(path: Path, model: BaseModel) -> None:
    """Write ``model`` as indented JSON, atomically (temp file + rename).

    A crash never leaves half a file. Python-mode dumping keeps infinite rates as
    ``Infinity``, as version 1 files have them (json.loads reads them back).
    """
    data = model.model_dump(mode="python")
    # The version first, where a reader (and a reviewer of a diff) looks for it.
    data = {"schema_version": data.pop("schema_version"), **data} if "schema_version" in data else data
    text = json.dumps(data, indent=2, default=str) + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_object(path: Path, missing: str) -> dict[str, object]:
    """The JSON object in ``path``.

    Args:
        path: The file.
        missing: The message when the file does not exist.

    Raises:
        UserError: Missing, unreadable, not JSON, or not a JSON object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(missing) from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from e
    except ValueError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def validate(cls: type[_M], data: dict[str, object], path: Path) -> _M:
    """``cls.model_validate(data)``, with a validation error turned into a one-line user error."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top)"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise UserError(f"{path}: {where}: {first['msg']}{more}") from None


def schema_version(data: dict[str, object], path: Path, known: tuple[int, ...]) -> int:
    """The file's ``schema_version`` (1 when absent: early version 1 files lack it)."""
    v = data.get("schema_version", 1)
    if not isinstance(v, int) or isinstance(v, bool) or v not in known:
        raise UserError(
            f"{path}: schema_version {v!r} is not one this structbench reads "
            f"({', '.join(map(str, known))}); upgrade structbench"
        )
    return v
