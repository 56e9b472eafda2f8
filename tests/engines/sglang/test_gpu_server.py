"""The real-server proof (gpu_proof.py) under pytest: needs a GPU and SGLang.

Set ``STRUCTBENCH_SGLANG_MODEL`` (a model folder) and either ``STRUCTBENCH_SGLANG_URL`` (a
running server) or let the test launch one; ``STRUCTBENCH_SGLANG_ARGS`` adds server flags.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.sglang, pytest.mark.timeout(1200)]

MODEL = os.environ.get("STRUCTBENCH_SGLANG_MODEL")


@pytest.mark.skipif(not MODEL, reason="set STRUCTBENCH_SGLANG_MODEL to run against a real SGLang server")
def test_real_sglang_server(tmp_path: Path) -> None:
    pytest.importorskip("sglang")
    from gpu_proof import prove

    assert MODEL is not None
    args = shlex.split(os.environ.get("STRUCTBENCH_SGLANG_ARGS", ""))
    summary = asyncio.run(prove(MODEL, os.environ.get("STRUCTBENCH_SGLANG_URL"), args, tmp_path))
    assert summary["problems"] == []
