"""Open a report in headless Chromium over the DevTools protocol and say what is wrong with it.

Chromium is driven directly (``--remote-debugging-port``, a websocket through aiohttp, which
structbench already depends on): no selenium or playwright. :func:`inspect_page` loads one file
and returns what a reader would see: console errors, each image's rendered and natural size, and
every table's title and cells. :func:`report_problems` compares that with the run's
``summary.json`` and ``plots/`` and lists every mismatch, so a test can assert an empty list and
a negative test can assert the right complaint.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
_WS = re.compile(r"DevTools listening on (ws://\S+)")
_VIEWPORT = (1400, 1000)
HEADLINE = "Headline: engines side by side"

# Runs in the page once it has loaded. Waits for every image to decode (a corrupt PNG rejects),
# then reports what is laid out: boxes of images, and tables with the heading just above them.
_PROBE = r"""
(async () => {
  const imgs = Array.from(document.images);
  const decoded = await Promise.all(imgs.map(i => i.decode().then(() => true, () => false)));
  const images = imgs.map((i, k) => {
    const s = getComputedStyle(i);
    // clientWidth/Height: the picture's box without its border.
    return {alt: i.alt, decoded: decoded[k], complete: i.complete, natural_w: i.naturalWidth,
            natural_h: i.naturalHeight, w: i.clientWidth, h: i.clientHeight,
            visible: s.display !== 'none' && s.visibility !== 'hidden' && Number(s.opacity) > 0};
  });
  const tables = Array.from(document.querySelectorAll('table')).map(t => {
    let h = t.closest('.tw') || t, title = '';
    for (let e = h.previousElementSibling; e; e = e.previousElementSibling) {
      if (/^H[1-6]$/.test(e.tagName)) { title = e.innerText.trim(); break; }
    }
    const r = t.getBoundingClientRect();
    return {title: title, w: r.width, h: r.height,
            rows: Array.from(t.rows).map(row => Array.from(row.cells).map(c => c.innerText.trim()))};
  });
  return {images: images, tables: tables, width: document.documentElement.scrollWidth};
})()
"""


def find_chromium() -> Path | None:
    """The Chromium binary on PATH, if any."""
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return Path(found)
    return None


@dataclass
class PageView:
    """What the browser rendered: ``images`` and ``tables`` as the probe returns them."""

    console_errors: list[str]
    images: list[dict[str, Any]]
    tables: list[dict[str, Any]]


class _Cdp:
    """A minimal DevTools client over one browser websocket (flattened sessions)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        await self._ws.send_str(json.dumps(msg))
        while True:
            reply = json.loads((await self._ws.receive(timeout=60)).data)
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    async def wait_event(self, method: str) -> None:
        if any(e.get("method") == method for e in self.events):
            return
        while True:
            event = json.loads((await self._ws.receive(timeout=60)).data)
            self.events.append(event)
            if event.get("method") == method:
                return


def _console_errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        p = e.get("params", {})
        if e.get("method") == "Runtime.exceptionThrown":
            out.append(f"exception: {p['exceptionDetails'].get('text', '')}")
        elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = (str(a.get("value", a.get("description", ""))) for a in p["args"])
            out.append("console: " + " ".join(args))
        elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
            out.append(f"log: {p['entry'].get('text', '')} {p['entry'].get('url', '')}".strip())
    return out


