"""benchmarks/repeat_noise.py: groups of repeated runs set against their run-to-run spread."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from repeat_noise import Judgement, judge, load_runs, main  # noqa: E402


def _run(root: Path, name: str, executor: str, tpot: float, ttft: float | None = 50.0) -> Path:
    d = root / name
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"executor": executor}))
    cell = {"cell_id": "vllm.invoice.c16", "mean_tpot_ms": tpot, "mean_ttft_ms": ttft}
    (d / "summary.json").write_text(json.dumps({"cells": [cell]}))
    return d


def _by(rows: list[Judgement], metric: str) -> Judgement:
    (row,) = [r for r in rows if r.metric == metric]
    return row


def test_a_difference_inside_the_repeats_spread_is_inside(tmp_path: Path) -> None:
    runs = [_run(tmp_path, f"l{i}", "local", t) for i, t in enumerate((20.0, 22.0, 24.0))]
    runs += [_run(tmp_path, f"r{i}", "ray", t) for i, t in enumerate((21.0, 23.5))]
    rows = judge(load_runs(runs), "local", ["mean_tpot_ms", "mean_ttft_ms"])
    tpot = _by(rows, "mean_tpot_ms")
    assert tpot.ref_values == [20.0, 22.0, 24.0] and tpot.values == [21.0, 23.5]
    assert tpot.diff_pct == pytest.approx(100 * (22.25 - 22.0) / 22.0)
    assert tpot.spread_pct == pytest.approx(20.0)
    assert tpot.t_crit == pytest.approx(3.182) and tpot.inside is True
    ttft = _by(rows, "mean_ttft_ms")  # the same value everywhere: no difference, no spread
    assert ttft.t == 0.0 and ttft.inside is True


def test_a_gross_difference_is_caught_and_one_run_is_judged_by_the_repeats(tmp_path: Path) -> None:
    runs = [_run(tmp_path, f"l{i}", "local", t) for i, t in enumerate((20.0, 20.5, 21.0))]
    runs += [_run(tmp_path, f"r{i}", "ray", t) for i, t in enumerate((30.0, 31.0))]
    runs += [_run(tmp_path, "k0", "k8s", 20.4), _run(tmp_path, "s0", "slurm", 26.0)]
    rows = judge(load_runs(runs), "local", ["mean_tpot_ms"])
    by_group = {r.group: r for r in rows}
    ray_t = by_group["ray"].t
    assert by_group["ray"].inside is False and ray_t is not None and ray_t > 3.182
    # One run against three: the local runs' spread is the noise (2 degrees of freedom).
    assert by_group["k8s"].inside is True and by_group["k8s"].t_crit == pytest.approx(4.303)
    assert by_group["slurm"].inside is False


def test_one_run_against_one_run_is_not_judged(tmp_path: Path) -> None:
    runs = [_run(tmp_path, "l0", "local", 20.0), _run(tmp_path, "r0", "ray", 30.0)]
    (row,) = judge(load_runs(runs), "local", ["mean_tpot_ms"])
    assert row.t is None and row.inside is None


def test_a_metric_missing_from_a_run_is_left_out(tmp_path: Path) -> None:
    runs = [_run(tmp_path, "l0", "local", 20.0), _run(tmp_path, "l1", "local", 21.0)]
    runs += [_run(tmp_path, "r0", "ray", 20.0, ttft=None), _run(tmp_path, "r1", "ray", 21.0)]
    rows = judge(load_runs(runs), "local", ["mean_tpot_ms", "mean_ttft_ms"])
    assert [r.metric for r in rows] == ["mean_tpot_ms"]


def test_cli_prints_the_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [_run(tmp_path, f"l{i}", "local", t) for i, t in enumerate((20.0, 22.0))]
    runs += [_run(tmp_path, f"r{i}", "ray", t) for i, t in enumerate((21.0, 22.5))]
    out = tmp_path / "noise.json"
    assert main([*map(str, runs), "--metric", "mean_tpot_ms", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| vllm.invoice.c16 | mean_tpot_ms | 20.00 22.00 | ray: 21.00 22.50 |" in printed
    assert printed.rstrip().endswith("1 of 1 judged differences inside the noise")
    assert json.loads(out.read_text())[0]["inside"] is True


def test_a_folder_without_a_summary_or_reference_group_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="empty: not a reported run folder"):
        load_runs([tmp_path / "empty"])
    groups = load_runs([_run(tmp_path, "r0", "ray", 20.0)])
    with pytest.raises(SystemExit, match="no run of executor 'local' \\(have: ray\\)"):
        judge(groups, "local")
