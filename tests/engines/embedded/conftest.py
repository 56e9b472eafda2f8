"""One real SmolLM2 embedded engine per test session (loading it takes seconds)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from structbench.engines.embedded.engine import EmbeddedEngine
from structbench.engines.embedded.runtime import EmbeddedRuntime
from structbench.engines.registry import EngineEnv
from structbench.spec.engines import EmbeddedEngineSpec


@pytest.fixture(scope="session")
def embedded_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedEngine]:
    """A started embedded engine on SmolLM2-135M (float32, micro-batch 8)."""
    pytest.importorskip("torch")
    pytest.importorskip("outlines")
    spec = EmbeddedEngineSpec(name="embedded-test", max_batch=8, batch_window_ms=50.0)
    engine = EmbeddedEngine(spec, EngineEnv(Path(tmp_path_factory.mktemp("embedded")), seed=1))
    asyncio.run(engine.start())
    yield engine
    asyncio.run(engine.close())


@pytest.fixture(scope="session")
def embedded_runtime(embedded_engine: EmbeddedEngine) -> EmbeddedRuntime:
    """The engine's runtime, for runtime-level tests."""
    assert embedded_engine.runtime is not None
    return embedded_engine.runtime
