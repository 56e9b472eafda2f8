"""Resolving the file references of suites and tasks, and keeping them inside the project.

A suite may come from someone else. Without a fence, ``dataset: {path: ../../../etc/...}``
would read any file on the machine into prompts that go to a remote server. So every
reference must stay inside the project root: the nearest folder, from the suite upward,
that holds ``.git`` or ``pyproject.toml`` (or the suite's own folder when none does).
``STRUCTBENCH_ALLOW_OUTSIDE_PATHS=1`` lifts the fence for users who mean it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ALLOW_OUTSIDE_ENV", "ROOT_MARKERS", "PathEscape", "display_path", "find_root", "resolve_ref"]

ALLOW_OUTSIDE_ENV = "STRUCTBENCH_ALLOW_OUTSIDE_PATHS"
ROOT_MARKERS = (".git", "pyproject.toml")


class PathEscape(ValueError):
    """A reference that leaves the project root."""


def find_root(start: Path) -> Path:
    """Nearest folder at or above ``start`` holding a root marker, else ``start`` itself."""
    start = Path(os.path.abspath(start))
    for folder in (start, *start.parents):
        if any((folder / m).exists() for m in ROOT_MARKERS):
            return folder
    return start


def resolve_ref(ref: str, base_dir: Path, root: Path) -> Path:
    """Resolve ``ref`` relative to ``base_dir`` (the folder of the file naming it).

    The check is lexical (``..`` is collapsed, symlinks are not followed): it fences
    what the spec says, not how the disk is laid out.

    Raises:
        PathEscape: When the result lies outside ``root`` and the environment does not
            allow it.
    """
    full = Path(os.path.normpath(os.path.join(os.path.abspath(base_dir), os.path.expanduser(ref))))
    if os.environ.get(ALLOW_OUTSIDE_ENV) == "1":
        return full
    root = Path(os.path.abspath(root))
    if full != root and root not in full.parents:
        raise PathEscape(
            f"path '{ref}' leaves the project root {display_path(root)} "
            f"(set {ALLOW_OUTSIDE_ENV}=1 to allow paths outside it)"
        )
    return full


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    full = os.path.abspath(path)
    rel = os.path.relpath(full, os.getcwd())
    return full if rel == ".." or rel.startswith(".." + os.sep) else rel
