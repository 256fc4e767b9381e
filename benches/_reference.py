"""TRL 1.16.0 code that the benchmarks time as the reference, where TRL has no public function.

* The GRPO advantage block lives in ``tests/trl_reference.py`` (shared with the test-suite and
  checked there against the real trainer); the benches import it from there.
* The soft overlong reward is TRL's public ``trl.rewards.get_soft_overlong_punishment``, called
  directly by ``bench_rewards.py``.
* The completion mask is built inline in ``GRPOTrainer._generate_single_turn`` (tensor ops), and
  the truncation flags / lengths from Python lists in ``_generate_and_score_completions``; both
  are restated here line for line.
"""

from __future__ import annotations

import torch


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
