"""DAPO's soft overlong penalty in plain torch (twin of the Rust evaluator behind
:mod:`fastalign.rewards`)."""

from __future__ import annotations

import torch

from ..errors import InvalidArgumentError


def soft_overlong_penalty(
    lengths: torch.Tensor, lmax: int, cache: int, float64: bool, check: bool = True
) -> torch.Tensor:
    """DAPO's penalty of each length. ``check``: refuse negative lengths (one device sync, which
    the public function skips for lengths it computed from a checked mask)."""
    if check and bool((lengths < 0).any()):
        bad = int(torch.nonzero(lengths < 0)[0, 0])
        raise InvalidArgumentError(f"must be >= 0, found {int(lengths[bad])} at index {bad}", "lengths")
    lo = lmax - cache
    x = lengths.to(torch.int64)
    ramp = (lo - x).to(torch.float64) / cache if cache > 0 else torch.zeros_like(x, dtype=torch.float64)
    out = torch.where(x <= lo, torch.zeros_like(ramp), torch.where(x <= lmax, ramp, torch.full_like(ramp, -1.0)))
    return out if float64 else out.to(torch.float32)
