"""benchmarks/seed_table.py: the seed-style table of one run and the verdicts on the seed's claims.

The synthetic run folder is written through the package's own writers (``RunManifest``,
``RunSummary.to_dict``, ``CallRecord.to_json``). Its ``summary.json`` figures deliberately
disagree with what its records would give (records of 10 tokens each, summary cells of
hundreds), so a table figure that matches the summary can only have come from it.
"""

from __future__ import annotations

import json
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from pydantic import JsonValue

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from seed_claims import (  # noqa: E402
    DEFAULT_BAND,
    SEED_CLAIMS,
    CrossCheck,
    PooledRate,
    engine_band,
    rate_verdict,
    ratio_tolerance,
    ratio_verdict,
)
from seed_table import main, render  # noqa: E402

from structbench.metrics import (  # noqa: E402
    CellInfo,
    CellSummary,
    Counts,
    Latency,
    LoadPoint,
    Quality,
    RunInfo,
    RunSummary,
    ScoreRate,
    Throughput,
)
from structbench.records import CallRecord, cell_records_path  # noqa: E402
from structbench.runfolder import CellEntry, EngineFacts, LoadFacts, RunManifest  # noqa: E402
from structbench.stats import Distribution  # noqa: E402

LOAD = LoadPoint("concurrency", 4)
TASKS = {"invoice": "json", "chat": "chat"}
#: The claims by their row, for readable tests.
CLAIM = {c.row: c for c in SEED_CLAIMS}


def _cell(
    engine: str, task: str, arm: str, *, tokens: int, dur: float, ttft: float, mem: float | None
) -> CellSummary:
    """One summary cell; invoice cells carry validity and accuracy, chat cells another accuracy."""
    scores: tuple[ScoreRate, ...]
    if task == "invoice":
        valid = 1.0 if engine.startswith("vllm") else 0.9
        acc = 0.80 if engine.startswith("vllm") else 0.83
        scores = (ScoreRate("schema_valid", valid, n=50), ScoreRate("field_accuracy", acc, n=50))
    else:
        scores = (ScoreRate("final_number", 0.1, n=50),)  # not field accuracy: must stay out
    info = CellInfo(f"{engine}.{task}.c4", engine, task, TASKS[task], LOAD, cache_arm=arm)  # type: ignore[arg-type]
    return CellSummary(
        info=info,
        status="complete",
        counts=Counts(calls=50, completed=50),
        throughput=Throughput(duration_s=dur, output_throughput=tokens / dur, total_output_tokens=tokens),
        latency=_latency(ttft),
        quality=Quality(scores=scores, validity=scores[0]),
        peak_gpu_memory_mb=mem,
    )


def _latency(mean_ttft: float) -> Latency:
    # Medians no record gives: a latency row showing them would have read the summary.
    return Latency(ttft=Distribution(50, mean=mean_ttft, median=999.0, p99=999.0))


def _records(engine: str, task: str, ttfts_ms: list[float]) -> list[CallRecord]:
    out = []
    for i, ttft in enumerate(ttfts_ms):
        sent = 10.0 + i
        first = sent + ttft / 1000
        out.append(
            CallRecord(
                f"{engine}.{task}.c4",
                engine,
                task,
                f"{task}/{i}",
                0,
                0,
                "out",
                "json_schema",
                t_sent=sent,
                t_first_token=first,
                t_done=first + 0.009 * (1 + i),  # TPOT = 1 ms x (i + 1) over 10 tokens
                completion_tokens=10,
            )
        )
    return out


