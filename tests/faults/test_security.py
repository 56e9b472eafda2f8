"""Secrets never reach the results folder; specs can't run code, leave the project or escape templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_openai import FakeServer
from fault_suites import fake_vllm_python, openai_engine, write_suite

from structbench.cli import main
from structbench.errors import SpecError
from structbench.spec.loader import load_suite

SECRET = "sk-secret-123"


def _files_with(folder: Path, needle: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_api_key_never_written_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRUCTBENCH_TEST_KEY", SECRET)
    launch = {
        "model": "m",
        "python": str(fake_vllm_python(tmp_path)),
        "startup_timeout_s": 30,
        "args": ["--api-key", SECRET, f"--hf-token={SECRET}"],
        "env": {"HF_TOKEN": SECRET},
    }
    with FakeServer() as srv:
        engines: list[dict[str, object]] = [
            openai_engine(srv.url, api_key_env="STRUCTBENCH_TEST_KEY"),
            {"kind": "vllm", "name": "launched", "launch": launch, "api_key_env": "STRUCTBENCH_TEST_KEY"},
        ]
        suite = write_suite(tmp_path, engines, n=2)
        results = tmp_path / "results"
        res = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(results), "--no-progress"])
        seen = list(srv.behaviour.auth_headers)
    assert res.exit_code == 0, res.output
    assert seen and set(seen) == {f"Bearer {SECRET}"}  # the key was really used
    run_dir = next(results.glob("*/*"))
    names = {p.name for p in run_dir.rglob("*") if p.is_file()}
    assert {"manifest.json", "requests.jsonl", "report.md", "report.html", "summary.json"} <= names
    assert any(n.endswith("-server.log") for n in names)  # the launched server's log is searched too
    assert _files_with(run_dir, SECRET) == []
    log = next(run_dir.rglob("launched-server.log")).read_text(encoding="utf-8")
    assert "fake server argv=" in log and "<redacted>" in log  # the server printed it; it was scrubbed
    assert SECRET not in res.output
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert "STRUCTBENCH_TEST_KEY" in json.dumps(manifest["spec"])  # the variable's name is recorded


def test_yaml_cannot_construct_python_objects(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"name: x\ntasks: !!python/object/apply:os.system ['touch {marker}']\n", encoding="utf-8"
    )
    with pytest.raises(SpecError, match=r"unsupported tag .*python/object"):
        load_suite(suite)
    res = CliRunner().invoke(main, ["validate", str(suite)])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    assert not marker.exists()


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ q.__class__ }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_template_sandbox_is_a_spec_error(tmp_path: Path, template: str) -> None:
    suite = write_suite(tmp_path, [openai_engine("http://127.0.0.1:9")], n=1)
    task = json.loads((tmp_path / "pick0.yaml").read_text(encoding="utf-8"))
    task["prompt"] = template
    (tmp_path / "pick0.yaml").write_text(json.dumps(task), encoding="utf-8")
    with pytest.raises(SpecError, match=r"pick0\.yaml"):
        load_suite(suite)


def test_path_escape_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("", encoding="utf-8")
    (tmp_path / "secret.jsonl").write_text('{"q": "x", "label": "positive"}\n', encoding="utf-8")
    suite = write_suite(project, [openai_engine("http://127.0.0.1:9")], n=1)
    task = json.loads((project / "pick0.yaml").read_text(encoding="utf-8"))
    task["dataset"] = {"path": "../secret.jsonl"}
    (project / "pick0.yaml").write_text(json.dumps(task), encoding="utf-8")
    with pytest.raises(SpecError, match="leaves the project root"):
        load_suite(suite)
