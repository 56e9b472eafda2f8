"""Tensor helpers of the embedded decoder: left-padded batches and KV-cache surgery."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def left_pad_batch(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad token sequences into one batch.

    Left padding keeps every row's last token in the last column, where the next-token
    logits are read.

    Returns:
        ``input_ids``, ``attention_mask`` and ``position_ids`` (each row counts its
        positions from its first real token), all ``[batch, width]`` longs.
    """
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        attn[i, width - len(s) :] = 1
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    return ids, attn, pos


def lpad(t: torch.Tensor, width: int) -> torch.Tensor:
    """Left-pad the sequence axis of ``t`` (axis 1 of a mask, axis 2 of a KV tensor) with zeros."""
    axis = 1 if t.dim() == 2 else 2
    missing = width - t.shape[axis]
    if missing <= 0:
        return t
    pad = [0, 0] * (t.dim() - 1 - axis) + [missing, 0]
    return F.pad(t, pad)


def kv_of(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Key/value tensors per layer of a DynamicCache (``[batch, heads, seq, head_dim]``).

    Raises:
        RuntimeError: When the cache holds no plain key/value tensors (e.g. a
            recurrent-state model), which the batch merging needs.
    """
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    for entry in cache:
        k, v = entry[0], entry[1]
        if k is None or v is None:
            raise RuntimeError("model cache has no key/value tensors; embedded batching needs them")
        out.append((k, v))
    return out


def merge_caches(old: Any, new: Any, width: int) -> Any:
    """Concatenate two caches along the batch axis, left-padding both to ``width``."""
    from transformers import DynamicCache

    merged = [
        (torch.cat([lpad(k0, width), lpad(k1, width)]), torch.cat([lpad(v0, width), lpad(v1, width)]))
        for (k0, v0), (k1, v1) in zip(kv_of(old), kv_of(new), strict=True)
    ]
    return DynamicCache(ddp_cache_data=merged)


def select_rows(cache: Any, rows: torch.Tensor, first: int) -> Any:
    """Keep ``rows`` of the cache and drop the sequence columns before ``first``."""
    from transformers import DynamicCache

    kv = [(k[rows, :, first:], v[rows, :, first:]) for k, v in kv_of(cache)]
    return DynamicCache(ddp_cache_data=kv)
