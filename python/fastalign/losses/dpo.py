"""The DPO loss of TRL 1.16.0's ``DPOTrainer``, from sequence log-probs onwards, and WPO weights.

* :func:`dpo_loss` — ``DPOTrainer._compute_loss`` after the forward passes: every DPO
  ``loss_type`` (15 in 1.16), several loss types with ``loss_weights``, the f-divergence scores,
  WPO weighting (``use_weighting``) and the reward metrics TRL logs.
* :func:`wpo_weights` — the per-sequence WPO weights ``DPOTrainer`` computes for ``use_weighting``.

Each loss type is one small function of the shared quantities (:class:`_Pair`), in the table
:data:`_LOSSES`; the checks, the log-ratios and scores, WPO weighting and the weighted sum are
written once around it. Plain torch on the inputs' device, in TRL's order of operations, so that
float32 results and gradients agree with TRL to the last bit or within a few ulps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .. import _validate as v
from ._pairs import pair_metrics, sigmoid_mix

__all__ = ["DPO_LOSS_TYPES", "DPOLoss", "F_DIVERGENCE_TYPES", "dpo_loss", "wpo_weights"]


@dataclass(frozen=True)
class DPOLoss:
    """Result of :func:`dpo_loss`.

    ``loss`` is the scalar TRL's ``_compute_loss`` returns (before the MoE aux loss, which is the
    caller's). Tensors are on the inputs' device; rewards and log-probs kept for the metrics are
    detached.
    """

    loss: torch.Tensor
    """() the training loss: ``sum_k loss_weights[k] * losses[k].mean()``."""
    losses: tuple[torch.Tensor, ...]
    """(B,) per-pair loss of each entry of ``loss_types`` (WPO-weighted when weights were given)."""
    loss_types: tuple[str, ...]
    chosen_rewards: torch.Tensor
    """(B,) ``beta * (chosen_logps - ref_chosen_logps)``, detached (log-ratios, not f-div scores)."""
    rejected_rewards: torch.Tensor
    """(B,) ``beta * (rejected_logps - ref_rejected_logps)``, detached."""
    chosen_logps: torch.Tensor
    """(B,) the policy's chosen log-probs, detached."""
    rejected_logps: torch.Tensor
    """(B,) the policy's rejected log-probs, detached."""

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """The reward metrics TRL logs per step, as Python floats, under TRL's keys.

        ``rewards/chosen``, ``rewards/rejected``, ``rewards/accuracies`` (strict ``>``),
        ``rewards/margins``, ``logps/chosen``, ``logps/rejected``. These are means over this
        process's pairs (TRL gathers across processes first). ``prefix="eval_"`` gives the eval
        keys. The model-output metrics (``entropy``, ``logits/*``, ``mean_token_accuracy``,
        ``num_tokens``) are not computed here.
        """
        return pair_metrics(self.chosen_rewards, self.rejected_rewards, self.chosen_logps, self.rejected_logps, prefix)


@dataclass(frozen=True)
class _Pair:
    """What the loss types read: the options and the per-pair (B,) quantities."""

    beta: float
    label_smoothing: float
    discopop_tau: float
    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor
    ref_chosen_logps: torch.Tensor
    ref_rejected_logps: torch.Tensor
    chosen_logratios: torch.Tensor
    rejected_logratios: torch.Tensor
    chosen_scores: torch.Tensor
    """f-divergence scores of the log-ratios (the log-ratios themselves for reverse KL)."""
    rejected_scores: torch.Tensor
    delta_score: torch.Tensor
    """``chosen_scores - rejected_scores``."""
    lengths: tuple[torch.Tensor, torch.Tensor] | None
    """Chosen and rejected completion lengths (clamped to >= 1), for ipo and sigmoid_norm."""
    sft: tuple[torch.Tensor, torch.Tensor] | None
    """The chosen rows' per-token log-probs and bool mask, for sft."""


