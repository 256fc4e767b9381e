"""The ``fastalign::`` torch custom ops: opcheck, the torch path (what CUDA runs) against the Rust
path on CPU, gradcheck in float64, torch.compile(fullgraph=True) against eager, packed layouts.

Rust vs torch path tolerance: float64 ``rtol=1e-10``, ``atol=1e-13`` × scale. The two evaluate the
same formulas; they differ in summation order and in libm vs torch's vectorised ``exp``.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers.grpo_loss import Cfg, make_batch, op_args

from fastalign import _torch_backend as _torch_losses
from fastalign import ops
from fastalign.losses import LOSS_TYPES, grpo_loss
from fastalign.ratios import masked_reduce, sequence_log_ratio, vllm_is_ratio


def run_torch_path(*args):
    """The default (torch) kernel of fastalign::grpo_loss on the op's arguments."""
    return _torch_losses.grpo_loss(*args[:9], *ops._unpack(args[9], args[10]))


CONFIGS = [
    Cfg(loss_type=lt, level=lvl, beta=beta, is_mode=mode, opsm=opsm)
    for lt, lvl, beta, mode, opsm in itertools.product(
        LOSS_TYPES,
        ("token", "sequence", "sequence_token"),
        (0.0, 0.04),
        (None, "token_mask", "sequence_truncate"),
        (None, 0.05),
    )
    if not (lt == "vespo" and mode == "sequence_truncate")
]


def close(a, b, rtol=1e-10, atol=1e-13):
    scale = max(1.0, float(b.abs().nan_to_num().max()) if b.numel() else 1.0)
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol * scale, equal_nan=True)


@pytest.mark.parametrize("packed", [False, True])
def test_torch_path_equals_rust(packed):
    """The default (torch) kernel and the CPU (Rust) kernel give the same loss, gradient and metrics."""
    for i, cfg in enumerate(CONFIGS):
        bt = make_batch(100 + i)
        args = op_args(cfg, bt, packed=packed, num_items=37.0 if i % 2 else None)
        rust = ops.grpo_loss(*args)
        torch_path = run_torch_path(*args)
        for r, t, what in zip(rust, torch_path, ("loss", "grad", "metrics")):
            try:
                close(r, t)
            except AssertionError as e:
                raise AssertionError(f"{cfg} packed={packed} {what}: {e}") from None


def test_packed_equals_padded():
    """Packed rows (each sequence's T tokens, cu_seqlens) give the padded result (metrics too)."""
    for i, cfg in enumerate(CONFIGS[::3]):
        bt = make_batch(200 + i)
        padded = ops.grpo_loss(*op_args(cfg, bt))
        packed = ops.grpo_loss(*op_args(cfg, bt, packed=True))
        close(packed[0], padded[0])
        close(packed[1], padded[1].reshape(-1))
        close(packed[2], padded[2])


def test_torch_path_reductions_and_is_ratio_equal_rust():
    bt = make_batch(5)
    cu = torch.tensor([0, 3, 3, 20, 42])
    for red in ("sum", "mean", "max"):
        for args in ((bt.lp, bt.old, bt.mask, None, red), (bt.lp.reshape(-1), None, bt.mask.reshape(-1), cu, red)):
            close(ops.masked_reduce(*args), _torch_losses.masked_reduce(*args))
    for mode in ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"):
        args = (bt.old, bt.samp, bt.mask, None, mode, 0.5, 2.0)
        r, s = ops.vllm_is_ratio(*args)
        tr, ts = _torch_losses.vllm_is_ratio(*args)
        close(r, tr.reshape(r.shape))
        close(s, ts)


OPCHECK_CONFIGS = [
    Cfg(loss_type="dapo"),
    Cfg(loss_type="grpo", level="sequence", beta=0.04, is_mode="sequence_mask"),
    Cfg(loss_type="cispo", level="sequence_token", beta=0.04, opsm=0.05),
    Cfg(loss_type="sapo", is_mode="token_truncate"),
    Cfg(loss_type="vespo", is_mode="token_mask"),
    Cfg(loss_type="luspo", level="sequence", delta=1.5),
]


