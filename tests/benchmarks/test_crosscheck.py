"""The pure parts of the GPU cross-check (benchmarks/gpu/crosscheck*.py), on CPU.

The workload export is checked against the loaders of the reference clients as they read
it (vLLM 0.26.0 ``CustomDataset``: a ``prompt`` column; SGLang 0.5.17 ``sample_custom_requests``:
``conversations[0]["value"]``), the plan against the flags the issue requires, and the
result parsers against real result files committed under ``results/h200/``.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))

from crosscheck_plan import PlanConfig, Target, n_prompts, plan_arms  # noqa: E402
from crosscheck_report import (  # noqa: E402
    crosscheck_doc,
    outcome_from_json,
    outcome_to_json,
    pack_raw,
    ratio_table,
)
from crosscheck_results import (  # noqa: E402
    ArmMetrics,
    ArmOutcome,
    Timing,
    build_entries,
    parse_sglang,
    parse_vllm,
    refdef_metrics,
    steady_mean_ms,
)
from crosscheck_server import Reply, flush_ok, parse_counters  # noqa: E402
from crosscheck_workload import (  # noqa: E402
    Workload,
    build_workload,
    check_output_lens,
    draw_output_lens,
    export_sglang_custom,
    export_vllm_custom,
    load_workload,
    make_answers,
    make_prompts,
    make_text_of,
    output_lens_meta,
    render_user,
    save_workload,
    template_stop,
)


class ChatML:
    """A stand-in tokenizer with a ChatML template and a default system prompt (like Qwen's)."""

    def apply_chat_template(self, conversation: list[dict[str, str]], **kw: object) -> object:
        msgs = conversation
        if msgs[0]["role"] != "system":
            msgs = [{"role": "system", "content": "You are helpful."}, *msgs]
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs)
        return text + ("<|im_start|>assistant\n" if kw.get("add_generation_prompt") else "")


def long_words_count(text: str) -> int:
    """A fake tokenizer: words of more than six letters are two tokens."""
    return sum(2 if len(w) > 6 else 1 for w in text.split())


# -- workload ---------------------------------------------------------------------------------


def test_prompts_are_distinct_seeded_and_near_the_target() -> None:
    a = make_prompts(50, 40, seed=3, count=long_words_count)
    assert a == make_prompts(50, 40, seed=3, count=long_words_count)
    assert a != make_prompts(50, 40, seed=4, count=long_words_count)
    assert len(set(a)) == 50
    assert all(38 <= long_words_count(p) <= 40 for p in a)
    # No shared prefix: the first eight words (well over one 16-token block) differ pairwise.
    heads = [tuple(p.split()[:8]) for p in a]
    assert len(set(heads)) == len(heads)


def test_rendered_prompts_and_stop_follow_the_template() -> None:
    tok = ChatML()
    w = build_workload(4, 20, 256, 0, tok, long_words_count)
    assert w.stop == ("<|im_end|>",)
    assert w.rendered[0] == render_user(tok, w.prompts[0])
    assert w.rendered[0].startswith("<|im_start|>system\n") and w.rendered[0].endswith("assistant\n")
    assert w.rendered_tokens is not None and w.prompt_tokens is not None
    assert all(r > p for r, p in zip(w.rendered_tokens, w.prompt_tokens, strict=True))


def test_template_stop_is_empty_without_an_end_marker() -> None:
    class Plain:
        def apply_chat_template(self, conversation: list[dict[str, str]], **kw: object) -> object:
            return "".join(f"{m['role']}: {m['content']}" for m in conversation)

    assert template_stop(Plain()) == ()


