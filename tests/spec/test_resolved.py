"""The resolved spec for the manifest: complete, JSON-able, and free of secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from structbench.spec.loader import load_suite
from structbench.spec.resolved import REDACTED, resolved_dict

REPO = Path(__file__).resolve().parents[2]

SUITE = """\
name: s
engines:
  - kind: vllm
    name: remote
    url: "https://user:hunter2@api.example.com:8443/v1?api_key=abc&region=eu"
    api_key_env: OPENAI_API_KEY
  - kind: vllm
    name: local
    launch:
      model: /models/x
      args: [--api-key, s3cret, --max-num-batched-tokens, "4096", --hf-token=tok123, --tokenizer, /t]
      env: {HF_TOKEN: hf_abc, VLLM_CPU_KVCACHE_SPACE: "1", MY_PASSWORD: pw}
tasks: [../tasks/t.yaml]
load: {rate: [.inf, 2.5], mode: rate}
"""
TASK = """\
name: t
kind: grammar
grammar: {lark: g.lark}
prompt: "{{ q }}"
dataset: {rows: [{q: a}, {q: b}]}
"""


@pytest.fixture
def suite_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "suites").mkdir()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "suites/s.yaml").write_text(SUITE)
    (tmp_path / "tasks/t.yaml").write_text(TASK)
    (tmp_path / "tasks/g.lark").write_text("start: /[a-z]+/\n")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-should-never-appear")
    return tmp_path / "suites/s.yaml"


def test_resolved_dict_is_json_and_complete(suite_path: Path) -> None:
    d = resolved_dict(load_suite(suite_path))
    text = json.dumps(d, allow_nan=False)  # no Infinity: strict JSON
    assert d["path"] == "suites/s.yaml"
    assert d["suite"]["load"]["rate"] == ["inf", 2.5]
    (task,) = d["tasks"]
    assert task["path"] == "tasks/t.yaml"
    assert task["rows"] == 2 and len(task["rows_sha256"]) == 64
    assert task["grammars"] == {"lark": "start: /[a-z]+/\n"}
    assert task["spec"]["kind"] == "grammar"
    assert "sk-live" not in text


def test_secrets_are_redacted(suite_path: Path) -> None:
    d = resolved_dict(load_suite(suite_path))
    text = json.dumps(d)
    for secret in ("hunter2", "abc&", "s3cret", "tok123", "hf_abc", 'pw"'):
        assert secret not in text, secret
    remote, local = d["suite"]["engines"]
    assert remote["api_key_env"] == "OPENAI_API_KEY"
    assert remote["url"].startswith(f"https://{REDACTED}@api.example.com:8443/v1?")
    assert "region=eu" in remote["url"]
    launch = local["launch"]
    assert launch["args"] == [
        "--api-key",
        REDACTED,
        "--max-num-batched-tokens",
        "4096",
        f"--hf-token={REDACTED}",
        "--tokenizer",
        "/t",
    ]
    assert launch["env"] == {"HF_TOKEN": REDACTED, "VLLM_CPU_KVCACHE_SPACE": "1", "MY_PASSWORD": REDACTED}


def test_repo_suite_resolves() -> None:
    d = resolved_dict(load_suite(REPO / "suites/json.yaml"))
    names = [t["name"] for t in d["tasks"]]
    assert names == ["invoice", "ticket", "product", "canary_code"]
    assert d["tasks"][0]["schema"]["title"] == "Invoice"
    assert d["tasks"][0]["path"] == "tasks/json/invoice.yaml"
    json.dumps(d, allow_nan=False)
