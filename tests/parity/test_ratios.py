"""fastalign.ratios against TRL 1.16.0.

* masked reductions and the GSPO sequence log-ratio: TRL's ``(x * m).sum(-1) / m.sum(-1).clamp(min=1.0)``
  (``_compute_loss``), ``(x * m).sum(-1)``, and a masked ``amax``; padded and packed layouts agree;
* ``vllm_is_ratio``: the IS weights and ``sampling/...`` metrics of TRL's scoring step
  (``_generate_and_score_completions``), through ``tests/reference/importance.py``, which
  ``test_trl_fast_trainer.py`` proves equal to it;
* ``get_off_policy_mask`` / ``get_gamma_weights`` are TRL staticmethods and are exercised through
  ``test_losses.py`` (opsm / vespo configurations).

Tolerances: float64 ``rtol=1e-12`` (sums in order vs pairwise, a few ulp); float32 ``rtol=1e-5``,
``atol=1e-6`` × the row's magnitude (fastalign sums in float64 and rounds once, torch in float32).
"""

from __future__ import annotations

import math

import pytest
import torch
from _profile import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import importance

from fastalign import _torch_backend as _torch_losses
from fastalign.errors import InvalidArgumentError, InvalidTypeError
from fastalign.ratios import (
    importance_weights,
    masked_max,
    masked_mean,
    masked_reduce,
    masked_sum,
    sequence_log_ratio,
    vllm_is_ratio,
)


def batch(seed, b, t, dtype, scale=1.0, mask_dtype=torch.int64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, generator=g, dtype=dtype) * scale
    y = torch.randn(b, t, generator=g, dtype=dtype) * scale
    m = (torch.rand(b, t, generator=g) < 0.7).to(mask_dtype)
    if b > 0:
        m[0] = 0
    return x, y, m


def tol(dtype, scale=1.0):
    """float64: tight. float32: TRL's torch sums in float32, so its rounding error grows with the
    terms' magnitude (``scale``): the long hypothesis campaign found 1.9e-5 of error in TRL's f32
    sum of 28 log-ratios at scale 30 (fastalign's f64 sum: 5.6e-6 from the exact value), hence an
    absolute tolerance of 1e-5 per unit of scale."""
    if dtype == torch.float64:
        return dict(rtol=1e-12, atol=1e-14 * max(1.0, scale))
    return dict(rtol=1e-5, atol=1e-5 * max(1.0, scale))


