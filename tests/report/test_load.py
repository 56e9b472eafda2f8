"""Reading run folders: cell files, judge grades."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from structbench.report.build import summarize_run
from structbench.report.load import load_run


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