def _scores(logratios: torch.Tensor, f_divergence_type: str, f_alpha: float) -> torch.Tensor:
    """The f-divergence score f'(pi/pi_ref) of each log-ratio, in TRL's order of operations."""
    if f_divergence_type == "reverse_kl":
        return logratios
    if f_divergence_type == "forward_kl":
        return 1 - torch.exp(-logratios)
    if f_divergence_type == "js_divergence":
        return math.log(2) + F.logsigmoid(logratios)
    # alpha_divergence
    if abs(f_alpha - 1.0) < 1e-6:
        return logratios
    coef = 1.0 / (f_alpha - 1.0)
    t = (f_alpha - 1.0) * logratios
    if t.dtype == torch.float64:
        # TRL has no clamp bound for float64 (it raises KeyError); stay in float64 with its fp32 bound
        return (torch.exp(torch.clamp(t, max=80.0)) - 1.0) * coef
    clamp_max = 11.0 if t.dtype == torch.float16 else 80.0
    return (torch.exp(torch.clamp(t.float(), max=clamp_max)) - 1.0).to(t.dtype) * coef


# One function per DPOConfig.loss_type: the (B,) per-pair loss, as TRL writes it.


def _sigmoid(p: _Pair) -> torch.Tensor:
    return -F.logsigmoid(p.beta * p.delta_score)


def _hinge(p: _Pair) -> torch.Tensor:
    return torch.relu(1 - p.beta * p.delta_score)


def _length_normalised_delta(p: _Pair) -> torch.Tensor:
    assert p.lengths is not None  # required by ipo and sigmoid_norm (dpo_loss checks)
    return p.chosen_scores / p.lengths[0] - p.rejected_scores / p.lengths[1]


def _ipo(p: _Pair) -> torch.Tensor:
    return (_length_normalised_delta(p) - 1 / (2 * p.beta)) ** 2


def _exo_pair(p: _Pair) -> torch.Tensor:
    # one product per term, as TRL: autograd then sums the same partial gradients in the same order
    epsilon = torch.tensor(p.label_smoothing, device=p.delta_score.device)  # default dtype, as TRL
    qw, log_qw = torch.sigmoid(p.beta * p.delta_score), F.logsigmoid(p.beta * p.delta_score)
    ql, log_ql = torch.sigmoid(-p.beta * p.delta_score), F.logsigmoid(-p.beta * p.delta_score)
    return qw * (log_qw - torch.log1p(-epsilon)) + ql * (log_ql - torch.log(epsilon))


def _nca_pair(p: _Pair) -> torch.Tensor:
    rc, rr = p.beta * p.chosen_logratios, p.beta * p.rejected_logratios
    return -F.logsigmoid(rc) - 0.5 * F.logsigmoid(-rc) - 0.5 * F.logsigmoid(-rr)


def _robust(p: _Pair) -> torch.Tensor:
    eps = p.label_smoothing
    clean = -(1 - eps) * F.logsigmoid(p.beta * p.delta_score)
    flipped = -eps * F.logsigmoid(-p.beta * p.delta_score)
    return (clean - flipped) / (1 - 2 * eps)


def _bco_pair(p: _Pair) -> torch.Tensor:
    return -F.logsigmoid(p.beta * p.chosen_logratios) - F.logsigmoid(-(p.beta * p.rejected_logratios))


def _sppo_hard(p: _Pair) -> torch.Tensor:
    return (p.chosen_logratios - 0.5 / p.beta) ** 2 + (p.rejected_logratios + 0.5 / p.beta) ** 2


def _aot(p: _Pair) -> torch.Tensor:
    logratios, _ = torch.sort(p.chosen_logps - p.rejected_logps, dim=0)
    ref_logratios, _ = torch.sort(p.ref_chosen_logps - p.ref_rejected_logps, dim=0)
    return sigmoid_mix(p.beta, logratios - ref_logratios, p.label_smoothing)


def _aot_unpaired(p: _Pair) -> torch.Tensor:
    c_sorted, _ = torch.sort(p.chosen_logratios, dim=0)
    r_sorted, _ = torch.sort(p.rejected_logratios, dim=0)
    return sigmoid_mix(p.beta, c_sorted - r_sorted, p.label_smoothing)


def _apo_zero(p: _Pair) -> torch.Tensor:
    return (1 - torch.sigmoid(p.beta * p.chosen_logratios)) + torch.sigmoid(p.beta * p.rejected_logratios)


def _apo_down(p: _Pair) -> torch.Tensor:
    return torch.sigmoid(p.beta * p.chosen_logratios) + (
        1 - torch.sigmoid(p.beta * (p.chosen_logratios - p.rejected_logratios))
    )


def _discopop(p: _Pair) -> torch.Tensor:
    logits = p.delta_score * p.beta
    modulation = torch.sigmoid(logits / p.discopop_tau)
    return -F.logsigmoid(logits) * (1 - modulation) + torch.exp(-logits) * modulation


