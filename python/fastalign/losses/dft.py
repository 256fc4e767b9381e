"""Dynamic Fine-Tuning: the SFT loss of TRL 1.16.0's ``SFTTrainer`` with ``loss_type="dft"``.

Plain torch on the inputs' device: the loss is a masked sum over tokens, from the per-token
log-probs of the label tokens, or from the full logits and labels.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import _validate as v
from ..errors import InvalidArgumentError

__all__ = ["dft_loss"]


def dft_loss(
    per_token_logps: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    *,
    logits: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    ignore_index: int = -100,
    num_items_in_batch: int | torch.Tensor | None = None,
    num_processes: int = 1,
    check_finite: bool | None = None,
) -> torch.Tensor:
    """Dynamic Fine-Tuning loss: TRL 1.16.0's ``SFTTrainer`` with ``loss_type="dft"``.

    ``sum_t -sg(p_t) * log p_t / N`` over the label tokens, where ``p_t = exp(log p_t)`` is
    detached, so the gradient with respect to ``log p_t`` is ``-p_t / N`` on label tokens (and 0
    elsewhere).

    Parameters
    ----------
    per_token_logps : (N, T) (or any shape), float32 or float64
        Log-probs of the label tokens at the shifted positions (the fused head's ``log_probs``:
        entry ``[n, t]`` scores ``labels[n, t + 1]``). Values off the mask are ignored.
    mask : same shape, bool or int
        Which positions are label tokens (TRL's ``label_mask = labels[:, 1:] != -100``).
    logits, labels : (N, T, V) float and (N, T) int64, instead of the two above
        The model's full logits and the (unshifted) labels with ``ignore_index`` on ignored
        positions. The log-probs are then ``log_softmax(logits[:, :-1].float())`` gathered at
        ``labels[:, 1:]`` (float32 for bf16/fp16/float32 logits, float64 for float64), as TRL's
        fused head computes them without building the logits. This path materialises an
        (N, T, V) float tensor; it is for callers that have the logits anyway.
    ignore_index : int
        The label of ignored positions (``logits`` path only).
    num_items_in_batch : int or () int tensor, optional
        The normaliser ``Trainer`` passes under gradient accumulation (label tokens of the whole
        accumulation step). Default: ``mask.sum()``. Clamped to >= 1, so an empty mask gives 0.
    num_processes : int, >= 1
        With ``num_items_in_batch`` and ``average_tokens_across_devices=True`` (the default),
        TRL multiplies the loss by ``accelerator.num_processes // tp_size``: pass that here.
        Ignored without ``num_items_in_batch``, as in TRL.
    check_finite : bool or None
        Refuse NaN/inf log-probs on the mask: as :func:`dpo_loss` (``None``: on CPU tensors
        only; ``True``: on every device, one synchronisation there).

    Returns
    -------
    () tensor in the log-probs' dtype (before any MoE aux loss).
    """
    if v.dft_inputs(per_token_logps, mask, logits, labels):
        lp, m = _label_logps(logits, labels, ignore_index)
    else:
        lp = v.tensor(per_token_logps, "per_token_logps", v.FLOAT, (1, 2, 3), contiguous=False)
        m = v.tensor(mask, "mask", v.MASK, (lp.dim(),), contiguous=False)
        v.aligned(m, "mask", lp.shape, lp.device, "per_token_logps")
    procs = v.integer(num_processes, "num_processes", minimum=1)
    check_finite = v.finite_check(check_finite, lp)
    m = m.bool()
    lp = torch.where(m, lp, torch.zeros((), dtype=lp.dtype, device=lp.device))
    if check_finite:
        v.finite([("per_token_logps", lp)])
    if num_items_in_batch is None:
        count: Any = m.sum()
    elif v.is_torch(num_items_in_batch):
        count = v.tensor(num_items_in_batch, "num_items_in_batch", v.INT, (0,), contiguous=False)
    else:
        count = v.integer(num_items_in_batch, "num_items_in_batch", minimum=0)
    per_token = -lp * lp.exp().detach()
    loss = per_token.sum() / torch.as_tensor(count).clamp(min=1)
    if num_items_in_batch is not None:
        loss = loss * procs
    return loss


def _label_logps(logits: Any, labels: Any, ignore_index: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Shifted per-token log-probs (N, T-1) and label mask from full logits and labels."""
    logits = v.logits(logits)
    lab = v.tensor(labels, "labels", v.INT, (2,), contiguous=False)
    v.aligned(lab, "labels", tuple(logits.shape[:2]), logits.device, "logits' first two dimensions")
    ignore = v.integer(ignore_index, "ignore_index")
    target = lab[:, 1:]
    m = target != ignore
    vocab = logits.shape[2]
    # a check of the data (one sync on an accelerator), where the ids are about to index the vocabulary
    if not bool((~m | ((target >= 0) & (target < vocab))).all()):
        raise InvalidArgumentError(f"holds token ids outside [0, {vocab}) (other than ignore_index)", "labels")
    z = logits[:, :-1]
    z = z if z.dtype == torch.float64 else z.float()
    index = torch.where(m, target, torch.zeros((), dtype=target.dtype, device=target.device)).long()
    lp = torch.log_softmax(z, dim=-1).gather(-1, index.unsqueeze(-1)).squeeze(-1)
    return lp, m