# opcheck's aot_dispatch test reads .grad of non-leaf tensors internally (a torch warning, not ours)
_OPCHECK_WARNING = pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")


@_OPCHECK_WARNING
@pytest.mark.parametrize("cfg", OPCHECK_CONFIGS, ids=repr)
@pytest.mark.parametrize("packed", [False, True])
def test_opcheck_grpo_loss(cfg, packed):
    bt = make_batch(1, b=4, t=5)
    bt.mask[0, 0] = 1  # no all-NaN low_min (opcheck compares NaN as unequal)
    args = list(op_args(cfg, bt, packed=packed))
    args[0] = args[0].clone().requires_grad_()
    torch.library.opcheck(ops.grpo_loss, tuple(args))
    args[-2] = args[-2][:-1] + "0"  # want_grad off
    args[0] = args[0].detach()
    torch.library.opcheck(ops.grpo_loss, tuple(args))


@_OPCHECK_WARNING
def test_opcheck_ratio_ops():
    bt = make_batch(2, b=4, t=5)
    cu = torch.tensor([0, 2, 2, 9, 20])
    for red in ("sum", "mean", "max"):
        x = bt.lp.clone().requires_grad_()
        torch.library.opcheck(ops.masked_reduce, (x, bt.old, bt.mask, None, red))
        torch.library.opcheck(ops.masked_reduce, (x.detach().reshape(-1), None, bt.mask.reshape(-1), cu, red))
    for red in ("sum", "mean"):
        torch.library.opcheck(
            ops.masked_reduce_backward, (torch.randn(4, dtype=torch.float64), bt.mask, bt.lp, None, red)
        )
    for mode in ("token_truncate", "sequence_mask"):
        torch.library.opcheck(ops.vllm_is_ratio, (bt.old, bt.samp, bt.mask, None, mode, None, 3.0))
        torch.library.opcheck(ops.vllm_is_ratio, (bt.old.reshape(-1), bt.samp.reshape(-1), bt.mask.reshape(-1), cu,
                                                  mode, 0.5, 3.0))  # fmt: skip


@pytest.mark.parametrize("lt", ["grpo", "bnpo", "dr_grpo", "dapo", "sapo", "luspo"])
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_gradcheck_grpo_loss(lt, level):
    """Finite differences in float64 (cispo/vespo detach their weights by design, as TRL)."""
    bt = make_batch(3, b=4, t=5, spread=0.1, extreme=False)
    lp = bt.lp.clone().requires_grad_()

    def f(x):
        return grpo_loss(x, bt.old, bt.adv, bt.mask, loss_type=lt, importance_sampling_level=level, beta=0.04,
                         ref_per_token_logps=bt.ref, max_completion_length=8).loss  # fmt: skip

    assert torch.autograd.gradcheck(f, (lp,))


def test_compile_equals_eager():
    bt = make_batch(4, b=6, t=9)

    def f(lp, old, adv, m, ref):
        out = grpo_loss(lp, old, adv, m, loss_type="grpo", importance_sampling_level="sequence", beta=0.04,
                        ref_per_token_logps=ref)  # fmt: skip
        s = sequence_log_ratio(lp, old, m)
        isr = vllm_is_ratio(old, ref, m, mode="token_truncate", clip_max=2.0).ratio
        return out.loss + s.sum() + masked_reduce(lp * isr, m, reduction="max").sum(), out.raw_metrics

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    a = bt.lp.clone().requires_grad_()
    b = bt.lp.clone().requires_grad_()
    le, me = f(a, bt.old, bt.adv, bt.mask, bt.ref)
    lc, mc = compiled(b, bt.old, bt.adv, bt.mask, bt.ref)
    torch.testing.assert_close(lc, le, rtol=0, atol=0)
    torch.testing.assert_close(mc, me, rtol=0, atol=0, equal_nan=True)
    le.backward()
    lc.backward()
    torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=0)


def test_no_grad_skips_gradient():
    bt = make_batch(4)
    lp = bt.lp.clone().requires_grad_()
    with torch.no_grad():
        out = grpo_loss(lp, bt.old, bt.adv, bt.mask)
    assert not out.loss.requires_grad