def _sft(p: _Pair) -> torch.Tensor:
    assert p.sft is not None  # required by sft (dpo_loss checks)
    tok, msk = p.sft
    return (-tok[msk].mean()).expand(tok.shape[0])


def _sigmoid_norm(p: _Pair) -> torch.Tensor:
    return -F.logsigmoid(p.beta * _length_normalised_delta(p))


_LOSSES: dict[str, Callable[[_Pair], torch.Tensor]] = {
    "sigmoid": _sigmoid,
    "hinge": _hinge,
    "ipo": _ipo,
    "exo_pair": _exo_pair,
    "nca_pair": _nca_pair,
    "robust": _robust,
    "bco_pair": _bco_pair,
    "sppo_hard": _sppo_hard,
    "aot": _aot,
    "aot_unpaired": _aot_unpaired,
    "apo_zero": _apo_zero,
    "apo_down": _apo_down,
    "discopop": _discopop,
    "sft": _sft,
    "sigmoid_norm": _sigmoid_norm,
}

DPO_LOSS_TYPES: tuple[str, ...] = tuple(_LOSSES)
"""Every ``DPOConfig.loss_type`` TRL 1.16.0 accepts, in the order of its error message."""

F_DIVERGENCE_TYPES: tuple[str, ...] = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")

# loss types that have an f-divergence generalisation (TRL refuses the others at __init__)
_F_DIVERGENCE_LOSS_TYPES = frozenset(
    {"sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop", "sft"}
)


def dpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    loss_type: str | Sequence[str] = "sigmoid",
    loss_weights: Sequence[float] | None = None,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    discopop_tau: float = 0.05,
    f_divergence_type: str = "reverse_kl",
    f_alpha_divergence_coef: float = 0.5,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
    chosen_token_logps: torch.Tensor | None = None,
    chosen_token_mask: torch.Tensor | None = None,
    chosen_weights: torch.Tensor | None = None,
    rejected_weights: torch.Tensor | None = None,
    check_finite: bool | None = None,
) -> DPOLoss:
    """The DPO loss of TRL 1.16.0's ``DPOTrainer`` for every ``loss_type``, from sequence log-probs.

    Reproduces ``DPOTrainer._compute_loss`` after the forward passes: log-ratios, f-divergence
    scores, each loss type's per-pair loss, WPO weighting, ``sum_k w_k * mean(loss_k)``, and the
    rewards behind TRL's ``rewards/*`` and ``logps/*`` metrics.

    Parameters
    ----------
    chosen_logps, rejected_logps : (B,), float32 or float64
        The policy's sequence log-probs: the sum of the completion tokens' log-probs (TRL's
        ``per_token_logps.sum(1)``), or LD-DPO's ``shared + ld_alpha * tail`` sum when the caller
        uses ``ld_alpha`` (that weighting is upstream of this function). Gradients flow to these.
    ref_chosen_logps, ref_rejected_logps : (B,), same dtype and device
        The reference model's sequence log-probs (computed or precomputed). TRL computes them
        under ``no_grad``; this function does not detach them, so pass values without a graph.
    loss_type : str or sequence of str
        One or more of :data:`DPO_LOSS_TYPES`. Several are summed, weighted by ``loss_weights``.
    loss_weights : sequence of float, optional
        One finite weight per loss type (default: all 1.0).
    beta : float, > 0
        TRL's ``beta`` (the KL coefficient; IPO's tau).
    label_smoothing : float
        In [0, 1]. Read by ``robust`` (must be < 0.5), ``exo_pair`` (must be in (0, 1)), ``aot``
        and ``aot_unpaired``; ignored by the other loss types, as in TRL.
    discopop_tau : float, > 0
        DiscoPOP's temperature.
    f_divergence_type, f_alpha_divergence_coef :
        One of :data:`F_DIVERGENCE_TYPES`. Only ``sigmoid``, ``sigmoid_norm``, ``hinge``, ``ipo``,
        ``exo_pair``, ``robust``, ``discopop`` and ``sft`` accept a non-default divergence.
    chosen_lengths, rejected_lengths : (B,), int32 or int64
        Completion token counts, **required** by ``ipo`` and ``sigmoid_norm``. TRL uses the
        *unshifted* completion mask: ``completion_mask.chunk(2)[i].sum(1)``. Clamped to >= 1.
    chosen_token_logps, chosen_token_mask : (B, T)
        **Required** by ``sft``: the chosen rows' per-token log-probs (float, the logps' dtype)
        and their shifted completion mask (bool or int). The ``sft`` term is
        ``-mean(chosen_token_logps[chosen_token_mask])`` (NaN if the mask is empty, as in TRL).
    chosen_weights, rejected_weights : (B,), optional
        WPO weights (``use_weighting=True``), e.g. from :func:`wpo_weights`. Each loss type's
        per-pair loss is multiplied by ``chosen_weights * rejected_weights`` (detached). Not
        supported with ``aot``/``aot_unpaired`` (TRL refuses) or ``sft`` (TRL fails in place).
    check_finite : bool or None
        Refuse NaN or infinite log-probs. ``None`` (default): on CPU tensors, outside
        ``torch.compile``; on an accelerator the check costs one device synchronisation, so it
        runs only with ``True``. ``False`` never checks (NaN flows through, as in TRL).

    Returns
    -------
    DPOLoss
        ``loss`` (scalar), per-type ``losses``, detached rewards and log-probs, and ``metrics()``.

    Raises
    ------
    InvalidTypeError
        A log-prob argument that is not a float32/float64 torch tensor, or a dtype or device that
        differs from ``chosen_logps``.
    InvalidArgumentError
        Mismatched shapes, an empty batch, an unknown loss type (the message lists the valid
        ones), a missing input a loss type needs, ``beta <= 0``, an out-of-range
        ``label_smoothing``, or NaN/inf log-probs.

    Example
    -------
    >>> import torch
    >>> from fastalign.losses import dpo_loss
    >>> c, r = torch.tensor([-5.0, -7.0], requires_grad=True), torch.tensor([-6.0, -6.5])
    >>> out = dpo_loss(c, r, torch.tensor([-5.5, -7.0]), torch.tensor([-6.0, -6.0]),
    ...                loss_type=["sigmoid", "bco_pair"], loss_weights=[0.8, 0.2], beta=0.1)
    >>> out.loss.backward()
    >>> sorted(out.metrics())[:2]
    ['logps/chosen', 'logps/rejected']
    """
    chosen_logps = v.pair_vector(chosen_logps, "chosen_logps")
    rejected_logps = v.pair_vector(rejected_logps, "rejected_logps", chosen_logps)
    ref_chosen_logps = v.pair_vector(ref_chosen_logps, "ref_chosen_logps", chosen_logps)
    ref_rejected_logps = v.pair_vector(ref_rejected_logps, "ref_rejected_logps", chosen_logps)
    types = v.loss_types(loss_type, DPO_LOSS_TYPES)
    weights = v.loss_weights(loss_weights, len(types))
    beta = v.positive(beta, "beta")
    eps = v.label_smoothing(label_smoothing, types)
    tau = v.positive(discopop_tau, "discopop_tau")
    fdiv = v.choice(f_divergence_type, "f_divergence_type", F_DIVERGENCE_TYPES)
    f_alpha = v.real(f_alpha_divergence_coef, "f_alpha_divergence_coef")
    v.f_divergence(fdiv, types, _F_DIVERGENCE_LOSS_TYPES)
    check_finite = v.finite_check(check_finite, chosen_logps)

    to_check = [
        ("chosen_logps", chosen_logps),
        ("rejected_logps", rejected_logps),
        ("ref_chosen_logps", ref_chosen_logps),
        ("ref_rejected_logps", ref_rejected_logps),
    ]
    lengths = None
    if {"ipo", "sigmoid_norm"} & set(types):
        why = "is required by the 'ipo' and 'sigmoid_norm' loss types"
        v.required(chosen_lengths, "chosen_lengths", why)
        v.required(rejected_lengths, "rejected_lengths", why)
        counts = []
        for name, t in (("chosen_lengths", chosen_lengths), ("rejected_lengths", rejected_lengths)):
            t = v.tensor(t, name, v.INT, (1,), contiguous=False)
            v.logps_like(t, name, chosen_logps, dtype=False)
            counts.append(t.clamp(min=1.0))  # TRL: mask.sum(1).clamp(min=1.0), a float tensor
        lengths = (counts[0], counts[1])
    sft = None
    if "sft" in types:
        v.required(chosen_token_logps, "chosen_token_logps", "is required by the 'sft' loss type")
        v.required(chosen_token_mask, "chosen_token_mask", "is required by the 'sft' loss type")
        tok = v.tensor(chosen_token_logps, "chosen_token_logps", v.FLOAT, (2,), contiguous=False)
        v.logps_like(tok, "chosen_token_logps", chosen_logps)
        msk = v.tensor(chosen_token_mask, "chosen_token_mask", v.MASK, (2,), contiguous=False)
        v.aligned(msk, "chosen_token_mask", tok.shape, tok.device, "chosen_token_logps")
        sft = (tok, msk.bool())
        to_check.append(("chosen_token_logps", tok))
    wpo = None
    if v.wpo_pair(chosen_weights, rejected_weights, types):
        cw = v.pair_vector(chosen_weights, "chosen_weights", chosen_logps)
        rw = v.pair_vector(rejected_weights, "rejected_weights", chosen_logps)
        to_check += [("chosen_weights", cw), ("rejected_weights", rw)]
        wpo = cw.detach() * rw.detach()
    if check_finite:
        v.finite(to_check)

    chosen_logratios = chosen_logps - ref_chosen_logps
    rejected_logratios = rejected_logps - ref_rejected_logps
    chosen_scores = _scores(chosen_logratios, fdiv, f_alpha)
    rejected_scores = _scores(rejected_logratios, fdiv, f_alpha)
    pair = _Pair(
        beta=beta,
        label_smoothing=eps,
        discopop_tau=tau,
        chosen_logps=chosen_logps,
        rejected_logps=rejected_logps,
        ref_chosen_logps=ref_chosen_logps,
        ref_rejected_logps=ref_rejected_logps,
        chosen_logratios=chosen_logratios,
        rejected_logratios=rejected_logratios,
        chosen_scores=chosen_scores,
        rejected_scores=rejected_scores,
        delta_score=chosen_scores - rejected_scores,
        lengths=lengths,
        sft=sft,
    )

    loss: Any = 0.0
    per_type = []
    for name, weight in zip(types, weights):
        per = _LOSSES[name](pair)
        if wpo is not None:
            per = per * wpo
        per_type.append(per)
        loss = loss + per.mean() * weight

    return DPOLoss(
        loss=loss,
        losses=tuple(per_type),
        loss_types=tuple(types),
        chosen_rewards=beta * chosen_logratios.detach(),
        rejected_rewards=beta * rejected_logratios.detach(),
        chosen_logps=chosen_logps.detach(),
        rejected_logps=rejected_logps.detach(),
    )


