"""structbench's arm of the cross-check: one concurrency level through structbench's Python API.

It builds one work item per prompt (one user message, no system prompt, ``Gen(max_tokens=N)``
with N that request's length from the workload: fixed, or drawn once with a spread),
drives them with ``load.driver.drive`` in closed loop at ``--concurrency``, and writes
``result.json`` (structbench's metrics, plus the same records under the reference formulas)
and ``records.jsonl.gz`` (every call record). The orchestrator (``crosscheck.py``) flushes
the prefix cache before it starts this process, as it does for the reference clients.

Engines, per path (each with ``ignore_eos`` in the request):

* ``vllm-chat``: ``VllmEngine`` on ``/v1/chat/completions``.
* ``sglang-generate``: ``SglangEngine`` in ``generate`` mode (native ``/generate``, the chat
  rendered client-side). ``extra_body`` is merged into ``sampling_params``; it also clears
  ``stop``: structbench adds the template's end-of-turn string there, and SGLang ends a
  generation on a stop string even with ``ignore_eos`` (``Req._check_str_based_finish`` in
  0.5.17 matches the decoded tail, special tokens included), which would cut outputs short
  of the fixed length the reference client gets.
* ``sglang-oai-chat``: ``OpenAIEngine`` on SGLang's ``/v1/chat/completions``.

Usage (from ``crosscheck.py``)::

    PYTHONPATH=runner:... python3 benchmarks/gpu/crosscheck_sbarm.py --path vllm-chat \\
        --url http://127.0.0.1:8100 --model M --workload W.json --n 64 --concurrency 16 --out DIR
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from crosscheck_results import Timing, refdef_metrics
from crosscheck_workload import load_workload

from structbench.engines.base import Engine
from structbench.engines.registry import EngineEnv
from structbench.ir import Branch, Gen, Turn, WorkItem
from structbench.load.arrivals import LoadPoint
from structbench.load.driver import DriveConfig, drive
from structbench.metrics import CellInfo, CellRuntime, SummaryOptions, summarize_cell
from structbench.records import CallRecord

TASK = "crosscheck"


def work_items(prompts: Sequence[str], output_lens: Sequence[int]) -> list[WorkItem]:
    """One single-turn, unconstrained item per prompt: no system prompt, no prefix.

    Each item's ``max_tokens`` is its own request's length (with ``ignore_eos``, the exact
    length), so structbench generates what the reference clients read from their datasets.
    """
    return [
        WorkItem(f"{TASK}/{i}", TASK, "none", (), (Branch((Turn(p, Gen("out", max_tokens=n)),)),))
        for i, (p, n) in enumerate(zip(prompts, output_lens, strict=True))
    ]


def make_engine(path: str, url: str, model: str, workdir: Path) -> Engine:
    """The structbench engine for a path, sending ``ignore_eos`` (see the module docstring)."""
    env = EngineEnv(workdir)
    if path == "vllm-chat":
        from structbench.engines.vllm import VllmEngine
        from structbench.spec.engines import VllmEngineSpec

        return VllmEngine(VllmEngineSpec(url=url, model=model), env, extra_body={"ignore_eos": True})
    if path == "sglang-generate":
        from structbench.engines.sglang.engine import SglangEngine
        from structbench.spec.engines import SglangEngineSpec

        # Any: extra_body on SglangEngine and OpenAIEngine lands with the engine-seam work.
        sglang_cls: Any = SglangEngine
        spec = SglangEngineSpec(url=url, mode="generate")
        return cast(Engine, sglang_cls(spec, env, extra_body={"ignore_eos": True, "stop": []}))
    if path == "sglang-oai-chat":
        from structbench.engines.openai import OpenAIEngine
        from structbench.spec.engines import OpenAIEngineSpec

        openai_cls: Any = OpenAIEngine
        ospec = OpenAIEngineSpec(url=url, model=model, constraints=("none",))
        return cast(Engine, openai_cls(ospec, env, extra_body={"ignore_eos": True}))
    raise SystemExit(f"unknown path {path!r}")


def _timings(recs: list[CallRecord]) -> list[Timing]:
    return [
        Timing(r.t_sent, r.t_first_token, r.t_done, r.completion_tokens or 0)
        for r in recs
        if r.ok and r.t_sent is not None and r.t_first_token is not None and r.t_done is not None
    ]


def steady_ttft_ms(recs: list[CallRecord], first_wave: int) -> float | None:
    """Mean TTFT of the calls after the first ``first_wave`` in send order (see crosscheck_results)."""
    ts = sorted(_timings(recs), key=lambda t: t.t_sent)[first_wave:]
    return sum(t.t_first - t.t_sent for t in ts) / len(ts) * 1000 if ts else None


def summary(
    recs: list[CallRecord], cell_id: str, engine: str, cpu_s: float, first_wave: int
) -> dict[str, object]:
    """structbench's own figures (``summarize_cell``) and the reference-formula recomputation."""
    info = CellInfo(cell_id=cell_id, engine=engine, task=TASK)
    cell = summarize_cell(info, CellRuntime(), recs, {}, SummaryOptions(bootstrap=0))
    tp, lat = cell.throughput, cell.latency
    ok = [r for r in recs if r.ok]
    return {
        "output_throughput": tp.output_throughput,
        "mean_ttft_ms": lat.ttft.mean if lat.ttft.n else None,
        "mean_tpot_ms": lat.tpot.mean if lat.tpot.n else None,
        "mean_itl_ms": lat.itl.mean if lat.itl.n else None,
        "mean_e2el_ms": lat.e2el.mean if lat.e2el.n else None,
        "mean_ttft_steady_ms": steady_ttft_ms(recs, first_wave),
        "completed": cell.counts.completed,
        "failed": cell.counts.failed,
        "duration_s": tp.duration_s,
        "input_lens": [r.prompt_tokens or 0 for r in ok],
        "output_lens": [r.completion_tokens or 0 for r in ok],
        "cached_tokens": sum(r.cached_tokens or 0 for r in ok),
        "errors": sorted({r.error for r in recs if r.error})[:5],
        "client_cpu_s": cpu_s,
        "refdef": refdef_metrics(_timings(recs)),
    }