def test_exports_read_as_the_reference_loaders_read_them(tmp_path: Path) -> None:
    w = build_workload(3, 10, 128, 1, ChatML(), long_words_count)
    vrows = [json.loads(x) for x in export_vllm_custom(w, tmp_path / "v.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in vrows] == list(w.prompts)
    assert {r["output_tokens"] for r in vrows} == {128}
    srows = [
        json.loads(x) for x in export_sglang_custom(w.rendered, tmp_path / "s.jsonl").read_text().splitlines()
    ]
    # sample_custom_requests keeps conversations of >= 2 turns and sends turn 0's value as is.
    assert all(len(r["conversations"]) >= 2 for r in srows)
    assert [r["conversations"][0]["value"] for r in srows] == list(w.rendered)


def test_workload_round_trip_and_head(tmp_path: Path) -> None:
    w = build_workload(5, 12, 64, 2, ChatML(), long_words_count)
    back = load_workload(save_workload(w, tmp_path / "w.json"))
    assert back == w
    h = back.head(2)
    assert h.prompts == w.prompts[:2] and h.rendered_tokens == (w.rendered_tokens or ())[:2]
    with pytest.raises(ValueError):
        w.head(6)
    bare = build_workload(2, 5, 8, 0, None, None)
    assert bare.rendered == () and bare.prompt_tokens is None and len(bare.prompts[0].split()) == 5


def bos_count(text: str) -> int:
    """A fake ``tokenizer.encode``: ``long_words_count`` plus one special token, as SGLang counts."""
    return 1 + long_words_count(text)


def test_output_lens_are_seeded_bounded_and_of_mean_l() -> None:
    a = draw_output_lens(64, 256, 0.5, seed=0)
    assert a == draw_output_lens(64, 256, 0.5, seed=0) and a != draw_output_lens(64, 256, 0.5, seed=1)
    assert min(a) >= 128 and max(a) <= 384 and len(set(a)) > 16  # spread out, not one wave length
    # Mirrored pairs: every even head (what an arm sends) generates exactly n * L tokens.
    assert all(sum(a[:n]) == n * 256 for n in range(0, 65, 2))
    assert draw_output_lens(5, 10, 0.3, 2)[-1] == 10 and sum(draw_output_lens(5, 10, 0.3, 2)) == 50
    assert draw_output_lens(3, 256, 0.0, 0) == (256, 256, 256)
    for bad in (1.0, -0.1, 0.95):  # 0.95 of 16 leaves lengths under 2, which SGLang's loader drops
        with pytest.raises(ValueError):
            draw_output_lens(4, 16, bad, 0)


def test_spread_keeps_the_prompts_and_round_trips(tmp_path: Path) -> None:
    fixed = build_workload(6, 12, 40, 2, ChatML(), long_words_count)
    w = build_workload(6, 12, 40, 2, ChatML(), long_words_count, output_spread=0.5)
    assert w.prompts == fixed.prompts and w.rendered_tokens == fixed.rendered_tokens
    assert w.request_output_lens() == w.output_lens == draw_output_lens(6, 40, 0.5, 2)
    assert fixed.output_lens == () and fixed.request_output_lens() == (40,) * 6
    back = load_workload(save_workload(w, tmp_path / "w.json"))
    assert back == w and back.head(4).output_lens == w.output_lens[:4]
    assert output_lens_meta(w)["output_lens"] == list(w.output_lens)
    check_output_lens(w, 40, 0.5)
    with pytest.raises(SystemExit):
        check_output_lens(w, 40, 0.0)  # a folder prepared under another rule is refused


def test_texts_have_exactly_the_asked_token_count() -> None:
    import random

    rng = random.Random(0)
    for n in (2, 3, 17, 40, 129):
        assert bos_count(make_text_of(rng, n, bos_count)) == n
    with pytest.raises(ValueError):  # every word is two tokens: no odd count is reachable
        make_text_of(rng, 7, lambda t: 2 * len(t.split()))


def test_every_client_gets_the_same_drawn_lengths(tmp_path: Path) -> None:
    from crosscheck_sbarm import work_items

    w = build_workload(8, 12, 40, 0, ChatML(), long_words_count, output_spread=0.5)
    lens = list(w.output_lens)
    vrows = [json.loads(x) for x in export_vllm_custom(w, tmp_path / "v.jsonl").read_text().splitlines()]
    assert [r["output_tokens"] for r in vrows] == lens  # read per row with --custom-output-len -1
    answers = make_answers(w.output_lens, w.seed, bos_count)
    assert answers == make_answers(w.output_lens, w.seed, bos_count)
    for texts in (w.rendered, w.prompts):
        out = export_sglang_custom(texts, tmp_path / "s.jsonl", answers)
        srows = [json.loads(x)["conversations"] for x in out.read_text().splitlines()]
        assert [c[0]["value"] for c in srows] == list(texts)
        # sample_custom_requests: output_len = len(tokenizer.encode(gpt turn)) without a fixed length.
        assert [bos_count(c[1]["value"]) for c in srows] == lens
    items = work_items(w.prompts, w.request_output_lens())
    assert [i.branches[0].turns[0].gen.max_tokens for i in items] == lens
    with pytest.raises(ValueError):
        export_sglang_custom(w.prompts, tmp_path / "x.jsonl", answers[:3])


def test_without_a_spread_the_exports_are_as_before(tmp_path: Path) -> None:
    """Byte for byte what the fixed-length exports wrote before the spread existed."""
    w = build_workload(2, 4, 8, 0, None, None)
    assert export_vllm_custom(w, tmp_path / "v.jsonl").read_text() == (
        '{"prompt": "castle meadow bottle quick", "output_tokens": 8}\n'
        '{"prompt": "doctor needle jungle shadow", "output_tokens": 8}\n'
    )
    assert export_sglang_custom(w.prompts, tmp_path / "s.jsonl").read_text() == (
        '{"conversations": [{"from": "human", "value": "castle meadow bottle quick"}, '
        '{"from": "gpt", "value": "ok"}]}\n'
        '{"conversations": [{"from": "human", "value": "doctor needle jungle shadow"}, '
        '{"from": "gpt", "value": "ok"}]}\n'
    )
    assert save_workload(w, tmp_path / "w.json").read_text() == (
        '{"prompts": ["castle meadow bottle quick", "doctor needle jungle shadow"], "rendered": [], '
        '"prompt_tokens": null, "rendered_tokens": null, "output_len": 8, "stop": [], "seed": 0}'
    )


def test_prepare_with_a_spread_writes_matching_datasets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import crosscheck

    common = ["--model", "m", "--workdir", str(tmp_path), "--concurrencies", "4", "--min-prompts", "8"]
    common += ["--input-len", "10", "--output-len", "16", "--output-len-spread", "0.5"]
    crosscheck.main(["prepare", "--words-as-tokens", *common])
    w = load_workload(tmp_path / "workload" / "workload.json")
    assert w.output_lens == draw_output_lens(16, 16, 0.5, 0)
    for path in ("sglang-generate", "sglang-oai-chat"):
        rows = (tmp_path / "workload" / f"{path}-n16.jsonl").read_text().splitlines()
        turns = [json.loads(r)["conversations"][1]["value"] for r in rows]
        assert [len(t.split()) for t in turns] == list(w.output_lens)  # one word, one token here
    vrows = (tmp_path / "workload" / "vllm-chat-n16.jsonl").read_text().splitlines()
    assert [json.loads(r)["output_tokens"] for r in vrows] == list(w.output_lens)
    crosscheck.main(["plan", *common])
    assert "--custom-output-len -1" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # the same folder under the fixed-length rule
        crosscheck.main(["run", *common[:-2], "--deadline-s", "0"])


# -- plan -------------------------------------------------------------------------------------


def _cfg(tmp_path: Path, **kw: object) -> PlanConfig:
    targets = tuple(
        Target(p, u, "/m", "/m", "/ref", "/sb")  # type: ignore[arg-type]
        for p, u in (
            ("vllm-chat", "http://v"),
            ("sglang-generate", "http://s"),
            ("sglang-oai-chat", "http://s"),
        )
    )
    return PlanConfig(targets=targets, workdir=tmp_path, **kw)  # type: ignore[arg-type]


def test_plan_alternates_arms_over_rounds(tmp_path: Path) -> None:
    arms = plan_arms(_cfg(tmp_path))
    assert len(arms) == 2 * 3 * 3 * 2
    assert len({a.arm_id for a in arms}) == len(arms)
    for a, b in zip(arms[::2], arms[1::2], strict=True):
        assert (a.path, a.concurrency, a.round) == (b.path, b.concurrency, b.round)
        first = "reference" if a.round % 2 == 0 else "structbench"
        assert a.client == first and b.client != first
    assert [a.round for a in arms] == sorted(a.round for a in arms)  # rounds outermost


def test_prompt_counts(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    assert [n_prompts(cfg, c) for c in (1, 16, 64, 256, 512)] == [64, 64, 256, 1024, 1024]
    assert n_prompts(_cfg(tmp_path, max_prompts=100), 256) == 256  # never fewer than one per worker


def test_reference_commands_carry_the_workload_flags(tmp_path: Path) -> None:
    arms = {(a.path, a.client, a.concurrency, a.round): a for a in plan_arms(_cfg(tmp_path))}
    v = arms[("vllm-chat", "reference", 64, 0)].argv
    for flag in (
        "--skip-chat-template",
        "--disable-shuffle",
        "--no-oversample",
        "--ignore-eos",
        "--save-detailed",
    ):
        assert flag in v
    assert v[v.index("--backend") + 1] == "openai-chat" and v[v.index("--temperature") + 1] == "0"
    assert v[v.index("--num-prompts") + 1] == "256" and v[v.index("--max-concurrency") + 1] == "64"
    assert v[v.index("--dataset-path") + 1].endswith("vllm-chat-n256.jsonl")
    g = arms[("sglang-generate", "reference", 16, 1)].argv
    o = arms[("sglang-oai-chat", "reference", 16, 1)].argv
    assert g[g.index("--backend") + 1] == "sglang" and o[o.index("--backend") + 1] == "sglang-oai-chat"
    for argv in (g, o):
        assert argv[argv.index("--warmup-requests") + 1] == "0"
        assert argv[argv.index("--sharegpt-output-len") + 1] == "256"
        assert "--disable-ignore-eos" not in argv and "--flush-cache" in argv
    assert "--extra-request-body" not in g
    assert json.loads(o[o.index("--extra-request-body") + 1]) == {"stream_options": {"include_usage": True}}
    sb = arms[("sglang-generate", "structbench", 16, 1)]
    assert sb.env == (("PYTHONPATH", "/sb"),) and sb.command().startswith("PYTHONPATH=/sb ")


def test_a_spread_makes_the_reference_clients_read_each_rows_length(tmp_path: Path) -> None:
    arms = {(a.path, a.client): a.argv for a in plan_arms(_cfg(tmp_path, output_len_spread=0.5))}
    v = arms[("vllm-chat", "reference")]
    assert v[v.index("--custom-output-len") + 1] == "-1" and "--output-len" not in v
    for path in ("sglang-generate", "sglang-oai-chat"):
        assert "--sharegpt-output-len" not in arms[(path, "reference")]
    fixed = {(a.path, a.client): a.argv for a in plan_arms(_cfg(tmp_path))}
    assert fixed[("vllm-chat", "structbench")] == arms[("vllm-chat", "structbench")]  # reads the workload


# -- results ----------------------------------------------------------------------------------


def test_refdef_metrics() -> None:
    ts = [Timing(0.0, 0.1, 1.1, 11), Timing(0.5, 0.7, 2.0, 11), Timing(1.0, 1.1, 1.1, 1)]
    m = refdef_metrics(ts)
    assert m["output_throughput"] == pytest.approx(23 / 2.0)
    assert m["mean_ttft_ms"] == pytest.approx((100 + 200 + 100) / 3)
    assert m["mean_tpot_ms"] == pytest.approx((100 + 130) / 2)  # single-token calls have no TPOT
    assert refdef_metrics([])["mean_ttft_ms"] is None


def test_steady_ttft_skips_the_first_wave() -> None:
    assert steady_mean_ms([0.5, 0.5, 0.01, 0.03], 2) == pytest.approx(20.0)
    assert steady_mean_ms([0.5], 2) is None and steady_mean_ms(None, 0) is None


def test_parsers_read_the_committed_reference_results(tmp_path: Path) -> None:
    v = parse_vllm(ROOT / "results/h200/vllm_bench_serve.json")  # vllm bench serve 0.26.0
    assert v.completed == 400 and v.failed == 0
    assert v.output_throughput == pytest.approx(6391.13, rel=1e-4) and v.mean_tpot_ms == pytest.approx(
        7.317, rel=1e-3
    )
    # sglang.bench_serving 0.5.17, committed gzipped (results/ is packed)
    raw = tmp_path / "sglang_bench_serving.jsonl"
    raw.write_bytes(gzip.decompress((ROOT / "results/h200/sglang_bench_serving.jsonl.gz").read_bytes()))
    s = parse_sglang(raw)
    assert s.completed > 0 and s.mean_ttft_ms is not None and s.output_throughput is not None


def _metrics(
    tput: float, ttft: float, n: int = 4, out: int = 8, lens: tuple[int, ...] = (10, 11, 12, 13)
) -> ArmMetrics:
    return ArmMetrics(tput, ttft, 2.0, 2.0, ttft, n, 0, 1.0, lens, (out,) * n, (("mean_ttft_ms", ttft),))


def _outcome(client: str, rnd: int, m: ArmMetrics, path: str = "vllm-chat") -> ArmOutcome:
    arm_id = f"r{rnd}-c4-{path}-{client}"
    return ArmOutcome(
        arm_id, path, "vllm", client, 4, rnd, 4, f"cmd {arm_id}", 0, 3.0, True, m, None, (8.0, 100.0)
    )


def _workload() -> Workload:
    return Workload(("a", "b", "c", "d"), ("A", "B", "C", "D"), (5, 6, 7, 8), (10, 11, 12, 13), 8)


def test_entries_average_rounds_and_gate_the_three_metrics() -> None:
    outs = [
        _outcome("reference", 0, _metrics(100.0, 10.0)),
        _outcome("structbench", 0, _metrics(99.0, 10.0)),
        _outcome("structbench", 1, _metrics(101.0, 11.0)),
        _outcome("reference", 1, _metrics(100.0, 10.0)),
    ]
    entries = {e.metric: e for e in build_entries(outs, 8, _workload())}
    tput, ttft = entries["output_throughput"], entries["mean_ttft_ms"]
    assert tput.ratio == pytest.approx(1.0) and tput.within_target is True
    assert ttft.ratio == pytest.approx(1.05) and ttft.within_target is False
    assert ttft.per_round == ((0, 10.0, 10.0), (1, 11.0, 10.0)) and ttft.structbench_refdef == pytest.approx(
        10.5
    )
    assert entries["mean_itl_ms"].gated is False and entries["mean_itl_ms"].within_target is None
    assert all(dict(tput.checks).values()) and len(tput.commands) == 4


def test_a_round_only_one_client_finished_stays_out_of_the_ratio() -> None:
    outs = [
        _outcome("reference", 0, _metrics(100.0, 10.0)),
        _outcome("structbench", 0, _metrics(100.0, 10.0)),
        _outcome("structbench", 1, _metrics(150.0, 10.0)),  # its reference arm never ran
    ]
    tput = next(e for e in build_entries(outs, 8, _workload()) if e.metric == "output_throughput")
    assert tput.ratio == pytest.approx(1.0) and tput.structbench == pytest.approx(100.0)
    assert tput.per_round == ((0, 100.0, 100.0), (1, 150.0, None))
    assert dict(tput.checks)["rounds_paired"] is False
    assert dict(build_entries(outs, 8, _workload(), min_rounds=1)[0].checks)["rounds_paired"] is True
    doc = crosscheck_doc(build_entries(outs, 8, _workload()), outs, {})
    assert doc["all_within_target"] is False  # every ratio in range, but a check failed


def test_checks_catch_a_workload_that_differs() -> None:
    outs = [
        _outcome("reference", 0, _metrics(100.0, 10.0, out=7)),  # stopped short of the fixed length
        _outcome("structbench", 0, _metrics(100.0, 10.0, lens=(10, 11, 12, 99))),  # another prompt
    ]
    checks = dict(build_entries(outs, 8, _workload())[0].checks)
    assert checks["output_len_exact"] is False and checks["prompt_lens_match"] is False
    only_one = dict(build_entries(outs[:1], 8, _workload())[0].checks)
    assert only_one["all_arms_ran"] is False


def test_output_len_check_uses_each_requests_own_length() -> None:
    import dataclasses

    w = dataclasses.replace(_workload(), output_spread=0.5, output_lens=(4, 12, 6, 10))
    drawn = dataclasses.replace(_metrics(100.0, 10.0), output_lens=(12, 4, 10, 6))  # another send order
    outs = [_outcome("reference", 0, drawn), _outcome("structbench", 0, drawn)]
    e = build_entries(outs, 8, w, min_rounds=1)[0]
    assert dict(e.checks)["output_len_exact"] is True
    assert (e.output_len_spread, e.output_tokens_expected) == (0.5, 32)
    fixed = [_outcome("reference", 0, drawn), _outcome("structbench", 0, _metrics(100.0, 10.0))]
    # All 8s: the same total, but not the lengths asked for.
    assert dict(build_entries(fixed, 8, w)[0].checks)["output_len_exact"] is False
    assert dict(build_entries(outs, 8, _workload())[0].checks)["output_len_exact"] is False


def test_sglang_chat_reference_counts_the_raw_text() -> None:
    raw = _metrics(100.0, 10.0, lens=(8, 7, 6, 5))  # SGLang's client counts the untemplated prompt
    outs = [
        _outcome("reference", 0, raw, "sglang-oai-chat"),
        _outcome("structbench", 0, _metrics(100.0, 10.0), "sglang-oai-chat"),
    ]
    assert dict(build_entries(outs, 8, _workload())[0].checks)["prompt_lens_match"] is True


def test_outcome_json_round_trip_and_document_shape() -> None:
    o = _outcome("structbench", 0, _metrics(99.0, 10.0))
    assert outcome_from_json(outcome_to_json(o)) == o
    outs = [o, _outcome("reference", 0, _metrics(100.0, 10.0))]
    entries = build_entries(outs, 8, _workload(), min_rounds=1)
    doc = json.loads(json.dumps(crosscheck_doc(entries, outs, {"servers": {}})))
    assert doc["target"] == [0.97, 1.03] and doc["all_within_target"] is True
    e = doc["entries"][0]
    for key in (
        "engine",
        "path",
        "concurrency",
        "metric",
        "structbench",
        "reference",
        "ratio",
        "commands",
        "checks",
        "output_len_spread",
        "output_tokens_expected",
    ):
        assert key in e
    assert e["output_tokens_expected"] == 4 * 8  # the arms' four requests of 8 tokens
    assert {a["arm"] for a in doc["arms"]} == {o.arm_id for o in outs}
    assert doc["arms"][0]["server_prefix_hit_rate"] == pytest.approx(0.08)
    assert "| vllm-chat | 4 | output_throughput |" in ratio_table(entries)


# -- server control and packing ----------------------------------------------------------------


def test_vllm_flush_reads_success_from_the_body() -> None:
    assert flush_ok("vllm", Reply(200, '{"success": true}')) is True
    assert flush_ok("vllm", Reply(200, '{"success": false}')) is False  # blocks still held
    assert flush_ok("sglang", Reply(200, "Cache flushed.")) and not flush_ok("sglang", Reply(400, "busy"))


def test_parse_counters_sums_label_sets() -> None:
    text = (
        "# HELP x\n"
        'vllm:prefix_cache_hits_total{model_name="a b}"} 3\n'
        'vllm:prefix_cache_hits_total{m="c"} 4\n'
        "bad\nnan_metric NaN\n"
    )
    got = parse_counters(text)
    assert (
        got["vllm:prefix_cache_hits_total"] == 7.0
        and "nan_metric" not in got
        and not math.isnan(sum(got.values()))
    )


def test_pack_leaves_texts_out(tmp_path: Path) -> None:
    arm = tmp_path / "arms" / "r0-c4-vllm-chat-structbench"
    arm.mkdir(parents=True)
    with gzip.open(arm / "records.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"t_sent": 1.0, "text": "secret", "prompt": []}) + "\n")
    (arm / "result.json").write_text(
        json.dumps({"output_throughput": 1.0, "generated_texts": ["x"]}, indent=1)
    )
    with tarfile.open(pack_raw(tmp_path, tmp_path / "raw.tgz")) as tar:
        names = tar.getnames()
        rec = json.load(io.BytesIO(tar.extractfile("arms/r0-c4-vllm-chat-structbench/records.jsonl").read()))  # type: ignore[union-attr]
        res = json.load(io.BytesIO(tar.extractfile("arms/r0-c4-vllm-chat-structbench/result.json").read()))  # type: ignore[union-attr]
    assert rec == {"t_sent": 1.0} and res == {"output_throughput": 1.0}
    assert len(names) == 2


# -- structbench's arm --------------------------------------------------------------------------


def test_structbench_metrics_agree_with_the_reference_formulas() -> None:
    from crosscheck_results import METRICS
    from crosscheck_sbarm import summary, work_items

    from structbench.records import CallRecord

    items = work_items(("first prompt", "second prompt"), (256, 256))
    assert [len(i.branches[0].turns) for i in items] == [1, 1] and items[0].prefix == ()
    assert (
        items[0].branches[0].turns[0].gen.max_tokens == 256
        and items[1].branches[0].turns[0].user == "second prompt"
    )
    recs = [
        CallRecord(
            "c",
            "sb",
            "crosscheck",
            f"crosscheck/{i}",
            0,
            0,
            "out",
            "none",
            t_sent=0.1 * i,
            t_first_token=0.1 * i + 0.02 * (i + 1),
            t_done=0.1 * i + 1.0 + 0.01 * i,
            token_times=tuple(0.1 * i + 0.1 * k for k in range(1, 10)),
            prompt_tokens=10,
            completion_tokens=11,
        )
        for i in range(5)
    ]
    doc = summary(recs, "c", "sb", 0.0, first_wave=2)
    refdef = doc["refdef"]
    assert isinstance(refdef, dict)
    for metric in METRICS:
        assert doc[metric] == pytest.approx(refdef[metric])
    assert doc["mean_ttft_steady_ms"] == pytest.approx((60 + 80 + 100) / 3)
    assert doc["output_lens"] == [11] * 5 and doc["failed"] == 0


def test_run_sampled_tells_a_busy_client_from_an_idle_one(tmp_path: Path) -> None:
    """The peak CPU window separates a spinning client from a sleeping one; a hung one is killed."""
    from crosscheck import run_sampled

    env = {"PATH": "/usr/bin:/bin"}
    busy = [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 2.5: pass"]
    idle = [sys.executable, "-c", "import time; time.sleep(2.5)"]
    with (tmp_path / "log.txt").open("w") as log:
        rc_busy, out_busy, peak_busy = run_sampled(busy, env, log, timeout_s=60)
        rc_idle, out_idle, peak_idle = run_sampled(idle, env, log, timeout_s=60)
        rc_hung, out_hung, _ = run_sampled(idle, env, log, timeout_s=0.6)
        _, _, peak_unloaded = run_sampled(busy, env, log, timeout_s=60, loaded=lambda: False)
    assert (rc_busy, out_busy, rc_idle, out_idle) == (0, False, 0, False)
    assert peak_busy > 0.3 > peak_idle  # loose: a loaded 2-core machine still shows the gap
    assert peak_unloaded == 0.0  # no window ended while the server was serving: none counts
    assert (rc_hung, out_hung) == (124, True)


def test_warm_up_sends_each_prompt_untimed_to_the_engine_route() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from crosscheck_server import warm_up

    seen: list[tuple[str, dict[str, object]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            self.send_response(200 if self.path in ("/generate", "/v1/chat/completions") else 404)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert warm_up("sglang", url, "M", ["a", "b", "c"], 2, max_tokens=8) == (3, 3)
        assert warm_up("vllm", url + "/", "M", ["d"], 2) == (1, 1)
        assert warm_up("vllm", "http://127.0.0.1:9", "M", ["e"], 1) == (0, 1)  # unreachable: not ok
    finally:
        server.shutdown()
    gen = [b for p, b in seen if p == "/generate"]
    assert sorted(str(b["text"]) for b in gen) == ["a", "b", "c"]
    assert all(b["sampling_params"] == {"max_new_tokens": 8, "ignore_eos": True} for b in gen)
    chat = [b for p, b in seen if p == "/v1/chat/completions"]
    assert chat == [
        {"model": "M", "messages": [{"role": "user", "content": "d"}], "max_tokens": 32, "ignore_eos": True}
    ]


def test_compact_table_keeps_each_clients_per_request_timings(tmp_path: Path) -> None:
    import csv
    import lzma

    from crosscheck_compact import compact

    arms = tmp_path / "arms"
    ref = {"ttfts": [0.1, 0.2], "itls": [[0.01, 0.01], [0.02]], "input_lens": [5, 6], "output_lens": [3, 2]}
    (arms / "r0-c2-vllm-chat-reference").mkdir(parents=True)
    (arms / "r0-c2-vllm-chat-reference" / "result.json").write_text(
        json.dumps({**ref, "start_times": [10.0, 10.5]})
    )
    (arms / "r1-c2-sglang-generate-reference").mkdir()
    (arms / "r1-c2-sglang-generate-reference" / "result.jsonl").write_text(json.dumps(ref) + "\n")
    (arms / "r0-c2-vllm-chat-structbench").mkdir()
    rec = {"t_sent": 5.0, "t_first_token": 5.25, "t_done": 6.0, "prompt_tokens": 5, "completion_tokens": 3}
    lines = [json.dumps(rec), json.dumps({**rec, "warmup": True})]  # warm-ups are not measured
    (arms / "r0-c2-vllm-chat-structbench" / "records.jsonl").write_text("\n".join(lines))
    (arms / "not-an-arm").mkdir()
    out = tmp_path / "req.csv.xz"
    assert compact(tmp_path, out) == 5
    rows = list(csv.DictReader(lzma.decompress(out.read_bytes()).decode().splitlines()))
    by_arm = {(r["arm"], r["request"]): r for r in rows}
    v = by_arm[("r0-c2-vllm-chat-reference", "1")]
    assert (v["send_ms"], v["ttft_ms"], v["e2el_ms"], v["output_len"]) == (
        "500.000",
        "200.000",
        "220.000",
        "2",
    )
    s = by_arm[("r1-c2-sglang-generate-reference", "0")]
    assert s["send_ms"] == "" and s["e2el_ms"] == "120.000" and s["round"] == "1"
    b = by_arm[("r0-c2-vllm-chat-structbench", "0")]
    assert (b["client"], b["ttft_ms"], b["e2el_ms"], b["input_len"]) == (
        "structbench",
        "250.000",
        "1000.000",
        "5",
    )


def test_server_ttft_reads_the_histogram_and_enters_the_entries() -> None:
    import dataclasses
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from crosscheck_server import server_ttft, serving

    body = (
        "# TYPE vllm:time_to_first_token_seconds histogram\n"
        'vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 3\n'
        'vllm:time_to_first_token_seconds_sum{model_name="m"} 1.5\n'
        'vllm:time_to_first_token_seconds_count{model_name="m"} 6\n'
        'vllm:num_requests_running{model_name="m"} 2\n'
        'sglang:num_running_reqs{model_name="m"} 0\n'
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert server_ttft("vllm", url) == (1.5, 6.0)
        assert server_ttft("sglang", url) is None  # another engine's histogram is not this one
        assert serving("vllm", url) is True and serving("sglang", url) is False
        assert serving("vllm", "http://127.0.0.1:9") is False  # unreachable: not serving
    finally:
        server.shutdown()
    sb = dataclasses.replace(_outcome("structbench", 0, _metrics(100.0, 10.0)), server_ttft=(2.0, 4.0))
    ref = dataclasses.replace(_outcome("reference", 0, _metrics(100.0, 10.0)), server_ttft=(2.2, 4.0))
    assert outcome_from_json(outcome_to_json(sb)) == sb
    e = next(e for e in build_entries([sb, ref], 8, _workload(), 1) if e.metric == "server_mean_ttft_ms")
    assert e.structbench == pytest.approx(500.0) and e.reference == pytest.approx(550.0) and e.gated is False
    assert _outcome("reference", 0, _metrics(1.0, 1.0)).server_mean_ttft_ms() is None
