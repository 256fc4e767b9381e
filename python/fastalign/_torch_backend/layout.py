"""Sequence layouts and float64 sums shared by the plain-torch ratio and loss kernels.

Both layouts: padded ``(B, T)`` with a mask, and packed ``(N,)`` tokens with ``cu_seqlens``.
No ``(B, T)`` float64 tensor is made for float32 inputs: sums accumulate in float64 through
:func:`sum64`, which converts at most :data:`F64_BLOCK` elements at a time (``torch.sum(x,
dtype=torch.float64)`` alone would convert all of ``x`` first: eager torch casts the input
before reducing); mask counts add as integers (exact, as TRL's ``mask.sum(-1)``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

F64 = torch.float64

F64_BLOCK = 1 << 20
"""Largest number of float32 elements converted to float64 at once by :func:`sum64` (8 MiB of
float64). Inputs up to this size are converted in one piece; larger ones block by block."""


def sum64(v: torch.Tensor, dim: int | None = -1) -> torch.Tensor:
    """Sum of ``v`` over its last dimension (``dim=-1``) or all of it (``dim=None``), accumulated
    in float64, without a float64 copy of more than :data:`F64_BLOCK` elements."""
    if dim is None:
        v = v.reshape(-1)
    if v.dtype == F64:
        return v.sum(-1)
    n = v.shape[-1]
    step = max(1, F64_BLOCK // max(1, v.numel() // max(1, n)))
    if n <= step:
        return v.sum(-1, dtype=F64)
    out = v[..., :step].sum(-1, dtype=F64)
    for s in range(step, n, step):
        out = out + v[..., s : s + step].sum(-1, dtype=F64)
    return out


def scalar(x: float, dtype: torch.dtype) -> float:
    """A Python float rounded to ``dtype`` (float32 or float64), as torch rounds a scalar operand."""
    return float(np.float32(x)) if dtype == torch.float32 else float(x)


def scalar32(x: float) -> float:
    """A Python float rounded to float32 (``torch.where(cond, float, float)`` makes float32)."""
    return float(np.float32(x))


class Layout:
    """Per-sequence sums and broadcasts for padded ``(B, T)`` or packed ``(N,)`` + ``cu_seqlens``."""

    def __init__(self, x: torch.Tensor, cu_seqlens: torch.Tensor | None) -> None:
        self.packed = cu_seqlens is not None
        if cu_seqlens is None:
            self.rows = x.shape[0]
            self.single_col = x.dim() == 2 and x.shape[1] == 1
            self.width = x.shape[-1] if x.dim() == 2 else 1
        else:
            self.rows = cu_seqlens.numel() - 1
            self.lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).long()
            self.seg = torch.repeat_interleave(
                torch.arange(self.rows, device=x.device), self.lengths, output_size=x.numel()
            )
            self.single_col = False

    def rsum(self, v: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Per-sequence sum (accumulated in float64 and returned as float64 with ``dtype=F64``;
        in ``v``'s dtype otherwise)."""
        if dtype is None or dtype == v.dtype:
            if not self.packed:
                return v.sum(-1)
            return torch.zeros(self.rows, dtype=v.dtype, device=v.device).index_add_(0, self.seg, v)
        if dtype != F64:
            raise TypeError(f"rsum accumulates in float64 or in the input dtype, not {dtype}")
        if not self.packed:
            return sum64(v)
        out = torch.zeros(self.rows, dtype=F64, device=v.device)
        for s in range(0, v.shape[0], F64_BLOCK):
            out.index_add_(0, self.seg[s : s + F64_BLOCK], v[s : s + F64_BLOCK].to(F64))
        return out

    def count(self, mask: torch.Tensor) -> torch.Tensor:
        """Per-sequence mask sum as float64 (B,): bool and integer masks add as int64 (exact, as
        TRL's ``mask.sum(-1)``), float masks accumulate in float64."""
        if mask.is_floating_point():
            return self.rsum(mask, F64)
        if not self.packed:
            return mask.sum(-1).to(F64)
        out = torch.zeros(self.rows, dtype=torch.int64, device=mask.device)
        return out.index_add_(0, self.seg, mask.to(torch.int64)).to(F64)

    def full_count(self, device: torch.device) -> torch.Tensor:
        """Tokens per sequence (no mask), float64 (B,)."""
        if self.packed:
            return self.lengths.to(F64)
        return torch.full((self.rows,), float(self.width), dtype=F64, device=device)

    def expand(self, r: torch.Tensor) -> torch.Tensor:
        """A per-sequence value broadcast to its tokens."""
        return r.unsqueeze(-1) if not self.packed else r[self.seg]

    def rmax(self, v: torch.Tensor) -> torch.Tensor:
        if not self.packed:
            return v.amax(-1) if v.shape[-1] else torch.full((self.rows,), -math.inf, dtype=v.dtype, device=v.device)
        out = torch.full((self.rows,), -math.inf, dtype=v.dtype, device=v.device)
        return out.scatter_reduce(0, self.seg, v, "amax", include_self=True)
