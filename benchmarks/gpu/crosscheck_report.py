"""``arms.jsonl`` (one line per finished arm) and the outputs: ``crosscheck.json`` and a table."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from crosscheck_results import TARGET, ArmMetrics, ArmOutcome, Entry

SCHEMA_VERSION = 1

#: How each client defines the compared moments (versions and files in crosscheck_results.py).
DEFINITIONS: dict[str, str] = {
    "ttft_start": "vllm bench and sglang.bench_serving: before the request body is encoded (SGLang "
    "also opens a new aiohttp session per request); structbench: after encoding, pooled connection",
    "first_token": "vllm bench chat: first chunk with choices (the empty role chunk, written just "
    "before the first token's); sglang.bench_serving and structbench: first chunk with text",
    "e2e_end": "vllm bench chat: last chunk before [DONE] (usage); sglang.bench_serving: the [DONE] "
    "line; structbench: body read to its end, after [DONE]",
    "tpot": "(E2E - TTFT) / (output tokens - 1), mean over requests, in all three",
    "itl": "vllm bench: one gap per chunk with choices, the role-to-first-content gap and the final "
    "(finish_reason, no text) chunk included; sglang.bench_serving /generate: a k-token chunk's gap "
    "split into k, chat: one gap per chunk with text; structbench: one gap per chunk with text "
    "(not held to the target)",
    "rate_mode": "not used here (closed loop, request rate inf); vLLM 0.26 sleeps a sampled gap "
    "before its first send, SGLang 0.5.17 sends the first at once, structbench sends at 0",
}


def outcome_to_json(o: ArmOutcome) -> str:
    """One ``arms.jsonl`` line."""
    return json.dumps(asdict(o), separators=(",", ":"))


def outcome_from_json(line: str) -> ArmOutcome:
    """Rebuild an outcome written by :func:`outcome_to_json`."""
    d = json.loads(line)
    m = d.get("metrics")
    metrics = None
    if isinstance(m, dict):
        metrics = ArmMetrics(
            **{k: v for k, v in m.items() if k not in ("input_lens", "output_lens", "refdef")},
            input_lens=tuple(m.get("input_lens") or ()),
            output_lens=tuple(m.get("output_lens") or ()),
            refdef=tuple((str(k), v) for k, v in m.get("refdef") or ()),
        )
    sc, st = d.get("server_cache"), d.get("server_ttft")
    fields = {k: v for k, v in d.items() if k not in ("metrics", "server_cache", "server_ttft")}
    return ArmOutcome(
        **fields,
        metrics=metrics,
        server_cache=None if sc is None else (sc[0], sc[1]),
        server_ttft=None if st is None else (st[0], st[1]),
    )


def read_outcomes(path: Path) -> list[ArmOutcome]:
    """Every outcome in ``arms.jsonl``; a rerun arm's last line wins."""
    if not path.exists():
        return []
    last: dict[str, ArmOutcome] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            o = outcome_from_json(line)
            last[o.arm_id] = o
    return list(last.values())


def entry_to_dict(e: Entry) -> dict[str, object]:
    """One entry of ``crosscheck.json``."""
    return {
        "engine": e.engine,
        "path": e.path,
        "concurrency": e.concurrency,
        "metric": e.metric,
        "structbench": e.structbench,
        "reference": e.reference,
        "ratio": e.ratio,
        "within_target": e.within_target,
        "gated": e.gated,
        "per_round": [{"round": r, "structbench": s, "reference": f} for r, s, f in e.per_round],
        "structbench_reference_formula": e.structbench_refdef,
        "checks": dict(e.checks),
        "output_len_spread": e.output_len_spread,
        "output_tokens_expected": e.output_tokens_expected,
        "commands": list(e.commands),
    }


