"""Group-relative advantages as TRL 1.16's GRPO and RLOO trainers define them, in plain torch.

Definitions (``r``: the (N, K) reward matrix, NaN where a reward function returned None; ``w``:
the K reward weights; groups of ``G`` consecutive rows share a prompt):

* total ``s_i = sum_j w_j r_ij`` over the non-NaN entries, NaN for a row with no reward at all;
* GRPO, ``sum_then_normalize``: ``(s_i - mean_g) / (std + 1e-4)`` with the group's NaN-mean and
  Bessel-corrected NaN-std (``scale="group"``), the batch std (``"batch"``), or no division
  (``"none"``);
* GRPO, ``normalize_then_sum`` (GDPO): each column z-scored within its group the same way, the
  weighted sum of the z-scores, that sum z-scored over the batch;
* RLOO: the total (clipped to ``clip``, minus ``beta * kl``) minus the mean of the *other*
  scorable rows of its group; optionally z-scored over the batch;
* every NaN advantage becomes 0 (``torch.nan_to_num``, which also maps +-inf to the largest
  finite values); a group's std counts as zero when ``torch.isclose(std, 0)``.

The std is TRL's public ``trl.trainer.utils.nanstd``, and every step is one torch op on the
input's dtype, so the results equal the trainers' bit for bit (``test_trl_trainer_parity.py``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from trl.trainer.utils import nanstd

EPS = 1e-4


class Scored(NamedTuple):
    advantages: torch.Tensor  # (N,)
    zero_std: torch.Tensor  # bool: per row (GRPO) or per group (RLOO), as the trainers flag it
    logged: dict  # the reward metrics the trainers log; {} when not asked for


def weighted_total(rewards: torch.Tensor, weights: torch.Tensor, unscorable: torch.Tensor | None = None):
    """Each row's weighted sum over its non-NaN rewards; NaN for the ``unscorable`` rows (by
    default those with no reward at all)."""
    if unscorable is None:
        unscorable = torch.isnan(rewards).all(dim=1)
    total = torch.nansum(rewards * weights[None, :], dim=1)
    return total.masked_fill(unscorable, float("nan"))


def _zeros_if(flag: bool, like: torch.Tensor, std):
    return torch.zeros_like(like) if flag else std()


def grpo(rewards, weights, group_size, scale="group", aggregation="sum_then_normalize", metrics=True, names=None):
    """GRPO advantages of an (N, K) reward matrix (see the module docstring)."""
    scale = {True: "group", False: "none"}.get(scale, scale)
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"scale: {scale!r}")
    g = group_size
    unscorable = torch.isnan(rewards).all(dim=1)
    if aggregation == "sum_then_normalize":
        total = weighted_total(rewards, weights, unscorable)
        by_group = total.reshape(-1, g)
        centre = torch.nanmean(by_group, dim=1).repeat_interleave(g)
        if scale == "batch":
            spread = _zeros_if(total.numel() <= 1, total, lambda: nanstd(total).expand_as(total))
        else:  # "none" keeps the group std for its zero-std flags
            spread = _zeros_if(g <= 1, total, lambda: nanstd(by_group, dim=1).repeat_interleave(g))
        advantages = total - centre
        if scale != "none":
            advantages = advantages / (spread + EPS)
    elif aggregation == "normalize_then_sum":
        k = rewards.shape[1]
        columns = rewards.reshape(-1, g, k)
        centre_k = torch.nanmean(columns, dim=1, keepdim=True)
        spread_k = _zeros_if(g <= 1, centre_k, lambda: nanstd(columns, dim=1, keepdim=True))
        z = ((columns - centre_k) / (spread_k + EPS)).reshape(-1, k)
        total = weighted_total(z, weights, unscorable)
        spread = _zeros_if(total.numel() <= 1, total, lambda: nanstd(total).expand_as(total))
        advantages = (total - torch.nanmean(total)) / (spread + EPS)
    else:
        raise ValueError(f"aggregation: {aggregation!r}")
    zero_std = torch.isclose(spread, torch.zeros_like(spread))
    advantages = torch.nan_to_num(advantages, nan=0.0)
    logged = reward_metrics(rewards, weights, zero_std, names) if metrics else {}
    return Scored(advantages, zero_std, logged)


def rloo(rewards, weights, group_size, clip=None, beta=0.0, kl=None, normalize=False, metrics=True, names=None):
    """RLOO advantages (leave-one-out baseline) of an (N, K) reward matrix. ``kl``: the
    per-sequence KL, needed when ``beta != 0``. ``zero_std`` is per group."""
    g = group_size
    total = weighted_total(rewards, weights)
    if clip:
        total = total.clamp(min=clip[0], max=clip[1])
    if beta != 0.0:
        total = total - beta * kl
    by_group = total.reshape(-1, g)
    spread = _zeros_if(g <= 1, by_group[:, 0], lambda: nanstd(by_group, dim=1))
    if g > 1:
        present = (~torch.isnan(by_group)).sum(dim=1, keepdim=True)
        group_sum = torch.nansum(by_group, dim=1, keepdim=True)
        others_mean = (group_sum - by_group) / (present - 1)
        advantages = total - others_mean.reshape(-1)
    else:
        advantages = torch.zeros_like(total)
    if normalize:
        advantages = (advantages - torch.nanmean(advantages)) / (nanstd(advantages) + EPS)
    advantages = torch.nan_to_num(advantages, nan=0.0)
    zero_std = torch.isclose(spread, torch.zeros_like(spread))
    logged = reward_metrics(rewards, weights, zero_std, names) if metrics else {}
    return Scored(advantages, zero_std, logged)


def reward_metrics(rewards, weights, zero_std, names=None) -> dict:
    """What both trainers log per step: each reward function's NaN-mean and NaN-std, the weighted
    total's (unscorable rows left out), and the fraction of zero-std flags."""
    names = names or [f"reward_{j}" for j in range(rewards.shape[1])]
    out = {}
    for j, name in enumerate(names):
        out[f"rewards/{name}/mean"] = torch.nanmean(rewards[:, j]).item()
        out[f"rewards/{name}/std"] = nanstd(rewards[:, j]).item()
    total = weighted_total(rewards, weights)
    out["reward"] = torch.nanmean(total).item()
    out["reward_std"] = nanstd(total).item()
    out["frac_reward_zero_std"] = zero_std.float().mean().item()
    return out
