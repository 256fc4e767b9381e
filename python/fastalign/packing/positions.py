"""Position ids and ``cu_seqlens`` of packed rows, from their sequence lengths (what
padding-free attention reads)."""

from __future__ import annotations

from typing import Any

from .. import _native
from .. import _validate as v

__all__ = ["cu_seqlens", "position_ids"]


def position_ids(seq_lengths: Any) -> Any:
    """Position ids for padding-free attention: ``0..L-1`` for each length ``L``, concatenated
    (int64), which is what TRL's SFT collator derives from a packed row's ``seq_lengths``.

    ``seq_lengths``: (N,) int32/int64 numpy array or CPU tensor; the result has the same kind.
    """
    arr, torch_in = v.lengths(seq_lengths, "seq_lengths")
    return v.wrap(_native.position_ids(arr), torch_in)


def cu_seqlens(seq_lengths: Any) -> Any:
    """``cu_seqlens`` in flash-attn's sense: ``[0, L0, L0+L1, ...]`` as int32 (TRL's
    ``cu_seq_lens_q``/``_k``). ``seq_lengths``: (N,) int32/int64 numpy array or CPU tensor."""
    arr, torch_in = v.lengths(seq_lengths, "seq_lengths")
    return v.wrap(_native.cu_seqlens(arr), torch_in)
