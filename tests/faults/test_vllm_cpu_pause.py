"""A real vllm-cpu server that stops answering (SIGSTOP) mid-cell, then comes back (SIGCONT)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from urllib.parse import urlparse

import pytest

from structbench.engines.registry import EngineEnv
from structbench.engines.vllm import VllmEngine
from structbench.ir import Branch, Gen, Regex, Turn, WorkItem
from structbench.load.arrivals import LoadPoint
from structbench.load.driver import DriveConfig, drive
from structbench.records import CallRecord
from structbench.spec.engines import VllmEngineSpec

pytestmark = pytest.mark.vllm_cpu


def _server_group(url: str) -> int:
    """Process group of whatever listens on the server's port (the API server and its engine core)."""
    psutil = pytest.importorskip("psutil")
    port = urlparse(url).port
    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return os.getpgid(conn.pid)
    pytest.skip(f"no local process listens on {url}")


def _items(n: int, tag: str) -> list[WorkItem]:
    gen = Gen("answer", Regex("[A-Z]{3}-[0-9]{4}"), max_tokens=12)
    return [
        WorkItem(f"{tag}/{i}", "pause", "regex", (), (Branch((Turn(f"Give a code, please ({i}).", gen),)),))
        for i in range(n)
    ]


async def _cell(engine: VllmEngine, items: list[WorkItem], cell: str) -> list[CallRecord]:
    out: list[CallRecord] = []
    point = LoadPoint("concurrency", 3, float("inf"), "poisson", 1.0, None)
    await drive(engine, items, point, DriveConfig(cell_id=cell, seed=0, cell_timeout_s=60), out.extend)
    return out


def test_paused_server_times_out_then_recovers(vllm_url: str, tmp_path: Path) -> None:
    group = _server_group(vllm_url)
    engine = VllmEngine(VllmEngineSpec(url=vllm_url, request_timeout_s=3.0), EngineEnv(workdir=tmp_path))

    async def main() -> tuple[list[CallRecord], list[CallRecord]]:
        await engine.start()
        try:
            os.killpg(group, signal.SIGSTOP)
            try:
                paused = await _cell(engine, _items(3, "paused"), "paused")
            finally:
                os.killpg(group, signal.SIGCONT)
            await asyncio.sleep(1.0)
            resumed = await _cell(engine, _items(3, "resumed"), "resumed")
        finally:
            await engine.close()
        return paused, resumed

    paused, resumed = asyncio.run(main())
    assert len(paused) == 3
    assert all(r.error is not None and "timeout" in r.error.lower() for r in paused), [
        r.error for r in paused
    ]
    assert all(r.ok and r.text for r in resumed), [r.error for r in resumed]
