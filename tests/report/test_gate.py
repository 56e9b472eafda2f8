"""The CI gate: ``--fail-under NAME=VALUE`` and ``--fail-on-canary`` on ``run`` and ``report``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import structbench.run
from structbench import cli
from structbench.errors import UserError
from structbench.metrics.gate import GATE_EXIT_CODE, Threshold, check_gate, parse_threshold
from structbench.report.build import build_report
from structbench.run import RunOptions, RunOutcome


def _report(run: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli.main, ["report", str(run), *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.stderr


def test_exit_code_is_distinct_and_shared_with_the_cli() -> None:
    assert GATE_EXIT_CODE == cli._GATE_EXIT_CODE
    assert GATE_EXIT_CODE not in (0, 1, 2, 130)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("validity=0.99", Threshold("validity", 0.99)), ("schema_valid = 95%", Threshold("schema_valid", 0.95))],
)
def test_parse_threshold(text: str, expected: Threshold) -> None:
    assert parse_threshold(text) == expected


@pytest.mark.parametrize("text", ["validity", "validity=", "=0.5", "validity=high", "validity=1.5", "a=-1%"])
def test_parse_threshold_rejects_bad_input(text: str) -> None:
    with pytest.raises(UserError):
        parse_threshold(text)


def test_report_gate_passes_and_fails_on_thresholds(make_run: Callable[..., Path]) -> None:
    run = make_run()
    # vllm's schema_valid is 1.0 and sglang's 4/6 in every invoice cell.
    assert _report(run) == (0, "")
    assert _report(run, "--fail-under", "schema_valid=0.6")[0] == 0
    code, err = _report(run, "--fail-under", "schema_valid=0.7", "--fail-under", "json_parse=0.5")
    assert code == GATE_EXIT_CODE
    lines = err.strip().splitlines()
    assert lines == [
        "gate failed: schema_valid in sglang.invoice.c1: 0.6667 < 0.7 (n=6)",
        "gate failed: schema_valid in sglang.invoice.c4: 0.6667 < 0.7 (n=6)",
    ]
    # A name nothing reports checks nothing: that fails too.
    code, err = _report(run, "--fail-under", "valdity=0.5")
    assert code == GATE_EXIT_CODE and "valdity: no cell of the run reports it" in err


def test_report_gate_fails_on_a_failed_canary(make_run: Callable[..., Path]) -> None:
    run = make_run()
    code, err = _report(run, "--fail-on-canary")
    assert code == GATE_EXIT_CODE
    assert err.strip() == "gate failed: canary in sglang.canary.c4: NOT APPLIED: 4/6 outputs matched"


def test_bad_threshold_is_one_line_exit_2_before_any_work(make_run: Callable[..., Path]) -> None:
    run = make_run()
    code, err = _report(run, "--fail-under", "validity=2")
    assert code == 2 and err.count("\n") == 1 and "must be within 0..1" in err
    assert not (run / "report.md").exists()


def test_run_exits_with_the_gate_code(make_run: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run()
    summary = build_report(run)

    def fake_run_suite(opts: RunOptions) -> RunOutcome:
        return RunOutcome(run, summary, (), False)

    monkeypatch.setattr(structbench.run, "run_suite", fake_run_suite)
    args = ["run", "suite.yaml", "--no-progress"]
    assert CliRunner().invoke(cli.main, [*args, "--fail-under", "validity=0.5"]).exit_code == GATE_EXIT_CODE
    assert CliRunner().invoke(cli.main, [*args, "--fail-under", "regex_match=0.5"]).exit_code == 0
    assert CliRunner().invoke(cli.main, [*args, "--fail-on-canary"]).exit_code == GATE_EXIT_CODE
    assert CliRunner().invoke(cli.main, args).exit_code == 0


def test_validity_without_applicable_values_fails_the_gate(make_run: Callable[..., Path]) -> None:
    summary = build_report(make_run())
    # sglang.pick.c4 completed no call: its validity has no value, so a gate on it fails.
    result = check_gate(summary, [Threshold("choice_valid", 0.0)], canary=False)
    assert result.failures == ("choice_valid in sglang.pick.c4: no applicable value (threshold 0)",)
