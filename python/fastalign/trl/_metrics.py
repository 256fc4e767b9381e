"""The metrics ``GRPOTrainer._compute_loss`` logs, reduced across processes as TRL reduces them.

TRL logs each "global masked mean" as ``Σ_ranks sum / Σ_ranks count`` (a token count, or the
sequence count for one-value-per-sequence tensors), and the clip extremes as the ``nanmin`` /
``nanmax`` over every rank's per-sequence values. :func:`fastalign.losses.grpo_loss` returns this
process's means; here each mean is turned back into its local ``(sum, count)`` (float64, so the
round trip is exact to ~1e-16), every pair is summed across ranks in **one** all-reduce, and the
two extremes are combined in one all-gather. Which collectives run depends only on the
configuration, so every rank makes the same calls whatever its data (an empty batch included).
"""

from __future__ import annotations

from typing import Any

import torch

from ..losses import GrpoLoss

_PPO = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")


def _nan_extreme(x: torch.Tensor, largest: bool) -> float:
    """``nanmax``/``nanmin`` of a 1-d tensor; NaN when every value is NaN (as TRL's helpers)."""
    finite = x[~torch.isnan(x)]
    if finite.numel() == 0:
        return float("nan")
    return float(finite.max() if largest else finite.min())


def loss_metrics(
    accelerator: Any,
    out: GrpoLoss,
    entropies: torch.Tensor,
    mask: torch.Tensor,
    *,
    rows: int,
    level: str,
    packed: bool,
) -> dict[str, float]:
    """TRL's loss metrics under TRL's keys, global over ``accelerator``'s processes.

    ``entropies`` and ``mask`` have the log-probs' layout (``(B, T)``, or ``(N,)`` when
    ``packed``); ``rows`` is ``B``; ``level`` is ``importance_sampling_level``; advantages are one per sequence (as
    in the trainer). Counts follow TRL: a padded width of 1 makes every tensor one value per
    sequence (TRL's ``x.shape[1] == 1`` case), and sequence-level ratios make the clip
    indicators one per sequence.
    """
    device = accelerator.device
    f64 = torch.float64
    single = not packed and mask.dim() == 2 and mask.shape[1] == 1
    rows = float(rows)
    m = mask.to(f64)
    tokens = rows if single else m.sum()
    ent = entropies.detach().to(f64)
    ent_sum = ent.sum() if single else (ent * m).sum()
    low, high, region, low_min, high_max, cispo, kl, phi = out.raw_metrics.to(device=device, dtype=f64)
    per_sequence = single or level == "sequence"
    clip_count = rows if per_sequence else tokens

    def pair(mean: torch.Tensor, count: Any) -> tuple[torch.Tensor, torch.Tensor]:
        count = torch.as_tensor(count, dtype=f64, device=device)
        return mean * count.clamp(min=1.0), count  # kernels divide by count.clamp(min=1)

    names: list[str] = []
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    if out.beta != 0.0:
        names.append("kl")
        pairs.append(pair(kl, tokens))
    names.append("entropy")
    pairs.append((ent_sum.to(device), torch.as_tensor(tokens, dtype=f64, device=device)))
    if out.loss_type in _PPO:
        names += ["clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"]
        pairs += [pair(low, clip_count), pair(high, clip_count), pair(region, clip_count)]
    elif out.loss_type == "cispo":
        names.append("cispo_clip_ratio")
        pairs.append(pair(cispo, clip_count))
    elif out.loss_type == "vespo":
        names.append("vespo/phi_seq_mean")
        pairs.append(pair(phi, rows))
    flat = torch.stack([x for p in pairs for x in p])
    if accelerator.num_processes > 1:
        flat = accelerator.reduce(flat, reduction="sum")
    totals = flat.view(-1, 2).tolist()
    result = {name: s / max(c, 1.0) for name, (s, c) in zip(names, totals)}
    if out.loss_type in _PPO:
        extremes = torch.stack([low_min, high_max]).reshape(1, 2)
        if accelerator.num_processes > 1:
            extremes = accelerator.gather(extremes)
        result["clip_ratio/low_min"] = _nan_extreme(extremes[:, 0], largest=False)
        result["clip_ratio/high_max"] = _nan_extreme(extremes[:, 1], largest=True)
    return result