async def _inspect(ws_url: str, page: Path) -> PageView:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        cdp = _Cdp(ws)
        target = await cdp.call("Target.createTarget", url="about:blank")
        attached = await cdp.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        s = attached["sessionId"]
        for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
            await cdp.call(domain, s)
        w, h = _VIEWPORT
        await cdp.call(
            "Emulation.setDeviceMetricsOverride", s, width=w, height=h, deviceScaleFactor=1, mobile=False
        )
        await cdp.call("Page.navigate", s, url=page.resolve().as_uri())
        await cdp.wait_event("Page.loadEventFired")
        probe = await cdp.call(
            "Runtime.evaluate", s, expression=_PROBE, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in probe:
            raise RuntimeError(f"probe failed: {probe['exceptionDetails']}")
        value = probe["result"]["value"]
        # Console messages can trail the load event by a moment.
        await asyncio.sleep(0.2)
        await cdp.call("Runtime.evaluate", s, expression="0")
        return PageView(_console_errors(cdp.events), value["images"], value["tables"])


def inspect_page(chromium: Path, page: Path, timeout_s: float = 90) -> PageView:
    """Load ``page`` in a fresh headless Chromium and probe what it rendered."""
    # A profile of its own: no state shared with another browser or an earlier run.
    profile = tempfile.mkdtemp(prefix="sb-chromium-")
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    cmd = [str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"]  # fmt: skip
    # A session of its own, so that teardown reaches the renderer and helper processes too.
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        assert proc.stderr is not None
        ws_url = None
        for line in proc.stderr:
            if m := _WS.search(line):
                ws_url = m.group(1)
                break
        if ws_url is None:
            raise RuntimeError(f"Chromium exited with {proc.wait()} before its DevTools endpoint")
        return asyncio.run(asyncio.wait_for(_inspect(ws_url, page), timeout_s))
    finally:
        _stop(proc)
        _remove(Path(profile))


def _stop(proc: subprocess.Popen[str]) -> None:
    """Stop Chromium, then whatever of its session outlived it (renderer, GPU and crash helpers)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def _remove(profile: Path) -> None:
    """Remove the profile folder. A helper process that outlived the browser by a moment can still
    be writing into it ("Directory not empty" in a single rmtree): try again for a few seconds."""
    for _ in range(20):
        shutil.rmtree(profile, ignore_errors=True)
        if not profile.exists():
            return
        time.sleep(0.25)
    shutil.rmtree(profile)  # still there: say why


def _number(text: str) -> float | None:
    """The first number of a rendered cell (``2,264`` -> 2264.0, ``★ 385`` -> 385.0)."""
    m = re.search(r"-?\d[\d,]*(?:\.\d+)?", text)
    return float(m.group(0).replace(",", "")) if m else None


def _close(shown: float, value: float) -> bool:
    # The report rounds to 3 significant digits or 1 decimal: half a unit of the last digit shown.
    return math.isclose(shown, value, rel_tol=5e-3, abs_tol=0.051)


def _task_value_problems(tables: Mapping[str, dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """Every cell's req/s, out tok/s and p99 TTFT in its task table, against summary.json."""
    cols = {"req/s": "request_throughput", "out tok/s": "output_throughput", "p99 TTFT ms": "p99_ttft_ms"}
    out = []
    for cell in summary["cells"]:
        table = tables.get(f"Task {cell['task']}")
        if table is None:
            continue  # reported once, by the caller
        head, *rows = table["rows"]
        load = cell["load"]["label"]
        row = next((r for r in rows if r[0] == cell["engine"] and r[1].split(" ·")[0] == load), None)
        if row is None:
            out.append(f"{cell['cell_id']}: no row in table 'Task {cell['task']}'")
            continue
        for header, key in cols.items():
            value = cell[key]
            if header not in head or value is None:
                continue
            shown = _number(row[head.index(header)])
            if shown is None or not _close(shown, value):
                text = row[head.index(header)]
                out.append(f"{cell['cell_id']}: {header} shows {text!r}, summary has {value}")
    return out


def _headline_throughput(summary: dict[str, Any]) -> dict[str, float]:
    """Each engine's Σ output tokens / Σ durations over the task x load points all engines ran."""
    cells = summary["cells"]
    keys: dict[str, set[tuple[str, str]]] = {}
    for c in cells:
        keys.setdefault(c["engine"], set()).add((c["task"], c["load"]["label"]))
    common = set.intersection(*keys.values())
    tokens: dict[str, float] = {}
    durations: dict[str, float] = {}
    for c in cells:
        if (c["task"], c["load"]["label"]) in common and c["output_throughput"] is not None:
            tokens[c["engine"]] = tokens.get(c["engine"], 0) + c["total_output_tokens"]
            durations[c["engine"]] = durations.get(c["engine"], 0) + c["duration_s"]
    return {e: tokens[e] / durations[e] for e in tokens}


def _headline_problems(tables: Mapping[str, dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """The headline's output tok/s per engine, recomputed from summary.json's cells."""
    table = tables.get(HEADLINE)
    if table is None:
        return []
    head, *rows = table["rows"]
    row = next((r for r in rows if r[0] == "output tok/s"), None)
    if row is None:
        return ["headline: no output tok/s row"]
    out = []
    for engine, value in _headline_throughput(summary).items():
        shown = _number(row[head.index(engine)]) if engine in head else None
        if shown is None or not _close(shown, value):
            out.append(f"headline: {engine} output tok/s shows {shown}, summary gives {value:.1f}")
    return out


def report_problems(run_dir: Path, view: PageView) -> list[str]:
    """Mismatches between what Chromium rendered of ``run_dir/report.html`` and the run's files."""
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    problems = list(view.console_errors)
    want_plots = len(list((run_dir / "plots").glob("*.png")))
    if len(view.images) != want_plots:
        problems.append(f"{len(view.images)} images rendered, {want_plots} plots written")
    for img in view.images:
        ok = img["decoded"] and img["complete"] and img["visible"] and img["natural_w"] > 0 and img["w"] > 0
        # Shown at its size: the whole picture, scaled only down to the page width, aspect kept.
        if ok:
            ok = img["w"] <= img["natural_w"] + 0.5 and math.isclose(
                img["h"] / img["w"], img["natural_h"] / img["natural_w"], rel_tol=0.02
            )
        if not ok:
            problems.append(f"plot {img['alt']!r} not shown at its size: {img}")
    tables = {t["title"]: t for t in view.tables if t["w"] > 0 and t["h"] > 0 and len(t["rows"]) > 1}
    tasks = dict.fromkeys(c["task"] for c in summary["cells"])
    for title in (HEADLINE, *(f"Task {t}" for t in tasks)):
        if title not in tables:
            problems.append(f"table {title!r} missing")
    return problems + _task_value_problems(tables, summary) + _headline_problems(tables, summary)
