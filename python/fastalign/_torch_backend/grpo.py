"""The GRPO-family loss in plain torch: the twin of the Rust kernel behind
:func:`fastalign.losses.grpo_loss` (loss, analytic gradient with respect to ``per_token_logps``
and the metrics TRL logs), for padded and packed inputs."""

from __future__ import annotations

import math

import torch

from ..errors import InvalidArgumentError
from .layout import F64, Layout, scalar, scalar32, sum64


def _masked(flag: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``flag * mask`` in the mask's kind (bool, integer or float), for exact counts."""
    if mask.dtype == torch.bool:
        return flag & mask
    if mask.is_floating_point():
        return torch.where(flag, mask, 0.0)
    return flag * mask


def check_nan(named: list[tuple[str, torch.Tensor | None]]) -> None:
    """Raise naming the first tensor that holds NaN: one device synchronisation for all of them."""
    present = [(name, t) for name, t in named if t is not None]
    if not present:
        return
    bad = torch.stack([torch.isnan(t).any() for _, t in present]).tolist()
    for (name, _), nan in zip(present, bad):
        if nan:
            raise InvalidArgumentError("contains NaN", name)


def _nanmin(x: torch.Tensor) -> torch.Tensor:
    if x.numel() == 0:
        return torch.full((), math.nan, dtype=x.dtype, device=x.device)
    nan = torch.isnan(x)
    v = torch.where(nan, math.inf, x).amin()
    return torch.where(nan.all(), math.nan, v)


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
    token_den: float | torch.Tensor | None,
    want_grad: bool,
    check_finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, grad wrt ``lp`` or an empty tensor, metrics (8,) float64), as the Rust kernel.

    ``token_den``: the dapo/cispo/vespo normaliser, a Python float or a 0-d float32 tensor on the
    inputs' device (used there: no sync). ``check_finite``: refuse NaN in ``lp``/``old``/``ref``
    (one device synchronisation; the op passes ``False`` unless the caller asked for it)."""
    if check_finite:
        check_nan([("per_token_logps", lp), ("old_per_token_logps", old), ("ref_per_token_logps", ref)])
    if beta != 0.0 and ref is None:
        raise InvalidArgumentError("is required when beta != 0", "ref_per_token_logps")
    if loss_type == "dr_grpo" and max_len is None:
        raise InvalidArgumentError("is required for loss_type='dr_grpo'", "max_completion_length")
    lay = Layout(lp, cu_seqlens)
    B = lay.rows
    dt, dev = lp.dtype, lp.device
    m = mask.to(dt)
    adv_tok = adv.numel() != B
    A = adv.reshape(lp.shape) if adv_tok else lay.expand(adv.reshape(B))
    lr = lp - old if old is not None else torch.zeros_like(lp)
    cnt = lay.count(mask)
    cnt1 = cnt.clamp(min=1.0)
    total = cnt.sum()
    seq = level != "token"
    ppo = loss_type in ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")

    def c(x: float) -> float:  # a Python float as torch rounds it for this dtype
        return scalar(x, dt)

    if seq:
        coef_row = torch.exp((lay.rsum(lr * m, F64) / cnt1).to(dt))
        coef = lay.expand(coef_row)
    else:
        coef_row = torch.ones(B, dtype=dt, device=dev)
        coef = torch.exp(lr)

    zero = torch.zeros_like(lp)
    low = high = cis = torch.zeros_like(lp, dtype=torch.bool)
    phi = phi_rows = None
    if loss_type == "cispo":
        cc = torch.clamp(coef, max=eps_high)
        pl, gd, gc = -cc * A * lp, -cc * A, zero
        cis = (coef > eps_high) & (A > 0)
    elif loss_type == "sapo":
        # torch.where(cond, float, float) makes float32, as TRL's temperatures
        tau = torch.where(A > 0, scalar32(sapo_pos), scalar32(sapo_neg)).to(dt)
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
            k = torch.where(nonneg, scalar32(vk_pos), scalar32(vk_neg)).to(dt)
            lam = torch.clamp(torch.where(nonneg, scalar32(vl_pos), scalar32(vl_neg)), min=scalar32(1e-4)).to(dt)
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
    if beta != 0.0 and ref is not None:  # (ref was checked above: it is given when beta != 0)
        b_ = c(beta)
        dref = ref - lp
        e = torch.exp(dref)
        kl = e - dref - 1
        if bias_kl:
            klv = kl * coef
            gd = gd + b_ * coef * (1 - e)
            gc = gc + b_ * kl
        else:
            klv = kl
            gd = gd + b_ * (1 - e)
        pl = pl + b_ * klv

    # aggregation weights
    if loss_type in ("grpo", "sapo"):
        w_row = 1.0 / (cnt1 * B * ga)
    elif loss_type == "bnpo":
        w_row = 1.0 / (total.clamp(min=1.0).to(torch.float32).to(F64) * ga) * torch.ones(B, dtype=F64, device=dev)
    elif loss_type == "dr_grpo" and max_len is not None:  # (checked above: dr_grpo has one)
        w_row = torch.full((B,), 1.0 / (B * max_len * ga), dtype=F64, device=dev)
    elif loss_type in ("dapo", "cispo", "vespo"):
        if isinstance(token_den, torch.Tensor):
            w_row = (1.0 / token_den.to(F64)) * torch.ones(B, dtype=F64, device=dev)
        elif token_den is not None:
            w_row = torch.full((B,), 1.0 / token_den, dtype=F64, device=dev)
        else:
            w_row = (1.0 / total.clamp(min=1.0).to(torch.float32).to(F64)) * torch.ones(B, dtype=F64, device=dev)
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
        # masked counts per sequence (exact for bool and integer masks), then over the batch
        low_rows, high_rows = lay.count(_masked(low, mask)), lay.count(_masked(high, mask))
        low_m = low_rows.sum() / tokden
        high_m = high_rows.sum() / tokden
        reg_m = lay.count(_masked(low | high, mask)).sum() / tokden
        cis_m = lay.count(_masked(cis, mask)).sum() / tokden if loss_type == "cispo" else zero64
        low_min = _nanmin(low_rows / cnt)
        high_max = _nanmax(high_rows / cnt)
    if klv is None:  # beta == 0
        kl_m = zero64
    elif lay.single_col:
        kl_m = sum64(klv, None) / bden
    else:
        kl_m = sum64(klv * m, None) / tokden
    if phi is None:  # not vespo
        phi_m = zero64
    elif phi_rows is not None:  # one advantage per sequence
        phi_m = sum64(phi_rows, None) / bden
    else:
        phi_m = sum64(phi * m, None) / tokden
    metrics = torch.stack([t.to(F64) for t in (low_m, high_m, reg_m, low_min, high_max, cis_m, kl_m, phi_m)])
    return loss.to(dt), grad, metrics
