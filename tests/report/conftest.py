"""Fixtures of the report tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from runfolder import write_run


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_run(name=..., speed=..., status=..., version=...)`` writes a run folder."""

    def make(name: str = "run1", speed: float = 1.0, status: str = "complete", version: int = 2) -> Path:
        return write_run(tmp_path, name, speed, status, version)

    return make