@settings(max_examples=examples(40))
@given(
    b=st.integers(1, 8),
    t=st.integers(1, 40),
    seed=st.integers(0, 10**6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    mask_dtype=st.sampled_from([torch.int64, torch.int32, torch.bool, torch.float32]),
    scale=st.sampled_from([1e-3, 1.0, 30.0]),
)
def test_reductions_match_trl_lines(b, t, seed, dtype, mask_dtype, scale):
    x, y, m = batch(seed, b, t, dtype, scale, mask_dtype)
    mf = m.to(dtype)
    kw = tol(dtype, scale)
    torch.testing.assert_close(masked_sum(x, m), (x * mf).sum(-1), **kw)
    torch.testing.assert_close(masked_mean(x, m), (x * mf).sum(-1) / mf.sum(-1).clamp(min=1.0), **kw)
    want_max = x.masked_fill(m == 0, -math.inf).amax(-1)
    torch.testing.assert_close(masked_max(x, m), want_max, rtol=0, atol=0)
    # GSPO's sequence log-ratio, TRL's line
    log_ratio = x - y
    want = (log_ratio * mf).sum(-1) / mf.sum(-1).clamp(min=1.0)
    torch.testing.assert_close(sequence_log_ratio(x, y, m), want, **kw)
    torch.testing.assert_close(sequence_log_ratio(x, y, m, reduction="sum"), (log_ratio * mf).sum(-1), **kw)
    # no mask = all ones
    torch.testing.assert_close(masked_mean(x), x.mean(-1), **kw)


@settings(max_examples=examples(40))
@given(
    lengths=st.lists(st.integers(0, 30), min_size=1, max_size=8),
    seed=st.integers(0, 10**6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    mask_dtype=st.sampled_from([torch.int64, torch.int32, torch.bool, torch.float32]),
    scale=st.sampled_from([1e-3, 1.0, 30.0]),
)
def test_packed_reductions_and_importance_weights_match_trl_lines(lengths, seed, dtype, mask_dtype, scale):
    """The packed layout (1-D tokens, ``cu_seqlens``) against TRL's padded lines on the same
    sequences, and ``importance_weights`` at both TRL levels (token: ``exp(log_ratio)``;
    sequence: ``exp`` of GSPO's sequence log-ratio, ``unsqueeze(-1)``) in both layouts."""
    b, t = len(lengths), max(max(lengths), 1)
    x, y, m = batch(seed, b, t, dtype, scale, mask_dtype)
    if b > 1:
        m[0] = 1  # (batch() masks row 0 entirely: keep one fully masked row only where b == 1)
    keep = torch.arange(t).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    m = m * keep.to(m.dtype) if mask_dtype != torch.bool else m & keep
    mf = m.to(dtype)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    px, py, pm = x[keep], y[keep], m[keep]
    kw = tol(dtype, scale)
    log_ratio = x - y
    seq_mean = (log_ratio * mf).sum(-1) / mf.sum(-1).clamp(min=1.0)
    torch.testing.assert_close(masked_reduce(px, pm, reduction="sum", cu_seqlens=cu), (x * mf).sum(-1), **kw)
    torch.testing.assert_close(
        masked_reduce(px, pm, reduction="mean", cu_seqlens=cu), (x * mf).sum(-1) / mf.sum(-1).clamp(min=1.0), **kw
    )
    want_max = x.masked_fill(m == 0, -math.inf).amax(-1)
    torch.testing.assert_close(masked_reduce(px, pm, reduction="max", cu_seqlens=cu), want_max, rtol=0, atol=0)
    torch.testing.assert_close(sequence_log_ratio(px, py, pm, cu_seqlens=cu), seq_mean, **kw)
    # importance weights: TRL's coef_1 = exp(log_importance_weights) at each level. An absolute
    # error e in a log-ratio is a relative error of about e in its exp: the log tolerance's atol
    # joins the relative one (and values below the smallest normal float compare absolutely)
    ekw = dict(rtol=kw["rtol"] + kw["atol"], atol=torch.finfo(dtype).tiny)
    torch.testing.assert_close(importance_weights(x, y, m), torch.exp(log_ratio), **ekw)
    seq_w = torch.exp(seq_mean).unsqueeze(-1)
    torch.testing.assert_close(importance_weights(x, y, m, level="sequence"), seq_w, **ekw)
    got = importance_weights(px, py, pm, level="sequence", cu_seqlens=cu)
    torch.testing.assert_close(got.reshape(-1), seq_w.reshape(-1), **ekw)
    torch.testing.assert_close(importance_weights(px, py, pm, cu_seqlens=cu), torch.exp(px - py), **ekw)


@pytest.mark.parametrize("reduction", ["sum", "mean", "max"])
def test_packed_equals_padded(reduction):
    x, _, m = batch(1, 6, 9, torch.float64)
    lengths = torch.tensor([0, 3, 9, 1, 5, 2])
    keep = torch.arange(9).unsqueeze(0) < lengths.unsqueeze(1)
    cu = torch.cat([torch.zeros(1, dtype=torch.int32), lengths.cumsum(0).to(torch.int32)])
    packed_x, packed_m = x[keep], m[keep]
    got = masked_reduce(packed_x, packed_m, reduction=reduction, cu_seqlens=cu)
    want = masked_reduce(x, m * keep, reduction=reduction)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("mask_dtype", [torch.int64, torch.int32])
def test_integer_mask_counts_exactly(mask_dtype):
    """An integer mask's count is its exact integer sum (TRL's ``mask.sum(-1)`` is int64), not a
    sum of the values rounded to float32 (2**24 + 1 is not a float32); the torch path (CUDA's)
    counts the same way, and so do the backward passes."""
    big = 2**24 + 1
    x = torch.ones(2, 3, requires_grad=True)
    mask = torch.tensor([[big, 3, 0], [1, 1, 1]], dtype=mask_dtype)
    count = big + 3
    # float32 products: x * float32(big) = 2**24, so the row sums to 2**24 + 3
    want = torch.tensor([(2**24 + 3) / count, 1.0], dtype=torch.float32)
    got = masked_mean(x, mask)
    assert torch.equal(got, want)
    torch.testing.assert_close(_torch_losses.masked_reduce(x.detach(), None, mask, None, "mean"), want, rtol=0, atol=0)
    (g,) = torch.autograd.grad(got.sum(), x)
    want_g = (torch.tensor([[2**24, 3, 0], [1, 1, 1]], dtype=torch.float64) / torch.tensor([[count], [3]])).float()
    assert torch.equal(g, want_g)
    torch.testing.assert_close(
        _torch_losses.masked_reduce_backward(torch.ones(2), mask, x, None, "mean"), want_g, rtol=0, atol=0
    )


@pytest.mark.parametrize("reduction", ["sum", "mean", "max"])
@pytest.mark.parametrize("packed", [False, True])
def test_gradcheck_reductions(reduction, packed):
    x, y, m = batch(2, 4, 6, torch.float64)
    if reduction == "max":
        m[0, 0] = 1  # a fully masked row's max is -inf: no finite differences there
    cu = None
    if packed:
        x, y, m = x.reshape(-1), y.reshape(-1), m.reshape(-1)
        cu = torch.tensor([0, 5, 6 if reduction == "max" else 5, 13, 24])  # (an empty sequence has max -inf)
        if reduction == "max":
            m[5] = 1
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda a: masked_reduce(a, m, reduction=reduction, cu_seqlens=cu), (x,))
    y.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, c: sequence_log_ratio(a, c, m, cu_seqlens=cu), (x, y))


