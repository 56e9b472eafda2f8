"""Flags -> suite: ad-hoc suites, a task file run as a suite, and flags overriding a suite."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from structbench.errors import UserError
from structbench.load.arrivals import load_points
from structbench.spec.adhoc import ADHOC_SUITE_FILE, EndpointFlags, LoadFlags, RunFlags, suite_for_run
from structbench.spec.engines import EmbeddedEngineSpec, OpenAIEngineSpec, SglangEngineSpec, VllmEngineSpec
from structbench.spec.loader import load_suite

ROOT = Path(__file__).resolve().parents[2]
INVOICE = ROOT / "tasks" / "json" / "invoice.yaml"
CANARY = ROOT / "tasks" / "canary" / "code.yaml"
URL = "http://127.0.0.1:8000"


def _flags(engine: str | None = "vllm", **endpoint: object) -> EndpointFlags:
    return EndpointFlags(engines=(engine,) if engine else (), **endpoint)  # type: ignore[arg-type]


def test_adhoc_vllm_sweep_is_the_suite_model() -> None:
    flags = RunFlags(
        endpoint=_flags(base_url=URL + "/", model="M"),
        tasks=(INVOICE,),
        load=LoadFlags(concurrency=(1, 8, 64), warmup=0),
        seed=7,
    )
    pick = suite_for_run(None, flags)
    spec = pick.suite.spec
    (engine,) = spec.engines
    assert isinstance(engine, VllmEngineSpec)
    assert (engine.url, engine.model, engine.launch) == (URL, "M", None)
    assert spec.name == "invoice" and spec.seed == 7
    assert [p.label for p in load_points(spec.load)] == ["c1", "c8", "c64"]
    assert spec.load.warmup == 0
    assert [t.spec.name for t in pick.suite.tasks] == ["invoice"]
    assert pick.suite.path.name == ADHOC_SUITE_FILE


@pytest.mark.parametrize(
    ("kind", "cls"), [("sglang", SglangEngineSpec), ("openai", OpenAIEngineSpec), ("vllm", VllmEngineSpec)]
)
def test_each_server_engine_attaches_by_base_url(kind: str, cls: type) -> None:
    pick = suite_for_run(None, RunFlags(endpoint=_flags(kind, base_url=URL), tasks=(INVOICE,)))
    (engine,) = pick.suite.spec.engines
    assert isinstance(engine, cls) and engine.attach_url == URL


def test_launch_builds_a_launch_spec() -> None:
    ep = _flags(
        launch=True,
        model="/ckpt",
        server_python="/venv/bin/python",
        server_args=("--dtype", "float32"),
        server_env=(("VLLM_CPU_KVCACHE_SPACE", "1"),),
    )
    (engine,) = suite_for_run(None, RunFlags(endpoint=ep, tasks=(INVOICE,))).suite.spec.engines
    assert isinstance(engine, VllmEngineSpec) and engine.url is None and engine.launch is not None
    assert engine.launch.model == "/ckpt" and engine.launch.python == "/venv/bin/python"
    assert engine.launch.args == ("--dtype", "float32")
    assert engine.launch.env == {"VLLM_CPU_KVCACHE_SPACE": "1"}


def test_rate_goodput_and_burstiness() -> None:
    load = LoadFlags(
        request_rate=(1.0, math.inf), max_concurrency=4, burstiness=0.5, goodput=(("ttft", 500.0),)
    )
    spec = suite_for_run(
        None, RunFlags(endpoint=_flags(base_url=URL), tasks=(INVOICE,), load=load)
    ).suite.spec
    assert spec.load.mode == "rate" and spec.load.rate == (1.0, math.inf)
    assert (spec.load.arrivals, spec.load.burstiness, spec.load.max_concurrency) == ("gamma", 0.5, 4)
    assert spec.slo.ttft_ms == 500.0 and spec.slo.tpot_ms is None


def test_no_engine_flags_means_the_default_engine_and_two_tasks_an_adhoc_name() -> None:
    spec = suite_for_run(None, RunFlags(tasks=(INVOICE, CANARY))).suite.spec
    assert [type(e) for e in spec.engines] == [EmbeddedEngineSpec]
    assert spec.name == "adhoc"


def test_a_task_file_given_as_the_suite_runs_as_a_one_task_suite() -> None:
    pick = suite_for_run(INVOICE, RunFlags())
    assert [t.spec.name for t in pick.suite.tasks] == ["invoice"]
    assert pick.suite.spec.name == "invoice"


def test_a_suite_without_overrides_loads_as_validate_does() -> None:
    path = ROOT / "suites" / "json.yaml"
    assert suite_for_run(path, RunFlags()).suite == load_suite(path)


def _two_engine_suite(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    suite = {
        "name": "two",
        "tasks": [str(INVOICE)],
        "engines": [{"kind": "embedded"}, {"kind": "vllm", "name": "gpu", "launch": {"model": "/m"}}],
        "load": {"concurrency": [2], "warmup": 3},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps(suite))
    return path


def test_flags_override_a_suite_engine_chosen_by_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRUCTBENCH_ALLOW_OUTSIDE_PATHS", "1")
    path = _two_engine_suite(tmp_path)
    flags = RunFlags(endpoint=_flags("vllm", base_url=URL), load=LoadFlags(concurrency=(1, 4)))
    pick = suite_for_run(path, flags)
    assert pick.engines == ("gpu",)
    gpu = pick.suite.spec.engines[1]
    # The url replaces the launch: both together would leave one silently unused.
    assert isinstance(gpu, VllmEngineSpec) and gpu.url == URL and gpu.launch is None
    assert pick.suite.spec.load.concurrency == (1, 4)
    assert pick.suite.spec.load.warmup == 3  # fields no flag names stay the suite's
    assert pick.suite.path == path


def test_engine_flags_on_a_two_engine_suite_need_a_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRUCTBENCH_ALLOW_OUTSIDE_PATHS", "1")
    with pytest.raises(UserError, match="pick one with --engine"):
        suite_for_run(_two_engine_suite(tmp_path), RunFlags(endpoint=_flags(None, base_url=URL)))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            RunFlags(endpoint=_flags(base_url="localhost:8000"), tasks=(INVOICE,)),
            "--base-url: 'localhost:8000'",
        ),
        (
            RunFlags(endpoint=_flags("nosuch", base_url=URL), tasks=(INVOICE,)),
            "--engine: unknown engine kind",
        ),
        (RunFlags(endpoint=_flags(None, base_url=URL), tasks=(INVOICE,)), "--engine: give the engine kind"),
        (RunFlags(endpoint=_flags("embedded", base_url=URL), tasks=(INVOICE,)), "--base-url: the embedded"),
        (
            RunFlags(endpoint=_flags("sglang", model="M", base_url=URL), tasks=(INVOICE,)),
            "--model: the sglang",
        ),
        (
            RunFlags(endpoint=_flags("openai", launch=True, model="M"), tasks=(INVOICE,)),
            "--launch: the openai",
        ),
        (RunFlags(endpoint=_flags(launch=True), tasks=(INVOICE,)), "--launch: give --model"),
        (RunFlags(endpoint=_flags(server_python="p", base_url=URL), tasks=(INVOICE,)), "only with --launch"),
        (RunFlags(endpoint=_flags("openai"), tasks=(INVOICE,)), "--base-url: field required"),
        (RunFlags(tasks=(INVOICE,), load=LoadFlags(concurrency=(1,), request_rate=(1.0,))), "give one"),
        (RunFlags(tasks=(INVOICE, INVOICE)), "--task: two tasks are named 'invoice'"),
        (RunFlags(), "give a SUITE or TASK file"),
        (RunFlags(tasks=(ROOT / "suites" / "json.yaml",)), "is a suite, not a task"),
        (RunFlags(endpoint=_flags(base_url=URL, api_key_env="sk-abc123"), tasks=(INVOICE,)), "--api-key-env"),
    ],
)
def test_bad_flags_are_one_line_errors_naming_the_flag(flags: RunFlags, message: str) -> None:
    with pytest.raises(UserError) as e:
        suite_for_run(None, flags)
    assert message.lower() in str(e.value).lower()
    assert "\n" not in str(e.value)
