"""Reading run folders through the run-folder models: cell files, arms, judge grades, v1 and v2."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from runfolder import write_run

from structbench.metrics import cell_to_dict
from structbench.metrics.cache import IdealCache
from structbench.report.build import summarize_run
from structbench.report.load import load_run
from structbench.runfolder import CellFile, IdealFacts, RunManifest


def test_load_run_reads_cells_and_memory(make_run: Callable[..., Path]) -> None:
    run = make_run()
    cj = run / "cells" / "vllm.invoice.c4" / "cell.json"
    d = json.loads(cj.read_text())
    d["memory"] = {
        "gpu_available": True,
        "rss_peak_bytes": 2**30,
        "samples": [[0.0, [2**30, 2**29], 1], [0.1, [2**31, 2**29], 1]],
        "gpus": [],
    }
    cj.write_text(json.dumps(d))
    data = load_run(run)
    rt = data.runtimes["vllm.invoice.c4"]
    assert rt.peak_gpu_memory_mb == 2048 + 512 and rt.peak_rss_mb == 1024
    assert dict(rt.metrics_after or ())["vllm:prefix_cache_hits_total"] == 300.0
    assert data.runtimes["sglang.invoice.c4"].peak_gpu_memory_mb is None
    info = next(c for c in data.cells if c.cell_id == "vllm.invoice.c1")
    assert (info.task_kind, info.scorers, info.load.concurrency) == (
        "json",
        ("json_parse", "schema_valid", "field_accuracy"),
        1,
    )
    assert data.score_options.judge_grades is None
    assert len(data.gens) == 6 * 3 + 6 * 2  # 3 one-gen tasks, one two-turn chat task


def test_judge_grades_feed_the_judge_scorer(make_run: Callable[..., Path]) -> None:
    run = make_run()
    m = json.loads((run / "manifest.json").read_text())
    m["tasks"]["math"]["scorers"] = ["final_number", "judge"]
    (run / "manifest.json").write_text(json.dumps(m))
    grade = {
        "cell_id": "vllm.math.c4",
        "engine": "vllm",
        "task": "math",
        "item_id": "math/0",
        "branch": 0,
        "turn": 0,
        "attempt": 1,
        "category": "math",
        "judge_engine": "j",
        "grade": 7,
    }
    (run / "judge.jsonl").write_text(json.dumps(grade) + "\n")
    data = load_run(run)
    assert data.score_options.judge_grades == {("vllm.math.c4", "math/0", 0, 0, 1): 7}
    cellsum = next(c for c in summarize_run(run).cells if c.info.cell_id == "vllm.math.c4")
    judge = next(s for s in cellsum.quality.scores if s.scorer == "judge")
    assert judge.rate == 0.7 and judge.n == 1


def test_judge_call_records_give_grades_and_no_cells(make_run: Callable[..., Path]) -> None:
    """The judge phase's records (judge.jsonl) feed the ``judge`` scorer, not the cell list."""
    from structbench.ir import Message
    from structbench.records import CallRecord

    run = make_run()
    m = json.loads((run / "manifest.json").read_text())
    m["tasks"]["math"]["scorers"] = ["final_number", "judge"]
    (run / "manifest.json").write_text(json.dumps(m))
    judged = (
        ("judged_cell", "vllm.math.c4"), ("judged_engine", "vllm"), ("judged_item", "math/0"),
        ("judged_branch", "0"), ("judged_turn", "0"), ("judged_attempt", "1"), ("category", "math"),
    )  # fmt: skip
    rec = CallRecord(
        "judge.math", "j", "math", "judge/vllm.math.c4/math/0/b0t0a1", 0, 0, "grade", "regex",
        t_sent=1.0, t_done=1.5, text="[[6]]", prompt=(Message("user", "grade it"),), meta=judged,
    )  # fmt: skip
    (run / "judge.jsonl").write_text(rec.to_json() + "\n")
    data = load_run(run)
    assert data.score_options.judge_grades == {("vllm.math.c4", "math/0", 0, 0, 1): 6}
    assert not any(c.cell_id.startswith("judge.") for c in data.cells)
    cells = summarize_run(run).cells
    assert not any(c.info.cell_id.startswith("judge.") for c in cells)
    judge = next(
        s
        for s in next(c for c in cells if c.info.cell_id == "vllm.math.c4").quality.scores
        if s.scorer == "judge"
    )
    assert judge.rate == 0.6 and judge.n == 1


def test_v1_and_v2_folders_of_one_run_summarize_the_same(tmp_path: Path) -> None:
    # Version 1 renamed warm-up items "<id>~warmup0"; version 2 keeps the id and the flag.
    old = load_run(write_run(tmp_path / "a", version=1))
    new = load_run(write_run(tmp_path / "b", version=2))
    assert any(r.warmup and "~" not in r.item_id for r in new.records)
    # (The hardware differs: version 2 writes every field, the hand-made version 1 only three.)
    same = (old.cells, old.runtimes, replace(old.info, hardware=()))
    assert same == (new.cells, new.runtimes, replace(new.info, hardware=()))
    a, b = summarize_run(old.run_dir), summarize_run(new.run_dir)
    assert [cell_to_dict(c) for c in a.cells] == [cell_to_dict(c) for c in b.cells]
    # The warm-up item's calls are counted as warm-up, apart from its measured twin's.
    assert {c.info.task: c.counts.warmup for c in b.cells} == {
        "invoice": 1,
        "canary": 1,
        "pick": 1,
        "math": 2,
    }


def test_cells_carry_the_recorded_cache_arm_and_pair(make_run: Callable[..., Path]) -> None:
    run = make_run()
    m = RunManifest.read(run)
    cells = tuple(
        c.model_copy(update={"cache_arm": "off", "cache_pair": "vllm smollm2"}) if c.engine == "vllm" else c
        for c in m.cells
    )
    m.model_copy(update={"cells": cells}).write(run)
    data = load_run(run)
    arms = {c.cell_id: (c.cache_arm, c.cache_pair) for c in data.cells}
    assert arms["vllm.invoice.c4"] == ("off", "vllm smollm2")
    assert arms["sglang.invoice.c4"] == (None, "sglang")  # no arm: pairs with nothing but itself


def test_recorded_ideal_and_block_size_reach_the_runtime(make_run: Callable[..., Path]) -> None:
    run = make_run()
    path = run / "cells" / "vllm.invoice.c4" / "cell.json"
    ideal = IdealFacts(
        prompts=6,
        prompt_tokens=300,
        covered_tokens=200,
        block_size=16,
        covered_block_tokens=192,
        tokenizer="t",
    )
    CellFile.read(path).model_copy(update={"ideal": ideal, "cache_block_size": 16}).write(path)
    rt = load_run(run).runtimes["vllm.invoice.c4"]
    assert rt.ideal == IdealCache(6, 300, 200, 16, 192, "t") and rt.cache_block_size == 16
    assert load_run(run).runtimes["vllm.invoice.c1"].ideal is None
