"""Plain-torch implementations of fastalign's ops: what runs for tensors on CUDA (or any
non-CPU device).

They follow the same formulas as the Rust kernels (and TRL 1.16.0): element-wise steps in the
input dtype, the NaN rules, TRL's Bessel factor computed as ``f32(n) / f32(n - 1)``. Inputs have
already been validated by the public functions; everything stays on the input's device except
the scalar statistics, which are returned as Python floats (TRL calls ``.item()`` on them too):
they are read back together, in one synchronisation per call. Nothing else waits for the device:
no boolean-mask indexing, and host data (the reward weights) goes to the device with a
non-blocking copy (``torch.tensor(..., device=...)`` would block until the stream drains).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .advantages import Advantages
from .overlong import CompletionMask


def _nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Bessel-corrected NaN-ignoring std; NaN where fewer than two values are present."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    sq = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    n = (~torch.isnan(x)).sum(dim=dim, keepdim=True)
    factor = n.to(torch.float32) / (n - 1).to(torch.float32)
    factor = torch.where(n > 1, factor, torch.full_like(factor, float("nan")))
    out = torch.sqrt(sq * factor)
    return out.reshape(()) if dim is None else out.squeeze(dim)


def _weighted_sum(r: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted NaN-sum per row; NaN for rows where every reward is NaN."""
    s = (r * w.unsqueeze(0)).nansum(dim=1)
    return torch.where(torch.isnan(r).all(dim=1), torch.full_like(s, float("nan")), s)


