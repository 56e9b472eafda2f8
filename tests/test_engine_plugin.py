"""A new engine kind is one spec class, one engine class and one ``register_engine`` call.

Everything here lives in this module: no other module learns about ``fake``, yet the
suite validates, ``compile --engine fake`` works and a run writes records and a report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from click.testing import CliRunner

from structbench.cli import main
from structbench.engines.base import Call, CallMeasure, Capabilities, Clock, EngineInfo, Plan
from structbench.engines.launch import free_port
from structbench.engines.registry import EngineEnv, register_engine, unregister_engine
from structbench.ir import Gen
from structbench.spec.engines import EngineSpec

CANNED_JSON = '{"a": 1}'
CANNED_TEXT = "ok"


class FakeEngineSpec(EngineSpec):
    """An engine that answers instantly with canned text."""

    kind: Literal["fake"] = "fake"
    name: str = "fake"
    reply: str = CANNED_TEXT
    """Text for gens without a JSON schema."""
    server: str | None = None
    """A server to check before the run (the fake never talks to it)."""

    @property
    def attach_url(self) -> str | None:
        """The run's preflight asks the spec, not its kind."""
        return self.server


class FakeEngine:
    """Implements the Engine protocol of ``engines/base.py`` with no model and no server."""

    def __init__(self, spec: FakeEngineSpec, env: EngineEnv) -> None:
        self.spec = spec
        self.name = spec.name
        self.capabilities = Capabilities(constraints=frozenset({"none", "json_schema"}))
        self.max_concurrency: int | None = None

    def _reply(self, constraint: str) -> str:
        return CANNED_JSON if constraint == "json_schema" else self.spec.reply

    def plan(self, gen: Gen) -> Plan:
        reason = self.capabilities.unsupported_reason(gen.constraint)
        return Plan("canned", reason)

    def render(self, call: Call) -> str:
        return "fake call: " + self._reply(call.gen.constraint.kind)

    async def start(self) -> EngineInfo:
        return EngineInfo(name=self.name, kind=self.spec.kind, model="canned")

    async def generate(self, call: Call, clock: Clock) -> CallMeasure:
        t_sent = clock()
        text = self._reply(call.gen.constraint.kind)
        return CallMeasure(
            t_sent=t_sent,
            t_first_token=clock(),
            t_done=clock(),
            prompt_tokens=3,
            completion_tokens=len(text),
            finish_reason="stop",
            text=text,
        )

    async def close(self) -> None:
        return None


TASK = """\
name: fake_json
kind: json
json_schema:
  type: object
  properties: {a: {type: integer}}
  required: [a]
prompt: "Give a for {{ q }}"
reference: '{"a": 1}'
scorers: [json_parse, schema_valid]
dataset:
  rows:
    - q: one
    - q: two
"""
SUITE = """\
name: plugin
engines:
  - kind: fake
    name: canned
tasks: [task.yaml]
load: {concurrency: [1], num_requests: 2, warmup: 0}
"""


@pytest.fixture
def fake_kind() -> Iterator[None]:
    """Register ``fake`` for one test; other tests never see it."""
    register_engine("fake", spec=f"{__name__}:FakeEngineSpec", engine=f"{__name__}:FakeEngine")
    try:
        yield
    finally:
        unregister_engine("fake")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with the suite and its task; returns the suite path."""
    (tmp_path / "pyproject.toml").write_text("")  # marks the project root for path checks
    (tmp_path / "task.yaml").write_text(TASK)
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    return suite


def _invoke(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(main, args)
    return res.exit_code, res.output


@pytest.mark.usefixtures("fake_kind")
def test_validate_compile_and_run_a_registered_kind(project: Path) -> None:
    rc, out = _invoke(["validate", str(project)])
    assert rc == 0, out
    assert "engines canned" in out

    rc, out = _invoke(["compile", "--engine", "fake", "-n", "2", str(project.parent / "task.yaml")])
    assert rc == 0, out
    assert out.count(f"fake call: {CANNED_JSON}") == 2

    results = project.parent / "results"
    rc, out = _invoke(["run", str(project), "--results-dir", str(results), "--no-progress"])
    assert rc == 0, out
    (run_dir,) = (results / "plugin").iterdir()
    assert (run_dir / "report.md").is_file()
    lines = [ln for f in sorted(run_dir.rglob("requests*.jsonl")) for ln in f.read_text().splitlines()]
    records = [json.loads(ln) for ln in lines]
    assert len(records) == 2
    assert {r["engine"] for r in records} == {"canned"}
    assert all(r["error"] is None and r["text"] == CANNED_JSON for r in records)


@pytest.mark.usefixtures("fake_kind")
def test_plugin_fields_are_validated_with_located_errors(project: Path) -> None:
    project.write_text(SUITE.replace("    name: canned\n", "    name: canned\n    replies: x\n"))
    rc, out = _invoke(["validate", str(project)])
    assert rc == 2
    assert "suite.yaml:5:5: engines[0]: unknown field 'replies'" in out


def test_unregistered_kind_is_unknown(project: Path) -> None:
    rc, out = _invoke(["validate", str(project)])
    assert rc == 2
    assert "engines[0].kind: unknown engine kind 'fake'" in out
    rc, out = _invoke(["compile", "--engine", "fake", str(project.parent / "task.yaml")])
    assert rc == 2
    assert "'fake' is not one of" in out


@pytest.mark.usefixtures("fake_kind")
def test_run_preflight_asks_the_spec(project: Path) -> None:
    port = free_port()  # nothing listens there
    project.write_text(
        SUITE.replace("    name: canned\n", f"    name: canned\n    server: http://127.0.0.1:{port}\n")
    )
    results = project.parent / "results"
    rc, out = _invoke(["run", str(project), "--results-dir", str(results), "--no-progress"])
    assert rc == 2
    assert f"engine 'canned': cannot reach http://127.0.0.1:{port}" in out
    assert not results.exists()  # refused before any folder or cell
