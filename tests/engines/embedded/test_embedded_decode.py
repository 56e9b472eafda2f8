"""Continuous batching over a tiny random Llama: rows joining and leaving mid-batch must
decode exactly what they decode alone (the KV-cache padding, merging and trimming)."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from structbench.engines.embedded.api import GenRequest, GenResult  # noqa: E402
from structbench.engines.embedded.batcher import GenJob  # noqa: E402
from structbench.engines.embedded.constraints import ConstraintCompiler  # noqa: E402
from structbench.engines.embedded.decode import Decoder, ModelHandle  # noqa: E402
from structbench.ir import NO_CONSTRAINT  # noqa: E402

VOCAB = 64
EOS = 2


class CharTokenizer:
    """One token per character; decoding is injective so texts compare token for token."""

    eos_token_id = EOS

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) % (VOCAB - 4) + 4 for c in text]

    def decode(self, tokens: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(0x100 + t) for t in tokens)


@pytest.fixture(scope="module")
def handle() -> ModelHandle:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    model: Any = LlamaForCausalLM(cfg)  # type: ignore[no-untyped-call]
    model.eval()
    tok = CharTokenizer()
    return ModelHandle(
        model, tok, ConstraintCompiler(tok, None), frozenset({EOS}), pad_id=0, max_positions=128
    )


def _job(prompt: str, max_tokens: int, temperature: float = 0.0, stop: tuple[str, ...] = ()) -> GenJob:
    req = GenRequest(prompt, NO_CONSTRAINT, max_tokens, temperature, stop=stop, seed=7)
    return GenJob(req, Future(), time.perf_counter())


def _run(dec: Decoder, *jobs: GenJob) -> list[GenResult]:
    dec.admit(list(jobs))
    while dec.active:
        dec.step()
    return [j.future.result(timeout=0) for j in jobs]


PROMPTS = [("short one", 9), ("a much longer prompt than the others, to pad the batch", 4), ("mid size", 12)]


def test_rows_joining_and_leaving_decode_as_alone(handle: ModelHandle) -> None:
    solo = [_run(Decoder(handle), _job(p, n))[0] for p, n in PROMPTS]
    dec = Decoder(handle)
    jobs = [_job(p, n) for p, n in PROMPTS]
    dec.admit([jobs[0]])
    dec.step()
    dec.step()
    dec.admit(jobs[1:])  # a longer prompt joins a running row: the running cache is left-padded
    while dec.active:
        dec.step()
    batched = [j.future.result(timeout=0) for j in jobs]
    for s, b in zip(solo, batched, strict=True):
        assert b.error is None
        assert b.text == s.text
        assert b.completion_tokens == s.completion_tokens
        assert b.finish_reason == s.finish_reason
    assert [b.batch_size for b in batched] == [3, 3, 3]
    assert all(s.batch_size == 1 for s in solo)


def test_timestamps_are_ordered(handle: ModelHandle) -> None:
    (res,) = _run(Decoder(handle), _job("timing", 6))
    assert res.t_first_token is not None
    times = [res.t_start, res.t_first_token, *res.token_times, res.t_done]
    assert times == sorted(times)
    assert len(res.token_times) == res.completion_tokens - 1


def test_seeded_sampling_is_reproducible_in_any_batch(handle: ModelHandle) -> None:
    (alone,) = _run(Decoder(handle), _job("sample me", 10, temperature=1.5))
    _, batched = _run(Decoder(handle), _job("other row", 10), _job("sample me", 10, temperature=1.5))
    assert alone.text == batched.text
    (greedy,) = _run(Decoder(handle), _job("sample me", 10))
    assert greedy.text != alone.text  # temperature 1.5 on a random model leaves the argmax path


def test_stop_string_ends_the_row_and_is_stripped(handle: ModelHandle) -> None:
    (full,) = _run(Decoder(handle), _job("stop test", 8))
    assert full.finish_reason == "length" and len(full.text) == 8
    stop = full.text[3:5]
    (cut,) = _run(Decoder(handle), _job("stop test", 8, stop=(stop,)))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "error"),
    [
        ("x", 0, "max_tokens must be at least 1"),
        ("", 4, "empty prompt"),
        ("y" * 120, 20, "exceeds the context"),
    ],
)
def test_impossible_requests_fail_alone(
    handle: ModelHandle, prompt: str, max_tokens: int, error: str
) -> None:
    bad, good = _run(Decoder(handle), _job(prompt, max_tokens), _job("fine", 3))
    assert bad.error is not None and error in bad.error and bad.finish_reason == "error"
    assert good.error is None and good.completion_tokens == 3


def test_unseeded_sampled_rows_differ_from_each_other(handle: ModelHandle) -> None:
    def unseeded() -> GenJob:
        return GenJob(GenRequest("same prompt", NO_CONSTRAINT, 10, 1.5), Future(), time.perf_counter())

    a, b = _run(Decoder(handle), unseeded(), unseeded())
    assert a.text != b.text
    again = _run(Decoder(handle), unseeded(), unseeded())
    assert [r.text for r in again] == [a.text, b.text]  # but reproducible run to run
