"""Group-relative advantages in plain torch (twins of the Rust kernels behind
:mod:`fastalign.advantages`).

Everything stays on the input's device except the scalar statistics TRL logs, returned as
Python floats and read back together, in one synchronisation per call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._results import Advantages


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


def _result(
    adv: torch.Tensor, zero: torch.Tensor, r: torch.Tensor, s_logged: torch.Tensor, metrics: bool
) -> Advantages:
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
    if kl is not None and beta != 0.0:
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


def top_k_per_group(scores: Any, g: int, k: int, keep: str) -> Any:
    """The Rust selection: NaN last, ties to the earlier row, original order."""
    s = scores.reshape(-1, g)
    key = -s if keep == "largest" else s
    # a stable ascending sort puts NaN last and keeps equal keys (-0.0 == 0.0) in index order
    best = torch.sort(key, dim=1, stable=True).indices[:, :k]
    rows = torch.sort(best, dim=1).values
    base = torch.arange(s.shape[0], device=s.device, dtype=torch.int64).unsqueeze(1) * g
    return (rows + base).reshape(-1)
