"""fastalign's torch custom ops (namespace ``fastalign``), registered on import.

=====================================  =============================================================
``torch.ops.fastalign.masked_reduce``  per-sequence masked sum / mean / max (optionally of ``a - b``)
``...masked_reduce_backward``          its gradient (sum / mean)
``...vllm_is_ratio``                   TRL's TIS/MIS ratio and its statistics (no gradient)
``...grpo_loss``                       the fused GRPO-family loss: ``(loss, grad, metrics)``
=====================================  =============================================================

:func:`grpo_loss_eager` runs ``grpo_loss``'s CPU kernel and autograd formula without the custom-op
dispatch when nothing needs the op (plain eager CPU tensors; no torch.compile, functorch transform
or torch function / dispatch mode), and the op otherwise.

Every op has a CPU kernel that hands zero-copy numpy views of the tensors to Rust (GIL released)
and a default kernel, used on every other device, written in plain torch
(``fastalign/_torch_backend/``, same formulas), which never waits for the device (no
``.item()``, no boolean indexing, no blocking host-to-device copy) unless asked to check for NaN.
Fake kernels give the output shapes from the input shapes only, so
``torch.compile(fullgraph=True)`` traces the ops; autograd formulas make
gradients flow to ``values`` / ``per_token_logps``. These ops take already-validated arguments:
call them through :mod:`fastalign.ratios` and :mod:`fastalign.losses`.

Layouts: padded ``(B, T)`` tensors with ``cu_seqlens=None``, or packed ``(N,)`` tokens with
``cu_seqlens`` (``(B + 1,)``, int32/int64).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils import _python_dispatch

from . import _native, _validate
from . import _torch_backend as _tl

__all__ = [
    "grpo_loss", "grpo_loss_eager", "masked_reduce", "masked_reduce_backward", "vllm_is_ratio", "N_LOSS_METRICS",
    "SCALARS", "pack_options",
]  # fmt: skip

N_LOSS_METRICS = 8
"""Slots of ``grpo_loss``'s metrics tensor: clip low/high/region means, low min, high max, cispo
clip ratio, kl, vespo phi mean (0 where not applicable; low min / high max are NaN when no
sequence has a token)."""


def _np(t: Tensor | None):
    """A 1-D numpy view of a CPU tensor's memory (no copy for contiguous tensors)."""
    if t is None:
        return None
    # numpy's reshape (a view, or a copy for a non-contiguous tensor) costs less than torch's
    return (t.detach() if t.requires_grad else t).numpy().reshape(-1)


def _cu(cu: Tensor | None):
    return None if cu is None else cu.detach().to(torch.int64).contiguous().numpy()


def _rows(x: Tensor, cu: Tensor | None) -> int:
    return x.shape[0] if cu is None else cu.shape[0] - 1


def _native_fn(prefix: str, dtype: torch.dtype):
    return getattr(_native, f"{prefix}_{'f32' if dtype == torch.float32 else 'f64'}")


# ---------------------------------------------------------------------------------------------
# masked_reduce


@torch.library.custom_op("fastalign::masked_reduce", mutates_args=())
def masked_reduce(
    values: Tensor, minus: Tensor | None, mask: Tensor | None, cu_seqlens: Tensor | None, reduction: str
) -> Tensor:
    """Per-sequence masked ``sum`` / ``mean`` (count clamped to 1) / ``max`` of ``values``
    (minus ``minus`` when given): ``(B,)``."""
    return _tl.masked_reduce(values, minus, mask, cu_seqlens, reduction)


@masked_reduce.register_kernel("cpu")
def _masked_reduce_cpu(values, minus, mask, cu_seqlens, reduction):
    out = _native_fn("masked_reduce", values.dtype)(
        _np(values), _np(minus), _np(mask), _rows(values, cu_seqlens), _cu(cu_seqlens), reduction
    )
    return torch.from_numpy(out)


@masked_reduce.register_fake
def _masked_reduce_fake(values, minus, mask, cu_seqlens, reduction):
    return values.new_empty((_rows(values, cu_seqlens),))


def _masked_reduce_setup(ctx, inputs, output):
    values, minus, mask, cu_seqlens, reduction = inputs
    ctx.reduction = reduction
    ctx.has_minus = minus is not None
    ctx.save_for_backward(values, minus, mask, cu_seqlens, output)


