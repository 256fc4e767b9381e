"""Sequence-level reductions and importance-sampling ratios, as TRL 1.16.0 computes them.

* :func:`masked_reduce` (and :func:`masked_sum`, :func:`masked_mean`, :func:`masked_max`):
  per-sequence reductions of per-token values under a mask; ``mean`` divides by the mask sum
  clamped to 1 (TRL's ``clamp(min=1.0)``), so a fully masked sequence gives 0. The mask sum is
  exact: bool and integer masks add as int64 (as TRL's ``mask.sum(-1)``), float masks in float64.
* :func:`sequence_log_ratio`: GSPO's ``Σ m·(logp − old) / max(Σ m, 1)``, one fused pass (no
  ``(B, T)`` difference tensor on CPU).
* :func:`importance_weights`: ``exp`` of the token log-ratio ("token"), of the sequence log-ratio
  ("sequence", GSPO) or GSPO-token's per-token form of it ("sequence_token").
* :func:`vllm_is_ratio`: TRL's TIS/MIS correction between the trainer's old log-probs and the
  sampler's (vLLM) ones, with the ``sampling/...`` statistics TRL logs and the raw (pre-clip) ratio
  statistics.

Layouts: padded ``(B, T)`` tensors with a ``(B, T)`` mask, or packed ``(N,)`` tokens with
``cu_seqlens`` (``(B + 1,)``, int32/int64, flash-attn's meaning; empty sequences allowed).
Backends: CPU tensors are read in place by Rust (GIL released); other devices run the same math
in torch. All functions are torch custom ops underneath (``torch.ops.fastalign.*``): they work
under ``torch.compile(fullgraph=True)`` and propagate gradients where stated.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from . import _validate as v
from . import ops

__all__ = [
    "IsRatio",
    "importance_weights",
    "masked_max",
    "masked_mean",
    "masked_reduce",
    "masked_sum",
    "sequence_log_ratio",
    "vllm_is_ratio",
]

_REDUCTIONS = ("sum", "mean", "max")
_LEVELS = ("token", "sequence", "sequence_token")
IS_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def masked_reduce(values: Any, mask: Any = None, *, reduction: str = "mean", cu_seqlens: Any = None) -> Any:
    """Per-sequence masked reduction of per-token values.

    Parameters
    ----------
    values: (B, T) float tensor, or (N,) with ``cu_seqlens``. bfloat16/float16 are computed in float32.
    mask: same shape; bool, int32, int64 or float (weights multiply, as ``values * mask``). ``None``: all ones.
    reduction: ``"sum"`` (``Σ m·x``), ``"mean"`` (``Σ m·x / max(Σ m, 1)``) or ``"max"`` (over ``m != 0``;
        ``-inf`` for a sequence without tokens; NaN propagates).
    cu_seqlens: (B + 1,) int32/int64 sequence boundaries for packed ``values``.

    Returns
    -------
    (B,) tensor in ``values``' dtype. Differentiable with respect to ``values`` (``max`` shares the
    gradient among tied maxima, like ``amax``). Sums accumulate in float64 and round once.

    Raises
    ------
    InvalidTypeError / InvalidArgumentError naming the argument (dtype, shape, device, ``cu_seqlens``
    not starting at 0, decreasing or not ending at the token count, unknown ``reduction``).
    """
    x, cu = v.token_values(values, "values", cu_seqlens)
    red = v.choice(reduction, "reduction", _REDUCTIONS)
    m = None if mask is None else v.mask_tensor(mask, "mask", x, "values")
    return ops.masked_reduce(x, None, m, cu, red)


def masked_sum(values: Any, mask: Any = None, *, cu_seqlens: Any = None) -> Any:
    """``masked_reduce(values, mask, reduction="sum")``."""
    return masked_reduce(values, mask, reduction="sum", cu_seqlens=cu_seqlens)


def masked_mean(values: Any, mask: Any = None, *, cu_seqlens: Any = None) -> Any:
    """``masked_reduce(values, mask, reduction="mean")`` (count clamped to 1, as TRL)."""
    return masked_reduce(values, mask, reduction="mean", cu_seqlens=cu_seqlens)


def masked_max(values: Any, mask: Any = None, *, cu_seqlens: Any = None) -> Any:
    """``masked_reduce(values, mask, reduction="max")``."""
    return masked_reduce(values, mask, reduction="max", cu_seqlens=cu_seqlens)


def sequence_log_ratio(
    per_token_logps: Any, old_per_token_logps: Any, mask: Any, *, cu_seqlens: Any = None, reduction: str = "mean"
) -> Any:
    """GSPO's sequence log importance weight, ``Σ m·(logp − old) / max(Σ m, 1)`` per sequence
    (TRL's ``importance_sampling_level="sequence"``), in one pass. ``reduction="sum"`` gives the
    sum of log-ratios instead (the log of the product of token ratios).

    Returns (B,) in the log-probs' dtype, differentiable with respect to both inputs.
    """
    x, cu = v.token_values(per_token_logps, "per_token_logps", cu_seqlens)
    old = v.like_tensor(old_per_token_logps, "old_per_token_logps", x, "per_token_logps")
    m = v.mask_tensor(mask, "mask", x, "per_token_logps")
    red = v.choice(reduction, "reduction", ("mean", "sum"))
    return ops.masked_reduce(x, old, m, cu, red)


def importance_weights(
    per_token_logps: Any, old_per_token_logps: Any, mask: Any, *, level: str = "token", cu_seqlens: Any = None
) -> Any:
    """The importance weight ``coef_1`` of TRL's ``_compute_loss``.

    * ``"token"``: ``exp(logp − old)``, the log-probs' shape;
    * ``"sequence"`` (GSPO): ``exp(sequence_log_ratio)``, shape (B, 1) for padded input, (B,) packed;
    * ``"sequence_token"`` (GSPO-token, GSPO paper; removed from TRL 1.16): per token
      ``exp(logp − sg[logp] + sg[sequence_log_ratio])``: the sequence's value, each token's own
      gradient.
    """
    torch = v._torch()
    x, cu = v.token_values(per_token_logps, "per_token_logps", cu_seqlens)
    old = v.like_tensor(old_per_token_logps, "old_per_token_logps", x, "per_token_logps")
    m = v.mask_tensor(mask, "mask", x, "per_token_logps")
    lvl = v.choice(level, "level", _LEVELS)
    if lvl == "token":
        return torch.exp(x - old)
    seq = ops.masked_reduce(x, old, m, cu, "mean")
    if lvl == "sequence":
        return torch.exp(seq.unsqueeze(-1) if cu is None else seq)
    per_tok = seq.detach().unsqueeze(-1) if cu is None else _expand_packed(seq.detach(), cu, x)
    return torch.exp(x - x.detach() + per_tok)


def _expand_packed(r: Any, cu: Any, like: Any) -> Any:
    torch = v._torch()
    lengths = (cu[1:] - cu[:-1]).long()
    return torch.repeat_interleave(r, lengths, output_size=like.shape[0])


class IsRatio(NamedTuple):
    """Result of :func:`vllm_is_ratio`."""

    ratio: Any
    """(B, T) / (N,) per token, or (B, 1) padded / (B,) packed per sequence; no gradient."""
    stats: Any
    """(8,) float64: logp-diff mean, max; ratio min, mean, max; raw (pre-clip) min, mean, max."""

    def metrics(self) -> dict[str, float]:
        """TRL's ``sampling/...`` keys (one process), plus ``.../raw_{min,mean,max}``."""
        s = self.stats.tolist()
        keys = (
            "sampling/sampling_logp_difference/mean",
            "sampling/sampling_logp_difference/max",
            "sampling/importance_sampling_ratio/min",
            "sampling/importance_sampling_ratio/mean",
            "sampling/importance_sampling_ratio/max",
            "sampling/importance_sampling_ratio/raw_min",
            "sampling/importance_sampling_ratio/raw_mean",
            "sampling/importance_sampling_ratio/raw_max",
        )
        return dict(zip(keys, s))


def vllm_is_ratio(
    old_per_token_logps: Any,
    sampling_per_token_logps: Any,
    mask: Any,
    *,
    mode: str = "sequence_mask",
    clip_min: float | None = None,
    clip_max: float | None = 3.0,
    cu_seqlens: Any = None,
) -> IsRatio:
    """TRL 1.16's vLLM importance-sampling correction (``vllm_importance_sampling_mode``).

    ``d = nan_to_num((old − sampling)·m)``; ``token_*``: ``exp(d)`` per token; ``sequence_*``:
    ``exp(Σ_t d)`` per sequence (a **sum** of log differences, the product of token ratios).
    ``*_truncate`` clamps to ``[clip_min, clip_max]`` (``None`` = unbounded side); ``*_mask``
    zeroes ratios below ``clip_min`` or above ``clip_max`` (strictly). Defaults are TRL's.

    Raises when ``clip_min >= clip_max`` or a truncate mode has no bound (as TRL's config does).
    """
    old, cu = v.token_values(old_per_token_logps, "old_per_token_logps", cu_seqlens)
    samp = v.like_tensor(sampling_per_token_logps, "sampling_per_token_logps", old, "old_per_token_logps")
    m = v.mask_tensor(mask, "mask", old, "old_per_token_logps")
    md = v.choice(mode, "mode", IS_MODES)
    lo, hi = v.clip_bounds(clip_min, clip_max, md)
    ratio, stats = ops.vllm_is_ratio(old.detach(), samp.detach(), m, cu, md, lo, hi)
    if md.startswith("sequence") and cu is None:
        ratio = ratio.unsqueeze(-1)
    return IsRatio(ratio, stats)
