"""What DPO and CPO share: the per-step reward metrics and the label-smoothed sigmoid loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pair_metrics(
    c: torch.Tensor,
    r: torch.Tensor,
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    prefix: str,
    nll_loss: torch.Tensor | None = None,
) -> dict[str, float]:
    """The reward and log-prob means DPO and CPO log (and CPO's ``nll_loss``), one sync."""
    values = [
        c.mean(),
        r.mean(),
        (c > r).float().mean().to(c.dtype),  # TRL: .float(), whatever the dtype
        (c - r).mean(),
        chosen_logps.mean(),
        rejected_logps.mean(),
    ]
    keys = [
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
    ]
    if nll_loss is not None:
        values.append(nll_loss.to(c.dtype))
        keys.append("nll_loss")
    return {prefix + k: x for k, x in zip(keys, torch.stack(values).tolist())}


def sigmoid_mix(beta: float, x: torch.Tensor, eps: float) -> torch.Tensor:
    """``-logsigmoid(beta x) (1 - eps) - logsigmoid(-beta x) eps`` (AOT, CPO sigmoid/simpo).

    Written as TRL writes it, one product per term, so that autograd accumulates the same
    partial gradients in the same order (a shared product would differ in the last bits)."""
    return -F.logsigmoid(beta * x) * (1 - eps) - F.logsigmoid(-beta * x) * eps