def _masked_reduce_bw(ctx, grad):
    values, minus, mask, cu_seqlens, out = ctx.saved_tensors
    if ctx.reduction == "max":
        # like amax: the gradient is shared evenly by the (unmasked) maxima
        x = values if minus is None else values - minus
        lay = _tl.Layout(values, cu_seqlens)
        hit = x == lay.expand(out)
        if mask is not None:
            hit = hit & (mask != 0)
        hit = hit.to(values.dtype)
        g = lay.expand(grad / lay.rsum(hit).clamp(min=1.0)) * hit
    else:
        g = masked_reduce_backward(grad.contiguous(), mask, values, cu_seqlens, ctx.reduction)
    return g, (-g if ctx.has_minus else None), None, None, None


masked_reduce.register_autograd(_masked_reduce_bw, setup_context=_masked_reduce_setup)


@torch.library.custom_op("fastalign::masked_reduce_backward", mutates_args=())
def masked_reduce_backward(
    grad: Tensor, mask: Tensor | None, like: Tensor, cu_seqlens: Tensor | None, reduction: str
) -> Tensor:
    """Gradient of :func:`masked_reduce` (``sum``/``mean``) for values shaped like ``like``."""
    return _tl.masked_reduce_backward(grad, mask, like, cu_seqlens, reduction)


@masked_reduce_backward.register_kernel("cpu")
def _masked_reduce_backward_cpu(grad, mask, like, cu_seqlens, reduction):
    out = _native_fn("masked_reduce_backward", grad.dtype)(
        _np(grad), _np(mask), like.numel(), _cu(cu_seqlens), reduction
    )
    return torch.from_numpy(out).reshape(like.shape)


@masked_reduce_backward.register_fake
def _masked_reduce_backward_fake(grad, mask, like, cu_seqlens, reduction):
    return torch.empty_like(like)


# ---------------------------------------------------------------------------------------------
# vllm_is_ratio


@torch.library.custom_op("fastalign::vllm_is_ratio", mutates_args=())
def vllm_is_ratio(
    old: Tensor,
    sampling: Tensor,
    mask: Tensor,
    cu_seqlens: Tensor | None,
    mode: str,
    clip_min: float | None,
    clip_max: float | None,
) -> tuple[Tensor, Tensor]:
    """TRL's vLLM IS ratio (per token: ``old``'s shape; per sequence: ``(B,)``) and its
    statistics ``(8,)`` float64: logp-diff mean/max, ratio min/mean/max, raw min/mean/max."""
    ratio, stats = _tl.vllm_is_ratio(old, sampling, mask, cu_seqlens, mode, clip_min, clip_max)
    return (ratio.reshape(-1) if mode.startswith("sequence") else ratio.clone()), stats


@vllm_is_ratio.register_kernel("cpu")
def _vllm_is_ratio_cpu(old, sampling, mask, cu_seqlens, mode, clip_min, clip_max):
    ratio, st = _native_fn("vllm_is_ratio", old.dtype)(
        _np(old), _np(sampling), _np(mask), _rows(old, cu_seqlens), _cu(cu_seqlens), mode, (clip_min, clip_max)
    )
    ratio = torch.from_numpy(ratio)
    if not mode.startswith("sequence"):
        ratio = ratio.reshape(old.shape)
    return ratio, torch.tensor(st, dtype=torch.float64)


