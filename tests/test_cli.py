"""The command line: light imports, one-line errors with exit 2, and a real end-to-end run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from structbench.records import cell_records_path, run_records

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "outlines", "sglang", "vllm", "datasets")


def _modules_after(args: list[str]) -> tuple[int, set[str], str]:
    """Run the CLI in a fresh interpreter and return (exit code, heavy modules imported, stderr)."""
    code = (
        "import sys\n"
        "from structbench.cli import main\n"
        "try:\n"
        f"    main({args!r}, standalone_mode=False)\n"
        "    rc = 0\n"
        "except SystemExit as e:\n"
        "    rc = e.code or 0\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
        "sys.exit(rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("HEAVY="))
    mods = {m for m in line.removeprefix("HEAVY=").split(",") if m}
    return out.returncode, mods, out.stderr


def test_help_imports_no_engine_package() -> None:
    rc, mods, _ = _modules_after(["--help"])
    assert rc == 0
    assert mods == set()


def test_validate_imports_no_engine_package() -> None:
    rc, mods, err = _modules_after(["validate", "suites/json.yaml"])
    assert rc == 0, err
    assert mods == set()


def test_validate_broken_suite_is_one_line_exit_2(tmp_path: Path) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text("name: bad\ntasks: [nope.yaml]\nload:\n  concurency: 4\n")
    out = subprocess.run(
        [sys.executable, "-m", "structbench.cli", "validate", str(suite)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert f"{suite}:" in lines[0] or "bad.yaml:" in lines[0]


@pytest.mark.embedded
def test_run_end_to_end_on_embedded_engine(tmp_path: Path) -> None:
    """A real run: SmolLM2 in process, a JSON task and the regex canary, two items each."""
    suite = tmp_path / "suites" / "tiny.yaml"
    suite.parent.mkdir()
    for sub in ("tasks", "grammars"):
        (tmp_path / sub).symlink_to(ROOT / sub)
    (tmp_path / "pyproject.toml").write_text("")  # marks the project root for path checks
    suite.write_text(
        "name: tiny\n"
        "engines: [{kind: embedded, threads: 1}]\n"
        "tasks: [../tasks/json/ticket.yaml, ../tasks/canary/code.yaml]\n"
        "load: {concurrency: [2], num_requests: 2, warmup: 0}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "structbench.cli", "run", str(suite), "--results-dir", str(tmp_path / "res"),
         "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir,) = (tmp_path / "res" / "tiny").iterdir()
    for name in (
        "manifest.json",
        "items.jsonl",
        "summary.json",
        "report.md",
        "report.html",
    ):
        assert (run_dir / name).is_file(), name
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    # Each cell writes its own records into its sub-folder; the run writes none of them.
    assert not (run_dir / "requests.jsonl").exists()
    assert len(manifest["cells"]) == 2
    assert all(cell_records_path(run_dir, c["cell_id"]).is_file() for c in manifest["cells"])
    records = [json.loads(r.to_json()) for r in run_records(run_dir)]
    assert len(records) == 4 and all(r["error"] is None for r in records)
    scores = [json.loads(ln) for ln in (run_dir / "scores.jsonl").read_text().splitlines()]
    flat = [s for row in scores for s in row["scores"]]
    valid = [s["value"] for s in flat if s["scorer"] in ("schema_valid", "regex_match")]
    assert valid and all(v == 1.0 for v in valid), flat


@pytest.mark.embedded
def test_run_chat_fanout_and_judge_on_embedded_engine(tmp_path: Path) -> None:
    """Multi-turn chat with the judge pass, and a fork fan-out, through `structbench run` on SmolLM2."""
    suite = tmp_path / "suites" / "chatfan.yaml"
    suite.parent.mkdir()
    (tmp_path / "tasks").symlink_to(ROOT / "tasks")
    (tmp_path / "pyproject.toml").write_text("")
    suite.write_text(
        "name: chatfan\n"
        "engines: [{kind: embedded, threads: 1}]\n"
        "tasks: [../tasks/chat/mtbench_mini.yaml, ../tasks/fanout/manual_qa.yaml]\n"
        "load: {concurrency: [2], num_requests: 1, warmup: 0}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "structbench.cli", "run", str(suite), "--results-dir", str(tmp_path / "res"),
         "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    (run_dir,) = (tmp_path / "res" / "chatfan").iterdir()
    records = [json.loads(r.to_json()) for r in run_records(run_dir)]
    chat = [r for r in records if r["task"] == "mtbench_mini"]
    fan = [r for r in records if r["task"] == "manual_qa"]
    assert sorted(r["turn"] for r in chat) == [0, 1]
    # The second turn carries the model's real first answer in its prompt.
    second = next(r for r in chat if r["turn"] == 1)
    first = next(r for r in chat if r["turn"] == 0)
    assert {"role": "assistant", "content": first["text"]} in second["prompt"]
    assert len({r["branch"] for r in fan}) == 4  # fork(4) over one shared document
    grades = [json.loads(ln) for ln in (run_dir / "judge.jsonl").read_text().splitlines()]
    assert len(grades) == 2
    assert "judge" in (run_dir / "report.md").read_text()


def _cli(*args: str, cwd: Path = ROOT, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "structbench.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_run_help_groups_flags_as_vllm_bench_serve_does() -> None:
    out = _cli("run", "--help")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    heads = [text.index(f"\n{h}:\n") for h in ("Endpoint", "Dataset / task", "Load", "Output")]
    assert heads == sorted(heads)
    sections = dict(zip(("endpoint", "task", "load", "output"), text[heads[0] :].split("\n\n"), strict=False))
    assert "--base-url" in sections["endpoint"] and "--launch" in sections["endpoint"]
    assert "--task" in sections["task"] and "--num-prompts" in sections["task"]
    assert "--request-rate" in sections["load"] and "--max-concurrency" in sections["load"]
    assert "--save-result" in sections["output"] and "--metric-percentiles" in sections["output"]


def test_run_help_imports_no_engine_package() -> None:
    rc, mods, err = _modules_after(["run", "--help"])
    assert rc == 0, err
    assert mods == set()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--concurrency", "0,8"], "--concurrency"),
        (["--concurrency", "1,x"], "--concurrency"),
        (["--request-rate", "-1"], "--request-rate"),
        (["--goodput", "ttft"], "--goodput"),
        (["--metric-percentiles", "150"], "--metric-percentiles"),
        (["--percentile-metrics", "ttft,queue"], "--percentile-metrics"),
        (["--server-env", "NOEQUALS"], "--server-env"),
        (["--nosuch-flag"], "--nosuch-flag"),
        (
            ["--engine", "vllm", "--base-url", "localhost:8000", "--task", "tasks/json/invoice.yaml"],
            "--base-url",
        ),
        (["--engine", "nosuch", "--task", "tasks/json/invoice.yaml"], "--engine"),
        (["--resume", "tasks", "--concurrency", "2"], "--concurrency"),
    ],
)
def test_run_bad_flag_is_one_line_exit_2(args: list[str], needle: str) -> None:
    out = _cli("run", *args)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], out.stderr


def test_run_takes_a_task_file_as_a_one_task_suite() -> None:
    """Not "missing required field 'tasks'": the task is planned, and the engine is checked first."""
    out = _cli("run", "tasks/json/invoice.yaml", "--engine", "vllm", "--base-url", "http://127.0.0.1:9")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "tasks" not in out.stderr and "127.0.0.1:9" in out.stderr, out.stderr


def test_python_dash_m_structbench_is_the_cli() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "structbench", "validate", "suites/json.yaml"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok: suite 'json'")


@pytest.mark.parametrize(
    "args",
    [
        ["tasks/json/invoice.yaml", "--engine", "nosuch"],
        ["--task", "tasks/json/invoice.yaml", "--engine", "x"],
    ],
)
def test_unknown_engine_kind_fails_before_loading_anything(args: list[str]) -> None:
    """The kind is checked first: no task, schema library or pipeline module is loaded for a typo."""
    code = (
        "import sys, time\n"
        "t0 = time.perf_counter()\n"
        "from structbench.cli import main\n"
        "try:\n"
        f"    main({['run', *args]!r}, standalone_mode=False)\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        "heavy = ('jsonschema', 'structbench.run', 'structbench.spec.loader')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "print(rc, loaded, round(time.perf_counter() - t0, 2))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("2 [] "), out.stdout + out.stderr
    assert out.stderr.strip().startswith("error: --engine: unknown engine kind"), out.stderr
