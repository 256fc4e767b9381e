"""TRL 1.16.0's computations, restated line for line where TRL has no public function.

GRPOTrainer and RLOOTrainer compute advantages and masks inline in
``_generate_and_score_completions``/``_generate_single_turn``. The functions here repeat those
lines (calling TRL's own public helpers, ``trl.trainer.utils.nanstd``, where TRL does), so that
benchmarks can time TRL's code and property tests can run thousands of cases cheaply.
``tests/test_trl_trainer_parity.py`` checks each of them against the real trainer methods once,
so they cannot drift from TRL.
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
    metrics = {}
    if log_metrics:
        for i in range(rewards_per_func.shape[1]):
            metrics[f"rewards/reward_{i}/mean"] = torch.nanmean(rewards_per_func[:, i]).item()
            metrics[f"rewards/reward_{i}/std"] = nanstd(rewards_per_func[:, i]).item()
        logged = (rewards_per_func * reward_weights.unsqueeze(0)).nansum(dim=1)
        logged[unscorable_mask] = torch.nan
        metrics["reward"] = torch.nanmean(logged).item()
        metrics["reward_std"] = nanstd(logged).item()
        metrics["frac_reward_zero_std"] = is_std_zero.float().mean().item()
    return advantages, is_std_zero, metrics