@vllm_is_ratio.register_fake
def _vllm_is_ratio_fake(old, sampling, mask, cu_seqlens, mode, clip_min, clip_max):
    shape = (_rows(old, cu_seqlens),) if mode.startswith("sequence") else old.shape
    return old.new_empty(shape), old.new_empty((8,), dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# grpo_loss


# The scalar options travel packed (a string and a float list): torch's custom-op autograd
# wrapper costs O(arguments^2) per call (``fill_defaults``), ~0.2 ms with one argument each.
SCALARS = (
    "epsilon_low", "epsilon_high", "delta", "beta", "off_policy_mask_threshold", "sapo_temperature_pos",
    "sapo_temperature_neg", "vespo_k_pos", "vespo_lambda_pos", "vespo_k_neg", "vespo_lambda_neg", "grad_accum",
    "max_completion_length", "token_denominator",
)  # fmt: skip
"""Order of ``grpo_loss``'s ``scalars``; NaN stands for ``None`` (delta, threshold, length, denominator)."""


def pack_options(
    loss_type: str, level: str, use_bias_correction_kl: bool, want_grad: bool, check_finite: bool = False
) -> str:
    """``grpo_loss``'s ``options`` string (``want_grad`` last). ``check_finite``: the default
    (torch) kernel refuses NaN log-probs, at the cost of one device synchronisation; the CPU
    kernel always refuses them (its single pass reads every value anyway)."""
    return f"{loss_type},{level},{int(use_bias_correction_kl)},{int(check_finite)},{int(want_grad)}"


class _LossConfig(NamedTuple):
    """The options of one ``grpo_loss`` call, unpacked: ``_torch_backend.grpo_loss`` takes them in
    this order after the tensors, the Rust kernel reads them by name (TRL's ``GRPOConfig`` names;
    ``level`` is ``importance_sampling_level``). ``None`` where an option is unset."""

    loss_type: str
    level: str
    epsilon_low: float
    epsilon_high: float
    delta: float | None
    beta: float
    use_bias_correction_kl: bool
    off_policy_mask_threshold: float | None
    sapo_temperature_pos: float
    sapo_temperature_neg: float
    vespo_k_pos: float
    vespo_lambda_pos: float
    vespo_k_neg: float
    vespo_lambda_neg: float
    grad_accum: float
    max_completion_length: float | None
    token_denominator: float | Tensor | None
    want_grad: bool
    check_finite: bool


def _unpack(options: str, scalars: list[float], token_denominator: float | Tensor | None = None) -> _LossConfig:
    """The :class:`_LossConfig` that ``options`` and ``scalars`` carry; ``token_denominator``, when
    given, replaces the last scalar."""
    parts = options.split(",")
    v: list[Any] = [None if x != x else x for x in scalars]  # NaN -> None
    if token_denominator is not None:
        v[13] = token_denominator
    check = len(parts) == 5 and parts[3] == "1"
    return _LossConfig._make((parts[0], parts[1], *v[:4], parts[2] == "1", *v[4:], parts[-1] == "1", check))


@torch.library.custom_op("fastalign::grpo_loss", mutates_args=())
def grpo_loss(
    per_token_logps: Tensor,
    old_per_token_logps: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    ref_per_token_logps: Tensor | None,
    importance_sampling_ratio: Tensor | None,
    sampling_per_token_logps: Tensor | None,
    entropy_mask: Tensor | None,
    cu_seqlens: Tensor | None,
    options: str,
    scalars: list[float],
    token_denominator: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The fused GRPO-family loss: ``(loss (0-d), d loss / d per_token_logps (its shape, or (0,)
    without want_grad), metrics (8,) float64)``. ``options`` = :func:`pack_options`, ``scalars`` in
    the order of :data:`SCALARS` (NaN = None). ``token_denominator``: the dapo/cispo/vespo
    normaliser as a 0-d float32 tensor (it replaces ``scalars``' last entry), so that a count
    that lives on the device is used there without a sync."""
    loss, grad, metrics = _tl.grpo_loss(
        per_token_logps, old_per_token_logps, advantages, mask, ref_per_token_logps, importance_sampling_ratio,
        sampling_per_token_logps, entropy_mask, cu_seqlens, *_unpack(options, scalars, token_denominator),
    )  # fmt: skip
    return loss.clone(), grad.clone() if grad.numel() else grad, metrics


@grpo_loss.register_kernel("cpu")
def _grpo_loss_cpu(lp, old, adv, mask, ref, isr, samp, ent, cu, options, scalars, token_denominator=None):
    # a CPU tensor: no device to wait for
    den = None if token_denominator is None else float(token_denominator)
    config = _unpack(options, scalars, den)  # the kernel always refuses NaN: check_finite is moot
    # the kernel writes every element of the gradient: no zero-fill
    want = config.want_grad
    g = torch.empty(lp.shape, dtype=lp.dtype) if want else lp.new_empty((0,))
    arrays = (_np(lp), _np(old), _np(adv), _np(mask), _np(ref), _np(isr), _np(samp), _np(ent))
    loss, metrics = _native_fn("grpo_loss", lp.dtype)(
        arrays, _rows(lp, cu), _cu(cu), config, g.numpy().reshape(-1) if want else None
    )
    # through numpy: a few µs less than torch.tensor from Python floats
    np_dtype = np.float32 if lp.dtype == torch.float32 else np.float64
    return torch.from_numpy(np.array(loss, dtype=np_dtype)), g, torch.from_numpy(np.array(metrics, dtype=np.float64))


@grpo_loss.register_fake
def _grpo_loss_fake(lp, old, adv, mask, ref, isr, samp, ent, cu, options, scalars, token_denominator=None):
    grad = torch.empty_like(lp) if options.endswith(",1") else lp.new_empty((0,))
    return lp.new_empty(()), grad, lp.new_empty((N_LOSS_METRICS,), dtype=torch.float64)


def _grpo_setup(ctx, inputs, output):
    ctx.want_grad = inputs[9].endswith(",1")
    ctx.n_inputs = len(inputs)
    ctx.save_for_backward(output[1])
    ctx.mark_non_differentiable(output[1], output[2])
    # no zero-filled (B, T) stand-in for the gradient output's (never used) gradient
    ctx.set_materialize_grads(False)


def _scaled_grad(grad: Tensor, g_loss: Tensor) -> Tensor:
    """``g_loss * grad``, without a pass over ``grad`` or a new ``(B, T)`` tensor where that is
    safe: in eager mode, for plain CPU tensors, when this backward frees the graph (no
    ``retain_graph``/``create_graph``), the saved gradient is used by nobody after this call, so
    it is returned as it is (``g_loss == 1``, as after ``loss.backward()``) or scaled in place.
    Elsewhere (a retained graph, double backward, tracing under torch.compile, other devices or
    tensor subclasses) the product is a new tensor, as autograd expects."""
    if (
        type(grad) is Tensor
        and type(g_loss) is Tensor
        and not _validate.on_accelerator(grad)
        and not _validate.on_accelerator(g_loss)
        and g_loss.dtype == grad.dtype
        and not torch.is_grad_enabled()
        and not torch._C._autograd._get_current_graph_task_keep_graph()
    ):
        if g_loss.item() == 1.0:
            return grad
        return grad.mul_(g_loss)
    return g_loss * grad


def _grpo_bw(ctx, g_loss, g_grad, g_metrics):
    (grad,) = ctx.saved_tensors
    if not ctx.want_grad:
        raise RuntimeError("fastalign::grpo_loss was called with want_grad=False; its gradient was not computed")
    g = None if g_loss is None else _scaled_grad(grad, g_loss)
    return (g,) + (None,) * (ctx.n_inputs - 1)


grpo_loss.register_autograd(_grpo_bw, setup_context=_grpo_setup)


class _GrpoLossEager(torch.autograd.Function):
    """``fastalign::grpo_loss``'s CPU kernel with the op's own autograd formula, without the
    custom-op dispatch and its autograd wrapper (about 80 µs a call on a 2-core machine)."""

    # forward with ctx (no separate setup_context): Function.apply then skips binding the
    # arguments through inspect.signature on every call
    @staticmethod
    def forward(ctx, *inputs):
        output = _grpo_loss_cpu(*inputs)
        _grpo_setup(ctx, inputs, output)
        return output

    @staticmethod
    def backward(ctx, g_loss, g_grad, g_metrics):
        return _grpo_bw(ctx, g_loss, g_grad, g_metrics)


def _plain_eager_cpu(tensors) -> bool:
    """Whether ``tensors`` (``None`` allowed) are plain CPU tensors in plain eager mode: nothing
    (torch.compile, a functorch transform, a torch function or dispatch mode) needs the op."""
    if (
        torch.compiler.is_compiling()
        or torch._C._len_torch_function_stack() > 0
        or torch._C._functorch.peek_interpreter_stack() is not None
        or _python_dispatch._get_current_dispatch_mode() is not None
    ):
        return False
    return all(t is None or (type(t) is Tensor and t.device.type == "cpu") for t in tensors)


def grpo_loss_eager(
    per_token_logps: Tensor,
    old_per_token_logps: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    ref_per_token_logps: Tensor | None,
    importance_sampling_ratio: Tensor | None,
    sampling_per_token_logps: Tensor | None,
    entropy_mask: Tensor | None,
    cu_seqlens: Tensor | None,
    options: str,
    scalars: list[float],
    token_denominator: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`grpo_loss` (same arguments, results and gradient), by the shortest route: the CPU
    kernel and autograd formula directly for plain eager CPU tensors, the custom op otherwise."""
    args: tuple = (per_token_logps, old_per_token_logps, advantages, mask, ref_per_token_logps,
                   importance_sampling_ratio, sampling_per_token_logps, entropy_mask, cu_seqlens, options,
                   scalars)  # fmt: skip
    if token_denominator is not None:
        args = (*args, token_denominator)
    if not _plain_eager_cpu((*args[:9], token_denominator)):
        return grpo_loss(*args)
    if torch.is_grad_enabled() and per_token_logps.requires_grad:
        return _GrpoLossEager.apply(*args)
    return _grpo_loss_cpu(*args)
