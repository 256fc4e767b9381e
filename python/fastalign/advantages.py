"""Group-relative advantages, exactly as TRL 1.16.0 computes them.

* :func:`grpo_advantages` — ``GRPOTrainer``'s advantage step: contiguous groups of
  ``num_generations`` rows, weighted NaN-sum over reward functions, all-NaN ("unscorable") rows
  excluded from the baseline and given advantage 0, Bessel-corrected NaN-std, the
  ``group``/``batch``/``none`` scalings (and the legacy ``True``/``False``), and GDPO's
  ``normalize_then_sum``.
* :func:`rloo_advantages` — ``RLOOTrainer``'s leave-one-out baseline.
* :func:`zero_variance_groups` — which groups carry no learning signal (DAPO dynamic sampling).
* :func:`top_k_per_group` — the rows GFPO keeps: the ``k`` best of each group by a score.

Backends: numpy arrays and CPU torch tensors are read in place by the Rust kernels (GIL
released); tensors on any other device run the same math in plain torch on that device.
Results come back as the caller's kind (tensor in, tensor out).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _native
from . import _validate as v
from ._results import Advantages

__all__ = ["Advantages", "grpo_advantages", "rloo_advantages", "top_k_per_group", "zero_variance_groups"]

_SCALES = ("group", "batch", "none")
_AGGREGATIONS = ("sum_then_normalize", "normalize_then_sum")


_new_tuple = tuple.__new__


def _result(out: tuple, like_torch: bool) -> Advantages:
    """A kernel's plain tuple (the fields of :class:`Advantages`, in order) as an ``Advantages``,
    with tensors for a caller that passed tensors."""
    if not like_torch:
        return _new_tuple(Advantages, out)
    f = (v._TORCH or v._torch()).from_numpy
    return _new_tuple(Advantages, (f(out[0]), f(out[1]), f(out[2]), out[3], out[4], out[5], out[6], out[7]))


def _grpo_fast(
    rewards: Any,
    num_generations: Any,
    scale_rewards: Any,
    reward_weights: Any,
    multi_objective_aggregation: Any,
    eps: Any,
    metrics: Any,
) -> Advantages | None:
    """:func:`grpo_advantages` for the common, valid case (numpy or CPU tensor, options of their
    exact default types) in one native call; ``None`` for anything else, which the checks of
    :func:`grpo_advantages` then accept or reject. (Every step is inlined: at a few hundred rows
    this function's own overhead is a measurable part of the call.)"""
    w = reward_weights
    fresh = False
    if w is not None and not isinstance(w, np.ndarray):
        hit = v._LAST_WEIGHTS.get("t")
        if hit is not None and hit[0] is w and hit[1] == w._version:
            w = hit[2]
        elif v.is_torch(w):
            try:
                w = w.numpy()
                fresh = True
            except (TypeError, RuntimeError):  # autograd, another device, a dtype numpy lacks
                pass
    out = _native.grpo_advantages_fast(
        rewards, num_generations, scale_rewards, w, multi_objective_aggregation, eps, metrics
    )
    if out is None:
        return None
    if fresh:  # the kernel accepted the view: checked, as _weights checks it
        v._LAST_WEIGHTS["t"] = (reward_weights, reward_weights._version, w)
    if isinstance(rewards, np.ndarray):
        return _new_tuple(Advantages, out)
    f = (v._TORCH or v._torch()).from_numpy  # a CPU tensor: tensors out
    return _new_tuple(Advantages, (f(out[0]), f(out[1]), f(out[2]), out[3], out[4], out[5], out[6], out[7]))


def grpo_advantages(
    rewards: Any,
    num_generations: int,
    *,
    scale_rewards: str | bool = "group",
    reward_weights: Sequence[float] | Any | None = None,
    multi_objective_aggregation: str = "sum_then_normalize",
    eps: float = 1e-4,
    metrics: bool = True,
) -> Advantages:
    """GRPO advantages, identical to ``GRPOTrainer`` in TRL 1.16.0.

    Parameters
    ----------
    rewards : (N,) or (N, K), float32 or float64
        One column per reward function; NaN where a function returned ``None``. Rows come in
        contiguous groups of ``num_generations`` completions of the same prompt.
    num_generations : int
        Group size G (>= 1); must divide N.
    scale_rewards : {"group", "batch", "none"} or bool
        Divide the centred rewards by the group std, by the batch std (the mean stays the group
        mean; Lite PPO), or not at all (Dr. GRPO). ``True``/``False`` mean ``"group"``/``"none"``.
    reward_weights : sequence of K floats, optional
        Weights of the reward functions (default all ones).
    multi_objective_aggregation : {"sum_then_normalize", "normalize_then_sum"}
        ``normalize_then_sum`` (GDPO) z-scores each function within its group, sums, then
        normalises over the batch; it ignores ``scale_rewards``, as TRL does.
    eps : float
        Added to the std before dividing (TRL: 1e-4).
    metrics : bool
        Also compute the reward statistics TRL logs (two more passes over the rewards).

    Returns
    -------
    Advantages
        ``advantages`` (N,), ``std_is_zero`` (N,) bool, the summed ``rewards`` (N,) and the
        statistics TRL logs (see :meth:`Advantages.metrics`).

    Raises
    ------
    InvalidTypeError
        ``rewards`` is not a float32/float64 numpy array or torch tensor.
    InvalidArgumentError
        Empty ``rewards``, a bad shape or non-contiguous memory, ``num_generations`` < 1 or not
        dividing N, a wrong number of weights, or an unknown option.

    Examples
    --------
    >>> import numpy as np
    >>> from fastalign.advantages import grpo_advantages
    >>> out = grpo_advantages(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32), 4)
    >>> out.advantages.round(3).tolist()
    [1.5, -0.5, -0.5, -0.5]
    """
    out = _grpo_fast(rewards, num_generations, scale_rewards, reward_weights, multi_objective_aggregation, eps, metrics)
    if out is not None:
        return out
    scale = v.scale_rewards(scale_rewards, _SCALES)
    agg = v.choice(multi_objective_aggregation, "multi_objective_aggregation", _AGGREGATIONS)
    eps = v.real(eps, "eps", minimum=0.0)
    metrics = v.boolean(metrics, "metrics")
    if v.on_accelerator(rewards):
        from ._torch_backend import advantages as torch_path

        r = v.tensor(rewards, "rewards", v.FLOAT, (1, 2))
        _, k, g = v.groups(tuple(r.shape), num_generations)
        w = v.reward_weights(reward_weights, k, r.dtype)
        return torch_path.grpo_advantages(r.reshape(r.shape[0], k), w, g, scale, agg, eps, metrics)
    arr = v.array(rewards, "rewards", v.FLOAT, (1, 2))
    _, k, g = v.groups(arr.shape, num_generations)
    w = v.reward_weights(reward_weights, k, arr.dtype)
    fn = _native.grpo_advantages_f32 if arr.dtype == np.float32 else _native.grpo_advantages_f64
    return _result(fn(arr, w, g, scale, agg, eps, metrics), v.is_torch(rewards))


def rloo_advantages(
    rewards: Any,
    num_generations: int,
    *,
    reward_weights: Sequence[float] | Any | None = None,
    reward_clip_range: tuple[float, float] | None = None,
    kl: Any | None = None,
    beta: float = 0.0,
    normalize_advantages: bool = False,
    eps: float = 1e-4,
    metrics: bool = True,
) -> Advantages:
    """RLOO advantages, identical to ``RLOOTrainer`` in TRL 1.16.0.

    The weighted NaN-sum of the rewards is optionally clamped to ``reward_clip_range``, has
    ``beta * kl`` subtracted (``kl``: (N,) per-sequence ``sum_t (old - ref) * mask``), and each
    completion's baseline is the mean of its scorable siblings. ``normalize_advantages``
    z-scores the result over the batch. Unscorable rows, and groups with a single scorable
    completion, get advantage 0. Arguments and results are as in :func:`grpo_advantages`;
    ``std_is_zero`` is per row (the flag of the row's group).
    """
    eps = v.real(eps, "eps", minimum=0.0)
    beta = v.real(beta, "beta")
    normalize = v.boolean(normalize_advantages, "normalize_advantages")
    metrics = v.boolean(metrics, "metrics")
    clip = v.clip_range(reward_clip_range)
    if beta != 0.0:
        v.required(kl, "kl", "is required when beta != 0 (per-sequence KL, shape (N,))")
    if v.on_accelerator(rewards):
        from ._torch_backend import advantages as torch_path

        r = v.tensor(rewards, "rewards", v.FLOAT, (1, 2))
        n, k, g = v.groups(tuple(r.shape), num_generations)
        w = v.reward_weights(reward_weights, k, r.dtype)
        kl_t = None
        if beta != 0.0:
            v.same_device(kl, "kl", r.device)
            kl_t = v.tensor(kl, "kl", v.FLOAT, (1,))
            v.kl_like_rewards(kl_t, n, r.dtype)
        return torch_path.rloo_advantages(r.reshape(n, k), w, g, kl_t, beta, clip, normalize, eps, metrics)
    arr = v.array(rewards, "rewards", v.FLOAT, (1, 2))
    n, k, g = v.groups(arr.shape, num_generations)
    w = v.reward_weights(reward_weights, k, arr.dtype)
    kl_a = None
    if beta != 0.0:
        kl_a = v.array(kl, "kl", v.FLOAT, (1,))
        v.kl_like_rewards(kl_a, n, arr.dtype)
    fn = _native.rloo_advantages_f32 if arr.dtype == np.float32 else _native.rloo_advantages_f64
    out = fn(
        arr,
        w,
        kl_a,
        {"num_generations": g, "reward_clip_range": clip, "beta": beta, "normalize_advantages": normalize, "eps": eps},
        metrics,
    )
    return _result(out, v.is_torch(rewards))


def zero_variance_groups(
    rewards: Any,
    num_generations: int,
    *,
    reward_weights: Sequence[float] | Any | None = None,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> Any:
    """Which groups carry no learning signal: the primitive of DAPO's dynamic sampling.

    Rewards are combined as in :func:`grpo_advantages` (weighted NaN-sum; all-NaN rows are
    unscorable). A group has zero variance when all its scorable rewards lie within
    ``atol + rtol * max|r|`` of each other (``max - min``), or when fewer than two are scorable
    (GRPO gives every row of such a group advantage 0). Unlike TRL's ``std == 0`` this is not
    fooled by the last-bit noise of float reductions.

    Returns
    -------
    (N // num_generations,) bool, of the input's kind.
    """
    atol = v.real(atol, "atol", minimum=0.0)
    rtol = v.real(rtol, "rtol", minimum=0.0)
    if v.on_accelerator(rewards):
        from ._torch_backend import advantages as torch_path

        r = v.tensor(rewards, "rewards", v.FLOAT, (1, 2))
        n, k, g = v.groups(tuple(r.shape), num_generations)
        w = v.reward_weights(reward_weights, k, r.dtype)
        return torch_path.zero_variance_groups(r.reshape(n, k), w, g, atol, rtol)
    arr = v.array(rewards, "rewards", v.FLOAT, (1, 2))
    _, k, g = v.groups(arr.shape, num_generations)
    w = v.reward_weights(reward_weights, k, arr.dtype)
    fn = _native.zero_variance_groups_f32 if arr.dtype == np.float32 else _native.zero_variance_groups_f64
    return v.wrap(fn(arr, w, g, atol, rtol), v.is_torch(rewards))


def top_k_per_group(scores: Any, num_generations: int, k: int, *, keep: str = "largest") -> Any:
    """Row indices of the ``k`` best scores in each contiguous group: GFPO's filter.

    GFPO (Shrivastava et al., 2025, arXiv:2508.09726) samples ``num_generations``
    completions per prompt and trains only on the ``k`` that score best by a metric such as
    length (``keep="smallest"``) or reward per token (``keep="largest"``).

    Parameters
    ----------
    scores : (N,), float32 or float64
        One score per completion, in contiguous groups of ``num_generations``.
    num_generations : int
        Group size G; must divide N.
    k : int
        Rows kept per group, 1 <= k <= G.
    keep : {"largest", "smallest"}

    Returns
    -------
    (N // G * k,) int64 global row indices, group after group, ascending within each group (the
    original order, unlike ``torch.topk``). A NaN score ranks below every number; ties go to
    the earlier row. numpy in, numpy out; a tensor in gives a tensor on its device.
    """
    keep = v.choice(keep, "keep", ("largest", "smallest"))
    g = v.integer(num_generations, "num_generations", minimum=1)
    k = v.integer(k, "k", minimum=1)
    v.at_most(k, g, "k", "num_generations")
    if v.on_accelerator(scores):
        from ._torch_backend import advantages as torch_path

        t = v.tensor(scores, "scores", v.FLOAT, (1,))
        v.groups(tuple(t.shape), g, "scores")
        return torch_path.top_k_per_group(t.detach(), g, k, keep)
    arr = v.array(scores, "scores", v.FLOAT, (1,))
    v.groups(arr.shape, g, "scores")
    fn = _native.top_k_per_group_f32 if arr.dtype == np.float32 else _native.top_k_per_group_f64
    return v.wrap(fn(arr, g, k, keep), v.is_torch(scores))