async def run_arm(args: argparse.Namespace) -> dict[str, object]:
    """Start the engine, drive the items, close; the summary of the records."""
    w = load_workload(Path(args.workload)).head(args.n)
    items = work_items(w.prompts, w.request_output_lens())
    out = Path(args.out)
    engine = make_engine(args.path, args.url, args.model, out)
    info = await engine.start()
    records: list[CallRecord] = []
    c = args.concurrency
    point = LoadPoint("concurrency", c, math.inf, "poisson", 1.0, c)
    cell_id = f"{args.path}.c{c}"
    try:
        cpu0 = time.process_time()
        await drive(engine, items, point, DriveConfig(cell_id, seed=0, warmup=0), records.extend)
        cpu = time.process_time() - cpu0
    finally:
        await engine.close()
    with gzip.open(out / "records.jsonl.gz", "wt", encoding="utf-8") as fh:
        for r in records:
            fh.write(r.to_json() + "\n")
    doc = summary(records, cell_id, engine.name, cpu, first_wave=c)
    doc["engine_info"] = {"name": info.name, "kind": info.kind, "model": info.model, "version": info.version}
    return doc


def main() -> None:
    """Parse the arguments, run the arm, write ``result.json``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--path", required=True, choices=("vllm-chat", "sglang-generate", "sglang-oai-chat"))
    p.add_argument("--url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    doc = asyncio.run(run_arm(args))
    (Path(args.out) / "result.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    failed = doc["failed"]
    print(f"structbench {args.path} c{args.concurrency}: {doc['completed']} ok, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
