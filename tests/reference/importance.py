"""The vLLM importance-sampling correction (TIS / MIS) of TRL 1.16's GRPO scoring step, in
plain torch, from its definition.

With ``delta_t = logp_old_t - logp_sampler_t`` on the trained tokens (a NaN sampler log-prob, as
vLLM reports for some tokens, contributes nothing):

* the log-weight is ``delta_t`` per token (``token_*`` modes) or ``sum_t delta_t`` per sequence,
  shared by its tokens (``sequence_*``);
* ``*_truncate`` (TIS) clamps the weight into ``[clip_min, clip_max]`` (an unset bound is open);
* ``*_mask`` (MIS) zeroes a weight outside that range.

The metrics TRL logs are the min / mean / max of the weights over the trained tokens (one per
sequence for the sequence modes), before (``raw_*``) and after the correction, and the mean and
max of ``|delta_t|`` over the trained tokens with a sampler log-prob. An empty set reads 0.

``tests/parity/test_trl_fast_trainer.py::test_is_reference_is_grpo_trainer`` proves both equal
to ``GRPOTrainer._generate_and_score_completions``.
"""

from __future__ import annotations

import torch


def log_weight(old: torch.Tensor, sampled: torch.Tensor, mask: torch.Tensor, per_sequence: bool) -> torch.Tensor:
    trained = mask.bool() & ~torch.isnan(sampled)
    delta = torch.where(trained, old - sampled, torch.zeros_like(old))
    return delta.sum(dim=-1, keepdim=True) if per_sequence else delta


def correct(weight: torch.Tensor, truncate: bool, lo: float | None, hi: float | None) -> torch.Tensor:
    if truncate:
        return weight.clamp(min=lo, max=hi)
    inside = torch.ones_like(weight, dtype=torch.bool)
    if lo is not None:
        inside &= weight >= lo
    if hi is not None:
        inside &= weight <= hi
    return torch.where(inside, weight, torch.zeros_like(weight))


def is_ratio(old, sampled, mask, mode: str, clip_min: float | None, clip_max: float | None) -> torch.Tensor:
    """The correction weights, ``(B, T)`` per token or ``(B, 1)`` per sequence."""
    level, kind = mode.split("_")
    raw = torch.exp(log_weight(old, sampled, mask, level == "sequence"))
    return correct(raw, kind == "truncate", clip_min, clip_max)


def _summary(values: torch.Tensor) -> tuple[float, float, float]:
    if values.numel() == 0:
        return 0.0, 0.0, 0.0
    return float(values.min()), float(values.mean()), float(values.max())


def is_metrics(old, sampled, mask, mode: str, clip_min: float | None, clip_max: float | None) -> dict[str, float]:
    """The ``sampling/*`` values TRL logs for one scoring step on one process."""
    level, kind = mode.split("_")
    raw = torch.exp(log_weight(old, sampled, mask, level == "sequence"))
    weight = correct(raw, kind == "truncate", clip_min, clip_max)
    on = mask.bool()
    pick = (lambda x: x.reshape(-1)) if level == "sequence" else (lambda x: x[on])
    gap = (old - sampled).abs()
    gap = gap[on & ~torch.isnan(gap)]
    out = {}
    if gap.numel():
        out["sampling/sampling_logp_difference/mean"] = float(gap.mean())
        out["sampling/sampling_logp_difference/max"] = float(gap.max())
    else:
        out["sampling/sampling_logp_difference/mean"] = out["sampling/sampling_logp_difference/max"] = 0.0
    for prefix, values in (("", weight), ("raw_", raw)):
        low, mean, high = _summary(pick(values))
        out[f"sampling/importance_sampling_ratio/{prefix}min"] = low
        out[f"sampling/importance_sampling_ratio/{prefix}mean"] = mean
        out[f"sampling/importance_sampling_ratio/{prefix}max"] = high
    return out
