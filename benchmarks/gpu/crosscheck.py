"""Cross-check structbench against vLLM's and SGLang's own benchmark clients on the same servers.

Each engine's own client and structbench send the same prompts to the same running server,
one arm at a time: ``vllm bench serve`` against vLLM's ``/v1/chat/completions``, and
``python -m sglang.bench_serving`` against SGLang's ``/generate`` and its OpenAI chat path.
Before every arm the prefix cache is flushed; the arms alternate over ``--rounds`` rounds at
each ``--concurrencies`` level; the output is ``crosscheck.json`` with one entry per engine,
path, concurrency and metric (output tok/s, mean TTFT, mean TPOT), holding both values, their
ratio (structbench / reference), the versions and the exact commands.

Steps (all take the same options; ``run`` resumes, skipping arms that already succeeded)::

    crosscheck.py plan                     # print every command, run nothing
    crosscheck.py prepare --tokenizer DIR  # the workload and each client's dataset files
    crosscheck.py warmup                   # untimed requests to each path's server, then a flush
    crosscheck.py run [--deadline-s 540]   # the arms, in order, until the deadline
    crosscheck.py report                   # crosscheck.json and crosscheck.md from arms.jsonl

Example (the device's layout; see ``crosscheck.sh``)::

    python3 benchmarks/gpu/crosscheck.py run --workdir /tmp/xcheck --model /tmp/payload/qwen-hf \\
        --vllm-url http://127.0.0.1:8100 --sglang-url http://127.0.0.1:8200 --paths vllm-chat
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, cast

from crosscheck_plan import (
    ENGINE_OF,
    PATHS,
    Arm,
    PathName,
    PlanConfig,
    Target,
    dataset_file,
    dataset_sizes,
    n_prompts,
    plan_arms,
)
from crosscheck_report import crosscheck_doc, outcome_to_json, pack_raw, ratio_table, read_outcomes
from crosscheck_results import (
    ArmMetrics,
    ArmOutcome,
    build_entries,
    parse_sglang,
    parse_structbench,
    parse_vllm,
)
from crosscheck_server import cache_counters, flush, record_versions, server_ttft, serving, warm_up
from crosscheck_workload import (
    Workload,
    build_workload,
    check_output_lens,
    export_sglang_custom,
    export_vllm_custom,
    load_tokenizer,
    load_workload,
    make_answers,
    output_lens_meta,
    save_workload,
)

ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (one parser: every step takes the same options)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("step", choices=("plan", "prepare", "warmup", "run", "report", "pack"))
    p.add_argument("--workdir", default="/tmp/xcheck")
    p.add_argument("--model", required=True, help="served model name (= model path for both servers)")
    p.add_argument("--tokenizer", help="tokenizer folder (default: --model)")
    p.add_argument("--vllm-url", default="http://127.0.0.1:8100")
    p.add_argument("--sglang-url", default="http://127.0.0.1:8200")
    p.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    p.add_argument("--concurrencies", default="16,64,256")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--input-len", type=int, default=512, help="tokens of each user prompt")
    p.add_argument("--output-len", type=int, default=256)
    spread = "F > 0: per-request output lengths uniform in [L(1-F), L(1+F)], mean L (breaks lock-step waves)"
    p.add_argument("--output-len-spread", type=float, default=0.0, help=spread)
    p.add_argument("--prompts-per-concurrency", type=int, default=4)
    p.add_argument("--min-prompts", type=int, default=64)
    p.add_argument("--max-prompts", type=int, default=1024)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--vllm-pythonpath", default="/tmp/site-vllm")
    p.add_argument("--sglang-pythonpath", default="/tmp/site-sglang:/tmp/site-ds")
    p.add_argument("--sb-pythonpath", default=f"{ROOT / 'runner'}:/tmp/site-sbdeps")
    p.add_argument("--sb-sglang-pythonpath", default=f"{ROOT / 'runner'}:/tmp/site-sglang")
    p.add_argument("--deadline-s", type=float, default=540.0, help="run: start no arm that would end later")
    p.add_argument("--dry-run", action="store_true", help="print every command (the plan step) and stop")
    p.add_argument("--flush-attempts", type=int, default=10, help="run: tries per flush, 0.5 s apart")
    p.add_argument("--pack-to", default="crosscheck_raw.tgz", help="pack: the tar.gz to write")
    p.add_argument("--warmup-n", type=int, default=256, help="warmup: untimed requests per path")
    p.add_argument("--warmup-concurrency", type=int, default=64)
    p.add_argument("--info", help="report: a JSON file merged into the document (e.g. server backends)")
    p.add_argument(
        "--words-as-tokens", action="store_true", help="prepare: no tokenizer, one word = one token (tests)"
    )
    return p.parse_args(argv)


def config(args: argparse.Namespace) -> PlanConfig:
    """The plan from the options."""
    tok = args.tokenizer or args.model
    targets: list[Target] = []
    for name in args.paths.split(","):
        if name not in PATHS:
            raise SystemExit(f"unknown path {name!r} (known: {', '.join(PATHS)})")
        path = cast(PathName, name)
        vllm = ENGINE_OF[path] == "vllm"
        targets.append(
            Target(
                path=path,
                url=args.vllm_url if vllm else args.sglang_url,
                model=args.model,
                tokenizer=tok,
                ref_pythonpath=args.vllm_pythonpath if vllm else args.sglang_pythonpath,
                sb_pythonpath=args.sb_sglang_pythonpath if path == "sglang-generate" else args.sb_pythonpath,
            )
        )
    return PlanConfig(
        targets=tuple(targets),
        workdir=Path(args.workdir),
        concurrencies=tuple(int(c) for c in args.concurrencies.split(",")),
        rounds=args.rounds,
        prompts_per_concurrency=args.prompts_per_concurrency,
        min_prompts=args.min_prompts,
        max_prompts=args.max_prompts,
        output_len=args.output_len,
        output_len_spread=args.output_len_spread,
        python=args.python,
    )


def flush_line(arm: Arm, cfg: PlanConfig) -> str:
    """The flush that precedes an arm, as a curl line (for ``plan``)."""
    t = next(t for t in cfg.targets if t.path == arm.path)
    route = "/reset_prefix_cache" if arm.engine == "vllm" else "/flush_cache"
    return f"curl -X POST {t.url}{route}"


def cmd_plan(cfg: PlanConfig, args: argparse.Namespace) -> None:
    """Print the prepare step, then every arm's flush and command, in run order."""
    print(f"# prepare: {cfg.workdir}/workload/workload.json + datasets for n in {dataset_sizes(cfg)}")
    spread = f" --output-len-spread {cfg.output_len_spread}" if cfg.output_len_spread else ""
    here = Path(__file__).resolve()
    print(f"{args.python} {here} prepare --model {args.model} --workdir {cfg.workdir}{spread}")
    for arm in plan_arms(cfg):
        print(f"\n# {arm.arm_id} ({arm.n_prompts} prompts)\n{flush_line(arm, cfg)}\n{arm.command()}")


