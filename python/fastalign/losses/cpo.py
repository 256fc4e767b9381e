"""The CPO/SimPO/AlphaPO loss of TRL 1.16.0's experimental ``CPOTrainer``.

:func:`cpo_loss` is ``CPOTrainer.cpo_loss`` plus the ``cpo_alpha`` NLL term of
``get_batch_loss_metrics``: ``sigmoid``, ``hinge``, ``ipo``, ``simpo`` and ``alphapo`` (the config
sugar for SimPO with ``cpo_alpha = 0``), with AlphaPO's ``alpha`` reward shaping. Plain torch on
the inputs' device, in TRL's order of operations; there is no reference model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import _validate as v
from ._pairs import pair_metrics, sigmoid_mix

__all__ = ["CPO_LOSS_TYPES", "CPOLoss", "cpo_loss"]

CPO_LOSS_TYPES: tuple[str, ...] = ("sigmoid", "hinge", "ipo", "simpo", "alphapo")
"""Every ``CPOConfig.loss_type`` TRL 1.16.0 accepts (``alphapo`` is sugar for ``simpo``)."""


@dataclass(frozen=True)
class CPOLoss:
    """Result of :func:`cpo_loss`. Tensors are on the inputs' device."""

    loss: torch.Tensor
    """() ``losses.mean() + cpo_alpha * chosen_nll`` (before any MoE aux loss)."""
    losses: torch.Tensor
    """(B,) per-pair preference loss (what ``CPOTrainer.cpo_loss`` returns first)."""
    chosen_rewards: torch.Tensor
    """(B,) ``beta * chosen_logps``, or ``beta * (1 - p^-alpha) / alpha`` with AlphaPO; detached."""
    rejected_rewards: torch.Tensor
    chosen_logps: torch.Tensor
    """(B,) detached."""
    rejected_logps: torch.Tensor
    nll_loss: torch.Tensor
    """() the NLL term used (zero when ``cpo_alpha == 0``), detached."""

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """``rewards/{chosen,rejected,accuracies,margins}``, ``logps/{chosen,rejected}`` and
        ``nll_loss`` as TRL's ``get_batch_loss_metrics`` logs them (local means). The
        ``logits/*`` metrics need the full logits and are not computed here."""
        return pair_metrics(
            self.chosen_rewards,
            self.rejected_rewards,
            self.chosen_logps,
            self.rejected_logps,
            prefix,
            nll_loss=self.nll_loss,
        )


def cpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    *,
    loss_type: str = "sigmoid",
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    simpo_gamma: float = 0.5,
    alpha: float = 0.0,
    cpo_alpha: float = 1.0,
    chosen_nll: torch.Tensor | None = None,
    check_finite: bool | None = None,
) -> CPOLoss:
    """The CPO/SimPO/AlphaPO loss of TRL 1.16.0's experimental ``CPOTrainer``.

    Reproduces ``CPOTrainer.cpo_loss`` and the total ``losses.mean() + cpo_alpha * nll`` of
    ``get_batch_loss_metrics``. Defaults are ``CPOConfig``'s.

    Parameters
    ----------
    chosen_logps, rejected_logps : (B,), float32 or float64
        The policy's sequence log-probs over the completion tokens. CPO **averages** them per
        token for ``ipo``, ``simpo`` and ``alphapo`` and **sums** them for ``sigmoid`` and
        ``hinge`` (TRL's ``get_batch_logps(average_log_prob=loss_type in ["ipo", "simpo"])``);
        pass what TRL would. There is no reference model.
    loss_type : str
        One of :data:`CPO_LOSS_TYPES`. ``"alphapo"`` is ``CPOConfig``'s sugar: it runs
        ``"simpo"`` and forces ``cpo_alpha = 0`` (it does not set ``alpha``).
    beta : float, > 0
    label_smoothing : float in [0, 1]
        Read by ``sigmoid`` and ``simpo``; ``hinge`` and ``ipo`` ignore it (TRL warns).
    simpo_gamma : float
        SimPO's target reward margin (``simpo``/``alphapo`` only).
    alpha : float
        AlphaPO's reward shape: ``alpha != 0`` replaces the log-probs by
        ``(1 - exp(logps)^-alpha) / alpha`` for every loss type (computed exp-then-pow, as TRL;
        with summed log-probs ``exp`` can underflow and the reward become infinite).
    cpo_alpha : float
        Weight of the chosen NLL (behaviour-cloning) term; 0 disables it.
    chosen_nll : () tensor, optional
        **Required when** ``cpo_alpha != 0``: the mean cross-entropy over the chosen completion
        tokens (TRL's ``nn.CrossEntropyLoss()`` on the chosen rows; equal to
        ``-(lp * mask).sum() / mask.sum()`` over the chosen per-token log-probs). Ignored when
        ``cpo_alpha == 0``, where TRL does not compute it.
    check_finite : bool or None
        Refuse NaN/inf log-probs: as :func:`dpo_loss` (``None``: on CPU tensors only; ``True``:
        on every device, one synchronisation there).

    Returns
    -------
    CPOLoss
        ``loss``, per-pair ``losses``, detached rewards/log-probs/NLL, and ``metrics()``.

    Raises
    ------
    InvalidTypeError, InvalidArgumentError
        As :func:`dpo_loss`; also a missing ``chosen_nll`` with ``cpo_alpha != 0``.
    """
    chosen_logps = v.pair_vector(chosen_logps, "chosen_logps")
    rejected_logps = v.pair_vector(rejected_logps, "rejected_logps", chosen_logps)
    (name,) = v.loss_types(loss_type, CPO_LOSS_TYPES, several=False)
    beta = v.positive(beta, "beta")
    eps = v.label_smoothing(label_smoothing)
    gamma = v.real(simpo_gamma, "simpo_gamma")
    shape = v.real(alpha, "alpha")
    nll_weight = v.real(cpo_alpha, "cpo_alpha")
    check_finite = v.finite_check(check_finite, chosen_logps)
    if name == "alphapo":  # CPOConfig.__post_init__
        name, nll_weight = "simpo", 0.0
    to_check = [("chosen_logps", chosen_logps), ("rejected_logps", rejected_logps)]
    if nll_weight != 0.0:
        v.required(
            chosen_nll,
            "chosen_nll",
            f"is required when cpo_alpha != 0 (got cpo_alpha={nll_weight}); pass the chosen tokens' mean NLL "
            "or set cpo_alpha=0",
        )
        nll = v.tensor(chosen_nll, "chosen_nll", v.FLOAT, (0,), contiguous=False)
        v.logps_like(nll, "chosen_nll", chosen_logps, dtype=False, rows=False)
        to_check.append(("chosen_nll", nll))
    else:
        nll = torch.zeros((), device=chosen_logps.device)  # TRL's placeholder (a 0.0 of the default dtype)
    if check_finite:
        v.finite(to_check)

    if shape != 0.0:
        chosen_r = (1 - torch.exp(chosen_logps).pow(-shape)) / shape
        rejected_r = (1 - torch.exp(rejected_logps).pow(-shape)) / shape
    else:
        chosen_r, rejected_r = chosen_logps, rejected_logps
    logits = chosen_r - rejected_r

    if name == "simpo":
        logits = logits - gamma / beta
        losses = sigmoid_mix(beta, logits, eps)
    elif name == "sigmoid":
        losses = sigmoid_mix(beta, logits, eps)
    elif name == "hinge":
        losses = torch.relu(1 - beta * logits)
    else:  # "ipo"
        losses = (logits - 1 / (2 * beta)) ** 2

    return CPOLoss(
        loss=losses.mean() + nll_weight * nll,
        losses=losses,
        chosen_rewards=beta * chosen_r.detach(),
        rejected_rewards=beta * rejected_r.detach(),
        chosen_logps=chosen_logps.detach(),
        rejected_logps=rejected_logps.detach(),
        nll_loss=nll.detach(),
    )
