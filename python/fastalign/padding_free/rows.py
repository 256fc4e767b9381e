"""Packed rows: ragged token sequences laid end to end, with restarting position ids, next-token
labels and the index of every scored token, built in Rust from Python lists or numpy arrays.

A *scored* token is one whose log-probability the loss reads (a trained completion token). Its
log-probability comes from the position just before it, whose label is the token; every other
position is labelled ``-100``. ``score_index`` says where each scored token's label sits in the
rows, sequence after sequence in the caller's order, so the per-token outputs of a packed forward
gather into the ``(N,)`` + ``cu_seqlens`` layout that :func:`fastalign.losses.grpo_loss` and
:func:`fastalign.ratios.masked_sum` take.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import _native
from .. import _validate as v
from ..errors import InvalidArgumentError
from ..packing import bfd

__all__ = ["PackedRows", "Ragged", "check_budget", "concat_lists", "pack_rows"]


class Ragged(NamedTuple):
    """Sequences of tokens in one flat buffer (result of :func:`concat_lists`)."""

    values: np.ndarray
    """(T,) int64: every token, sequence after sequence."""
    offsets: np.ndarray
    """(S + 1,) int64: sequence ``i`` is ``values[offsets[i]:offsets[i + 1]]``."""
    part: np.ndarray
    """(T,) uint8: which of the joined lists each token came from (0 for the first)."""

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def concat_lists(*parts: Sequence[Sequence[int]]) -> Ragged:
    """Join lists of token lists sequence by sequence: sequence ``i`` is ``parts[0][i] +
    parts[1][i] + ...`` (e.g. prompt ids and completion ids from generation or vLLM). The lists
    are read in Rust, one pass, without a Python loop over sequences or tokens.
    """
    if not parts:
        raise InvalidArgumentError("expected at least one list of token lists", "parts")
    values, offsets, part = _native.concat_lists(list(parts))
    return Ragged(values, offsets, part)


class PackedRows(NamedTuple):
    """Result of :func:`pack_rows` (numpy int64 arrays)."""

    input_ids: np.ndarray
    """(T,) the tokens of every row, rows one after another."""
    position_ids: np.ndarray
    """(T,) ``0..L-1`` for each sequence: what makes the model see separate sequences."""
    shift_labels: np.ndarray
    """(T,) the next token where it is scored, else -100 (TRL's pre-shifted ``shift_labels``)."""
    bin_offsets: np.ndarray
    """(R + 1,) row ``r`` holds segments ``bin_offsets[r]:bin_offsets[r + 1]``."""
    segment_offsets: np.ndarray
    """(P + 1,) flat start of each placed sequence, in row order; the last entry is ``T``."""
    score_index: np.ndarray
    """(N,) flat position of each scored token's label, in the caller's sequence order."""
    cu_seqlens: np.ndarray
    """(M + 1,) scored tokens per sequence of the caller's order, cumulated."""

    @property
    def num_rows(self) -> int:
        return len(self.bin_offsets) - 1

    @property
    def num_tokens(self) -> int:
        return len(self.input_ids)

    def row_span(self, r: int) -> tuple[int, int]:
        """``(start, end)`` of row ``r`` in the flat arrays."""
        return int(self.segment_offsets[self.bin_offsets[r]]), int(self.segment_offsets[self.bin_offsets[r + 1]])

    def row_cu_seqlens(self, r: int) -> np.ndarray:
        """(segments + 1,) int32 boundaries of row ``r``'s sequences (flash-attention's ``cu_seq_lens``)."""
        seg = self.segment_offsets[self.bin_offsets[r] : self.bin_offsets[r + 1] + 1]
        return (seg - seg[0]).astype(np.int32)


def _int_array(x: Any, name: str) -> np.ndarray:
    arr = v.array(np.asarray(x) if isinstance(x, (list, tuple, range)) else x, name, v.INT, (1,))
    return arr if arr.dtype == np.int64 else arr.astype(np.int64)


def check_budget(lengths: np.ndarray, max_tokens: Any, argument: str, sequences: np.ndarray | None = None) -> int:
    """``max_tokens`` as an int, or an error naming ``argument`` if it is not a positive int or
    some sequence is longer (a row holds sequences whole: nothing is truncated or dropped)."""
    cap = v.integer(max_tokens, argument, minimum=1)
    longest = int(lengths.max()) if lengths.size else 0
    if longest > cap:
        i = int(np.argmax(lengths))
        which = f"sequence {int(sequences[i]) if sequences is not None else i}"
        raise InvalidArgumentError(
            f"is {cap} tokens, but {which} has {longest}: a row holds every sequence whole "
            "(nothing is truncated or dropped), so it must be at least the longest",
            argument,
        )
    return cap


def pack_rows(
    values: Any,
    offsets: Any,
    *,
    targets: Any = None,
    sequences: Any = None,
    max_tokens: int | None = None,
) -> PackedRows:
    """Pack ragged sequences into rows for a padding-free forward.

    Parameters
    ----------
    values, offsets : (T,) and (S + 1,) int32/int64 arrays (numpy or CPU torch), or a
        :class:`Ragged`'s fields: the sequences.
    targets : (T,) bool/uint8, optional
        Which tokens are scored (``True`` for trained completion tokens). A sequence's first token
        is never scored. ``None``: every token but the first of each sequence.
    sequences : (M,) ints, optional
        Which sequences to pack, in the order the scored outputs should come in (default: all,
        in order). Empty sequences take no room and score nothing.
    max_tokens : int, optional
        Most tokens per row. ``None``: one row holding ``sequences`` in order. Otherwise rows
        are formed by best-fit decreasing (:func:`fastalign.packing.bfd`), and a sequence longer
        than ``max_tokens`` is an error (never truncated or dropped).

    Returns
    -------
    PackedRows
    """
    vals = _int_array(values, "values")
    offs = _int_array(offsets, "offsets")
    flags = None
    if targets is not None:
        flags = v.array(targets, "targets", (np.dtype(np.bool_), np.dtype(np.uint8)), (1,))
        flags = flags.view(np.uint8)
    n_seq = max(len(offs) - 1, 0)
    if sequences is None:
        seq = np.arange(n_seq, dtype=np.int64)
    else:
        seq = _int_array(sequences, "sequences")
        if seq.size and (int(seq.min()) < 0 or int(seq.max()) >= n_seq):
            bad = int(seq[(seq < 0) | (seq >= n_seq)][0])
            raise InvalidArgumentError(f"holds {bad}, expected sequence indices in [0, {n_seq})", "sequences")
    if len(offs) == 0:
        raise InvalidArgumentError("is empty, expected (S + 1,) offsets starting at 0", "offsets")
    lengths = offs[1:][seq] - offs[:-1][seq] if seq.size else np.zeros(0, np.int64)
    placed = seq[lengths > 0]
    if max_tokens is None:
        order, bins = placed, np.array([0, placed.size], dtype=np.int64)
    else:
        cap = check_budget(lengths, max_tokens, "max_tokens", seq)
        plan = bfd(lengths[lengths > 0], cap)
        order, bins = placed[plan.order], plan.bin_offsets
    out = _native.pack_rows(vals, offs, flags, np.ascontiguousarray(order), bins, seq)
    return PackedRows(*out)
