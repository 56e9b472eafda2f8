"""Token limits against the engine's context: refused before any load, in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from structbench.engines.base import EngineInfo
from structbench.errors import UserError
from structbench.ir import Branch, Gen, Turn, WorkItem
from structbench.limits import check_token_limits
from structbench.records import run_records
from structbench.run import RunOptions, run_suite
from structbench.runfolder import RunManifest
from structbench.spec.adhoc import EndpointFlags, RunFlags

TASK = """\
name: huge
kind: regex
regex: "[a-z]+"
prompt: "{{ q }}"
max_tokens: 100000
dataset:
  rows: [{q: one}, {q: two}]
"""


def _item(task: str, *limits: int) -> WorkItem:
    turns = tuple(Turn("u", Gen(f"g{i}", max_tokens=n)) for i, n in enumerate(limits))
    return WorkItem(f"{task}/0", task, "test", (), (Branch(turns),))


def test_limits_against_the_context() -> None:
    info = EngineInfo("vllm", "vllm", "m", context_length=4096)
    check_token_limits(info, [_item("a", 4095, 16)])  # room for a one-token prompt
    check_token_limits(EngineInfo("x", "openai", "m"), [_item("a", 10**8)])  # no context reported
    with pytest.raises(UserError) as err:
        check_token_limits(info, [_item("a", 16, 100000000), _item("b", 4096), _item("c", 8)])
    assert str(err.value) == (
        "engine 'vllm': task 'a' asks for max_tokens 100000000 (and 1 more task), but the server's context "
        "is 4096 tokens (max_model_len, shared by prompt and output): lower the task's max_tokens or raise "
        "the server's limit"
    )


def _refused(tmp_path: Path, flags: RunFlags) -> RunManifest:
    task = tmp_path / "huge.yaml"
    task.write_text(TASK)
    results = tmp_path / "results"
    with pytest.raises(UserError, match=r"task 'huge' asks for max_tokens 100000, but the server's context"):
        run_suite(RunOptions(task, results_root=results, progress=False, flags=flags))
    [run_dir] = (results / "huge").iterdir()
    assert list(run_records(run_dir)) == []  # refused before any request
    return RunManifest.read(run_dir)


@pytest.mark.embedded
def test_embedded_run_refuses_more_tokens_than_the_model_has_positions(tmp_path: Path) -> None:
    """SmolLM2 has 8192 positions: the run fails at once instead of generating for hours."""
    m = _refused(tmp_path, RunFlags())
    assert m.status == "failed" and m.error is not None and "8192 tokens" in m.error


@pytest.mark.vllm_cpu
@pytest.mark.timeout(1200)
def test_vllm_cpu_run_refuses_max_tokens_over_max_model_len(vllm_url: str, tmp_path: Path) -> None:
    """The session's vllm-cpu server runs with --max-model-len 2048 (tests/vllm_fixture.py)."""
    m = _refused(tmp_path, RunFlags(endpoint=EndpointFlags(engines=("vllm",), base_url=vllm_url)))
    assert m.status == "failed" and m.error is not None and "2048 tokens" in m.error
