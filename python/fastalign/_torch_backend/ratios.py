"""Masked per-sequence reductions and the vLLM importance-sampling ratio in plain torch (twins
of the Rust kernels behind :mod:`fastalign.ratios`)."""

from __future__ import annotations

import math

import torch

from .layout import F64, Layout, sum64


def masked_reduce(
    values: torch.Tensor,
    minus: torch.Tensor | None,
    mask: torch.Tensor | None,
    cu_seqlens: torch.Tensor | None,
    reduction: str,
) -> torch.Tensor:
    lay = Layout(values, cu_seqlens)
    x = values if minus is None else values - minus
    if reduction == "max":
        if mask is not None:
            x = x.masked_fill(mask == 0, -math.inf)
        return lay.rmax(x)
    xm = x if mask is None else x * mask.to(x.dtype)
    s = lay.rsum(xm, F64)
    if reduction == "sum":
        return s.to(values.dtype)
    # the count is exact, as TRL's ``mask.sum(-1)`` (an integer mask is summed as integers)
    cnt = lay.count(mask) if mask is not None else lay.full_count(values.device)
    return (s / cnt.clamp(min=1.0)).to(values.dtype)


def masked_reduce_backward(
    grad: torch.Tensor, mask: torch.Tensor | None, like: torch.Tensor, cu_seqlens: torch.Tensor | None, reduction: str
) -> torch.Tensor:
    lay = Layout(like, cu_seqlens)
    g = grad
    if reduction == "mean":
        cnt = lay.count(mask) if mask is not None else lay.full_count(like.device)
        g = (grad.to(F64) / cnt.clamp(min=1.0)).to(like.dtype)
    if mask is None:
        return lay.expand(g).expand(like.shape).contiguous() if not lay.packed else lay.expand(g)
    return lay.expand(g) * mask.to(like.dtype)


def _stats(x: torch.Tensor, sel: torch.Tensor | None) -> list[torch.Tensor]:
    """min, mean, max (float64, 0-d) of ``x`` where ``sel`` (all of ``x`` when ``None``); zeros
    when nothing is selected. Reductions over ``torch.where``: no boolean indexing, no sync."""
    if sel is None:
        if x.numel() == 0:
            z = torch.zeros((), dtype=F64, device=x.device)
            return [z, z, z]
        return [x.amin().to(F64), sum64(x, None) / x.numel(), x.amax().to(F64)]
    n = sel.sum()
    some = n > 0
    lo = torch.where(sel, x, math.inf).amin().to(F64)
    hi = torch.where(sel, x, -math.inf).amax().to(F64)
    mean = sum64(torch.where(sel, x, 0.0), None) / n.to(F64)
    return [torch.where(some, t, 0.0) for t in (lo, mean, hi)]


def vllm_is_ratio(
    old: torch.Tensor,
    sampling: torch.Tensor,
    mask: torch.Tensor,
    cu_seqlens: torch.Tensor | None,
    mode: str,
    clip_min: float | None,
    clip_max: float | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    lay = Layout(old, cu_seqlens)
    on = mask != 0
    dd = old - sampling
    ok = on & ~torch.isnan(dd)
    d = torch.nan_to_num(dd * mask.to(old.dtype), nan=0.0)
    sequence = mode.startswith("sequence")
    if sequence:
        raw = torch.exp(lay.rsum(d, F64).to(old.dtype))
    else:
        raw = torch.exp(d)
    if mode.endswith("truncate"):
        ratio = torch.clamp(raw, min=clip_min, max=clip_max)
    else:
        lo = -math.inf if clip_min is None else clip_min
        hi = math.inf if clip_max is None else clip_max
        ratio = raw.masked_fill((raw < lo) | (raw > hi), 0.0)
    sel = None if sequence else on
    ds = _stats(dd.abs(), ok)
    metrics = torch.stack([ds[1], ds[2], *_stats(ratio, sel), *_stats(raw, sel)])
    return ratio, metrics
