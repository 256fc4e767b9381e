"""GRPO's clipped policy loss and GSPO's sequence log-ratio as TRL 1.16's
``GRPOTrainer._compute_loss`` defines them (``beta = 0``, no vLLM correction, one process, one
accumulation step), in plain torch.

* masked per-sequence mean: ``sum_t m_t x_t / max(1, sum_t m_t)``;
* importance weight: ``exp(logp - old)`` per token, or (``level="sequence"``, GSPO) ``exp`` of
  the per-sequence masked mean of ``logp - old``, shared by the sequence's tokens;
* per-token loss: ``-min(w * A, clip(w, 1 - eps_low, 1 + eps_high) * A)``;
* aggregation ``"grpo"``: the batch mean of the per-sequence masked means; ``"dapo"``: the masked
  sum over ``max(1, num_items_in_batch)``.

Every step is one torch op as the definition reads, so loss and gradient equal the trainer's
(``test_trl_trainer_parity.py::test_policy_loss_reference_is_grpo_trainer``).
"""

from __future__ import annotations

import torch


def sequence_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean of each row; a row with nothing masked in counts one token (gives 0)."""
    return (x * mask).sum(dim=-1) / mask.sum(dim=-1).clamp(min=1.0)


def sequence_log_ratio(logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """GSPO's per-sequence log importance weight: the masked mean of ``logps - old_logps``."""
    return sequence_mean(logps - old_logps, mask)


def clipped_policy_loss(
    logps, old_logps, advantages, mask, *, level="token", aggregation="dapo", num_items=None, eps_low=0.2, eps_high=0.28
):
    """The PPO-clip policy loss over a padded (B, T) batch (see the module docstring)."""
    if level == "token":
        log_weight = logps - old_logps
    elif level == "sequence":
        log_weight = sequence_log_ratio(logps, old_logps, mask)[:, None]
    else:
        raise ValueError(f"level: {level!r}")
    weight = torch.exp(log_weight)
    adv = advantages[:, None]
    per_token = -torch.minimum(weight * adv, weight.clamp(1 - eps_low, 1 + eps_high) * adv)
    if aggregation == "grpo":
        return sequence_mean(per_token, mask).mean()
    if aggregation == "dapo":
        return (per_token * mask).sum() / num_items.clamp(min=1.0)
    raise ValueError(f"aggregation: {aggregation!r}")