def _arm_row(o: ArmOutcome) -> dict[str, object]:
    hits = None
    if o.server_cache is not None and o.server_cache[1] > 0:
        hits = o.server_cache[0] / o.server_cache[1]
    return {
        "arm": o.arm_id,
        "client": o.client,
        "returncode": o.returncode,
        "wall_s": round(o.wall_s, 2),
        "flushed": o.flushed,
        "server_prefix_hit_rate": hits,
        "client_cpu_s": None if o.client_cpu_s is None else round(o.client_cpu_s, 2),
        "client_cpu_peak": o.client_cpu_peak,
        "server_mean_ttft_ms": o.server_mean_ttft_ms(),
        "error": o.error,
    }


def crosscheck_doc(
    entries: Sequence[Entry], outcomes: Sequence[ArmOutcome], meta: Mapping[str, object]
) -> dict[str, object]:
    """The whole ``crosscheck.json``: meta (versions, servers, workload), entries, arms."""
    gated = [e for e in entries if e.gated]
    return {
        "schema_version": SCHEMA_VERSION,
        "target": list(TARGET),
        # Within target only when every check held too (a ratio over an incomplete workload is no verdict).
        "all_within_target": bool(gated)
        and all(e.within_target and all(dict(e.checks).values()) for e in gated),
        **meta,
        "definitions": DEFINITIONS,
        "entries": [entry_to_dict(e) for e in entries],
        "arms": [_arm_row(o) for o in sorted(outcomes, key=lambda o: o.arm_id)],
    }


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def ratio_table(entries: Sequence[Entry]) -> str:
    """A markdown table: one row per (path, concurrency, metric)."""
    lines = [
        "| path | c | metric | structbench | reference | ratio | in 0.97-1.03 | checks |",
        "|---|---:|---|---:|---:|---:|:---:|---|",
    ]
    for e in entries:
        bad = [k for k, ok in e.checks if not ok]
        verdict = "-" if e.within_target is None else ("yes" if e.within_target else "**no**")
        ratio = "-" if e.ratio is None else f"{e.ratio:.3f}"
        digits = 0 if e.metric == "output_throughput" else 2
        lines.append(
            f"| {e.path} | {e.concurrency} | {e.metric} | {_fmt(e.structbench, digits)} | "
            f"{_fmt(e.reference, digits)} | {ratio} | {verdict} | {', '.join(bad) or 'ok'} |"
        )
    return "\n".join(lines) + "\n"


#: Per-request fields left out of the packed raw data: texts (large, and not timing data).
_TEXT_KEYS = ("generated_texts", "text", "prompt")


def _strip_texts(raw: bytes, lines: bool) -> bytes:
    """A JSON document (``lines`` False) or a JSONL stream without its text fields."""
    text = raw.decode("utf-8")
    docs = [json.loads(ln) for ln in text.splitlines() if ln.strip()] if lines else [json.loads(text)]
    out = [
        json.dumps({k: v for k, v in d.items() if k not in _TEXT_KEYS}, separators=(",", ":")) for d in docs
    ]
    return ("\n".join(out) + "\n").encode()


def _compact(path: Path) -> bytes:
    """A file's bytes as packed: texts dropped from results and records, logs cut to the tail."""
    if path.name == "log.txt":
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-80:]).encode()
    if path.name == "records.jsonl.gz":
        with gzip.open(path) as fh:
            return _strip_texts(fh.read(), lines=True)
    if path.suffix in (".json", ".jsonl") and path.parent.parent.name == "arms":
        return _strip_texts(path.read_bytes(), lines=path.suffix == ".jsonl")
    return path.read_bytes()


def pack_raw(workdir: Path, out: Path) -> Path:
    """Every arm's per-request timing data, gzipped in one tar (what ``$OUT`` carries back)."""
    names = ["arms.jsonl", "servers.json", "crosscheck.json", "workload/workload.json"]
    files = [workdir / n for n in names if (workdir / n).exists()]
    files += sorted(p for p in (workdir / "arms").glob("*/*") if p.is_file())
    with tarfile.open(out, "w:gz") as tar:
        for f in files:
            data = _compact(f)
            name = str(f.relative_to(workdir))
            info = tarfile.TarInfo(name[: -len(".gz")] if name.endswith(".jsonl.gz") else name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out
