"""The cross-check's arms: which client runs which path, in which order, with which command.

An *arm* is one client (structbench or the engine's own benchmark client) sending one
concurrency level's prompts to one path of one server. Every arm is its own process, so
neither client inherits the other's interpreter state, and every arm's exact command is
recorded. Arms alternate within a (round, concurrency, path): the reference goes first in
even rounds, structbench in odd ones, so a drift of the server over time falls on both.

Reference command lines, as read in the released sources:

* vLLM 0.26.0 ``vllm bench serve`` (``vllm/benchmarks/serve.py``, ``add_cli_args``;
  ``vllm/benchmarks/datasets/datasets.py``, ``add_dataset_parser``): ``--backend
  openai-chat`` with ``--endpoint /v1/chat/completions``; ``--dataset-name custom`` with
  ``--skip-chat-template`` (else the client templates the text and the server templates it
  again), ``--disable-shuffle`` and ``--no-oversample`` (the first ``--num-prompts`` rows,
  none repeated), ``--custom-output-len`` (-1: each row's ``output_tokens``, read in
  ``CustomDataset.sample``; any other value overrides every row); ``--ignore-eos``;
  ``--temperature 0`` (0.26 no longer sends a temperature by default, and structbench sends
  0); never ``--output-len``, which ``main_async`` copies over ``--custom-output-len``;
  ``--save-result --save-detailed`` keeps per-request ``ttfts``, ``itls``, ``input_lens``,
  ``output_lens``.
  ``--num-warmups`` is 0 and the endpoint ready check is off (``--ready-check-timeout-sec``
  0) by default, so nothing reaches the server before the measured requests.
* SGLang 0.5.17 ``python -m sglang.bench_serving`` (a shim over
  ``sglang/benchmark/serving.py``): ``--backend sglang`` (``/generate``) or
  ``sglang-oai-chat`` (``/v1/chat/completions``); ``--dataset-name custom`` (JSONL
  conversations, ``--sharegpt-output-len`` fixes the output length; without it
  ``sample_custom_requests`` counts each row's gpt turn with ``tokenizer.encode``); ignore_eos
  is on unless ``--disable-ignore-eos``; temperature 0.0 by default; ``--warmup-requests 0``
  (default 1: one request of the first prompt, which would warm the radix cache for one prompt);
  ``--flush-cache`` flushes after the (empty) warm-up; ``--output-file ... --output-details``.
  Its chat client sends no ``stream_options``; ``--extra-request-body`` adds
  ``include_usage`` so that the server streams the same chunks to both clients.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PathName = Literal["vllm-chat", "sglang-generate", "sglang-oai-chat"]
Client = Literal["reference", "structbench"]

PATHS: tuple[PathName, ...] = ("vllm-chat", "sglang-generate", "sglang-oai-chat")
ENGINE_OF: dict[PathName, str] = {
    "vllm-chat": "vllm",
    "sglang-generate": "sglang",
    "sglang-oai-chat": "sglang",
}
SGLANG_BACKEND: dict[PathName, str] = {"sglang-generate": "sglang", "sglang-oai-chat": "sglang-oai-chat"}

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Target:
    """One path of one running server, and the Python paths its two clients run with.

    Attributes:
        path: Which API and which reference client.
        url: Server base URL (``http://127.0.0.1:8100``).
        model: The served model name (vLLM and SGLang default to the model path).
        tokenizer: Tokenizer folder for the reference clients.
        ref_pythonpath: ``PYTHONPATH`` of the reference client (its engine's site folder).
        sb_pythonpath: ``PYTHONPATH`` of structbench's arm (the package, its dependencies).
    """

    path: PathName
    url: str
    model: str
    tokenizer: str
    ref_pythonpath: str
    sb_pythonpath: str


@dataclass(frozen=True, slots=True)
class PlanConfig:
    """What to cross-check and how much.

    Attributes:
        targets: The paths to run (one per path name).
        workdir: Where the workload files and every arm's outputs go.
        concurrencies: Closed-loop concurrency levels.
        rounds: Rounds of alternating arms (at least 2 for the issue's target).
        prompts_per_concurrency: Prompts per arm as a multiple of the concurrency.
        min_prompts: Floor on prompts per arm.
        max_prompts: Cap on prompts per arm (keeps one arm around 20 s on an H200).
        output_len: Output tokens per request (their mean with a spread).
        output_len_spread: F > 0: per-request lengths drawn in ``[L(1-F), L(1+F)]`` (see
            ``crosscheck_workload``); each reference client then reads them from its dataset.
        python: Interpreter for every arm (the device's ``python3`` has torch).
        seed: Seed of the reference clients' samplers (their shuffles).
    """

    targets: tuple[Target, ...]
    workdir: Path
    concurrencies: tuple[int, ...] = (16, 64, 256)
    rounds: int = 2
    prompts_per_concurrency: int = 4
    min_prompts: int = 64
    max_prompts: int = 1024
    output_len: int = 256
    output_len_spread: float = 0.0
    python: str = "python3"
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Arm:
    """One client run: its identity, its command and the files it reads and writes."""

    arm_id: str
    path: PathName
    client: Client
    concurrency: int
    round: int
    n_prompts: int
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    dataset: Path
    outdir: Path
    result: Path

    @property
    def engine(self) -> str:
        """The engine behind the path (``vllm`` or ``sglang``)."""
        return ENGINE_OF[self.path]

    def command(self) -> str:
        """The exact command as one shell line (environment first)."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env)
        return f"{env} {shlex.join(self.argv)}" if env else shlex.join(self.argv)


def n_prompts(cfg: PlanConfig, concurrency: int) -> int:
    """Prompts per arm: ``prompts_per_concurrency`` x concurrency, within the floor and cap."""
    n = max(cfg.min_prompts, cfg.prompts_per_concurrency * concurrency)
    return min(n, max(cfg.max_prompts, concurrency))


def dataset_file(cfg: PlanConfig, path: PathName, n: int) -> Path:
    """The file one path's arms read at ``n`` prompts (one per n: SGLang samples the whole file)."""
    return cfg.workdir / "workload" / f"{path}-n{n}.jsonl"


def vllm_reference_argv(cfg: PlanConfig, t: Target, c: int, n: int, outdir: Path) -> tuple[str, ...]:
    """``vllm bench serve`` on the chat path (see the module docstring for each flag)."""
    out_len = "-1" if cfg.output_len_spread else str(cfg.output_len)  # -1: each row's output_tokens
    return (
        cfg.python, "-m", "vllm.entrypoints.cli.main", "bench", "serve",
        "--backend", "openai-chat", "--base-url", t.url, "--endpoint", "/v1/chat/completions",
        "--model", t.model, "--tokenizer", t.tokenizer,
        "--dataset-name", "custom", "--dataset-path", str(dataset_file(cfg, t.path, n)),
        "--skip-chat-template", "--disable-shuffle", "--no-oversample",
        "--custom-output-len", out_len, "--num-prompts", str(n),
        "--max-concurrency", str(c), "--request-rate", "inf",
        "--ignore-eos", "--temperature", "0", "--seed", str(cfg.seed), "--disable-tqdm",
        "--percentile-metrics", "ttft,tpot,itl,e2el",
        "--save-result", "--save-detailed", "--result-dir", str(outdir), "--result-filename", "result.json",
    )  # fmt: skip


def sglang_reference_argv(cfg: PlanConfig, t: Target, c: int, n: int, outdir: Path) -> tuple[str, ...]:
    """``python -m sglang.bench_serving`` on ``/generate`` or the OpenAI chat path."""
    # With a spread, no fixed length: each row's gpt turn has its request's length in tokens.
    fixed = () if cfg.output_len_spread else ("--sharegpt-output-len", str(cfg.output_len))
    argv = [
        cfg.python, "-m", "sglang.bench_serving",
        "--backend", SGLANG_BACKEND[t.path], "--base-url", t.url,
        "--model", t.model, "--tokenizer", t.tokenizer,
        "--dataset-name", "custom", "--dataset-path", str(dataset_file(cfg, t.path, n)),
        "--num-prompts", str(n), *fixed,
        "--max-concurrency", str(c), "--request-rate", "inf",
        "--warmup-requests", "0", "--flush-cache", "--seed", str(cfg.seed), "--disable-tqdm",
        "--output-file", str(outdir / "result.jsonl"), "--output-details",
    ]  # fmt: skip
    if t.path == "sglang-oai-chat":
        argv += ["--extra-request-body", json.dumps({"stream_options": {"include_usage": True}})]
    return tuple(argv)


def structbench_argv(cfg: PlanConfig, t: Target, c: int, n: int, outdir: Path) -> tuple[str, ...]:
    """structbench's arm: ``crosscheck_sbarm.py`` drives the engine through the Python API."""
    return (
        cfg.python, str(HERE / "crosscheck_sbarm.py"),
        "--path", t.path, "--url", t.url, "--model", t.model,
        "--workload", str(cfg.workdir / "workload" / "workload.json"),
        "--n", str(n), "--concurrency", str(c), "--out", str(outdir),
    )  # fmt: skip


def make_arm(cfg: PlanConfig, t: Target, client: Client, c: int, rnd: int) -> Arm:
    """One arm with its command, dataset and output locations."""
    n = n_prompts(cfg, c)
    arm_id = f"r{rnd}-c{c}-{t.path}-{client}"
    outdir = cfg.workdir / "arms" / arm_id
    if client == "structbench":
        argv = structbench_argv(cfg, t, c, n, outdir)
        env = (("PYTHONPATH", t.sb_pythonpath),)
        result = outdir / "result.json"
    elif t.path == "vllm-chat":
        argv = vllm_reference_argv(cfg, t, c, n, outdir)
        env = (("PYTHONPATH", t.ref_pythonpath),)
        result = outdir / "result.json"
    else:
        argv = sglang_reference_argv(cfg, t, c, n, outdir)
        env = (("PYTHONPATH", t.ref_pythonpath),)
        result = outdir / "result.jsonl"
    return Arm(arm_id, t.path, client, c, rnd, n, argv, env, dataset_file(cfg, t.path, n), outdir, result)


def plan_arms(cfg: PlanConfig) -> list[Arm]:
    """Every arm in run order: rounds outermost, so a cut-short run still has whole rounds."""
    arms: list[Arm] = []
    for rnd in range(cfg.rounds):
        order: tuple[Client, Client] = (
            ("reference", "structbench") if rnd % 2 == 0 else ("structbench", "reference")
        )
        for c in cfg.concurrencies:
            for t in cfg.targets:
                arms.extend(make_arm(cfg, t, client, c, rnd) for client in order)
    return arms


def dataset_sizes(cfg: PlanConfig) -> list[int]:
    """The distinct prompt counts the arms use (one dataset file per path and count)."""
    return sorted({n_prompts(cfg, c) for c in cfg.concurrencies})
