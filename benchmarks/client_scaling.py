"""Send rate against the number of client processes, and send lag at 1,000 req/s (``load.clients``).

Against ``fake_openai_server.py`` (short answers, no model), it sends ``--num-requests``
requests all due at once (an infinite-rate open loop) from N = 1, 2, 4, ... clients, and prints
the aggregate send rate (requests / the span of their ``t_sent``) and the completion rate:
the send rate grows with N until the server (one Python process) saturates, after which the
completion rate stops growing. N = 1 is the single-client driver of an ordinary cell; N > 1
goes through :func:`structbench.load.clients.drive_clients`, as a suite with ``clients: N``.

Then it runs ``--lag-requests`` requests at ``--lag-rate`` req/s (Poisson, open loop) and
prints the p50/p99/max send lag (``t_sent - t_scheduled``): first one client whose waits are
plain ``asyncio.sleep`` (late by up to epoll's millisecond), then the driver's default
``precise_sleep`` for each ``--lag-clients``; the target is a p99 of at most 1 ms at 1,000
req/s. All figures come from one run.

Usage::

    python benchmarks/client_scaling.py
    python benchmarks/client_scaling.py --clients 1 2 4 --num-requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from client_overhead import make_prompts, work_items

from structbench.engines.launch import ServerConfig, ServerProcess, free_port
from structbench.engines.openai import OpenAIEngine
from structbench.engines.registry import EngineEnv
from structbench.load.arrivals import LoadPoint
from structbench.load.clients import Fleet, drive_clients
from structbench.load.driver import DriveConfig, drive
from structbench.records import CallRecord
from structbench.spec.engines import OpenAIEngineSpec


async def _point(
    url: str, n: int, point: LoadPoint, seed: int, workdir: Path, tokens: int, plain_sleep: bool = False
) -> list[CallRecord]:
    """Send ``n`` requests of ``tokens`` tokens at ``point``; returns the merged records."""
    spec = OpenAIEngineSpec(url=url, constraints=("none",))
    engine = OpenAIEngine(spec, EngineEnv(workdir))
    await engine.start()
    items = work_items(make_prompts(n, 8, seed), tokens)
    out: list[CallRecord] = []
    cfg = DriveConfig(f"scaling-{point.label}-n{point.clients}", seed)
    if plain_sleep:  # asyncio.sleep, which epoll's whole milliseconds make late
        cfg = replace(cfg, sleep=asyncio.sleep)
    try:
        if point.clients == 1:
            await drive(engine, items, point, cfg, out.extend)
        else:
            await drive_clients(engine, Fleet(spec), items, point, cfg, out.extend)
    finally:
        await engine.close()
    return out


def _rates(recs: Sequence[CallRecord]) -> tuple[float, float, int]:
    ok = [r for r in recs if r.ok and r.t_sent is not None and r.t_done is not None]
    sent = sorted(r.t_sent for r in ok if r.t_sent is not None)
    done = [r.t_done for r in ok if r.t_done is not None]
    span_sent = sent[-1] - sent[0] if len(sent) > 1 else math.nan
    span_all = max(done) - sent[0] if ok else math.nan
    return len(sent) / span_sent, len(ok) / span_all, len(recs) - len(ok)


def _pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


async def main_async(args: argparse.Namespace) -> None:
    """Launch the fake server, run the scaling sweep and the lag points, print the figures."""
    workdir = Path(tempfile.mkdtemp(prefix="sb-scaling-"))
    port = free_port()
    script = Path(__file__).parent / "fake_openai_server.py"
    server = ServerProcess(
        ServerConfig(
            name="fake",
            argv=(sys.executable, str(script), "--port", str(port), "--itl-ms", str(args.fake_itl_ms)),
            log_path=workdir / "fake-server.log",
            health_url=f"http://127.0.0.1:{port}/health",
            startup_timeout_s=120,
        )
    )
    await server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        gap = f"{args.fake_itl_ms:g} ms apart"
        print(f"{args.num_requests} requests due at once, {args.tokens} tokens each ({gap})")
        print(f"{'clients':>8}{'sent/s':>12}{'completed/s':>14}{'failed':>8}")
        for k, n_clients in enumerate(args.clients):
            point = LoadPoint("rate", rate=math.inf, clients=n_clients)
            recs = await _point(url, args.num_requests, point, k, workdir, args.tokens)
            sent, done, failed = _rates(recs)
            print(f"{n_clients:>8}{sent:>12.0f}{done:>14.0f}{failed:>8}")
        print(
            f"\nsend lag at {args.lag_rate:g} req/s (Poisson, open loop), {args.lag_requests} requests",
            end="",
        )
        print(f" of {args.lag_tokens} tokens")
        print(f"{'clients':>8}{'sleep':>9}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'failed':>8}")
        runs = [(1, True)] + [(c, False) for c in args.lag_clients]
        for k, (n_clients, plain) in enumerate(runs):
            point = LoadPoint("rate", rate=args.lag_rate, clients=n_clients)
            recs = await _point(url, args.lag_requests, point, 100 + k, workdir, args.lag_tokens, plain)
            lag = [
                1000 * (r.t_sent - r.t_scheduled)
                for r in recs
                if r.t_sent is not None and r.t_scheduled is not None
            ]
            failed = sum(1 for r in recs if not r.ok)
            p50, p99 = statistics.median(lag), _pct(lag, 0.99)
            how = "asyncio" if plain else "precise"
            print(f"{n_clients:>8}{how:>9}{p50:>10.3f}{p99:>10.3f}{max(lag):>10.3f}{failed:>8}")
    finally:
        await asyncio.to_thread(server.stop)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--num-requests", type=int, default=2000)
    p.add_argument("--tokens", type=int, default=4, help="tokens per request of the send-rate sweep")
    p.add_argument("--lag-tokens", type=int, default=1, help="tokens per request of the lag points")
    p.add_argument("--fake-itl-ms", type=float, default=1.0, help="fake server: pause before each token")
    p.add_argument("--lag-rate", type=float, default=1000.0)
    p.add_argument("--lag-requests", type=int, default=3000)
    p.add_argument("--lag-clients", type=int, nargs="+", default=[1, 2])
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main_async(parse_args()))
