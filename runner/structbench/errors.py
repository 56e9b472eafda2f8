"""User-facing errors: one line, exit code 2, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A spec, config or input error that the user can fix.

    The CLI prints ``str(err)`` on one line and exits with code 2.
    """

    exit_code = 2


class SpecError(UserError):
    """An error located in a YAML (or referenced) file.

    Args:
        path: The file the error is in.
        line: 1-based line, or 0 when unknown.
        col: 1-based column, or 0 when unknown.
        field: Dotted field path inside the file (``scorers[1]``), may be empty.
        message: What is wrong.
    """

    def __init__(self, path: str, line: int, col: int, field: str, message: str) -> None:
        self.path, self.line, self.col, self.field, self.message = path, line, col, field, message
        where = f"{path}:{line}:{col}" if line else path
        text = f"{where}: {field}: {message}" if field else f"{where}: {message}"
        super().__init__(" ".join(text.split()))
