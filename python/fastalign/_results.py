"""The result types that both backends build: the Rust wrappers and the plain-torch kernels.

A leaf: it imports nothing from fastalign but the exception classes, so that the public modules
(:mod:`fastalign.advantages`, :mod:`fastalign.overlong`, which re-export these types) and the
torch backend (:mod:`fastalign._torch`) both import it and never each other. The compiled module
builds :class:`Advantages` too, through ``fastalign.advantages.Advantages``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from .errors import InvalidArgumentError

__all__ = ["Advantages", "CompletionMask"]


class Advantages(NamedTuple):
    """Result of :func:`~fastalign.advantages.grpo_advantages` / :func:`~fastalign.advantages.rloo_advantages`.

    ``advantages`` and ``std_is_zero`` come first, so ``adv, std_is_zero, *_ = ...`` works.
    Arrays are of the input's kind and device. The statistics are the values TRL logs for this
    step, as Python floats; they are ``None`` when the call was made with ``metrics=False``
    (except ``frac_reward_zero_std``, which is always computed).
    """

    advantages: Any
    """(N,) advantages, in the rewards' dtype."""
    std_is_zero: Any
    """(N,) bool: the std that scaled this row is zero (``torch.isclose(std, 0)``)."""
    rewards: Any
    """(N,) weighted NaN-sum of the raw rewards, NaN for unscorable rows."""
    frac_reward_zero_std: float
    reward_mean: float | None = None
    reward_std: float | None = None
    reward_func_means: tuple[float, ...] | None = None
    reward_func_stds: tuple[float, ...] | None = None

    def metrics(self, reward_func_names: Sequence[str] | None = None) -> dict[str, float]:
        """The metrics under TRL's keys (``reward``, ``reward_std``, ``frac_reward_zero_std``,
        ``rewards/{name}/mean`` and ``rewards/{name}/std``)."""
        if self.reward_func_means is None or self.reward_func_stds is None:
            raise InvalidArgumentError("were not computed: call with metrics=True", "metrics")
        k = len(self.reward_func_means)
        names = list(reward_func_names) if reward_func_names is not None else [f"reward_{i}" for i in range(k)]
        if len(names) != k:
            raise InvalidArgumentError(f"has {len(names)} names for {k} reward functions", "reward_func_names")
        out: dict[str, float] = {}
        for name, m, s in zip(names, self.reward_func_means, self.reward_func_stds):
            out[f"rewards/{name}/mean"] = m
            out[f"rewards/{name}/std"] = s
        out["reward"] = self.reward_mean  # type: ignore[assignment]
        out["reward_std"] = self.reward_std  # type: ignore[assignment]
        out["frac_reward_zero_std"] = self.frac_reward_zero_std
        return out


class CompletionMask(NamedTuple):
    """Result of :func:`~fastalign.overlong.completion_mask`; arrays are of the input's kind and device."""

    mask: Any
    """(B, T) int64 (or the ``dtype`` asked for): 1 up to and including the first EOS, 0 after
    (the whole row 0 when masked)."""
    is_truncated: Any
    """(B,) bool: the completion ends in neither an EOS nor the pad token."""
    lengths: Any
    """(B,) int64: kept length of each completion (EOS included), before masking."""
    num_items: Any
    """Number of ones in ``mask`` (TRL's ``num_items_in_batch``): an int for numpy input, a
    0-d int64 tensor for torch input."""


# their public homes: pickles, reprs and docs name them there, not in this private module
Advantages.__module__ = "fastalign.advantages"
CompletionMask.__module__ = "fastalign.overlong"
