"""Engine specs checked against the machine: the url's shape, launch.python, api_key_env.

``validate`` reports them at ``file:line:col`` (an unset key variable as a warning), and
``run`` refuses every one of them before it creates a results folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import structbench
from structbench.errors import SpecError, UserError
from structbench.run import RunOptions, run_suite
from structbench.spec.engine_checks import engine_problems, url_problem
from structbench.spec.engines import LaunchSpec, OpenAIEngineSpec, SglangEngineSpec, VllmEngineSpec
from structbench.spec.loader import load_suite

TASK = 'name: t\nkind: regex\nregex: "[a-z]+"\nprompt: hi\ndataset:\n  rows: [{q: 1}]\n'


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:8000", None),
        ("https://gpu-box", None),
        ("localhost:8000", "no http:// or https:// scheme: write it as http://host:port"),
        ("user:secret@host:8000", "no http:// or https:// scheme: write it as http://host:port"),
        ("ftp://host:21", "the scheme must be http or https, got 'ftp'"),
        ("http://host:99999", "bad port: write it as http://host:port"),
        ("http://:8000", "no host: write it as http://host:port"),
    ],
)
def test_url_problem(url: str, problem: str | None) -> None:
    assert url_problem(url) == problem
    if problem is not None:
        assert "secret" not in problem and "localhost" not in problem  # never echoes the url


def test_engine_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SB_TEST_KEY", raising=False)
    (tmp_path / "notexec").write_text("")
    vllm = VllmEngineSpec(launch=LaunchSpec(model="m", python="venv/bin/python"))
    [p] = engine_problems(vllm)
    assert p.field == ("launch", "python") and not p.run_only
    assert p.message.startswith("cannot run 'venv/bin/python': no such file (relative to the working dir")
    [p] = engine_problems(SglangEngineSpec(launch=LaunchSpec(model="m", python=str(tmp_path / "notexec"))))
    assert p.message.endswith("not an executable file")
    [p] = engine_problems(VllmEngineSpec(launch=LaunchSpec(model="m", python="no-such-python-3.99")))
    assert p.message == "cannot run 'no-such-python-3.99': not found on PATH"
    assert engine_problems(VllmEngineSpec(launch=LaunchSpec(model="m", python=sys.executable))) == []
    keyed = OpenAIEngineSpec(url="localhost:8000", api_key_env="SB_TEST_KEY")
    found = [(p.field, p.run_only) for p in engine_problems(keyed)]
    assert found == [(("url",), False), (("api_key_env",), True)]
    monkeypatch.setenv("SB_TEST_KEY", "k")
    assert [p.field for p in engine_problems(keyed)] == [("url",)]


def _env_here() -> dict[str, str]:
    """The environment with this checkout's package first (the test leaves the repository)."""
    return {**os.environ, "PYTHONPATH": str(Path(structbench.__file__).parents[1])}


def _project(root: Path, engine: str) -> Path:
    (root / "pyproject.toml").write_text("")
    (root / "t.yaml").write_text(TASK)
    suite = root / "s.yaml"
    suite.write_text(f"name: s\ntasks: [t.yaml]\nengines:\n  - {engine}\n")
    return suite


@pytest.mark.parametrize(
    ("engine", "error"),
    [
        ("{kind: vllm, url: 'localhost:8000'}", "s.yaml:4:23: engines[0].url: no http:// or https:// scheme"),
        (
            "{kind: sglang, launch: {model: m, python: /nonexistent/bin/python}}",
            "s.yaml:4:47: engines[0].launch.python: cannot run '/nonexistent/bin/python': no such file",
        ),
    ],
)
def test_validate_refuses_what_run_refuses(
    engine: str, error: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = _project(tmp_path, engine)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match="^" + re.escape(error)):
        load_suite(suite)
    with pytest.raises(UserError):
        run_suite(RunOptions(suite, results_root=tmp_path / "results", progress=False))
    assert not (tmp_path / "results").exists()


def test_unset_key_env_warns_at_validate_and_fails_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = _project(tmp_path, "{kind: openai, url: 'http://127.0.0.1:9', api_key_env: SB_TEST_UNSET}")
    monkeypatch.delenv("SB_TEST_UNSET", raising=False)
    out = subprocess.run(
        [sys.executable, "-m", "structbench", "validate", "s.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env_here(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines() == [
        "warning: s.yaml:4:60: engines[0].api_key_env: environment variable SB_TEST_UNSET is not set "
        "(the API key is read from it when the run starts)"
    ]
    assert out.stdout.startswith("ok: suite 's'")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"^engine 'openai': api_key_env: environment variable SB_TEST_UNSET"):
        run_suite(RunOptions(suite, results_root=tmp_path / "results", progress=False))
    assert not (tmp_path / "results").exists()
