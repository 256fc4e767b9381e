"""Comparing advantages, their zero-std flags and logged metrics with an expected (TRL) result
within bounds derived from the reductions' rounding: the tolerances ``C_ULP`` and ``RTOL`` and
their derivation are in tests/parity/test_advantages.py's docstring. Used there and by
tests/parity/test_trl_trainer_parity.py (:func:`check_grpo`, :func:`check_rloo`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fastalign.advantages import Advantages

C_ULP = 8.0
RTOL = {np.dtype(t): 8 * float(np.finfo(t).eps) for t in (np.float32, np.float64)}
EPS = 1e-4  # TRL's epsilon on the std
THR = 1e-8  # torch.isclose(std, 0): |std| <= atol


# ---------------------------------------------------------------------------------------------
# float64 helpers (no numpy nan* reductions: they warn on empty slices, and warnings are errors)


def _ulp(m, dtype) -> np.ndarray:
    """ulp of |m| in ``dtype``, as float64."""
    m = np.abs(np.asarray(m, dtype=np.float64))
    m = np.minimum(np.nan_to_num(m, nan=0.0), float(np.finfo(dtype).max))
    return np.spacing(m.astype(dtype)).astype(np.float64)


def _absmax(x, axis=None) -> np.ndarray:
    """max |x| ignoring NaN (0 for an all-NaN slice)."""
    return np.nan_to_num(np.abs(np.asarray(x, dtype=np.float64)), nan=0.0).max(axis=axis)


def _count(x, axis=None, keepdims=False):
    return (~np.isnan(x)).sum(axis=axis, keepdims=keepdims)


def _nanmean64(x, axis=None, keepdims=False):
    with np.errstate(all="ignore"):
        return np.nansum(x, axis=axis, keepdims=keepdims) / _count(x, axis, keepdims)


def _nanstd64(x, axis=None, keepdims=False, dtype=None):
    """Bessel-corrected NaN-std in float64; NaN with fewer than two values.

    With ``dtype``: +inf where the computation in that dtype overflows (the squared deviations
    or their sum exceed its largest value, e.g. a float32 group holding 1e30 and 0), as TRL's
    and fastalign's do."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        c = _count(x, axis)
        m = _nanmean64(x, axis, keepdims=True)
        sq = np.nansum((x - m) ** 2, axis=axis)
        out = np.where(c > 1, np.sqrt(sq / (c - 1)), np.nan)
        if dtype is not None:
            out = np.where((c > 1) & (sq > float(np.finfo(dtype).max)), np.inf, out)
    return np.expand_dims(out, axis) if keepdims else out


