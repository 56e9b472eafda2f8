"""SGLang-style ``select``: score each choice by its length-normalised log-probability."""

from __future__ import annotations

import time
from typing import Any

import torch

from structbench.engines.embedded.batcher import ScoreJob, ScoreResult, fail_job
from structbench.engines.embedded.tensors import left_pad_batch


def score_job(model: Any, tokenizer: Any, pad_id: int, job: ScoreJob) -> None:
    """Score ``job``'s choices after its prompt in one forward pass; resolve its future.

    The prompt and each choice are tokenized separately and concatenated, so every
    choice is scored on its own tokens whatever the prompt ends with. An empty choice
    scores ``-inf``.
    """
    prompt: list[int] = tokenizer.encode(job.prompt, add_special_tokens=False)
    conts: list[list[int]] = [tokenizer.encode(c, add_special_tokens=False) for c in job.choices]
    if not prompt or not conts:
        fail_job(job, "score_choices needs a prompt and at least one choice")
        return
    keep = max(len(c) for c in conts) + 1
    ids, attn, pos = left_pad_batch([prompt + c for c in conts], pad_id)
    with torch.inference_mode():
        out = model(
            input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False, logits_to_keep=keep
        )
        logp = torch.log_softmax(out.logits.float(), dim=-1)
    values: list[float] = []
    for i, c in enumerate(conts):
        if not c:
            values.append(float("-inf"))
            continue
        # The kept logits cover the last `keep` positions; each token is predicted one position earlier.
        rel = torch.arange(keep - len(c) - 1, keep - 1)
        values.append(float(logp[i, rel, torch.tensor(c)].mean()))
    res = ScoreResult(tuple(values), len(prompt), job.t_submit, time.perf_counter())
    if not job.future.done():
        job.future.set_result(res)
