"""Attention per packed sequence: cost sum(L^2), not (sum L)^2.

transformers runs packed rows correctly with sdpa, eager and flex attention (it detects the
restarting ``position_ids`` and builds a block-diagonal mask), but that mask is dense: a row of
8,500 tokens pays for 72M attention scores where its 32 sequences need 6M. Flash-attention's
varlen kernels skip the empty blocks, but exist only on CUDA. This module registers one more
attention implementation with transformers' ``AttentionInterface``: scaled-dot-product attention
run on each sequence of the row (``torch.split`` along the sequence boundaries, whose backward is
a single concatenation), causal inside it. It needs no mask, so transformers skips building one.

:func:`use_segment_attention` switches a model to it for the duration of a packed forward;
the segment boundaries come as the ``cu_seq_lens_q`` keyword flash-attention models also take.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

from ..errors import PaddingFreeError

__all__ = ["SEGMENT_ATTENTION", "segment_attention_forward", "use_segment_attention", "unwrap_config"]

SEGMENT_ATTENTION = "fastalign_segments"


def _boundaries(cu: Any) -> list[int]:
    if cu is None:
        raise PaddingFreeError(
            "the segment attention needs the row's sequence boundaries (cu_seq_lens_q); "
            "run packed rows through fastalign.padding_free.forward_packed",
            "cu_seq_lens_q",
        )
    return cu.tolist() if isinstance(cu, torch.Tensor) else list(cu)


def segment_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = None,
    cu_seq_lens_q: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal attention inside each sequence of a packed row: ``query`` (1, H, N, D), ``key`` and
    ``value`` (1, H_kv, N, D), boundaries ``cu_seq_lens_q`` (``[0, L0, L0 + L1, ..., N]``)."""
    if kwargs.get("softcap") is not None or kwargs.get("s_aux") is not None:
        raise PaddingFreeError(
            "this model uses attention logit soft-capping or attention sinks, which the segment attention "
            "does not implement; load it with a flash-attention implementation that does, or train padded",
            "padding_free",
        )
    if query.shape[0] != 1:
        raise PaddingFreeError(f"expected one packed row per forward, got a batch of {query.shape[0]}", "input_ids")
    cu = _boundaries(cu_seq_lens_q)
    lengths = [b - a for a, b in zip(cu[:-1], cu[1:])]
    if cu[0] != 0 or cu[-1] != query.shape[2] or min(lengths, default=1) < 0:
        raise PaddingFreeError(f"boundaries {cu[:4]}... do not cover the row's {query.shape[2]} tokens", "cu_seq_lens_q")
    gqa = query.shape[1] != key.shape[1]
    p = dropout if module.training else 0.0
    outs = []
    for q, k, val in zip(query.split(lengths, 2), key.split(lengths, 2), value.split(lengths, 2)):
        n = q.shape[2]
        if sliding_window is not None and n > sliding_window:
            i = torch.arange(n, device=q.device)
            band = (i[:, None] >= i[None, :]) & (i[None, :] > i[:, None] - sliding_window)
            o = F.scaled_dot_product_attention(q, k, val, attn_mask=band, dropout_p=p, scale=scaling, enable_gqa=gqa)
        else:
            o = F.scaled_dot_product_attention(q, k, val, is_causal=True, dropout_p=p, scale=scaling, enable_gqa=gqa)
        outs.append(o)
    out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(SEGMENT_ATTENTION, segment_attention_forward)


def unwrap_config(model: Any) -> Any:
    """The ``PretrainedConfig`` of a model, through DDP/FSDP (``.module``) and PEFT wrappers."""
    m = model
    while hasattr(m, "module") and not hasattr(m, "config"):
        m = m.module
    return m.config


@contextlib.contextmanager
def use_segment_attention(model: Any) -> Iterator[None]:
    """Run ``model``'s attention layers through :func:`segment_attention_forward` inside the block."""
    config = unwrap_config(model)
    before = config._attn_implementation
    config._attn_implementation = SEGMENT_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = before
