"""TRL 1.16.0's computations, restated line for line where TRL has no public function.

GRPOTrainer and RLOOTrainer compute advantages and masks inline in
``_generate_and_score_completions``/``_generate_single_turn``. The functions here repeat those
lines (calling TRL's own public helpers, ``trl.trainer.utils.nanstd``, where TRL does), so that
``fastalign bench``, the demo and benches/ can time TRL's code, and property tests can run
thousands of cases cheaply. ``tests/test_trl_trainer_parity.py`` checks each of them against the
real trainer methods, so they cannot drift from TRL. They are references, not fastalign's API.
Requires ``trl``.
"""

from __future__ import annotations

import torch
from trl.trainer.utils import nanstd


def grpo_advantages(rewards_per_func, reward_weights, num_generations, scale_rewards="group",
                    multi_objective_aggregation="sum_then_normalize", log_metrics=True):
    """GRPOTrainer._generate_and_score_completions, from the reward matrix to the advantages
    (and, with ``log_metrics``, the metrics it logs). Returns (advantages, is_std_zero, metrics)."""
    scale_rewards = {True: "group", False: "none"}.get(scale_rewards, scale_rewards)
    unscorable_mask = torch.isnan(rewards_per_func).all(dim=1)
    if multi_objective_aggregation == "sum_then_normalize":
        rewards = (rewards_per_func * reward_weights.unsqueeze(0)).nansum(dim=1)
        rewards[unscorable_mask] = torch.nan
        mean_grouped_rewards = torch.nanmean(rewards.view(-1, num_generations), dim=1)
        mean_grouped_rewards = mean_grouped_rewards.repeat_interleave(num_generations, dim=0)
        if scale_rewards in ["group", "none"]:
            if num_generations > 1:
                std_rewards = nanstd(rewards.view(-1, num_generations), dim=1)
                std_rewards = std_rewards.repeat_interleave(num_generations, dim=0)
            else:
                std_rewards = torch.zeros_like(rewards)
        elif scale_rewards == "batch":
            if rewards.numel() > 1:
                std_rewards = nanstd(rewards).expand_as(rewards)
            else:
                std_rewards = torch.zeros_like(rewards)
        else:
            raise ValueError(scale_rewards)
        advantages = rewards - mean_grouped_rewards
        if scale_rewards != "none":
            advantages = advantages / (std_rewards + 1e-4)
        is_std_zero = torch.isclose(std_rewards, torch.zeros_like(std_rewards))
    elif multi_objective_aggregation == "normalize_then_sum":
        k = rewards_per_func.shape[1]
        grouped = rewards_per_func.view(-1, num_generations, k)
        mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
        std_k = nanstd(grouped, dim=1, keepdim=True) if num_generations > 1 else torch.zeros_like(mean_k)
        reward_k = (grouped - mean_k) / (std_k + 1e-4)
        reward_k = reward_k.view(-1, k)
        rewards = (reward_k * reward_weights.unsqueeze(0)).nansum(dim=1)
        rewards[unscorable_mask] = torch.nan
        std_rewards = nanstd(rewards).expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
        advantages = (rewards - torch.nanmean(rewards)) / (std_rewards + 1e-4)
        is_std_zero = torch.isclose(std_rewards, torch.zeros_like(std_rewards))
    else:
        raise ValueError(multi_objective_aggregation)
    advantages = torch.nan_to_num(advantages, nan=0.0)
    metrics = _logged_metrics(rewards_per_func, reward_weights, unscorable_mask, is_std_zero) if log_metrics else {}
    return advantages, is_std_zero, metrics


def _logged_metrics(rewards_per_func, reward_weights, unscorable_mask, is_std_zero):
    """The reward metrics both trainers log after their advantage step (the same lines in each)."""
    metrics = {}
    for i in range(rewards_per_func.shape[1]):
        metrics[f"rewards/reward_{i}/mean"] = torch.nanmean(rewards_per_func[:, i]).item()
        metrics[f"rewards/reward_{i}/std"] = nanstd(rewards_per_func[:, i]).item()
    logged = (rewards_per_func * reward_weights.unsqueeze(0)).nansum(dim=1)
    logged[unscorable_mask] = torch.nan
    metrics["reward"] = torch.nanmean(logged).item()
    metrics["reward_std"] = nanstd(logged).item()
    metrics["frac_reward_zero_std"] = is_std_zero.float().mean().item()
    return metrics