def wpo_weights(per_token_logps: torch.Tensor, log_sum_sq_probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """WPO sequence weights as ``DPOTrainer`` computes them for ``use_weighting=True``.

    ``exp( sum_t mask * (log p_t - log sum_v p_v^2) / max(sum_t mask, 1) )`` per row, with no
    gradient (TRL computes it under ``no_grad``). Split the (2B,) result with ``.chunk(2)`` into
    ``chosen_weights`` and ``rejected_weights`` for :func:`dpo_loss`.

    Parameters
    ----------
    per_token_logps, log_sum_sq_probs : (N, T), float32 or float64
        The fused head's ``log_probs`` and ``log_sum_sq_probs`` (TRL's shifted positions).
    mask : (N, T), bool or int
        The shifted completion mask (``completion_mask[:, 1:]``).

    Returns
    -------
    (N,) tensor of the log-probs' dtype; weights can exceed 1 (TRL does not clamp them).
    """
    lp = v.tensor(per_token_logps, "per_token_logps", v.FLOAT, (2,), contiguous=False)
    lssp = v.tensor(log_sum_sq_probs, "log_sum_sq_probs", v.FLOAT, (2,), contiguous=False)
    m = v.tensor(mask, "mask", v.MASK, (2,), contiguous=False)
    for name, t in (("log_sum_sq_probs", lssp), ("mask", m)):
        v.aligned(t, name, lp.shape, lp.device, "per_token_logps")
    v.same_dtype(lssp, "log_sum_sq_probs", lp, "per_token_logps")
    if m.dtype == torch.bool:
        m = m.long()
    with torch.no_grad():
        lengths = m.sum(dim=1).clamp_min(1)
        aligned = (lp - lssp) * m
        return torch.exp(aligned.sum(dim=1) / lengths)