def write_run(
    root: Path,
    *,
    sglang_tokens: int = 900,
    fractions: tuple[str, str] = ("0.4", "0.4"),
    gpu: bool = True,
    dummy: bool = False,
) -> Path:
    """A run: vllm, vllm-nocache (its cache-off twin) and sglang (no twin), on tasks invoice and chat."""
    run = root / "demo" / "run1"
    (run / "cells").mkdir(parents=True)
    mem = {"vllm": (20000.0, 21000.0), "vllm-nocache": (20000.0, 20000.0), "sglang": (15000.0, 16000.0)}
    cells = [
        # vllm: 1500 tokens / 5 s = 300 tok/s; json 1000 / 2 = 500. Mean TTFT on 75, off 125 ms.
        _cell("vllm", "invoice", "on", tokens=1000, dur=2.0, ttft=100.0, mem=mem["vllm"][0] if gpu else None),
        _cell("vllm", "chat", "on", tokens=500, dur=3.0, ttft=50.0, mem=mem["vllm"][1] if gpu else None),
        _cell(
            "vllm-nocache", "invoice", "off", tokens=800, dur=2.0, ttft=150.0, mem=20000.0 if gpu else None
        ),
        _cell("vllm-nocache", "chat", "off", tokens=400, dur=3.0, ttft=100.0, mem=20000.0 if gpu else None),
        # sglang: (sglang_tokens + 300) / 2 s; json sglang_tokens / 1 s.
        _cell(
            "sglang",
            "invoice",
            "on",
            tokens=sglang_tokens,
            dur=1.0,
            ttft=40.0,
            mem=mem["sglang"][0] if gpu else None,
        ),
        _cell("sglang", "chat", "on", tokens=300, dur=1.0, ttft=30.0, mem=mem["sglang"][1] if gpu else None),
    ]
    summary = RunSummary(run=RunInfo(run_id="run1", suite="demo"), cells=tuple(cells))
    (run / "summary.json").write_text(json.dumps(summary.to_dict()))
    _manifest(run, fractions, dummy)
    ttfts = {"vllm": [10.0, 20.0, 30.0, 40.0, 50.0], "sglang": [5.0, 6.0, 7.0, 8.0, 9.0]}
    for c in cells:
        for r in _records(c.info.engine, c.info.task, ttfts.get(c.info.engine, [1.0])):
            path = cell_records_path(run, r.cell_id)
            path.parent.mkdir(exist_ok=True)
            with path.open("a") as fh:
                fh.write(r.to_json() + "\n")
    return run


def _manifest(run: Path, fractions: tuple[str, str], dummy: bool) -> None:
    weights = ["--load-format", "dummy"] if dummy else []
    vllm_args: list[JsonValue] = ["--gpu-memory-utilization", fractions[0], *weights]
    sglang_args: list[JsonValue] = [f"--mem-fraction-static={fractions[1]}", *weights]
    engines = {
        "vllm": EngineFacts(
            name="vllm",
            kind="vllm",
            model="m",
            version="0.26.0",
            extra={"kv_cache_tokens": "120000"},
            cache_arm="on",
        ),
        "vllm-nocache": EngineFacts(name="vllm-nocache", kind="vllm", model="m", cache_arm="off"),
        "sglang": EngineFacts(name="sglang", kind="sglang", model="m", version="0.5.17", cache_arm="on"),
    }
    args = {"vllm": vllm_args, "vllm-nocache": vllm_args, "sglang": sglang_args}
    spec: dict[str, JsonValue] = {
        "suite": {"engines": [{"name": n, "launch": {"args": a}} for n, a in args.items()]}
    }
    pair = {"vllm": "vllm m", "vllm-nocache": "vllm m", "sglang": "sglang m"}
    arm = {"vllm": "on", "vllm-nocache": "off", "sglang": "on"}
    entries = tuple(
        CellEntry(
            cell_id=f"{e}.{t}.c4",
            engine=e,
            task=t,
            load=LoadFacts.of(LOAD),
            cache_arm=arm[e],  # type: ignore[arg-type]
            cache_pair=pair[e],
        )
        for e in engines
        for t in TASKS
    )
    RunManifest(
        run_id="run1", suite="demo", engines=engines, cells=entries, spec=spec, status="complete"
    ).write(run)


def _opts(**kw: object) -> Namespace:
    base: dict[str, object] = {
        "pick": [],
        "throughput_task": [],
        "crosscheck": None,
        "relative_to": Path("."),
    }
    return Namespace(**{**base, **kw})


