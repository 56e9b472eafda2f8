"""Fixtures of the report tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from runfolder import write_run


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_run(name=..., speed=..., status=...)`` writes a run folder."""

    def make(name: str = "run1", speed: float = 1.0, status: str = "complete") -> Path:
        return write_run(tmp_path, name, speed, status)

    return make
