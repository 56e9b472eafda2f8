"""One local Ray instance per test module that asks for it (starting Ray takes ~15 s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """``ray.init(num_cpus=2)``, as on the 2-core CI machine; the run reuses it and leaves it up."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
