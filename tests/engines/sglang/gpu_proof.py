"""Real-server proof of the SGLang engine: native programs and /generate calls on a live SGLang server.

Run on a GPU machine (no pytest needed there)::

    PYTHONPATH=runner:/tmp/site-sglang python3 tests/engines/sglang/gpu_proof.py \\
        --model /tmp/payload/smollm2 --out $OUT -- --attention-backend triton \\
        --sampling-backend pytorch --grammar-backend xgrammar --mem-fraction-static 0.5

It launches the server through ``SglangEngine`` (or attaches with ``--url``), runs JSON-schema,
regex, select, constrained choice, multi-turn and fork items in program mode, then the same plus a
GBNF grammar in generate mode on the same server, writes every record to ``OUT/records.jsonl``
and a summary to ``OUT/summary.json``, and exits non-zero when a check fails.
test_gpu_server.py runs the same under pytest (``-m gpu``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from structbench.engines.base import ExecContext
from structbench.engines.registry import EngineEnv
from structbench.engines.sglang.engine import SglangEngine
from structbench.ir import (
    Branch,
    Choice,
    Constraint,
    Gen,
    Grammar,
    JsonSchema,
    Message,
    Regex,
    Turn,
    WorkItem,
)
from structbench.program import run_item
from structbench.records import CallRecord, RecordWriter
from structbench.spec.engines import LaunchSpec, SglangEngineSpec

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "species": {"enum": ["cat", "dog", "bird"]},
    },
    "required": ["name", "age", "species"],
    "additionalProperties": False,
}
JSON_C = JsonSchema(json.dumps(SCHEMA, sort_keys=True))
CODE = r"[A-Z]{3}-[0-9]{4}"
CODE_C = Regex(CODE)
COLORS = ("red", "green", "blue")
LONG = "You are a careful assistant who answers in the requested format. " * 40


def _one(item_id: str, c: Constraint, user: str, strategy: str = "constrained") -> WorkItem:
    gen = Gen("out", c, max_tokens=80, choice_strategy=strategy)  # type: ignore[arg-type]
    return WorkItem(item_id, "proof", c.kind, (Message("system", LONG),), (Branch((Turn(user, gen),)),))


def items(grammar: bool) -> list[WorkItem]:
    """The proof workload (grammar only for generate mode)."""
    out = [_one(f"json-{i}", JSON_C, f"Invent pet number {i}. Reply in JSON.") for i in range(4)]
    out += [_one(f"code-{i}", CODE_C, f"Give product code {i}.") for i in range(2)]
    out.append(_one("select", Choice(COLORS), "What color is grass?", "select"))
    out.append(_one("choice", Choice(COLORS), "What color is the sky?"))
    chat = (
        Turn("Invent a pet as JSON.", Gen("pet", JSON_C, max_tokens=80)),
        Turn("Its code?", Gen("code", CODE_C)),
    )
    out.append(WorkItem("chat", "proof", "chat", (Message("system", LONG),), (Branch(chat),)))
    fan = tuple(Branch((Turn(f"Give code {i}.", Gen("c", CODE_C, max_tokens=12)),)) for i in range(4))
    out.append(
        WorkItem(
            "fork",
            "proof",
            "fanout",
            (Message("system", LONG), Message("user", "Codes look like ABC-1234.")),
            fan,
        )
    )
    if grammar:
        g = Grammar((("gbnf", 'root ::= "yes" | "no"'),))
        out.append(_one("grammar", g, "Is the sky blue? Answer yes or no."))
    return out


def check(recs: list[CallRecord], mode: str) -> list[str]:
    """Problems found in one mode's records (empty when all is well)."""
    bad: list[str] = []
    for r in recs:
        tag = f"{mode}:{r.item_id}:{r.gen_name}"
        if not r.ok:
            bad.append(f"{tag}: error {r.error}")
            continue
        if r.constraint == "json_schema":
            v = json.loads(r.text)
            if set(v) != {"name", "age", "species"} or v["species"] not in ("cat", "dog", "bird"):
                bad.append(f"{tag}: schema mismatch {r.text!r}")
        if r.constraint == "regex" and not re.fullmatch(CODE, r.text):
            bad.append(f"{tag}: regex mismatch {r.text!r}")
        if r.constraint == "choice" and r.text not in COLORS:
            bad.append(f"{tag}: choice mismatch {r.text!r}")
        if r.constraint == "grammar" and r.text not in ("yes", "no"):
            bad.append(f"{tag}: grammar mismatch {r.text!r}")
        if mode == "generate" and r.strategy != "sgl.select" and r.t_first_token is None:
            bad.append(f"{tag}: no TTFT in generate mode")
    fork = [r for r in recs if r.item_id == "fork"]
    if fork and not all((r.cached_tokens or 0) > 100 for r in fork):
        bad.append(f"{mode}: fork branches did not hit the prefix cache: {[r.cached_tokens for r in fork]}")
    return bad