def _weights(w_np: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """The (K,) reward weights on ``like``'s device: a copy (``w_np`` may be a shared read-only
    array) sent without blocking (a pageable-memory copy is staged before the call returns)."""
    return torch.from_numpy(np.array(w_np, copy=True)).to(like.device, non_blocking=True)


def _result(adv, zero, r: torch.Tensor, s_logged: torch.Tensor, metrics: bool) -> Advantages:
    """The advantages and the statistics TRL logs, read back to the host in one go."""
    stats = [zero.float().mean()]
    k = r.shape[1]
    if metrics:
        stats += [torch.nanmean(s_logged), _nanstd(s_logged)]
        stats += [torch.nanmean(r[:, j]) for j in range(k)] + [_nanstd(r[:, j]) for j in range(k)]
    # float64 holds every float32 value exactly: the Python floats are those .item() would give
    values = torch.stack([x.to(torch.float64) for x in stats]).tolist()
    out = Advantages(adv, zero, s_logged, values[0])
    if not metrics:
        return out
    return out._replace(
        reward_mean=values[1],
        reward_std=values[2],
        reward_func_means=tuple(values[3 : 3 + k]),
        reward_func_stds=tuple(values[3 + k : 3 + 2 * k]),
    )


def grpo_advantages(
    r: torch.Tensor, w_np: np.ndarray, g: int, scale: str, agg: str, eps: float, metrics: bool
) -> Advantages:
    n, k = r.shape
    w = _weights(w_np, r)
    s = _weighted_sum(r, w)
    if agg == "sum_then_normalize":
        groups = s.view(-1, g)
        mean = torch.nanmean(groups, dim=1).repeat_interleave(g)
        if scale == "batch":
            std = _nanstd(s).expand(n) if n > 1 else torch.zeros_like(s)
        else:
            std = _nanstd(groups, dim=1).repeat_interleave(g) if g > 1 else torch.zeros_like(s)
        adv = s - mean
        if scale != "none":
            adv = adv / (std + eps)
    else:
        grouped = r.view(-1, g, k)
        mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
        std_k = _nanstd(grouped, dim=1).unsqueeze(1) if g > 1 else torch.zeros_like(mean_k)
        z = ((grouped - mean_k) / (std_k + eps)).view(n, k)
        zs = (z * w.unsqueeze(0)).nansum(dim=1)
        zs = torch.where(torch.isnan(r).all(dim=1), torch.full_like(zs, float("nan")), zs)
        std = _nanstd(zs).expand(n) if n > 1 else torch.zeros_like(zs)
        adv = (zs - torch.nanmean(zs)) / (std + eps)
    adv = torch.nan_to_num(adv, nan=0.0)
    zero = std.abs() <= 1e-8
    return _result(adv, zero, r, s, metrics)


def rloo_advantages(
    r: torch.Tensor,
    w_np: np.ndarray,
    g: int,
    kl: torch.Tensor | None,
    beta: float,
    clip: tuple[float, float] | None,
    normalize: bool,
    eps: float,
    metrics: bool,
) -> Advantages:
    w = _weights(w_np, r)
    logged = _weighted_sum(r, w)
    s = logged
    if clip is not None:
        s = s.clamp(min=clip[0], max=clip[1])
    if beta != 0.0:
        s = s - beta * kl
    groups = s.view(-1, g)
    std = _nanstd(groups, dim=1) if g > 1 else torch.zeros(groups.shape[0], dtype=s.dtype, device=s.device)
    if g > 1:
        count = (~torch.isnan(groups)).sum(dim=1, keepdim=True)
        total = groups.nansum(dim=1, keepdim=True)
        adv = (groups - (total - groups) / (count - 1)).reshape(-1)
    else:
        adv = torch.zeros_like(s)
    if normalize:
        adv = (adv - torch.nanmean(adv)) / (_nanstd(adv) + eps)
    adv = torch.nan_to_num(adv, nan=0.0)
    zero = (std.abs() <= 1e-8).repeat_interleave(g)
    return _result(adv, zero, r, logged, metrics)


def zero_variance_groups(r: torch.Tensor, w_np: np.ndarray, g: int, atol: float, rtol: float) -> torch.Tensor:
    w = _weights(w_np, r)
    s = _weighted_sum(r, w).to(torch.float64).view(-1, g)
    nan = torch.isnan(s)
    lo = torch.where(nan, torch.full_like(s, float("inf")), s).amin(dim=1)
    hi = torch.where(nan, torch.full_like(s, float("-inf")), s).amax(dim=1)
    count = (~nan).sum(dim=1)
    scale = torch.maximum(lo.abs(), hi.abs())
    return (count < 2) | (lo == hi) | ((hi - lo) <= atol + rtol * scale)


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


def soft_overlong_penalty(lengths: torch.Tensor, lmax: int, cache: int, float64: bool, check: bool = True) -> Any:
    """DAPO's penalty of each length. ``check``: refuse negative lengths (one device sync, which
    the public function skips for lengths it computed from a checked mask)."""
    if check and bool((lengths < 0).any()):
        bad = int(torch.nonzero(lengths < 0)[0, 0])
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(f"must be >= 0, found {int(lengths[bad])} at index {bad}", "lengths")
    lo = lmax - cache
    x = lengths.to(torch.int64)
    ramp = (lo - x).to(torch.float64) / cache if cache > 0 else torch.zeros_like(x, dtype=torch.float64)
    out = torch.where(x <= lo, torch.zeros_like(ramp), torch.where(x <= lmax, ramp, torch.full_like(ramp, -1.0)))
    return out if float64 else out.to(torch.float32)


def top_k_per_group(scores: Any, g: int, k: int, keep: str) -> Any:
    """Plain-torch twin of the Rust selection: NaN last, ties to the earlier row, original order."""
    s = scores.reshape(-1, g)
    key = -s if keep == "largest" else s
    # a stable ascending sort puts NaN last and keeps equal keys (-0.0 == 0.0) in index order
    best = torch.sort(key, dim=1, stable=True).indices[:, :k]
    rows = torch.sort(best, dim=1).values
    base = torch.arange(s.shape[0], device=s.device, dtype=torch.int64).unsqueeze(1) * g
    return (rows + base).reshape(-1)
