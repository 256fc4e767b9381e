"""Padding-free forwards: only real tokens go through the model.

* :func:`concat_lists`, :func:`pack_rows` — ragged token lists to packed rows (Rust): tokens,
  restarting position ids, next-token labels, where each scored token lands.
* :func:`forward_packed` — run the rows, read per-token log-probs (and entropies, ...) of the
  scored tokens as ``(N,)`` tensors with ``cu_seqlens``.
* :mod:`~fastalign.padding_free.attention` — a per-sequence attention registered with
  transformers (cost sum L^2 instead of (sum L)^2), used automatically for sdpa/eager models.
* :func:`check_model`, :func:`check_packed_forward` — refuse models that cannot take packed rows,
  and compare packed with padded log-probs before trusting them.

Requires torch and transformers (``pip install "fastalign[trl]"``).
"""

from __future__ import annotations

from .attention import SEGMENT_ATTENTION, enable_segment_attention, segment_attention_forward, use_segment_attention
from .forward import attention_mode, check_model, check_packed_forward, forward_packed, padded_logps
from .rows import PackedRows, Ragged, check_budget, concat_lists, pack_rows

__all__ = [
    "SEGMENT_ATTENTION",
    "PackedRows",
    "Ragged",
    "attention_mode",
    "check_budget",
    "check_model",
    "check_packed_forward",
    "concat_lists",
    "enable_segment_attention",
    "forward_packed",
    "pack_rows",
    "padded_logps",
    "segment_attention_forward",
    "use_segment_attention",
]
