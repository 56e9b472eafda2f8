"""Grammar backends: spec names, launch flags, the declared-vs-served check and library versions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from structbench.engines.grammar_backend import (
    check_declared,
    grammar_extras,
    libraries_of,
    library_versions,
    local_versions,
)
from structbench.engines.sglang.server import grammar_facts
from structbench.engines.sglang.server import launch_argv as sglang_argv
from structbench.engines.vllm import launch_argv as vllm_argv
from structbench.errors import SpecError, UserError
from structbench.spec.engines import LaunchSpec
from structbench.spec.loader import load_suite

ROOT = Path(__file__).resolve().parents[2]


def _suite(tmp_path: Path, engine: str) -> Path:
    (tmp_path / "tasks").symlink_to(ROOT / "tasks")
    (tmp_path / "grammars").symlink_to(ROOT / "grammars")
    (tmp_path / "pyproject.toml").write_text("")
    path = tmp_path / "suite.yaml"
    path.write_text(f"name: m\nengines:\n  - {engine}\ntasks: [tasks/coverage/corpus.yaml]\n")
    return path


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        (
            "{kind: vllm, name: v, url: 'http://h:1', grammar_backend: xgramar}",
            "input should be 'auto', 'xgrammar'",
        ),
        (
            "{kind: sglang, name: s, url: 'http://h:1', grammar_backend: guidance}",
            "input should be 'xgrammar'",
        ),
        ("{kind: embedded, grammar_backend: xgrammar}", "input should be 'outlines'"),
        ("{kind: sglang, name: s, backend: embedded, grammar_backend: xgrammar}", "runs outlines only"),
    ],
)
def test_a_bad_backend_name_is_a_located_spec_error(tmp_path: Path, engine: str, message: str) -> None:
    with pytest.raises(SpecError) as e:
        load_suite(_suite(tmp_path, engine))
    line = str(e.value)
    assert "\n" not in line and message in line
    assert line.startswith(f"{tmp_path / 'suite.yaml'}:3:") or line.startswith("suite.yaml:3:")


def test_variants_of_one_engine_load_side_by_side(tmp_path: Path) -> None:
    two = "{kind: vllm, name: vllm-xgrammar, url: 'http://h:1', grammar_backend: xgrammar}\n"
    two += "  - {kind: vllm, name: vllm-guidance, url: 'http://h:2', grammar_backend: guidance}"
    suite = load_suite(_suite(tmp_path, two))
    assert [(e.name, getattr(e, "grammar_backend", None)) for e in suite.spec.engines] == [
        ("vllm-xgrammar", "xgrammar"),
        ("vllm-guidance", "guidance"),
    ]


def test_launch_flags_name_the_backend() -> None:
    launch = LaunchSpec(model="m", python="py")
    argv = vllm_argv(launch, 8000, "on", "guidance")
    i = argv.index("--structured-outputs-config")
    assert json.loads(argv[i + 1]) == {"backend": "guidance"}
    assert "--structured-outputs-config" not in vllm_argv(launch, 8000, "on")
    argv = sglang_argv(launch, 8000, "on", "llguidance")
    assert argv[argv.index("--grammar-backend") + 1] == "llguidance"
    assert "--grammar-backend" not in sglang_argv(launch, 8000, "on")


def test_a_server_running_another_backend_is_refused() -> None:
    check_declared("v", "xgrammar", "xgrammar")
    check_declared("v", None, "guidance")  # nothing declared: the server's word is recorded
    check_declared("v", "xgrammar", None)  # the server does not say: the spec's word is recorded
    with pytest.raises(UserError, match="grammar_backend is 'xgrammar' but the server runs 'guidance'"):
        check_declared("v", "xgrammar", "guidance")
    with pytest.raises(UserError, match="server runs 'outlines'"):
        grammar_facts("s", None, "xgrammar", json.dumps({"grammar_backend": "outlines"}))


def test_versions_come_from_the_named_interpreter() -> None:
    # This interpreter has pytest and no such distribution: the probe reports exactly that.
    found = library_versions(sys.executable, ("pytest", "no-such-dist-structbench"))
    assert set(found) == {"pytest"} and found["pytest"] == local_versions(("pytest",))["pytest"]
    assert library_versions("/nonexistent/python", ("pytest",)) == {}
    assert libraries_of("guidance") == ("llguidance",) and libraries_of("nope") == ()


def test_manifest_extras_say_what_is_unknown() -> None:
    extras = dict(grammar_extras("xgrammar", "launch flag", {"xgrammar": "0.2.8"}))
    assert extras == {
        "grammar_backend": "xgrammar",
        "grammar_backend_source": "launch flag",
        "grammar_library": "xgrammar 0.2.8",
    }
    attached = dict(grammar_extras(None, "unknown", None))
    assert attached["grammar_backend"] == "unknown" and "out of reach" in attached["grammar_library"]
    facts = dict(grammar_facts("s", None, None, json.dumps({"grammar_backend": "xgrammar"})))
    assert (
        facts["grammar_backend"] == "xgrammar" and facts["grammar_backend_source"] == "server (/server_info)"
    )


def test_library_versions_read_with_the_launch_env(tmp_path: Path) -> None:
    """On the H200 each engine's packages sit on its own PYTHONPATH (launch.env): read them there."""
    site = tmp_path / "site"
    info = site / "sb_fake_grammar-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sb-fake-grammar\nVersion: 1.2.3\n")
    assert library_versions(sys.executable, ("sb-fake-grammar",)) == {}
    found = library_versions(sys.executable, ("sb-fake-grammar",), {"PYTHONPATH": str(site)})
    assert found == {"sb-fake-grammar": "1.2.3"}