def test_importance_weight_levels():
    x, y, m = batch(3, 5, 7, torch.float64, scale=0.1)
    mf = m.to(x.dtype)
    torch.testing.assert_close(importance_weights(x, y, m), torch.exp(x - y))
    seq = torch.exp(((x - y) * mf).sum(-1) / mf.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    torch.testing.assert_close(importance_weights(x, y, m, level="sequence"), seq, rtol=1e-12, atol=0)
    a = x.clone().requires_grad_()
    w = importance_weights(a, y, m, level="sequence_token")
    torch.testing.assert_close(w.detach(), seq.expand_as(w), rtol=1e-12, atol=0)
    w.sum().backward()
    torch.testing.assert_close(a.grad, w.detach())  # each token's own gradient: d exp(..)/d x_t = w_t


def trl_is(old, samp, m, mode, clip_min, clip_max):
    """The IS weights and metrics of TRL's scoring step (``tests/reference/importance.py``, proven
    equal to it); the ``raw_*`` metrics, which fastalign adds, summarise the uncorrected weights."""
    return importance.is_ratio(old, samp, m, mode, clip_min, clip_max), importance.is_metrics(
        old, samp, m, mode, clip_min, clip_max
    )


@settings(max_examples=examples(40))
@given(
    b=st.integers(1, 7),
    t=st.integers(1, 20),
    seed=st.integers(0, 10**6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    mode=st.sampled_from(["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"]),
    clips=st.sampled_from([(None, 3.0), (0.5, 2.0), (0.9, None), (None, 1.0)]),
)
def test_vllm_is_ratio_matches_trl(b, t, seed, dtype, mode, clips):
    old, samp, m = batch(seed, b, t, dtype, scale=0.3)
    samp[b // 2, t // 2] = math.nan
    clip_min, clip_max = clips
    got = vllm_is_ratio(old, samp, m, mode=mode, clip_min=clip_min, clip_max=clip_max)
    want, want_metrics = trl_is(old, samp, m, mode, clip_min, clip_max)
    torch.testing.assert_close(got.ratio, want, **tol(dtype))
    for k, w in want_metrics.items():
        assert math.isclose(got.metrics()[k], w, rel_tol=1e-5, abs_tol=1e-6), (k, got.metrics()[k], w)


def test_vllm_is_ratio_packed_equals_padded():
    old, samp, m = batch(4, 4, 6, torch.float64, scale=0.3)
    cu = torch.tensor([0, 6, 12, 18, 24])
    for mode in ("token_mask", "sequence_truncate"):
        a = vllm_is_ratio(old, samp, m, mode=mode, clip_min=0.5, clip_max=2.0)
        p = vllm_is_ratio(old.reshape(-1), samp.reshape(-1), m.reshape(-1), mode=mode, clip_min=0.5, clip_max=2.0,
                          cu_seqlens=cu)  # fmt: skip
        torch.testing.assert_close(p.ratio, a.ratio.reshape(-1), rtol=1e-12, atol=0)
        torch.testing.assert_close(p.stats, a.stats, rtol=1e-12, atol=0)


def test_bad_input():
    x, y, m = batch(0, 3, 4, torch.float32)
    with pytest.raises(InvalidArgumentError, match="reduction"):
        masked_reduce(x, m, reduction="median")
    with pytest.raises(InvalidArgumentError, match="mask"):
        masked_mean(x, m[:, :2].contiguous())
    with pytest.raises(InvalidTypeError, match="old_per_token_logps"):
        sequence_log_ratio(x, y.double(), m)
    with pytest.raises(InvalidArgumentError, match="values"):
        masked_mean(x.reshape(-1), m.reshape(-1))  # 1-D needs cu_seqlens
    with pytest.raises(InvalidArgumentError, match="cu_seqlens"):
        masked_mean(x.reshape(-1), m.reshape(-1), cu_seqlens=torch.tensor([0, 8, 6, 12]))
    with pytest.raises(InvalidArgumentError, match="cu_seqlens"):
        masked_mean(x.reshape(-1), m.reshape(-1), cu_seqlens=torch.tensor([0, 8, 11]))
    with pytest.raises(InvalidArgumentError, match="mode"):
        vllm_is_ratio(x, y, m, mode="token")
    with pytest.raises(InvalidArgumentError, match="clip_min"):
        vllm_is_ratio(x, y, m, mode="token_mask", clip_min=3.0, clip_max=2.0)
    with pytest.raises(InvalidArgumentError, match="clip_max"):
        vllm_is_ratio(x, y, m, mode="token_truncate", clip_min=None, clip_max=None)
    with pytest.raises(InvalidTypeError, match="values"):
        masked_sum(x.numpy(), m)