def cmd_prepare(cfg: PlanConfig, args: argparse.Namespace) -> None:
    """Build the prompt pool once, then write each path's dataset file for each arm size."""
    no_tok = (None, None, None)
    tok, count, encoded = no_tok if args.words_as_tokens else load_tokenizer(args.tokenizer or args.model)
    n_max = max(dataset_sizes(cfg))
    t0 = time.monotonic()
    w = build_workload(n_max, args.input_len, cfg.output_len, 0, tok, count, cfg.output_len_spread)
    save_workload(w, cfg.workdir / "workload" / "workload.json")
    # SGLang's client reads each drawn length off its row's gpt turn: one of exactly that many tokens.
    answers = make_answers(w.output_lens, w.seed, encoded) if w.output_lens else None
    for n in dataset_sizes(cfg):
        part, ans = w.head(n), None if answers is None else answers[:n]
        export_vllm_custom(part, dataset_file(cfg, "vllm-chat", n))
        export_sglang_custom(part.rendered or part.prompts, dataset_file(cfg, "sglang-generate", n), ans)
        export_sglang_custom(part.prompts, dataset_file(cfg, "sglang-oai-chat", n), ans)
    mean_tokens = sum(w.rendered_tokens) / len(w.rendered_tokens) if w.rendered_tokens else None
    took = time.monotonic() - t0
    print(f"workload: {n_max} prompts, mean rendered tokens {mean_tokens}, stop {w.stop} ({took:.1f} s)")


def cmd_warmup(cfg: PlanConfig, args: argparse.Namespace) -> None:
    """Untimed requests to each path's server, so that no arm pays a fresh server's one-off costs."""
    w = load_workload(cfg.workdir / "workload" / "workload.json")
    n = min(args.warmup_n, len(w.prompts))
    for t in cfg.targets:
        engine = ENGINE_OF[t.path]
        prompts = w.rendered[:n] if t.path == "sglang-generate" and w.rendered else w.prompts[:n]
        t0 = time.monotonic()
        ok, sent = warm_up(engine, t.url, t.model, prompts, args.warmup_concurrency)
        flushed = flush(engine, t.url, attempts=args.flush_attempts)
        print(
            f"warm-up {t.path}: {ok}/{sent} ok in {time.monotonic() - t0:.1f} s, flushed {flushed}",
            flush=True,
        )