async def _run(engine: SglangEngine, work: list[WorkItem]) -> list[CallRecord]:
    ctx = ExecContext(cell_id="proof", clock=time.perf_counter, t_scheduled=time.perf_counter())
    done = await asyncio.gather(*(run_item(engine, i, ctx) for i in work))
    return [r for recs in done for r in recs]


def _row(r: CallRecord) -> dict[str, Any]:
    e2e = None if r.t_done is None or r.t_sent is None else round(r.t_done - r.t_sent, 4)
    ttft = None if r.t_first_token is None or r.t_sent is None else round(r.t_first_token - r.t_sent, 4)
    return {
        "item": r.item_id, "gen": r.gen_name, "strategy": r.strategy, "ok": r.ok, "text": r.text[:100],
        "prompt": r.prompt_tokens, "completion": r.completion_tokens, "cached": r.cached_tokens,
        "finish": r.finish_reason, "e2e_s": e2e, "ttft_s": ttft, "error": r.error,
    }  # fmt: skip


async def prove(model: str, url: str | None, server_args: list[str], out: Path) -> dict[str, Any]:
    """Run both modes on one server; return the summary (``problems`` empty on success)."""
    out.mkdir(parents=True, exist_ok=True)
    env = EngineEnv(workdir=out)
    launch = (
        None
        if url
        else LaunchSpec(model=model, python=sys.executable, args=tuple(server_args), startup_timeout_s=550)
    )
    prog = SglangEngine(SglangEngineSpec(name="sglang-program", url=url, launch=launch), env)
    t0 = time.perf_counter()
    info = await prog.start()
    summary: dict[str, Any] = {
        "startup_s": round(time.perf_counter() - t0, 1),
        "version": info.version,
        "extra": dict(info.extra),
    }
    summary["extra"].pop("server_info", None)
    try:
        gen = SglangEngine(SglangEngineSpec(name="sglang-generate", url=info.url, mode="generate"), env)
        await gen.start()
        try:
            t1 = time.perf_counter()
            p_recs = await _run(prog, items(grammar=False))
            t2 = time.perf_counter()
            g_recs = await _run(gen, items(grammar=True))
            t3 = time.perf_counter()
        finally:
            await gen.close()
    finally:
        await prog.close()
    with RecordWriter(out / "records.jsonl") as w:
        w.write_all(p_recs + g_recs)
    summary.update(
        program_wall_s=round(t2 - t1, 3),
        generate_wall_s=round(t3 - t2, 3),
        program=[_row(r) for r in p_recs],
        generate=[_row(r) for r in g_recs],
        problems=check(p_recs, "program") + check(g_recs, "generate"),
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str]) -> int:
    """CLI entry: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--url")
    p.add_argument("--out", default="proof-out")
    args, server_args = p.parse_known_args(argv)
    summary = asyncio.run(prove(args.model, args.url, [a for a in server_args if a != "--"], Path(args.out)))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("program", "generate")}, indent=1))
    for mode in ("program", "generate"):
        for row in summary[mode]:
            print(mode, json.dumps(row))
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
