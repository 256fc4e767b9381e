"""Bin packing of sequence lengths: best fit decreasing as TRL's ``_pack_bfd`` forms its bins,
and first fit decreasing."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import _native
from .. import _validate as v

__all__ = ["BinPacking", "bfd", "first_fit_decreasing"]


class BinPacking(NamedTuple):
    """Result of :func:`bfd` / :func:`first_fit_decreasing` (arrays of the input's kind)."""

    order: Any
    """(P,) int64: the sequence (index into ``lengths``) of each placed piece, bin after bin."""
    bin_offsets: Any
    """(B + 1,) int64: bin ``b`` holds pieces ``order[bin_offsets[b]:bin_offsets[b + 1]]``."""
    lengths: Any
    """(P,) int64: the tokens of each piece (``min(length, seq_length)`` without split)."""
    starts: Any
    """(P,) int64: where each piece starts inside its sequence (non-zero only for fragments)."""


def _bins(lengths: Any, seq_length: Any, split: bool, strategy: str) -> BinPacking:
    arr, torch_in = v.lengths(lengths)
    s = v.integer(seq_length, "seq_length", minimum=1)
    split = v.boolean(split, "split")
    n = np.array([0], dtype=np.int64)
    e = np.array([arr.size], dtype=np.int64)
    rows, skips, lens, _, bounds, *_ = _native.pack_plan(arr, n, e, s, strategy + ("_split" if split else ""))
    assert bounds is not None  # a bin strategy's plan has bin boundaries
    return BinPacking(*(v.wrap(x, torch_in) for x in (rows, bounds, lens, skips)))


def bfd(lengths: Any, seq_length: int, *, split: bool = False) -> BinPacking:
    """Best-fit-decreasing bins of sequence lengths, exactly as TRL's ``_pack_bfd`` forms them.

    Sequences of length 0 are left out; longer ones than ``seq_length`` are truncated to it
    (``split=False``, TRL's ``"bfd"``) or cut into ``seq_length``-token fragments, the last one
    shorter (``split=True``, ``"bfd_split"``). Pieces are visited longest first (ties in index
    order); each goes to the bin with the least room that still holds it (among equal rooms the
    bin that got there first), else to a new bin. Bins come in creation order.

    Parameters
    ----------
    lengths : (N,), int32 or int64, numpy array or CPU tensor
        Tokens per sequence (>= 0).
    seq_length : int
        Capacity of a bin (>= 1).
    split : bool
        Split overlong sequences instead of truncating them.

    Returns
    -------
    BinPacking
        ``order``, ``bin_offsets``, ``lengths``, ``starts`` (int64, the input's kind).

    Examples
    --------
    >>> import numpy as np
    >>> from fastalign.packing import bfd
    >>> r = bfd(np.array([5, 2, 3, 1]), 4)
    >>> r.order.tolist(), r.bin_offsets.tolist(), r.lengths.tolist()
    ([0, 2, 3, 1], [0, 1, 3, 4], [4, 3, 1, 2])
    """
    return _bins(lengths, seq_length, split, "bfd")


def first_fit_decreasing(lengths: Any, seq_length: int, *, split: bool = False) -> BinPacking:
    """First-fit-decreasing bins: like :func:`bfd`, but each piece goes to the *first* (oldest)
    bin with enough room. Not a TRL strategy; O(N log N). Same arguments and result as
    :func:`bfd`."""
    return _bins(lengths, seq_length, split, "ffd")
