"""A generation batch kept ragged for padding-free training, and the index arithmetic on it.

``FastGRPOTrainer(padding_free=True)`` never pads: the generation batch is one flat buffer of
attended tokens (prompt, then completion unless overlong filtering masked it out), a flag per
token saying whether it is trained, and every per-token tensor (old, reference and sampling
log-probs, the IS ratio) in the ``(N,)`` layout of the trained tokens, sequence after sequence.
Shuffling and splitting the batch into micro-batches move sequence *indices* only; the tensors a
micro-batch needs are gathered when its loss is computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import PaddingFreeError
from ..padding_free import PackedRows, concat_lists, pack_rows

__all__ = ["PackedGeneration", "padded_mask", "scatter_padded", "spans"]


def spans(cu: np.ndarray, sequences: np.ndarray) -> np.ndarray:
    """Positions of the tokens of ``sequences`` in the layout ``cu`` delimits, in their order:
    ``concat(arange(cu[s], cu[s + 1]) for s in sequences)`` without a Python loop."""
    starts = cu[:-1][sequences]
    lengths = cu[1:][sequences] - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return shift + np.arange(total, dtype=np.int64)


@dataclass
class PackedGeneration:
    """One generation batch (this process's rows), ragged."""

    values: np.ndarray  # (T,) int64 attended tokens
    offsets: np.ndarray  # (S + 1,) int64
    targets: np.ndarray  # (T,) uint8: trained completion tokens
    cu: np.ndarray  # (S + 1,) int64: trained tokens per sequence, cumulated (the (N,) layout)

    @classmethod
    def build(
        cls,
        prompt_ids: list[list[int]],
        completion_ids: list[list[int]],
        keep: np.ndarray,
        tool_mask: list[list[int]] | None,
    ) -> PackedGeneration:
        """Prompt + completion per sequence; completions with ``keep`` False (overlong filtering)
        are left out entirely (TRL does not attend to them either); tool-result tokens are
        forwarded but not trained."""
        seqs = concat_lists(prompt_ids, completion_ids)
        n = len(seqs.offsets) - 1
        owner = np.repeat(np.arange(n), np.diff(seqs.offsets))
        completion = seqs.part == 1
        targets = completion.copy()
        if tool_mask is not None:
            targets[completion] = concat_lists(tool_mask).values != 0
        dropped = completion & ~keep[owner]
        if dropped.any():
            stay = ~dropped
            values, targets, owner = seqs.values[stay], targets[stay], owner[stay]
            offsets = np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=n)))).astype(np.int64)
            completion = completion[stay]
        else:
            values, offsets = seqs.values, seqs.offsets
        first = offsets[:-1][np.diff(offsets) > 0]
        if completion[first].any():
            i = int(owner[first[completion[first]][0]])
            raise PaddingFreeError(
                f"prompt {i} is empty: its first completion token has no position to be predicted from", "prompt_ids"
            )
        counts = np.bincount(owner[targets], minlength=n)
        cu = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        return cls(values, offsets, targets.astype(np.uint8), cu)

    @property
    def num_sequences(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_trained(self) -> int:
        return int(self.cu[-1])

    def lengths(self, sequences: np.ndarray) -> np.ndarray:
        return self.offsets[1:][sequences] - self.offsets[:-1][sequences]

    def token_index(self, sequences: np.ndarray) -> np.ndarray:
        """Positions in the (N,) layout of the trained tokens of ``sequences``, in their order."""
        return spans(self.cu, sequences)

    def cu_of(self, sequences: np.ndarray) -> np.ndarray:
        counts = self.cu[1:][sequences] - self.cu[:-1][sequences]
        return np.concatenate(([0], np.cumsum(counts))).astype(np.int64)

    def rows(self, sequences: np.ndarray, max_tokens: int | None) -> PackedRows:
        return pack_rows(self.values, self.offsets, targets=self.targets, sequences=sequences, max_tokens=max_tokens)


def scatter_padded(values: torch.Tensor, cu: np.ndarray, fill: float = 0.0) -> torch.Tensor:
    """``(N,)`` values of sequences delimited by ``cu`` as right-padded ``(B, max length)`` rows."""
    lengths = np.diff(cu)
    b, width = len(lengths), max(int(lengths.max(initial=0)), 1)
    rows = np.repeat(np.arange(b), lengths)
    cols = np.arange(int(cu[-1])) - np.repeat(cu[:-1], lengths)
    out = values.new_full((b, width), fill)
    out[torch.from_numpy(rows).to(values.device), torch.from_numpy(cols).to(values.device)] = values
    return out


def padded_mask(cu: np.ndarray, device: Any) -> torch.Tensor:
    """The ``(B, max length)`` int mask of :func:`scatter_padded`'s layout."""
    lengths = np.diff(cu)
    width = max(int(lengths.max(initial=0)), 1)
    return torch.from_numpy((np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)).to(device)