def _metrics(arm: Arm) -> ArmMetrics | None:
    if not arm.result.exists():
        return None
    if arm.client == "structbench":
        return parse_structbench(arm.result)
    parse = parse_vllm if arm.path == "vllm-chat" else parse_sglang
    return parse(arm.result, first_wave=arm.concurrency)


def _delta(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> tuple[float, float] | None:
    if before is None or after is None:
        return None
    return after[0] - before[0], after[1] - before[1]


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for children: the finished arms
    return ru.ru_utime + ru.ru_stime


def _proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a running process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_sampled(
    argv: Sequence[str],
    env: dict[str, str],
    log: IO[str],
    timeout_s: float,
    loaded: Callable[[], bool] | None = None,
) -> tuple[int, bool, float]:
    """Run one client to its end: (exit code, 124 when killed at ``timeout_s``; timed out; peak).

    The peak is the client's busiest 1-s CPU window.

    The window is in cores, sampled every 0.5 s: near 1.0 means the client, not the server, set
    the pace (the whole-process total also holds imports and tokenizer loading). With ``loaded``
    (e.g. "the server has requests running"), only windows that end under load count: a client's
    start-up (imports, tokenizer threads) would otherwise be its busiest second.
    """
    t0, peak = time.monotonic(), 0.0
    samples: list[tuple[float, float]] = []
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    while True:
        try:
            return proc.wait(timeout=0.5), False, round(peak, 3)
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if now - t0 > timeout_s:
            proc.kill()
            proc.wait()
            return 124, True, round(peak, 3)
        cpu = _proc_cpu_s(proc.pid)
        if cpu is None:
            continue
        samples.append((now, cpu))
        while len(samples) > 2 and now - samples[1][0] >= 1.0:
            samples.pop(0)  # keep the newest sample at least 1 s old as the window's start
        if now - samples[0][0] >= 1.0 and (loaded is None or loaded()):
            peak = max(peak, (cpu - samples[0][1]) / (now - samples[0][0]))


def run_arm(arm: Arm, cfg: PlanConfig, timeout_s: float, flush_attempts: int = 10) -> ArmOutcome:
    """Flush, run one arm's process, read its result; never raises for the arm's failures."""
    t = next(t for t in cfg.targets if t.path == arm.path)
    arm.outdir.mkdir(parents=True, exist_ok=True)
    arm.result.unlink(missing_ok=True)  # a rerun must not read an earlier attempt's result
    flushed = flush(arm.engine, t.url, attempts=flush_attempts)
    before, ttft_before = cache_counters(arm.engine, t.url), server_ttft(arm.engine, t.url)
    t0, cpu0 = time.monotonic(), _children_cpu_s()
    error = None
    with (arm.outdir / "log.txt").open("w", encoding="utf-8") as log:
        env = {**os.environ, **dict(arm.env)}
        rc, timed_out, peak = run_sampled(arm.argv, env, log, timeout_s, lambda: serving(arm.engine, t.url))
    if timed_out:
        error = f"timed out after {timeout_s:.0f} s"
    wall, cpu = time.monotonic() - t0, _children_cpu_s() - cpu0
    after, ttft_after = cache_counters(arm.engine, t.url), server_ttft(arm.engine, t.url)
    try:
        metrics = _metrics(arm)
    except (ValueError, KeyError, IndexError) as e:
        metrics, error = None, f"unreadable result: {e}"
    if metrics is None and error is None:
        error = f"no result (exit {rc}); see {arm.outdir / 'log.txt'}"
    return ArmOutcome(
        arm.arm_id, arm.path, arm.engine, arm.client, arm.concurrency, arm.round, arm.n_prompts,
        arm.command(), rc, wall, flushed, metrics, error, _delta(before, after), cpu, peak,
        _delta(ttft_before, ttft_after),
    )  # fmt: skip


def _estimate_s(arm: Arm, walls: dict[tuple[str, str, int], float]) -> float:
    """Expected wall time of an arm: a like arm's, else a guess from its size (H200, 1.5B model)."""
    return walls.get((arm.path, arm.client, arm.concurrency), 20.0 + arm.n_prompts / 16)


def _print_outcome(o: ArmOutcome) -> None:
    m = o.metrics
    figs = "-"
    if m is not None:
        tput, ttft, tpot = m.output_throughput or 0, m.mean_ttft_ms or 0, m.mean_tpot_ms or 0
        figs = f"{tput:,.0f} tok/s, ttft {ttft:.1f} ms, tpot {tpot:.2f} ms"
    note = "" if o.error is None else f"  ERROR {o.error}"
    cpu = "?" if o.client_cpu_s is None else f"{o.client_cpu_s:.1f}"
    print(
        f"[{o.arm_id}] {o.wall_s:.1f} s (cpu {cpu} s, peak {o.client_cpu_peak} cores), rc {o.returncode}, "
        f"flushed {o.flushed}: {figs}{note}"
    )


def cmd_run(cfg: PlanConfig, args: argparse.Namespace) -> None:
    """Run the arms not yet done, in plan order, while the deadline allows."""
    index = cfg.workdir / "arms.jsonl"
    _prepared(cfg)
    done = {o.arm_id for o in read_outcomes(index) if o.returncode == 0 and o.metrics is not None}
    walls = {(o.path, o.client, o.concurrency): o.wall_s for o in read_outcomes(index) if o.returncode == 0}
    record_versions(cfg.workdir / "servers.json", cfg.python, cfg.targets)
    t_start = time.monotonic()
    todo = [a for a in plan_arms(cfg) if a.arm_id not in done]
    for i, arm in enumerate(todo):
        left = args.deadline_s - (time.monotonic() - t_start)
        est = _estimate_s(arm, walls)
        if est > left:
            print(f"deadline: {len(todo) - i} arm(s) left for the next call, from {arm.arm_id}", flush=True)
            return
        o = run_arm(arm, cfg, min(left, max(4 * est, 120.0)), args.flush_attempts)
        with index.open("a", encoding="utf-8") as fh:
            fh.write(outcome_to_json(o) + "\n")
        if o.returncode == 0:
            walls[(o.path, o.client, o.concurrency)] = o.wall_s
        _print_outcome(o)
    print("all arms done", flush=True)


def _prepared(cfg: PlanConfig) -> Workload | None:
    """The prepared workload (None before ``prepare``); refused if prepared under another length rule."""
    wpath = cfg.workdir / "workload" / "workload.json"
    w = load_workload(wpath) if wpath.exists() else None
    if w is not None:
        check_output_lens(w, cfg.output_len, cfg.output_len_spread)
    return w


def cmd_report(cfg: PlanConfig, args: argparse.Namespace) -> None:
    """``crosscheck.json`` and ``crosscheck.md`` from every arm run so far (all paths)."""
    outcomes = read_outcomes(cfg.workdir / "arms.jsonl")
    w = _prepared(cfg)
    entries = build_entries(outcomes, cfg.output_len, w, min_rounds=cfg.rounds)
    servers = cfg.workdir / "servers.json"
    import structbench  # the runner on PYTHONPATH: its version goes in the document

    meta: dict[str, object] = {
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "structbench": {"version": structbench.__version__, "git_sha": os.environ.get("XC_GIT_SHA")},
        "servers": json.loads(servers.read_text(encoding="utf-8")) if servers.exists() else {},
        "workload": _workload_meta(cfg, w, args),
    }
    if args.info and Path(args.info).exists():
        meta["info"] = json.loads(Path(args.info).read_text(encoding="utf-8"))
    doc = crosscheck_doc(entries, outcomes, meta)
    (cfg.workdir / "crosscheck.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    table = ratio_table(entries)
    (cfg.workdir / "crosscheck.md").write_text(table, encoding="utf-8")
    print(table)


def _workload_meta(cfg: PlanConfig, w: Workload | None, args: argparse.Namespace) -> dict[str, object]:
    meta: dict[str, object] = {
        "input_len_target": args.input_len,
        "output_len": cfg.output_len,
        "concurrencies": list(cfg.concurrencies),
        "rounds": cfg.rounds,
        "prompts_per_arm": {str(c): n_prompts(cfg, c) for c in cfg.concurrencies},
    }
    meta |= output_lens_meta(w) if w is not None else {}
    if w is not None and w.rendered_tokens:
        meta["mean_rendered_prompt_tokens"] = sum(w.rendered_tokens) / len(w.rendered_tokens)
        meta["mean_user_prompt_tokens"] = sum(w.prompt_tokens or ()) / len(w.prompts)
        meta["structbench_sglang_stop_cleared"] = list(w.stop)
    return meta


def cmd_pack(cfg: PlanConfig, args: argparse.Namespace) -> None:
    """Per-request timing data of every arm, texts left out, in one tar.gz."""
    out = pack_raw(cfg.workdir, Path(args.pack_to))
    print(f"packed {out} ({out.stat().st_size / 2**20:.1f} MiB)")


def main(argv: list[str] | None = None) -> None:
    """Dispatch one step."""
    args = parse_args(argv)
    cfg = config(args)
    steps = {
        "plan": cmd_plan,
        "prepare": cmd_prepare,
        "warmup": cmd_warmup,
        "run": cmd_run,
        "report": cmd_report,
        "pack": cmd_pack,
    }
    steps["plan" if args.dry_run else args.step](cfg, args)


if __name__ == "__main__":
    main()