def _row(md: str, label: str) -> list[str]:
    """The cells of the first table row whose label starts with ``label``."""
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].startswith(label):
            return cells
    raise AssertionError(f"no row {label!r} in:\n{md}")


def test_table_values_come_from_the_summary(tmp_path: Path) -> None:
    md = render(write_run(tmp_path), _opts())
    assert _row(md, "Figure")[1:] == ["vLLM: `vllm`", "SGLang: `sglang`"]
    # Σ output tokens / Σ durations of summary.json (the records hold 10 tokens a call).
    assert _row(md, "output tok/s")[1:] == ["300", "600"]
    assert _row(md, "structured-task output tok/s")[1:] == ["500", "900"]
    assert _row(md, "peak GPU memory MiB")[1:] == ["21,000", "16,000"]
    assert _row(md, "schema validity %")[1:] == ["100.0", "90.0"]
    # field_accuracy only: the chat cells' final_number (10 %) stays out.
    assert _row(md, "accuracy %")[1:] == ["80.0", "83.0"]
    # vllm-nocache over vllm, mean TTFT weighted by calls: 125 / 75.
    assert _row(md, "prefix-cache benefit")[1] == "1.67x"
    assert _row(md, "KV-cache capacity")[1] == "120,000"
    assert _row(md, "memory fraction")[1:] == ["0.4", "0.4"]


def test_latency_percentiles_pool_the_records(tmp_path: Path) -> None:
    md = render(write_run(tmp_path), _opts())
    # Both vllm cells' calls, 10..50 ms each (the summary's medians say 999).
    assert _row(md, "p50 TTFT ms")[1:] == ["30.0", "7.0"]
    assert _row(md, "p50 TPOT ms")[1] == "3.0"
    md = render(write_run(tmp_path / "b"), _opts(throughput_task=["invoice"]))
    assert _row(md, "output tok/s (tasks invoice)")[1:] == ["500", "900"]


def test_a_missing_figure_says_not_measured(tmp_path: Path) -> None:
    md = render(write_run(tmp_path, gpu=False), _opts())
    assert _row(md, "KV-cache capacity")[2] == "not measured"
    assert _row(md, "prefix-cache benefit")[2] == "not measured (no cache-off twin)"
    assert _row(md, "peak GPU memory MiB")[1:] == ["not measured", "not measured"]
    memory = _row(md, CLAIM["peak_gpu_mib"].says)
    assert memory[2:4] == ["**not comparable**", "vLLM and SGLang: not measured in this run"]


def test_verdicts_on_a_run(tmp_path: Path) -> None:
    # 1532 / 661 = 2.318: SGLang at 2.318 x 300 = 695.3 tok/s over 2 s, 300 of them from chat.
    md = render(write_run(tmp_path / "a", sglang_tokens=1091), _opts())
    assert _row(md, CLAIM["output_tok_s"].says)[2] == "**confirmed**"
    # 900 / 500 = 1.80 against 1200 / 893 = 1.34; memory 16000 / 21000 = 0.76 against 0.83.
    assert _row(md, CLAIM["structured_tok_s"].says)[2] == "**refuted**"
    memory = _row(md, CLAIM["peak_gpu_mib"].says)
    assert memory[2] == "**refuted**" and memory[3].startswith("at equal memory fractions (0.4)")
    # 50 calls each cannot tell +3 pp from 0.
    assert _row(md, CLAIM["accuracy"].says)[2] == "**not comparable**"
    md = render(write_run(tmp_path / "b"), _opts())
    assert _row(md, CLAIM["output_tok_s"].says)[2] == "**refuted**"


def test_untestable_claims_say_why(tmp_path: Path) -> None:
    md = render(write_run(tmp_path / "a", fractions=("0.4", "0.85")), _opts())
    assert "memory fractions differ" in _row(md, CLAIM["peak_gpu_mib"].says)[3]
    md = render(write_run(tmp_path / "b", dummy=True), _opts())
    assert _row(md, CLAIM["accuracy"].says)[3].startswith("random weights")