def test_parallel_kernel_equals_torch_path():
    """A batch large enough for the Rust pool (>= 2^19 tokens): same results as the torch path."""
    g = torch.Generator().manual_seed(0)
    b, t = 64, 8192
    lp = -torch.rand(b, t, generator=g, dtype=torch.float64)
    old = lp + 0.1 * torch.randn(b, t, generator=g, dtype=torch.float64)
    mask = (torch.arange(t).unsqueeze(0) < torch.randint(0, t + 1, (b, 1), generator=g)).long()
    adv = torch.randn(b, generator=g, dtype=torch.float64)
    for lt, level in (("dapo", "token"), ("grpo", "sequence"), ("sapo", "token")):
        args = (
            lp,
            old,
            adv,
            mask,
            None,
            None,
            None,
            None,
            None,
            ops.pack_options(lt, level, True, True),
            [0.2, 0.28, float("nan"), 0.0, float("nan"), 1.0, 1.05, 2.0, 3.0, 3.0, 2.0, 1.0, 32.0, float("nan")],
        )
        for r, p in zip(ops.grpo_loss(*args), run_torch_path(*args)):
            close(r, p)


def test_backward_scales_and_keeps_retained_graphs():
    """The backward hands its saved gradient to autograd only when the graph is freed: a retained
    graph still gives the right gradient after the caller changed an earlier result in place,
    ``loss * c`` scales it, and ``.backward()`` twice accumulates twice the gradient."""
    bt = make_batch(5, b=4, t=7)
    for lt, level in (("dapo", "token"), ("grpo", "sequence")):

        def run(x, lt=lt, level=level):
            return grpo_loss(x, bt.old, bt.adv, bt.mask, loss_type=lt, importance_sampling_level=level).loss

        lp = bt.lp.clone().requires_grad_()
        (want,) = torch.autograd.grad(run(lp), lp)
        loss = run(lp)
        (g1,) = torch.autograd.grad(loss, lp, retain_graph=True)
        torch.testing.assert_close(g1, want, rtol=0, atol=0)
        g1.zero_()
        (g2,) = torch.autograd.grad(loss * 2.5, lp, retain_graph=True)
        torch.testing.assert_close(g2, want * 2.5, rtol=0, atol=0)
        (g3,) = torch.autograd.grad(loss, lp)
        torch.testing.assert_close(g3, want, rtol=0, atol=0)
        with pytest.raises(RuntimeError):
            torch.autograd.grad(loss, lp)  # the graph is freed
        (g4,) = torch.autograd.grad(run(lp) * 3.0, lp)
        torch.testing.assert_close(g4, want * 3.0, rtol=0, atol=0)
        loss = run(lp)
        loss.backward(retain_graph=True)
        loss.backward()
        torch.testing.assert_close(lp.grad, want * 2, rtol=0, atol=0)


def test_eager_route_equals_the_op():
    """grpo_loss_eager (the kernel without the custom-op dispatch) gives the op's results and
    gradient, and takes the op under a dispatch mode (here: fake tensors)."""
    bt = make_batch(6, b=3, t=5)
    for cfg in (Cfg(loss_type="dapo", level="token"), Cfg(loss_type="grpo", level="sequence", beta=0.04)):
        a = bt.lp.clone().requires_grad_()
        b = bt.lp.clone().requires_grad_()
        args = op_args(cfg, bt)
        ra = ops.grpo_loss(a, *args[1:])
        rb = ops.grpo_loss_eager(b, *args[1:])
        assert rb[0].grad_fn is not None and "GrpoLossEager" in type(rb[0].grad_fn).__name__
        for x, y in zip(ra, rb):
            torch.testing.assert_close(y, x, rtol=0, atol=0, equal_nan=True)
        ra[0].backward()
        rb[0].backward()
        torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=0)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        fake = [mode.from_tensor(t) if isinstance(t, torch.Tensor) else t for t in op_args(cfg, bt)]
        out = ops.grpo_loss_eager(*fake)
    assert out[1].shape == bt.lp.shape and out[2].shape == (ops.N_LOSS_METRICS,)
