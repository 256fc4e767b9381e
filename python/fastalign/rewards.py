"""Reward functions for TRL trainers, computed in Rust.

``soft_overlong(max_completion_len, soft_punish_cache)`` is a drop-in for
``trl.rewards.get_soft_overlong_punishment``: the same values (bit for bit), the same
``__name__`` (so the same ``rewards/soft_overlong_punishment_reward/...`` metric keys), picklable,
and callable the way TRL calls reward functions. It also accepts padded ids with a mask, or
lengths, for use outside TRL. ``soft_overlong_penalty`` is the vectorised form over lengths.

DAPO (arXiv 2503.14476) eq. 13, with ``L_max = max_completion_len`` and
``L_cache = soft_punish_cache``::

    R(L) = 0                          if L <= L_max - L_cache
         = (L_max - L_cache - L) / L_cache   if L_max - L_cache < L <= L_max
         = -1                         if L > L_max
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import _native
from . import _validate as v

__all__ = ["SoftOverlongPunishment", "soft_overlong", "soft_overlong_penalty"]


@functools.lru_cache(maxsize=64, typed=True)
def _kernel(max_completion_len: object, soft_punish_cache: object) -> _native.SoftOverlong:
    """The Rust evaluator for these (validated) parameters; it precomputes the ramp once.

    Cached on the arguments as given (``typed``: 100 and 100.0 are different keys), so the
    validation runs once per distinct pair and an invalid pair is never cached (it raises).
    """
    return _native.SoftOverlong(*v.overlong_params(max_completion_len, soft_punish_cache))


def _kernel_for(max_completion_len: object, soft_punish_cache: object) -> _native.SoftOverlong:
    try:
        return _kernel(max_completion_len, soft_punish_cache)
    except TypeError:
        v.overlong_params(max_completion_len, soft_punish_cache)  # unhashable: raise the clear error
        raise


class SoftOverlongPunishment:
    """DAPO's soft overlong punishment as a TRL reward function (see :func:`soft_overlong`)."""

    __name__ = "soft_overlong_punishment_reward"

    def __init__(self, max_completion_len: int, soft_punish_cache: int) -> None:
        self.max_completion_len, self.soft_punish_cache = v.overlong_params(max_completion_len, soft_punish_cache)
        self._kernel = _kernel(self.max_completion_len, self.soft_punish_cache)

    def __call__(
        self,
        completion_ids: Any = None,
        *,
        completion_mask: Any = None,
        lengths: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Penalties for a batch of completions.

        * ``completion_ids`` as a list of token-id lists (how TRL calls reward functions; other
          keyword arguments such as ``prompts`` are ignored): returns ``list[float]``.
        * ``completion_ids`` as a padded (B, T) array/tensor with ``completion_mask=`` (B, T):
          the lengths are the mask's row sums; returns a float64 array of the input's kind.
        * ``lengths=`` (B,) int array/tensor: returns a float64 array of the input's kind.

        When ``completion_ids`` is a list (TRL's call), ``lengths`` and ``completion_mask`` are
        ignored like every other keyword: TRL hands each dataset column to reward functions as a
        keyword, and a column that happens to be called ``lengths`` must not change the rewards.
        """
        if completion_ids is not None and not (v.is_torch(completion_ids) or isinstance(completion_ids, np.ndarray)):
            return self._kernel.penalties_of(completion_ids)
        if lengths is not None:
            out = _penalties_fast(self._kernel, lengths)
            return out if out is not None else _penalties(self._kernel, lengths, True)
        if completion_mask is not None:
            # the mask was checked: its row sums need no second check (a device sync on CUDA)
            return _penalties(self._kernel, v.mask_lengths(completion_mask, completion_ids), True, checked=True)
        v.no_lengths(completion_ids)

    def __reduce__(self):
        return (type(self), (self.max_completion_len, self.soft_punish_cache))

    def __repr__(self) -> str:
        return (
            f"soft_overlong(max_completion_len={self.max_completion_len}, soft_punish_cache={self.soft_punish_cache})"
        )


def soft_overlong(max_completion_len: int, soft_punish_cache: int) -> SoftOverlongPunishment:
    """DAPO's soft overlong punishment, a drop-in for ``trl.rewards.get_soft_overlong_punishment``.

    Parameters
    ----------
    max_completion_len : int
        ``L_max`` (>= 1), normally ``GRPOConfig.max_completion_length``.
    soft_punish_cache : int
        ``L_cache``, the length of the soft-penalty ramp (0 <= L_cache <= L_max; 0 means a hard
        -1 beyond ``L_max``).

    Examples
    --------
    >>> from fastalign.rewards import soft_overlong
    >>> reward = soft_overlong(max_completion_len=100, soft_punish_cache=20)
    >>> reward(completion_ids=[[1] * 90, [1] * 10])
    [-0.5, 0.0]
    """
    return SoftOverlongPunishment(max_completion_len, soft_punish_cache)


def soft_overlong_penalty(lengths: Any, max_completion_len: int, soft_punish_cache: int, *, dtype: Any = None) -> Any:
    """Vectorised soft overlong penalty of completion lengths.

    Parameters
    ----------
    lengths : (B,), int32 or int64
        Completion lengths (EOS included, as TRL counts them); must be >= 0.
    max_completion_len, soft_punish_cache : int
        As in :func:`soft_overlong`.
    dtype : float64 (default) or float32
        Output dtype (numpy or torch dtype). float64 values equal TRL's Python floats exactly.

    Returns
    -------
    (B,) array of the input's kind (and device).
    """
    kernel = _kernel_for(max_completion_len, soft_punish_cache)  # validates the pair on first use
    return _penalties(kernel, lengths, v.penalty_float64(dtype))


def _penalties(kernel: _native.SoftOverlong, lengths: Any, float64: bool, *, checked: bool = False) -> Any:
    """Penalties of a lengths array with a validated kernel: Rust for CPU memory, torch elsewhere.
    ``checked``: the lengths are known to be >= 0 (the torch path then skips its check, a sync)."""
    if v.on_accelerator(lengths):
        from ._torch_backend import rewards as torch_path

        t = v.tensor(lengths, "lengths", v.INT, (1,))
        return torch_path.soft_overlong_penalty(
            t, kernel.max_completion_len, kernel.soft_punish_cache, float64, check=not checked
        )
    arr = v.array(lengths, "lengths", v.INT, (1,))
    fn = kernel.penalties_i32 if arr.dtype == np.int32 else kernel.penalties_i64
    return v.wrap(fn(arr, float64), v.is_torch(lengths))


def _penalties_fast(kernel: _native.SoftOverlong, lengths: Any) -> Any:
    """Float64 penalties of a lengths array or CPU tensor in the common, valid case, in one native
    call and of the input's kind; ``None`` for anything else, which :func:`_penalties` checks."""
    out = kernel.penalties_fast(lengths)
    if out is None or isinstance(lengths, np.ndarray):
        return out
    return (v._TORCH or v._torch()).from_numpy(out)  # a CPU tensor: a tensor out