def row_sums(r: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted NaN-sum of each row, in the rewards' dtype, left to right; NaN for all-NaN rows."""
    acc = np.zeros(r.shape[0], dtype=r.dtype)
    with np.errstate(all="ignore"):
        for j in range(r.shape[1]):
            p = r[:, j] * w[j]
            acc = acc + np.where(np.isnan(p), r.dtype.type(0), p)
    return np.where(np.isnan(r).all(axis=1), r.dtype.type(np.nan), acc)


def _row_mag(r: np.ndarray, w: np.ndarray, *extra) -> np.ndarray:
    """Per row: the largest magnitude among the weighted rewards, their sum and ``extra``."""
    with np.errstate(all="ignore"):
        prods = r.astype(np.float64) * w.astype(np.float64)
    m = _absmax(prods, axis=1)
    for e in extra:
        m = np.maximum(m, np.nan_to_num(np.abs(np.asarray(e, dtype=np.float64)), nan=0.0))
    return m


def _group_max(x: np.ndarray, g: int) -> np.ndarray:
    return np.repeat(x.reshape(-1, g).max(axis=1), g)


# ---------------------------------------------------------------------------------------------
# bounds


class Bounds:
    """Per-row tolerance, rows that must be exactly zero, rows whose zero-std flag may differ."""

    def __init__(self, tol, zero, free):
        self.tol = np.where(np.isnan(tol), 0.0, tol)
        self.zero = zero
        self.free = free


def grpo_bounds(r, w, g, scale, agg, expected) -> Bounds:
    """Bounds for comparing GRPO advantages with ``expected`` (see the module docstring)."""
    dt = r.dtype
    rt = RTOL[dt]
    n = r.shape[0]
    b = np.abs(np.asarray(expected, dtype=np.float64))
    scale = {True: "group", False: "none"}.get(scale, scale)
    unscorable = np.isnan(r).all(axis=1)
    if agg == "normalize_then_sum":
        return _gdpo_bounds(r, w, g, b, unscorable)
    s = row_sums(r, w).astype(np.float64)
    mag = _row_mag(r, w, s)
    counts = np.repeat(_count(s.reshape(-1, g), axis=1), g)
    zero = unscorable | (counts < 2)
    if scale == "batch":
        noise = C_ULP * _ulp(mag.max(), dt) * np.ones(n)
        std = np.full(n, _nanstd64(s, dtype=dt) if n > 1 else 0.0)
    else:
        noise = C_ULP * _ulp(_group_max(mag, g), dt)
        std = np.repeat(_nanstd64(s.reshape(-1, g), axis=1, dtype=dt), g) if g > 1 else np.zeros(n)
    with np.errstate(all="ignore"):
        if scale == "none":
            tol = rt * b + noise
        else:
            tol = rt * b + noise * (1 + b) / (std + EPS)
        free = std <= THR * (1 + rt) + 2 * noise
    return Bounds(np.where(zero, 0.0, tol), zero, free)


def _gdpo_bounds(r, w, g, b, unscorable) -> Bounds:
    """normalize_then_sum: per-column group z-scores, weighted sum, batch z-score."""
    dt = r.dtype
    rt = RTOL[dt]
    n, k = r.shape
    x = r.astype(np.float64).reshape(-1, g, k)
    wf = w.astype(np.float64)
    with np.errstate(all="ignore"):
        mean_k = _nanmean64(x, axis=1, keepdims=True)
        std_k = _nanstd64(x, axis=1, keepdims=True, dtype=dt) if g > 1 else np.zeros_like(mean_k)
        z = (x - mean_k) / (std_k + EPS)
        mag_k = np.expand_dims(_absmax(x, axis=1), 1)
        dz = rt * np.abs(z) + C_ULP * _ulp(mag_k, dt) * (1 + np.abs(z)) / (std_k + EPS)
        z = z.reshape(n, k)
        dz = dz.reshape(n, k)
        wz = z * wf
        zs = np.where(unscorable, np.nan, np.nansum(wz, axis=1))
        dzs = np.nansum(np.abs(wf) * dz, axis=1) + C_ULP * _ulp(_absmax(wz, axis=1), dt)
        delta = _absmax(np.where(unscorable, np.nan, dzs)) + C_ULP * _ulp(_absmax(zs), dt)
        std = _nanstd64(zs, dtype=dt) if n > 1 else 0.0
        tol = rt * b + delta * (1 + b) / (std + EPS)
        free = np.full(n, bool(std <= THR * (1 + rt) + 2 * delta))
    return Bounds(np.where(unscorable, 0.0, tol), unscorable, free)


def rloo_s(r, w, clip, beta, kl) -> np.ndarray:
    """The RLOO reward after clipping and the KL penalty, in the rewards' dtype."""
    s = row_sums(r, w)
    if clip is not None:
        s = np.clip(s, r.dtype.type(clip[0]), r.dtype.type(clip[1]))
    if beta != 0.0:
        s = s - r.dtype.type(beta) * kl
    return s


def rloo_bounds(r, w, g, clip, beta, kl, normalize, expected) -> Bounds:
    dt = r.dtype
    rt = RTOL[dt]
    n = r.shape[0]
    b = np.abs(np.asarray(expected, dtype=np.float64))
    unscorable = np.isnan(r).all(axis=1)
    logged = row_sums(r, w)
    s = rloo_s(r, w, clip, beta, kl).astype(np.float64)
    extra = [logged, s] + ([dt.type(beta) * kl] if beta != 0.0 else [])
    mag = _row_mag(r, w, *extra)
    gmag = _group_max(mag, g)
    counts = np.repeat(_count(s.reshape(-1, g), axis=1), g)
    # unscorable rows and groups with < 2 scorable rows are NaN until nan_to_num; G = 1 is all zeros
    zero = unscorable | (counts < 2) if g > 1 else np.ones(n, dtype=bool)
    with np.errstate(all="ignore"):
        if g > 1:
            total = np.repeat(np.nansum(s.reshape(-1, g), axis=1), g)
            raw = s - (total - s) / (counts - 1)
        else:
            raw = np.zeros(n)
        # the group sum is within C_ULP ulp of g * M; s - (S - s)/(n-1) inherits it
        d_raw = rt * np.abs(raw) + C_ULP * _ulp(g * gmag, dt)
        if normalize:
            delta = _absmax(np.where(np.isnan(raw), np.nan, d_raw)) + C_ULP * _ulp(_absmax(raw), dt)
            std = _nanstd64(raw, dtype=dt)
            tol = rt * b + delta * (1 + b) / (std + EPS)
        else:
            tol = d_raw + rt * b
        gstd = np.repeat(_nanstd64(s.reshape(-1, g), axis=1, dtype=dt), g) if g > 1 else np.zeros(n)
        free = gstd <= THR * (1 + rt) + 2 * C_ULP * _ulp(gmag, dt)
    return Bounds(np.where(zero, 0.0, tol), zero, free)


# ---------------------------------------------------------------------------------------------
# comparisons


def to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def assert_advantages(actual, expected, bounds: Bounds, label: str = "") -> None:
    a = to_numpy(actual).astype(np.float64)
    e = to_numpy(expected).astype(np.float64)
    assert a.shape == e.shape, label
    assert np.isfinite(a).all() and np.isfinite(e).all(), f"{label}: non-finite advantages\n{a}\n{e}"
    z = bounds.zero
    assert (a[z] == 0.0).all(), f"{label}: rows that must be exactly 0: {np.flatnonzero(z)}\nactual {a[z]}"
    assert (e[z] == 0.0).all(), f"{label}: reference not 0 on rows {np.flatnonzero(z)}: {e[z]}"
    bad = ~(np.abs(a - e) <= bounds.tol)
    if bad.any():
        i = np.flatnonzero(bad)
        raise AssertionError(
            f"{label}: advantages differ at rows {i.tolist()}\n actual   {a[i].tolist()}\n"
            f" expected {e[i].tolist()}\n |diff|   {np.abs(a - e)[i].tolist()}\n tol      {bounds.tol[i].tolist()}"
        )


def assert_flags(actual, expected, bounds: Bounds, label: str = "") -> None:
    a = to_numpy(actual).astype(bool)
    e = to_numpy(expected).astype(bool)
    assert a.shape == e.shape, label
    bad = (a != e) & ~bounds.free
    assert not bad.any(), f"{label}: std_is_zero differs at rows {np.flatnonzero(bad).tolist()}: {a} vs {e}"


def _stat_close(a: float, e: float, data: np.ndarray, dt, kind: str) -> bool:
    """A logged mean/std of ``data`` (float64 copy of the dtype values) within the bounds."""
    if math.isnan(e) or math.isnan(a):
        return math.isnan(e) and math.isnan(a)
    noise = C_ULP * float(_ulp(_absmax(data), dt))
    rt = RTOL[np.dtype(dt)]
    if kind == "std" and float(_nanstd64(data)) <= 2 * noise:
        # constant up to reduction noise: one side may see an ulp (or its overflowing square)
        return (math.isinf(a) or a <= 4 * noise) and (math.isinf(e) or e <= 4 * noise)
    if math.isinf(a) or math.isinf(e):
        return a == e
    return abs(a - e) <= rt * abs(e) + noise


def assert_metrics(actual: dict, expected: dict, columns: dict, dt, frac_free: bool, flags=None, label="") -> None:
    """``columns``: metric prefix -> the float64 data it summarises ('reward' -> the summed rewards,
    'rewards/NAME' -> column NAME)."""
    for key, data in columns.items():
        for kind in ("mean", "std"):
            k = f"{key}/{kind}" if key != "reward" else ("reward" if kind == "mean" else "reward_std")
            assert _stat_close(actual[k], expected[k], data, dt, kind), f"{label}: {k}: {actual[k]} vs {expected[k]}"
    fa, fe = actual["frac_reward_zero_std"], expected["frac_reward_zero_std"]
    if not frac_free:
        assert fa == fe, f"{label}: frac_reward_zero_std {fa} vs {fe}"
    elif flags is not None:
        f = to_numpy(flags)
        assert fa == float(np.float32(f.sum()) / np.float32(f.size)), f"{label}: frac {fa} vs flags {f}"


def metric_columns(r: np.ndarray, w: np.ndarray, names) -> dict:
    cols = {f"rewards/{name}": r[:, i].astype(np.float64) for i, name in enumerate(names)}
    cols["reward"] = row_sums(r, w).astype(np.float64)
    return cols


def check_grpo(out: Advantages, exp_adv, exp_flags, exp_metrics, r, w, g, scale, agg, names=None, label=""):
    """Everything fastalign returns for GRPO against an expected (TRL) result. ``exp_flags`` may
    be None (the trainer only logs their mean)."""
    names = names or [f"reward_{i}" for i in range(r.shape[1])]
    bounds = grpo_bounds(r, w, g, scale, agg, to_numpy(exp_adv))
    assert_advantages(out.advantages, exp_adv, bounds, label)
    flags = to_numpy(out.std_is_zero)
    if exp_flags is not None:
        assert_flags(flags, exp_flags, bounds, label)
    frac_free = bool(bounds.free.any())
    assert_metrics(out.metrics(names), exp_metrics, metric_columns(r, w, names), r.dtype.type, frac_free, flags, label)
    if exp_flags is None and frac_free:
        diff = abs(out.frac_reward_zero_std - exp_metrics["frac_reward_zero_std"])
        assert diff <= bounds.free.mean() + 1e-7, label
    _check_logged_rewards(out.rewards, r, w, label)


def check_rloo(
    out: Advantages, exp_adv, exp_group_flags, exp_metrics, r, w, g, clip, beta, kl, normalize, names=None, label=""
):
    names = names or [f"reward_{i}" for i in range(r.shape[1])]
    bounds = rloo_bounds(r, w, g, clip, beta, kl, normalize, to_numpy(exp_adv))
    assert_advantages(out.advantages, exp_adv, bounds, label)
    flags = to_numpy(out.std_is_zero)
    assert (flags.reshape(-1, g) == flags.reshape(-1, g)[:, :1]).all(), f"{label}: per-row flags not per group"
    if exp_group_flags is not None:
        assert_flags(flags, np.repeat(to_numpy(exp_group_flags), g), bounds, label)
    frac_free = bool(bounds.free.any())
    assert_metrics(out.metrics(names), exp_metrics, metric_columns(r, w, names), r.dtype.type, frac_free, flags, label)
    if exp_group_flags is None and frac_free:
        diff = abs(out.frac_reward_zero_std - exp_metrics["frac_reward_zero_std"])
        assert diff <= bounds.free.mean() + 1e-7, label
    _check_logged_rewards(out.rewards, r, w, label)


def _check_logged_rewards(actual, r, w, label):
    a = to_numpy(actual).astype(np.float64)
    e = row_sums(r, w).astype(np.float64)
    assert (np.isnan(a) == np.isnan(e)).all(), f"{label}: NaN pattern of the summed rewards"
    ok = np.isnan(e) | (np.abs(a - e) <= C_ULP * _ulp(_row_mag(r, w, e), r.dtype))
    assert ok.all(), f"{label}: summed rewards {a} vs {e}"


def weights_array(w, k, dtype) -> np.ndarray:
    return np.ones(k, dtype=dtype) if w is None else np.asarray(w, dtype=np.float64).astype(dtype)