def test_ratio_verdict_follows_the_tolerance() -> None:
    tol = ratio_tolerance(DEFAULT_BAND, DEFAULT_BAND)
    assert tol == pytest.approx(0.0609)
    assert ratio_verdict(2.3, 2.3 * 1.06, tol).word == "confirmed"
    assert ratio_verdict(2.3, 2.3 * 0.94, tol).word == "confirmed"
    assert ratio_verdict(2.3, 2.3 * 1.07, tol).word == "refuted"
    assert ratio_verdict(2.3, 1.0, tol).word == "refuted"


def test_a_cross_check_that_missed_its_target_widens_the_band() -> None:
    xc = CrossCheck((0.97, 1.03), False, {"vllm": (1.01, 0.90), "sglang": (1.0,)})
    assert engine_band(xc, "vllm")[0] == pytest.approx(0.10)
    assert engine_band(xc, "sglang")[0] == pytest.approx(0.03)
    assert engine_band(xc, "openai")[0] == pytest.approx(0.03)
    assert engine_band(None, "vllm")[0] == DEFAULT_BAND
    assert ratio_tolerance(0.10, 0.03) == pytest.approx(0.133)


def test_rate_verdict_against_the_interval_of_the_difference() -> None:
    claimed = CLAIM["accuracy"].difference
    many = 10_000
    assert rate_verdict(claimed, PooledRate(0.95, many), PooledRate(0.92, many)).word == "confirmed"
    assert rate_verdict(claimed, PooledRate(0.92, many), PooledRate(0.95, many)).word == "refuted"
    # Equal rates: 0 is in the interval and +3 pp is not, with this many calls.
    assert rate_verdict(claimed, PooledRate(0.93, many), PooledRate(0.93, many)).word == "refuted"
    assert rate_verdict(claimed, PooledRate(0.95, 20), PooledRate(0.92, 20)).word == "not comparable"


def test_cli_links_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path)
    xc = tmp_path / "xc" / "crosscheck.json"
    xc.parent.mkdir()
    entry = {"engine": "vllm", "path": "vllm-chat", "metric": "output_throughput", "ratio": 1.2}
    xc.write_text(json.dumps({"target": [0.97, 1.03], "all_within_target": False, "entries": [entry]}))
    args = [str(run), "--crosscheck", str(xc), "--relative-to", str(xc.parent), "--pick", "sglang=sglang"]
    assert main(args) == 0
    out = capsys.readouterr().out
    throughput = _row(out, CLAIM["output_tok_s"].says)
    assert throughput[4] == "[run](../demo/run1), [cross-check](crosscheck.json)"
    assert "vllm 20.0 % (cross-check: worst ratio 1.200 of 1)" in throughput[3]
    assert _row(out, CLAIM["accuracy"].says)[4] == "[run](../demo/run1)"
    assert main([str(run), "--pick", "sglang=nope"]) == 2
    assert "no such engine" in capsys.readouterr().err
    assert main([str(run), "--pick", "tgi=x"]) == 2


def test_the_committed_smollm2_run() -> None:
    """On a packed GPU run: the throughput row is its summary's Σ tokens / Σ durations."""
    run = ROOT / "results" / "gpu" / "gpu" / "20261128T160753Z_b93a04"
    md = render(run, _opts(pick=["vllm=vllm", "sglang=sglang-generate"]))
    cells = json.loads((run / "summary.json").read_text())["cells"]
    mine = [c for c in cells if c["engine"] == "vllm"]
    want = sum(c["total_output_tokens"] for c in mine) / sum(c["duration_s"] for c in mine)
    assert _row(md, "output tok/s")[1] == f"{want:,.0f}"
    # Its SGLang facts were kept in /server_info only; the program-mode engine has no TTFT.
    assert _row(md, "KV-cache capacity")[2] == "762,862"
    md = render(run, _opts())
    assert _row(md, "Figure")[2] == "SGLang: `sglang`" and _row(md, "p50 TTFT ms")[2] == "not measured"
