"""Attention per packed sequence: cost sum(L^2), not (sum L)^2.

transformers runs packed rows correctly with sdpa, eager and flex attention (it detects the
restarting ``position_ids`` and builds a block-diagonal mask), but that mask is dense: a row of
8,500 tokens pays for 72M attention scores where its 32 sequences need 6M. Flash-attention's
varlen kernels skip the empty blocks, but exist only on CUDA. This module registers two more
attention implementations with transformers' ``AttentionInterface``:

* ``"fastalign_segments"``: given the row's boundaries (the ``cu_seq_lens_q`` keyword that
  flash-attention models take too), scaled-dot-product attention runs on each sequence of the row
  (``torch.split``, whose backward is one concatenation), causal inside it, and no mask is built;
  any other call (a padded batch, generation with a cache) is plain sdpa with transformers' mask;
* ``"fastalign_segments_eager"``: the same, with eager attention for the other calls.

:func:`enable_segment_attention` switches a model to the one matching its implementation, for
good: a forward recomputed by gradient checkpointing during backward must take the same path as
the original one, so the switch cannot be scoped to the forward call alone.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, cast

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask, sdpa_mask
from transformers.models.llama.modeling_llama import eager_attention_forward

from ..errors import PaddingFreeError

__all__ = [
    "SEGMENT_ATTENTION",
    "enable_segment_attention",
    "packed_call",
    "segment_attention_forward",
    "unwrap_config",
    "use_segment_attention",
]

SEGMENT_ATTENTION = "fastalign_segments"
_EAGER = SEGMENT_ATTENTION + "_eager"
NAMES = (SEGMENT_ATTENTION, _EAGER)
_PACKED = contextvars.ContextVar("fastalign_packed_call", default=False)


@contextlib.contextmanager
def packed_call() -> Iterator[None]:
    """Mark a forward of packed rows: the segment implementations' mask functions build no mask."""
    token = _PACKED.set(True)
    try:
        yield
    finally:
        _PACKED.reset(token)


def _segments(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    cu: Any,
    dropout: float,
    scaling: float | None,
    sliding_window: int | None,
) -> torch.Tensor:
    if query.shape[0] != 1:
        raise PaddingFreeError(f"expected one packed row per forward, got a batch of {query.shape[0]}", "input_ids")
    bounds = cu.tolist() if isinstance(cu, torch.Tensor) else list(cu)
    lengths = [b - a for a, b in zip(bounds[:-1], bounds[1:])]
    if bounds[0] != 0 or bounds[-1] != query.shape[2] or min(lengths, default=1) < 0:
        raise PaddingFreeError(f"{bounds[:4]}... do not cover the row's {query.shape[2]} tokens", "cu_seq_lens_q")
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
    return out.transpose(1, 2).contiguous()


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
    ``value`` (1, H_kv, N, D), boundaries ``cu_seq_lens_q`` (``[0, L0, L0 + L1, ..., N]``).
    Without boundaries, transformers' sdpa attention."""
    if cu_seq_lens_q is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      sliding_window=sliding_window, **kwargs)  # fmt: skip
    _refuse_unsupported(kwargs)
    return _segments(module, query, key, value, cu_seq_lens_q, dropout, scaling, sliding_window), None


def _segment_eager_forward(
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
) -> Any:
    if cu_seq_lens_q is None:
        # transformers' eager attention: it takes the float scaling every model's attention passes,
        # and no sliding window (the mask it is given already has it)
        return eager_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                       scaling=cast(float, scaling), **kwargs)  # fmt: skip
    _refuse_unsupported(kwargs)
    return _segments(module, query, key, value, cu_seq_lens_q, dropout, scaling, sliding_window), None


def _refuse_unsupported(kwargs: dict) -> None:
    if kwargs.get("softcap") is not None or kwargs.get("s_aux") is not None:
        raise PaddingFreeError(
            "this model uses attention logit soft-capping or attention sinks, which the segment attention "
            "does not implement; load it with a flash-attention implementation that does, or train padded",
            "padding_free",
        )


def _masker(base: Any) -> Any:
    def mask(*args: Any, **kwargs: Any) -> Any:
        return None if _PACKED.get() else base(*args, **kwargs)

    return mask


AttentionInterface.register(SEGMENT_ATTENTION, segment_attention_forward)
AttentionInterface.register(_EAGER, _segment_eager_forward)
ALL_MASK_ATTENTION_FUNCTIONS.register(SEGMENT_ATTENTION, _masker(sdpa_mask))
ALL_MASK_ATTENTION_FUNCTIONS.register(_EAGER, _masker(eager_mask))


def unwrap_model(model: Any) -> Any:
    """The model inside DDP, FSDP and DeepSpeed wrappers (``.module``). DeepSpeed's engine has a
    ``config`` of its own (its settings dict), so a wrapper is anything whose ``config`` is not a
    transformers config."""
    m = model
    while hasattr(m, "module") and not hasattr(getattr(m, "config", None), "_attn_implementation"):
        m = m.module
    return m


def unwrap_config(model: Any) -> Any:
    """The ``PretrainedConfig`` of a model, through DDP/FSDP/DeepSpeed (``.module``) and PEFT
    wrappers."""
    return unwrap_model(model).config


def enable_segment_attention(model: Any) -> str:
    """Switch an sdpa, eager or flex model to the matching segment implementation (eager to
    ``"fastalign_segments_eager"``, the others to ``"fastalign_segments"``); returns the previous
    implementation. Padded calls keep behaving as before; packed rows with ``cu_seq_lens_q`` get
    per-sequence attention. Idempotent."""
    config = unwrap_config(model)
    before = config._attn_implementation
    if before in NAMES:
        return before
    if before not in ("sdpa", "eager", "flex_attention"):
        raise PaddingFreeError(f"expected an sdpa, eager or flex model, got {before!r}", "attn_implementation")
    config._attn_implementation = _EAGER if before == "eager" else SEGMENT_ATTENTION
    return before


@contextlib.contextmanager
def use_segment_attention(model: Any) -> Iterator[None]:
    """:func:`enable_segment_attention` for the block only (not with gradient checkpointing: the
    recomputation in backward runs after the block)."""
    config = unwrap_config(model)
    before = config._attn_implementation
    enable_segment_attention(model)
    try:
        yield
    finally:
        config._attn_implementation = before
