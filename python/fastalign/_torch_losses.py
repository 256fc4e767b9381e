"""Plain-torch implementations of the ratio and loss kernels: what runs for tensors on CUDA (or
any non-CPU device), and a second implementation the tests hold against the Rust one on CPU.

Each function returns exactly what the Rust kernel returns (same shapes, same metric slots),
computes the same formulas (TRL 1.16's element-wise steps in the input dtype, the analytic
gradient of ``rust/fastalign-core/src/losses.rs``) and works for both layouts: padded ``(B, T)``
with a mask, and packed ``(N,)`` tokens with ``cu_seqlens``. Reductions accumulate in float64.
Inputs were validated by the public functions, except the data checks (NaN log-probs), done here.
"""

from __future__ import annotations

import math

import torch

from .errors import InvalidArgumentError

F64 = torch.float64


class Layout:
    """Per-sequence sums and broadcasts for padded ``(B, T)`` or packed ``(N,)`` + ``cu_seqlens``."""

    def __init__(self, x: torch.Tensor, cu_seqlens: torch.Tensor | None) -> None:
        self.packed = cu_seqlens is not None
        if cu_seqlens is None:
            self.rows = x.shape[0]
            self.single_col = x.dim() == 2 and x.shape[1] == 1
        else:
            self.rows = cu_seqlens.numel() - 1
            lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).long()
            self.seg = torch.repeat_interleave(
                torch.arange(self.rows, device=x.device), lengths, output_size=x.numel()
            )
            self.single_col = False

    def rsum(self, v: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Per-sequence sum (in ``dtype`` when given)."""
        v = v if dtype is None else v.to(dtype)
        if not self.packed:
            return v.sum(-1)
        return torch.zeros(self.rows, dtype=v.dtype, device=v.device).index_add_(0, self.seg, v)

    def expand(self, r: torch.Tensor) -> torch.Tensor:
        """A per-sequence value broadcast to its tokens."""
        return r.unsqueeze(-1) if not self.packed else r[self.seg]

    def rmax(self, v: torch.Tensor) -> torch.Tensor:
        if not self.packed:
            return v.amax(-1) if v.shape[-1] else torch.full((self.rows,), -math.inf, dtype=v.dtype, device=v.device)
        out = torch.full((self.rows,), -math.inf, dtype=v.dtype, device=v.device)
        return out.scatter_reduce(0, self.seg, v, "amax", include_self=True)


def _check_nan(x: torch.Tensor | None, name: str) -> None:
    if x is not None and bool(torch.isnan(x).any()):
        raise InvalidArgumentError("contains NaN", name)


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
    m = None if mask is None else mask.to(x.dtype)
    xm = x if m is None else x * m
    s = lay.rsum(xm, F64)
    if reduction == "sum":
        return s.to(values.dtype)
    # the count is exact, as TRL's ``mask.sum(-1)`` (an integer mask is summed as integers)
    cnt = lay.rsum(mask, F64) if mask is not None else lay.rsum(torch.ones_like(x), F64)
    return (s / cnt.clamp(min=1.0)).to(values.dtype)


def masked_reduce_backward(
    grad: torch.Tensor, mask: torch.Tensor | None, like: torch.Tensor, cu_seqlens: torch.Tensor | None, reduction: str
) -> torch.Tensor:
    lay = Layout(like, cu_seqlens)
    m = torch.ones_like(like) if mask is None else mask.to(like.dtype)
    g = grad
    if reduction == "mean":
        cnt = lay.rsum(m if mask is None else mask, F64)
        g = (grad.to(F64) / cnt.clamp(min=1.0)).to(like.dtype)
    return lay.expand(g) * m


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
    sel_r = ratio.reshape(-1) if sequence else ratio[on]
    sel_w = raw.reshape(-1) if sequence else raw[on]
    diff = dd.abs()[ok]

    def stats(x: torch.Tensor) -> list[torch.Tensor]:
        if x.numel() == 0:
            z = torch.zeros((), dtype=F64, device=old.device)
            return [z, z, z]
        x = x.to(F64)
        return [x.min(), x.mean(), x.max()]

    ds = stats(diff)
    metrics = torch.stack([ds[1], ds[2], *stats(sel_r), *stats(sel_w)])
    return ratio, metrics


def _nanmin(x: torch.Tensor) -> torch.Tensor:
    nan = torch.isnan(x)
    v = torch.where(nan, torch.full_like(x, math.inf), x).min() if x.numel() else x.new_tensor(math.nan)
    return torch.where(nan.all(), x.new_tensor(math.nan), v) if x.numel() else v


def _nanmax(x: torch.Tensor) -> torch.Tensor:
    return -_nanmin(-x)


def grpo_loss(
    lp: torch.Tensor,
    old: torch.Tensor | None,
    adv: torch.Tensor,
    mask: torch.Tensor,
    ref: torch.Tensor | None,
    isr: torch.Tensor | None,
    samp: torch.Tensor | None,
    ent: torch.Tensor | None,
    cu_seqlens: torch.Tensor | None,
    loss_type: str,
    level: str,
    eps_low: float,
    eps_high: float,
    delta: float | None,
    beta: float,
    bias_kl: bool,
    opsm_thr: float | None,
    sapo_pos: float,
    sapo_neg: float,
    vk_pos: float,
    vl_pos: float,
    vk_neg: float,
    vl_neg: float,
    ga: float,
    max_len: float | None,
    token_den: float | None,
    want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, grad wrt ``lp`` or an empty tensor, metrics (8,) float64), as the Rust kernel."""
    _check_nan(lp, "per_token_logps")
    _check_nan(old, "old_per_token_logps")
    _check_nan(ref, "ref_per_token_logps")
    if beta != 0.0 and ref is None:
        raise InvalidArgumentError("is required when beta != 0", "ref_per_token_logps")
    if loss_type == "dr_grpo" and max_len is None:
        raise InvalidArgumentError("is required for loss_type='dr_grpo'", "max_completion_length")
    lay = Layout(lp, cu_seqlens)
    B = lay.rows
    dt, dev = lp.dtype, lp.device
    m = mask.to(dt)
    mf = mask.to(F64)
    adv_tok = adv.numel() != B
    A = adv.reshape(lp.shape) if adv_tok else lay.expand(adv.reshape(B))
    lr = lp - old if old is not None else torch.zeros_like(lp)
    cnt = lay.rsum(mf)
    cnt1 = cnt.clamp(min=1.0)
    total = mf.sum()
    seq = level != "token"
    ppo = loss_type in ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")

    def c(x: float) -> torch.Tensor:  # a Python float as torch rounds it for this dtype
        return torch.tensor(x, dtype=dt, device=dev)

    def c32(x: float) -> torch.Tensor:  # torch.where(cond, float, float) makes float32 tensors
        return torch.tensor(x, dtype=torch.float32, device=dev).to(dt)

    if seq:
        coef_row = torch.exp((lay.rsum(lr * m, F64) / cnt1).to(dt))
        coef = lay.expand(coef_row)
    else:
        coef_row = torch.ones(B, dtype=dt, device=dev)
        coef = torch.exp(lr)

    zero = torch.zeros_like(lp)
    low = high = cis = torch.zeros_like(lp, dtype=torch.bool)
    phi = None
    if loss_type == "cispo":
        cc = torch.clamp(coef, max=eps_high)
        pl, gd, gc = -cc * A * lp, -cc * A, zero
        cis = (coef > eps_high) & (A > 0)
    elif loss_type == "sapo":
        tau = torch.where(A > 0, c32(sapo_pos), c32(sapo_neg))
        s = torch.sigmoid(tau * (coef - 1))
        pl = -(s * 4 / tau) * A
        gd, gc = zero, -A * 4 / tau * (s * (1 - s)) * tau
    elif loss_type == "vespo":
        lo_c = math.log(1e-8)
        vs = lay.rsum(torch.clamp(lr, -20.0, 20.0) * m, F64)
        if isr is not None:
            vs = vs + lay.rsum(torch.clamp(torch.log(isr.reshape(lp.shape)), lo_c, 20.0), F64)
        log_w = torch.clamp(vs.to(dt), lo_c, 20.0)
        w = torch.exp(log_w)

        def phi_of(a: torch.Tensor, lw: torch.Tensor, ww: torch.Tensor) -> torch.Tensor:
            nonneg = a >= 0
            k = torch.where(nonneg, c32(vk_pos), c32(vk_neg))
            lam = torch.maximum(torch.where(nonneg, c32(vl_pos), c32(vl_neg)), c32(1e-4))
            return torch.exp(lam + k * lw - lam * ww).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)

        phi = phi_of(A, lay.expand(log_w), lay.expand(w))
        phi_rows = phi_of(adv.reshape(B), log_w, w) if not adv_tok else None
        pl, gd, gc = -phi * A * lp, -phi * A, zero
    else:
        c2 = torch.clamp(coef, 1 - eps_low, 1 + eps_high)
        dc2 = ((coef >= c(1 - eps_low)) & (coef <= c(1 + eps_high))).to(dt)
        if delta is not None:
            c1 = torch.clamp(coef, max=delta)
            dc1 = (coef <= c(delta)).to(dt)
        else:
            c1, dc1 = coef, torch.ones_like(coef)
        x1, x2 = c1 * A, c2 * A
        pl = -torch.minimum(x1, x2)
        d = torch.where(x1 < x2, dc1, torch.where(x2 < x1, dc2, (dc1 + dc2) * 0.5))
        gd, gc = zero, -A * d
        low = (c1 < c(1 - eps_low)) & (A < 0)
        high = (c1 > c(1 + eps_high)) & (A > 0)
        coef_after_row = torch.clamp(coef_row, max=delta) if delta is not None else coef_row

    f = None
    if opsm_thr is not None:
        s_ = samp if samp is not None else (old if old is not None else lp)
        avg = (lay.rsum(torch.nan_to_num(s_ - lp, nan=0.0) * m, F64) / cnt1).to(dt)
        f = ((A >= 0) | (lay.expand(avg) <= c(opsm_thr))).to(dt)
    if ent is not None:
        f = ent.to(dt) if f is None else f * ent.to(dt)
    if isr is not None and loss_type != "vespo":
        r = isr.reshape(lp.shape) if isr.numel() != B else lay.expand(isr.reshape(B))
        f = r if f is None else f * r
    if f is not None:
        pl, gd, gc = pl * f, gd * f, gc * f
    klv = None
    if beta != 0.0:
        dref = ref - lp
        e = torch.exp(dref)
        kl = e - dref - 1
        if bias_kl:
            klv = kl * coef
            gd = gd + c(beta) * coef * (1 - e)
            gc = gc + c(beta) * kl
        else:
            klv = kl
            gd = gd + c(beta) * (1 - e)
        pl = pl + c(beta) * klv

    # aggregation weights
    if loss_type in ("grpo", "sapo"):
        w_row = 1.0 / (cnt1 * B * ga)
    elif loss_type == "bnpo":
        w_row = 1.0 / (total.clamp(min=1.0).to(torch.float32).to(F64) * ga) * torch.ones(B, dtype=F64, device=dev)
    elif loss_type == "dr_grpo":
        w_row = torch.full((B,), 1.0 / (B * max_len * ga), dtype=F64, device=dev)
    elif loss_type in ("dapo", "cispo", "vespo"):
        den = (
            torch.tensor(token_den, dtype=F64, device=dev)
            if token_den is not None
            else total.clamp(min=1.0).to(torch.float32).to(F64)
        )
        w_row = (1.0 / den) * torch.ones(B, dtype=F64, device=dev)
    else:  # luspo
        w_row = torch.full((B,), 1.0 / (B * ga), dtype=F64, device=dev)
    loss = (lay.rsum(pl * m, F64) * w_row).sum()

    if want_grad:
        wt = lay.expand(w_row.to(dt))
        if level == "sequence":
            grad = wt * m * gd
            k = (w_row * lay.rsum(gc * m, F64)).to(dt) * coef_row * (1.0 / cnt1).to(dt)
            grad = grad + lay.expand(k) * m
        else:
            grad = wt * m * (gd + gc * coef)
    else:
        grad = lp.new_empty((0,))

    # metrics
    zero64 = torch.zeros((), dtype=F64, device=dev)  # metrics that do not apply
    bden = max(B, 1)
    tokden = total.clamp(min=1.0)
    clip_row_mode = lay.single_col or (level == "sequence" and not adv_tok)
    if clip_row_mode:
        if lay.single_col:
            lo_r, hi_r, ci_r = low.reshape(B), high.reshape(B), cis.reshape(B)
        else:
            a_r = adv.reshape(B)
            if ppo:
                lo_r = (coef_after_row < c(1 - eps_low)) & (a_r < 0)
                hi_r = (coef_after_row > c(1 + eps_high)) & (a_r > 0)
            else:
                lo_r = hi_r = torch.zeros(B, dtype=torch.bool, device=dev)
            ci_r = (coef_row > eps_high) & (a_r > 0) if loss_type == "cispo" else torch.zeros_like(lo_r)
        lo_f, hi_f = lo_r.to(F64), hi_r.to(F64)
        low_m, high_m = lo_f.sum() / bden, hi_f.sum() / bden
        reg_m = (lo_r | hi_r).to(F64).sum() / bden
        cis_m = ci_r.to(F64).sum() / bden
        low_min, high_max = _nanmin(lo_f), _nanmax(hi_f)
    else:
        low_m = (low.to(F64) * mf).sum() / tokden
        high_m = (high.to(F64) * mf).sum() / tokden
        reg_m = ((low | high).to(F64) * mf).sum() / tokden
        cis_m = (cis.to(F64) * mf).sum() / tokden
        low_min = _nanmin(lay.rsum(low.to(F64) * mf) / cnt)
        high_max = _nanmax(lay.rsum(high.to(F64) * mf) / cnt)
    if beta == 0.0:
        kl_m = zero64
    elif lay.single_col:
        kl_m = klv.to(F64).sum() / bden
    else:
        kl_m = (klv.to(F64) * mf).sum() / tokden
    if loss_type != "vespo":
        phi_m = zero64
    elif lay.single_col or not adv_tok:
        phi_m = phi_rows.to(F64).sum() / bden
    else:
        phi_m = (phi.to(F64) * mf).sum() / tokden
    metrics = torch.stack([t.to(F64) for t in (low_m, high_m, reg_m, low_min, high_max, cis_m, kl_m, phi_m)])
    return loss.to(dt), grad, metrics
