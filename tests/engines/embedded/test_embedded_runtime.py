"""Loading the embedded model keeps stderr for the run's own lines."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.embedded

LOAD = """
from transformers.utils import logging as hf_logging
from structbench.engines.embedded.runtime import load_runtime
from structbench.spec.engines import EmbeddedEngineSpec
rt = load_runtime(EmbeddedEngineSpec())
rt.close()
print("bars restored:", hf_logging.is_progress_bar_enabled())
"""


def test_loading_the_model_draws_no_progress_bars_and_restores_them() -> None:
    pytest.importorskip("torch")
    out = subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "bars restored: True"
    assert "Loading weights" not in out.stderr and "it/s" not in out.stderr, out.stderr