def rloo_advantages(rewards_per_func, reward_weights, num_generations, reward_clip_range=None, beta=0.0, kl=None,
                    normalize_advantages=False, log_metrics=True):
    """RLOOTrainer._generate_and_score_completions (trl/trainer/rloo_trainer.py), from the reward
    matrix to the advantages (and, with ``log_metrics``, the reward metrics it logs).

    ``kl`` (needed when ``beta != 0``) is the gathered per-sequence KL the trainer computes from
    its two forward passes, ``((old_per_token_logps - ref_per_token_logps) * completion_mask).sum(-1)``.
    Returns (advantages, is_std_zero, metrics); ``is_std_zero`` is per *group*, as in TRL."""
    unscorable_mask = torch.isnan(rewards_per_func).all(dim=1)
    rewards = (rewards_per_func * reward_weights.unsqueeze(0)).nansum(dim=1)
    rewards[unscorable_mask] = torch.nan
    if reward_clip_range:
        rewards = rewards.clamp(min=reward_clip_range[0], max=reward_clip_range[1])
    if beta != 0.0:
        rewards = rewards - beta * kl
    grouped_rewards = rewards.view(-1, num_generations)
    mean_grouped_rewards = torch.nanmean(grouped_rewards, dim=1)
    if num_generations > 1:
        std_rewards = nanstd(grouped_rewards, dim=1)
    else:
        std_rewards = torch.zeros_like(mean_grouped_rewards)
    scorable_counts = (~torch.isnan(grouped_rewards)).sum(dim=1, keepdim=True)
    grouped_sum = torch.nansum(grouped_rewards, dim=1, keepdim=True)
    if num_generations > 1:
        baselines = (grouped_sum - grouped_rewards) / (scorable_counts - 1)
        baselines = baselines.view(-1)
        advantages = rewards - baselines
    else:
        advantages = torch.zeros_like(rewards)
    if normalize_advantages:
        advantages = (advantages - torch.nanmean(advantages)) / (nanstd(advantages) + 1e-4)
    advantages = torch.nan_to_num(advantages, nan=0.0)
    is_std_zero = torch.isclose(std_rewards, torch.zeros_like(std_rewards))
    metrics = _logged_metrics(rewards_per_func, reward_weights, unscorable_mask, is_std_zero) if log_metrics else {}
    return advantages, is_std_zero, metrics


def trl_completion_mask(completion_ids: torch.Tensor, eos_token_ids: list[int]) -> torch.Tensor:
    """``GRPOTrainer._generate_single_turn`` (trl/trainer/grpo_trainer.py, "Mask everything after
    the first EOS token"): isin, argmax of the first EOS, arange compare. Returns the int32 mask."""
    device = completion_ids.device
    is_eos = torch.isin(completion_ids, torch.tensor(eos_token_ids, device=device))
    eos_idx = torch.full((is_eos.size(0),), is_eos.size(1), dtype=torch.long, device=device)
    eos_idx[is_eos.any(dim=1)] = is_eos.int().argmax(dim=1)[is_eos.any(dim=1)]
    sequence_indices = torch.arange(is_eos.size(1), device=device).expand(is_eos.size(0), -1)
    completion_mask = (sequence_indices <= eos_idx.unsqueeze(1)).int()
    return completion_mask


def trl_truncation_from_lists(
    completion_ids: torch.Tensor, completion_mask: torch.Tensor, eos_and_pad: list[int]
) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
    """The list-based part: ``_generate_single_turn`` turns each masked row into a Python list
    (``c[m].tolist()``), and ``_generate_and_score_completions`` derives the completion lengths
    (``len(ids)``) and ``is_truncated`` (``ids[-1] not in eos_and_pad``) from those lists."""
    device = completion_ids.device
    completion_ids_list = [
        c[m].tolist() for c, m in zip(completion_ids.cpu(), completion_mask.bool().cpu(), strict=True)
    ]
    completion_lengths = torch.tensor([len(ids) for ids in completion_ids_list], device=device)
    is_truncated = torch.tensor([ids[-1] not in eos_and_pad for ids in completion_ids_list], device=device)
    return completion_ids_list, completion_lengths, is_truncated


def trl_completion_mask_and_truncation(
    completion_ids: torch.Tensor, eos_token_ids: list[int], pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tensor ops + list part: what TRL does to get the mask, the lengths and ``is_truncated``
    (the outputs ``fastalign.overlong.completion_mask`` returns)."""
    mask = trl_completion_mask(completion_ids, eos_token_ids)
    _, lengths, is_truncated = trl_truncation_from_lists(completion_ids, mask, [*eos_token_ids, pad_token_id])
    return mask, lengths, is_truncated


# --- GRPOTrainer._compute_loss lines (the sequence ratio, and the loss for two configurations) ---

def trl_sequence_log_ratio(lp, old, mask):
    """GSPO's sequence log-ratio as ``_compute_loss`` forms it (importance_sampling_level="sequence")."""
    log_ratio = lp - old
    return (log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


def trl_masked_mean(x, mask):
    """The masked per-sequence mean ``_compute_loss`` uses (``clamp(min=1)`` on the count)."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


def trl_loss(lp, old, adv, mask, level, loss_type, num_items, epsilon=0.2, epsilon_high=0.28):
    """``_compute_loss``'s loss lines (beta=0, no vLLM, GA=1) for the PPO-clip family at
    ``level`` "token" or "sequence", aggregated as ``loss_type`` "grpo" or "dapo"."""
    advantages = adv.unsqueeze(1)
    log_ratio = lp - old
    if level == "token":
        log_importance_weights = log_ratio
    else:
        log_importance_weights = (log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        log_importance_weights = log_importance_weights.unsqueeze(-1)
    coef_1 = torch.exp(log_importance_weights)
    coef_2 = torch.clamp(coef_1, 1 - epsilon, 1 + epsilon_high)
    per_token_loss = -torch.min(coef_1 * advantages, coef_2 * advantages)
    if loss_type == "grpo":
        return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    return (per_token_loss * mask).sum() / num_items.clamp(min=1.0)

