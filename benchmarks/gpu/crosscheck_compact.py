"""One compact per-request table of a cross-check's arms, for committing under ``results/``.

The packed arms (``crosscheck_raw.tgz``) hold every token's timestamp: several MiB per sitting,
more than ``results/`` may keep. This keeps, per request, what the three gated metrics are
computed from (send time where the client records it, TTFT, end-to-end latency, token counts),
as an xz-compressed CSV::

    python3 benchmarks/gpu/crosscheck_compact.py WORKDIR OUT.csv.xz

WORKDIR is a cross-check work folder, or the unpacked ``crosscheck_raw.tgz`` (``arms/<arm>/``
with ``result.json`` from ``vllm bench serve``, ``result.jsonl`` from ``sglang.bench_serving``,
or ``records.jsonl`` from structbench). ``send_ms`` is relative to the arm's first send
(``sglang.bench_serving`` records no send times: empty there).
"""

from __future__ import annotations

import csv
import io
import json
import lzma
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

COLUMNS = (
    "arm",
    "client",
    "round",
    "concurrency",
    "request",
    "send_ms",
    "ttft_ms",
    "e2el_ms",
    "input_len",
    "output_len",
)
ARM = re.compile(r"r(?P<round>\d+)-c(?P<c>\d+)-(?P<path>.+)-(?P<client>reference|structbench)$")


def _ms(x: float | None) -> str:
    return "" if x is None else f"{x * 1000:.3f}"


def _reference_rows(doc: dict[str, Any]) -> Iterator[tuple[float | None, float, float, int, int]]:
    starts: list[float] | None = doc.get("start_times")
    first = min(starts) if starts else 0.0
    for i, ttft in enumerate(doc["ttfts"]):
        e2el = ttft + sum(doc["itls"][i])  # both clients' e2e is the first token plus every gap after it
        send = None if starts is None else starts[i] - first
        yield send, ttft, e2el, int(doc["input_lens"][i]), int(doc["output_lens"][i])


def _structbench_rows(lines: list[str]) -> Iterator[tuple[float | None, float, float, int, int]]:
    recs = [json.loads(line) for line in lines if line.strip()]
    recs = [r for r in recs if not r.get("warmup") and r.get("t_first_token") is not None]
    first = min((r["t_sent"] for r in recs), default=0.0)
    for r in sorted(recs, key=lambda r: r["t_sent"]):
        ttft, e2el = r["t_first_token"] - r["t_sent"], r["t_done"] - r["t_sent"]
        yield r["t_sent"] - first, ttft, e2el, int(r["prompt_tokens"] or 0), int(r["completion_tokens"] or 0)


def arm_rows(arm_dir: Path) -> Iterator[list[str]]:
    """The CSV rows of one arm folder (none when it holds no readable result)."""
    m = ARM.match(arm_dir.name)
    if m is None:
        return
    if (arm_dir / "records.jsonl").exists():
        rows = _structbench_rows((arm_dir / "records.jsonl").read_text(encoding="utf-8").splitlines())
    elif (arm_dir / "result.json").exists():
        rows = _reference_rows(json.loads((arm_dir / "result.json").read_text(encoding="utf-8")))
    elif (arm_dir / "result.jsonl").exists():
        last = (arm_dir / "result.jsonl").read_text(encoding="utf-8").strip().splitlines()[-1]
        rows = _reference_rows(json.loads(last))
    else:
        return
    for i, (send, ttft, e2el, n_in, n_out) in enumerate(rows):
        head = [arm_dir.name, m["client"], m["round"], m["c"], str(i)]
        yield [*head, _ms(send), _ms(ttft), _ms(e2el), str(n_in), str(n_out)]


def compact(workdir: Path, out: Path) -> int:
    """Write every arm's rows to ``out`` (xz CSV); returns the number of requests."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    n = 0
    for arm_dir in sorted(p for p in (workdir / "arms").iterdir() if p.is_dir()):
        for row in arm_rows(arm_dir):
            w.writerow(row)
            n += 1
    out.write_bytes(lzma.compress(buf.getvalue().encode("utf-8"), preset=9))
    return n


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    count = compact(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{count} requests -> {sys.argv[2]} ({Path(sys.argv[2]).stat().st_size / 1024:.0f} KiB)")
