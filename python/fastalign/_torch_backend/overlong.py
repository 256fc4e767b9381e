"""Completion masks in plain torch (twin of the Rust kernel behind :mod:`fastalign.overlong`)."""

from __future__ import annotations

import torch

from .._results import CompletionMask


def completion_mask(
    ids: torch.Tensor, eos: list[int], pad: int, mask_truncated: bool, kind: str = "int64"
) -> CompletionMask:
    b, t = ids.shape
    if len(eos) <= 8:  # comparisons with Python ints: no host-to-device copy of the EOS ids
        is_eos = ids == eos[0] if eos else torch.zeros_like(ids, dtype=torch.bool)
        for e in eos[1:]:
            is_eos |= ids == e
    else:
        ids_eos = torch.tensor(eos, dtype=ids.dtype).to(ids.device, non_blocking=True)
        is_eos = torch.isin(ids, ids_eos)
    has_eos = is_eos.any(dim=1)
    first = is_eos.to(torch.int8).argmax(dim=1)
    lengths = torch.where(has_eos, first + 1, torch.full_like(first, t)).to(torch.int64)
    truncated = ~has_eos & (ids[:, -1] != pad)
    keep = torch.arange(t, device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)
    if mask_truncated:
        keep = keep & ~truncated.unsqueeze(1)
    mask = keep.to(getattr(torch, kind))
    return CompletionMask(mask, truncated, lengths, keep.sum())
