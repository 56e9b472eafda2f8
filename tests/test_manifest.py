"""The manifest's commit facts: git, else $STRUCTBENCH_GIT_SHA, else "unknown"; and the dirty flag."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from structbench.manifest import GIT_SHA_ENV, git_dirty, git_sha, hardware


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_outside_git_the_env_var_names_the_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GIT_SHA_ENV, raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # never find an enclosing repo
    assert git_sha(tmp_path) == "unknown" and git_dirty(tmp_path) is None
    monkeypatch.setenv(GIT_SHA_ENV, "0123abc")
    assert git_sha(tmp_path) == "0123abc"


def test_in_a_checkout_git_wins_and_dirt_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GIT_SHA_ENV, "ignored")
    _git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("x")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    assert git_sha(tmp_path) == _git(tmp_path, "rev-parse", "HEAD") and git_dirty(tmp_path) is False
    (tmp_path / "f").write_text("y")
    assert git_dirty(tmp_path) is True


def test_a_checkout_git_cannot_read_defers_to_the_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GPU machine's copy: HEAD names the last landed commit, its objects are gone, the tree is
    newer. The manifests of the 2026-12-03 H200 runs named that commit, not the one that ran."""
    _git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("x")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    head = _git(tmp_path, "rev-parse", "HEAD")
    for obj in (tmp_path / ".git" / "objects").glob("??"):
        shutil.rmtree(obj)
    assert git_dirty(tmp_path) is None  # git status: "bad object HEAD"
    monkeypatch.setenv(GIT_SHA_ENV, "0123abc")
    assert git_sha(tmp_path) == "0123abc"
    monkeypatch.delenv(GIT_SHA_ENV)
    assert git_sha(tmp_path) == head  # with nothing better, still the HEAD it names


def test_hardware_is_typed() -> None:
    hw = hardware()
    assert hw.cpu_count is not None and hw.cpu_count > 0 and hw.platform
