"""Preference and SFT losses, exactly as TRL 1.16.0 computes them (plain torch, any device).

* :func:`dpo_loss` — ``DPOTrainer._compute_loss`` from sequence log-probs onwards: every DPO
  ``loss_type`` (15 in 1.16), several loss types with ``loss_weights``, the f-divergence scores,
  WPO weighting (``use_weighting``) and the reward metrics TRL logs.
* :func:`wpo_weights` — the per-sequence WPO weights ``DPOTrainer`` computes for ``use_weighting``.
* :func:`cpo_loss` — ``CPOTrainer.cpo_loss`` plus the ``cpo_alpha`` NLL term of
  ``get_batch_loss_metrics``: ``sigmoid``, ``hinge``, ``ipo``, ``simpo`` and ``alphapo`` (the
  config sugar for SimPO with ``cpo_alpha = 0``), with AlphaPO's ``alpha`` reward shaping.
* :func:`dft_loss` — ``SFTTrainer.compute_loss`` with ``loss_type="dft"``.

These losses are elementwise over the batch, so they are written in plain torch: they run on the
inputs' device, are differentiable with respect to the policy log-probs, and follow TRL's order
of operations so that float32 results agree with TRL to the last bit or within a few ulps.
Inputs are never modified. Everything upstream of the sequence log-probs (the forward passes,
the fused LM head, LD-DPO's ``ld_alpha`` weighting, the reference model or precomputed reference
log-probs) stays in the caller's hands: pass the (B,) values TRL would have computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import _validate as v
from .errors import InvalidArgumentError, InvalidTypeError

__all__ = [
    "CPO_LOSS_TYPES",
    "CPOLoss",
    "DPO_LOSS_TYPES",
    "DPOLoss",
    "F_DIVERGENCE_TYPES",
    "cpo_loss",
    "dft_loss",
    "dpo_loss",
    "wpo_weights",
]

DPO_LOSS_TYPES: tuple[str, ...] = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)
"""Every ``DPOConfig.loss_type`` TRL 1.16.0 accepts, in the order of its error message."""

F_DIVERGENCE_TYPES: tuple[str, ...] = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")

# loss types that have an f-divergence generalisation (TRL refuses the others at __init__)
_F_DIVERGENCE_LOSS_TYPES = frozenset(
    {"sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop", "sft"}
)

CPO_LOSS_TYPES: tuple[str, ...] = ("sigmoid", "hinge", "ipo", "simpo", "alphapo")
"""Every ``CPOConfig.loss_type`` TRL 1.16.0 accepts (``alphapo`` is sugar for ``simpo``)."""

_FLOAT = v.FLOAT
_COUNT = v.INT
_MASK = (*v.INT, np.dtype(np.bool_))


# --------------------------------------------------------------------------------------------
# validation helpers


def _positive(x: object, name: str) -> float:
    value = v.real(x, name)
    if not value > 0.0:
        raise InvalidArgumentError(f"must be > 0, got {value}", name)
    return value


def _vector(x: object, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """A (B,) float32/float64 tensor, on the device and of the dtype and shape of ``like``."""
    t = v.torch_tensor(x, name, _FLOAT, (1,))
    if like is not None:
        _same(t, name, like)
    elif t.shape[0] == 0:
        raise InvalidArgumentError("must not be empty", name)
    return t


def _same(t: torch.Tensor, name: str, like: torch.Tensor, *, dtype: bool = True) -> None:
    if t.device != like.device:
        raise InvalidTypeError(f"is on {t.device}, but the log-probs are on {like.device}", name)
    if dtype and t.dtype != like.dtype:
        raise InvalidTypeError(f"has dtype {t.dtype}, but the log-probs have {like.dtype}", name)
    if t.shape[0] != like.shape[0]:
        raise InvalidArgumentError(f"has {t.shape[0]} rows, expected {like.shape[0]} (one per pair)", name)


def _aligned(t: torch.Tensor, name: str, shape: tuple[int, ...], device: torch.device, like: str) -> None:
    """``t`` must be on ``device`` (else InvalidTypeError, as every wrong device in fastalign) and
    of ``shape`` (else InvalidArgumentError); ``like`` names the argument it must match."""
    if t.device != device:
        raise InvalidTypeError(f"is on {t.device}, but {like} is on {device}", name)
    if tuple(t.shape) != tuple(shape):
        raise InvalidArgumentError(f"has shape {tuple(t.shape)}, expected {tuple(shape)} like {like}", name)


def _finite(named: Sequence[tuple[str, torch.Tensor]]) -> None:
    """Raise naming the first argument holding NaN or +-inf (one device sync for all of them)."""
    if not named:
        return
    ok = torch.stack([torch.isfinite(t.detach()).all() for _, t in named]).tolist()
    for (name, t), good in zip(named, ok):
        if not good:
            what = "NaN" if bool(torch.isnan(t.detach()).any()) else "an infinite value"
            raise InvalidArgumentError(f"holds {what}; it must be finite (check_finite=False skips this check)", name)


def _loss_types(loss_type: object, options: tuple[str, ...]) -> list[str]:
    if isinstance(loss_type, str):
        names = [loss_type]
    elif isinstance(loss_type, (list, tuple)):
        names = list(loss_type)
        if not names:
            raise InvalidArgumentError("must name at least one loss type", "loss_type")
    else:
        raise InvalidTypeError(f"expected a str or a list of str, got {type(loss_type).__name__}", "loss_type")
    for name in names:
        if not isinstance(name, str) or name not in options:
            raise InvalidArgumentError(
                f"unknown loss type {name!r}; expected one of {', '.join(map(repr, options))}", "loss_type"
            )
    return names


# --------------------------------------------------------------------------------------------
# DPO


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
        return _pair_metrics(self.chosen_rewards, self.rejected_rewards, self.chosen_logps, self.rejected_logps, prefix)


def _pair_metrics(
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


def _sigmoid_mix(beta: float, x: torch.Tensor, eps: float) -> torch.Tensor:
    """``-logsigmoid(beta x) (1 - eps) - logsigmoid(-beta x) eps`` (AOT, CPO sigmoid/simpo).

    Written as TRL writes it, one product per term, so that autograd accumulates the same
    partial gradients in the same order (a shared product would differ in the last bits)."""
    return -F.logsigmoid(beta * x) * (1 - eps) - F.logsigmoid(-beta * x) * eps


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
    chosen_logps = _vector(chosen_logps, "chosen_logps")
    rejected_logps = _vector(rejected_logps, "rejected_logps", chosen_logps)
    ref_chosen_logps = _vector(ref_chosen_logps, "ref_chosen_logps", chosen_logps)
    ref_rejected_logps = _vector(ref_rejected_logps, "ref_rejected_logps", chosen_logps)
    types = _loss_types(loss_type, DPO_LOSS_TYPES)
    if loss_weights is None:
        weights = [1.0] * len(types)
    else:
        if not isinstance(loss_weights, (list, tuple)):
            raise InvalidTypeError(f"expected a list of floats, got {type(loss_weights).__name__}", "loss_weights")
        weights = [v.real(w, "loss_weights") for w in loss_weights]
        if len(weights) != len(types):
            raise InvalidArgumentError(
                f"has {len(weights)} weights for {len(types)} loss types; give one weight per loss type",
                "loss_weights",
            )
    beta = _positive(beta, "beta")
    eps = v.real(label_smoothing, "label_smoothing")
    if not 0.0 <= eps <= 1.0:
        raise InvalidArgumentError(f"must be in [0, 1], got {eps}", "label_smoothing")
    if "robust" in types and not eps < 0.5:
        raise InvalidArgumentError(f"must be in [0, 0.5) for the 'robust' loss, got {eps}", "label_smoothing")
    if "exo_pair" in types and not 0.0 < eps < 1.0:
        raise InvalidArgumentError(
            f"must be in (0, 1) for the 'exo_pair' loss (the EXO paper recommends 1e-3), got {eps}", "label_smoothing"
        )
    tau = _positive(discopop_tau, "discopop_tau")
    fdiv = v.choice(f_divergence_type, "f_divergence_type", F_DIVERGENCE_TYPES)
    f_alpha = v.real(f_alpha_divergence_coef, "f_alpha_divergence_coef")
    if fdiv != "reverse_kl" and not set(types) <= _F_DIVERGENCE_LOSS_TYPES:
        raise InvalidArgumentError(
            f"{fdiv!r} is only supported for the loss types {sorted(_F_DIVERGENCE_LOSS_TYPES)}; got {types}",
            "f_divergence_type",
        )
    check_finite = v.finite_check(check_finite, chosen_logps)

    to_check = [
        ("chosen_logps", chosen_logps),
        ("rejected_logps", rejected_logps),
        ("ref_chosen_logps", ref_chosen_logps),
        ("ref_rejected_logps", ref_rejected_logps),
    ]
    lengths = None
    if {"ipo", "sigmoid_norm"} & set(types):
        need = "chosen_lengths" if chosen_lengths is None else "rejected_lengths" if rejected_lengths is None else None
        if need is not None:
            raise InvalidArgumentError("is required by the 'ipo' and 'sigmoid_norm' loss types", need)
        lengths = []
        for name, t in (("chosen_lengths", chosen_lengths), ("rejected_lengths", rejected_lengths)):
            t = v.torch_tensor(t, name, _COUNT, (1,))
            _same(t, name, chosen_logps, dtype=False)
            lengths.append(t.clamp(min=1.0))  # TRL: mask.sum(1).clamp(min=1.0), a float tensor
    sft_inputs = None
    if "sft" in types:
        if chosen_token_logps is None or chosen_token_mask is None:
            need = "chosen_token_logps" if chosen_token_logps is None else "chosen_token_mask"
            raise InvalidArgumentError("is required by the 'sft' loss type", need)
        tok = v.torch_tensor(chosen_token_logps, "chosen_token_logps", _FLOAT, (2,))
        _same(tok, "chosen_token_logps", chosen_logps)
        msk = v.torch_tensor(chosen_token_mask, "chosen_token_mask", _MASK, (2,))
        _aligned(msk, "chosen_token_mask", tok.shape, tok.device, "chosen_token_logps")
        sft_inputs = (tok, msk.bool())
        to_check.append(("chosen_token_logps", tok))
    wpo = None
    if chosen_weights is not None or rejected_weights is not None:
        if chosen_weights is None or rejected_weights is None:
            need = "chosen_weights" if chosen_weights is None else "rejected_weights"
            raise InvalidArgumentError("WPO needs both chosen_weights and rejected_weights", need)
        bad = [t for t in types if t in ("aot", "aot_unpaired", "sft")]
        if bad:
            raise InvalidArgumentError(
                f"WPO weights are not supported with {bad[0]!r} (TRL refuses 'aot'/'aot_unpaired' and fails on 'sft')",
                "loss_type",
            )
        cw = _vector(chosen_weights, "chosen_weights", chosen_logps)
        rw = _vector(rejected_weights, "rejected_weights", chosen_logps)
        to_check += [("chosen_weights", cw), ("rejected_weights", rw)]
        wpo = cw.detach() * rw.detach()
    if check_finite:
        _finite(to_check)

    chosen_logratios = chosen_logps - ref_chosen_logps
    rejected_logratios = rejected_logps - ref_rejected_logps
    chosen_scores = _scores(chosen_logratios, fdiv, f_alpha)
    rejected_scores = _scores(rejected_logratios, fdiv, f_alpha)
    delta_score = chosen_scores - rejected_scores

    loss: Any = 0.0
    per_type = []
    for name, weight in zip(types, weights):
        if name == "sigmoid":
            per = -F.logsigmoid(beta * delta_score)
        elif name == "hinge":
            per = torch.relu(1 - beta * delta_score)
        elif name in ("ipo", "sigmoid_norm"):
            assert lengths is not None
            avg_delta = chosen_scores / lengths[0] - rejected_scores / lengths[1]
            if name == "ipo":
                per = (avg_delta - 1 / (2 * beta)) ** 2
            else:
                per = -F.logsigmoid(beta * avg_delta)
        elif name == "exo_pair":
            # one product per term, as TRL: autograd then sums the same partial gradients in the same order
            epsilon = torch.tensor(eps, device=delta_score.device)  # default dtype, as TRL
            qw, log_qw = torch.sigmoid(beta * delta_score), F.logsigmoid(beta * delta_score)
            ql, log_ql = torch.sigmoid(-beta * delta_score), F.logsigmoid(-beta * delta_score)
            per = qw * (log_qw - torch.log1p(-epsilon)) + ql * (log_ql - torch.log(epsilon))
        elif name == "nca_pair":
            rc, rr = beta * chosen_logratios, beta * rejected_logratios
            per = -F.logsigmoid(rc) - 0.5 * F.logsigmoid(-rc) - 0.5 * F.logsigmoid(-rr)
        elif name == "robust":
            clean = -(1 - eps) * F.logsigmoid(beta * delta_score)
            flipped = -eps * F.logsigmoid(-beta * delta_score)
            per = (clean - flipped) / (1 - 2 * eps)
        elif name == "bco_pair":
            per = -F.logsigmoid(beta * chosen_logratios) - F.logsigmoid(-(beta * rejected_logratios))
        elif name == "sppo_hard":
            per = (chosen_logratios - 0.5 / beta) ** 2 + (rejected_logratios + 0.5 / beta) ** 2
        elif name == "aot":
            logratios, _ = torch.sort(chosen_logps - rejected_logps, dim=0)
            ref_logratios, _ = torch.sort(ref_chosen_logps - ref_rejected_logps, dim=0)
            per = _sigmoid_mix(beta, logratios - ref_logratios, eps)
        elif name == "aot_unpaired":
            c_sorted, _ = torch.sort(chosen_logratios, dim=0)
            r_sorted, _ = torch.sort(rejected_logratios, dim=0)
            per = _sigmoid_mix(beta, c_sorted - r_sorted, eps)
        elif name == "apo_zero":
            per = (1 - torch.sigmoid(beta * chosen_logratios)) + torch.sigmoid(beta * rejected_logratios)
        elif name == "apo_down":
            per = torch.sigmoid(beta * chosen_logratios) + (
                1 - torch.sigmoid(beta * (chosen_logratios - rejected_logratios))
            )
        elif name == "discopop":
            logits = delta_score * beta
            modulation = torch.sigmoid(logits / tau)
            per = -F.logsigmoid(logits) * (1 - modulation) + torch.exp(-logits) * modulation
        else:  # "sft"
            assert sft_inputs is not None
            tok, msk = sft_inputs
            per = (-tok[msk].mean()).expand(tok.shape[0])
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
    lp = v.torch_tensor(per_token_logps, "per_token_logps", _FLOAT, (2,))
    lssp = v.torch_tensor(log_sum_sq_probs, "log_sum_sq_probs", _FLOAT, (2,))
    m = v.torch_tensor(mask, "mask", _MASK, (2,))
    for name, t in (("log_sum_sq_probs", lssp), ("mask", m)):
        _aligned(t, name, lp.shape, lp.device, "per_token_logps")
    if lssp.dtype != lp.dtype:
        raise InvalidTypeError(f"has dtype {lssp.dtype}, but per_token_logps has {lp.dtype}", "log_sum_sq_probs")
    if m.dtype == torch.bool:
        m = m.long()
    with torch.no_grad():
        lengths = m.sum(dim=1).clamp_min(1)
        aligned = (lp - lssp) * m
        return torch.exp(aligned.sum(dim=1) / lengths)


# --------------------------------------------------------------------------------------------
# CPO / SimPO / AlphaPO


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
        return _pair_metrics(
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
    chosen_logps = _vector(chosen_logps, "chosen_logps")
    rejected_logps = _vector(rejected_logps, "rejected_logps", chosen_logps)
    if not isinstance(loss_type, str):
        raise InvalidTypeError(f"expected a str, got {type(loss_type).__name__}", "loss_type")
    (name,) = _loss_types(loss_type, CPO_LOSS_TYPES)
    beta = _positive(beta, "beta")
    eps = v.real(label_smoothing, "label_smoothing")
    if not 0.0 <= eps <= 1.0:
        raise InvalidArgumentError(f"must be in [0, 1], got {eps}", "label_smoothing")
    gamma = v.real(simpo_gamma, "simpo_gamma")
    shape = v.real(alpha, "alpha")
    nll_weight = v.real(cpo_alpha, "cpo_alpha")
    check_finite = v.finite_check(check_finite, chosen_logps)
    if name == "alphapo":  # CPOConfig.__post_init__
        name, nll_weight = "simpo", 0.0
    to_check = [("chosen_logps", chosen_logps), ("rejected_logps", rejected_logps)]
    if nll_weight != 0.0:
        if chosen_nll is None:
            raise InvalidArgumentError(
                f"is required when cpo_alpha != 0 (got cpo_alpha={nll_weight}); pass the chosen tokens' mean NLL "
                "or set cpo_alpha=0",
                "chosen_nll",
            )
        nll = v.torch_tensor(chosen_nll, "chosen_nll", _FLOAT, (0,))
        if nll.device != chosen_logps.device:
            where = f"is on {nll.device}, but the log-probs are on {chosen_logps.device}"
            raise InvalidTypeError(where, "chosen_nll")
        to_check.append(("chosen_nll", nll))
    else:
        nll = torch.zeros((), device=chosen_logps.device)  # TRL's placeholder (a 0.0 of the default dtype)
    if check_finite:
        _finite(to_check)

    if shape != 0.0:
        chosen_r = (1 - torch.exp(chosen_logps).pow(-shape)) / shape
        rejected_r = (1 - torch.exp(rejected_logps).pow(-shape)) / shape
    else:
        chosen_r, rejected_r = chosen_logps, rejected_logps
    logits = chosen_r - rejected_r

    if name == "simpo":
        logits = logits - gamma / beta
        losses = _sigmoid_mix(beta, logits, eps)
    elif name == "sigmoid":
        losses = _sigmoid_mix(beta, logits, eps)
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


# --------------------------------------------------------------------------------------------
# DFT


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
    if logits is not None or labels is not None:
        if per_token_logps is not None or mask is not None:
            given = "per_token_logps" if per_token_logps is not None else "mask"
            raise InvalidArgumentError("pass either per_token_logps and mask, or logits and labels, not both", given)
        lp, m = _label_logps(logits, labels, ignore_index)
    else:
        if per_token_logps is None or mask is None:
            need = "per_token_logps" if per_token_logps is None else "mask"
            raise InvalidArgumentError("is required (or pass logits and labels)", need)
        lp = v.torch_tensor(per_token_logps, "per_token_logps", _FLOAT, (1, 2, 3))
        m = v.torch_tensor(mask, "mask", _MASK, (lp.dim(),))
        _aligned(m, "mask", lp.shape, lp.device, "per_token_logps")
    procs = v.integer(num_processes, "num_processes", minimum=1)
    check_finite = v.finite_check(check_finite, lp)
    m = m.bool()
    lp = torch.where(m, lp, torch.zeros((), dtype=lp.dtype, device=lp.device))
    if check_finite:
        _finite([("per_token_logps", lp)])
    if num_items_in_batch is None:
        count: Any = m.sum()
    elif v.is_torch(num_items_in_batch):
        count = v.torch_tensor(num_items_in_batch, "num_items_in_batch", _COUNT, (0,))
    else:
        count = v.integer(num_items_in_batch, "num_items_in_batch", minimum=0)
    per_token = -lp * lp.exp().detach()
    loss = per_token.sum() / torch.as_tensor(count).clamp(min=1)
    if num_items_in_batch is not None:
        loss = loss * procs
    return loss


_LOGIT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _label_logps(logits: object, labels: object, ignore_index: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Shifted per-token log-probs (N, T-1) and label mask from full logits and labels."""
    if logits is None or labels is None:
        raise InvalidArgumentError(
            "is required together with " + ("labels" if logits is None else "logits"),
            "logits" if logits is None else "labels",
        )
    if not v.is_torch(logits):
        raise InvalidTypeError(f"expected a torch tensor, got {type(logits).__name__}", "logits")
    if logits.dtype not in _LOGIT_DTYPES:  # type: ignore[attr-defined]
        raise InvalidTypeError(f"expected a floating dtype, got {logits.dtype}", "logits")  # type: ignore[attr-defined]
    if logits.dim() != 3 or logits.shape[1] < 1 or logits.shape[2] < 1:  # type: ignore[attr-defined]
        raise InvalidArgumentError(f"expected shape (N, T, V), got {tuple(logits.shape)}", "logits")  # type: ignore
    lab = v.torch_tensor(labels, "labels", v.INT, (2,))
    _aligned(lab, "labels", tuple(logits.shape[:2]), logits.device, "logits' first two dimensions")  # type: ignore
    ignore = v.integer(ignore_index, "ignore_index")
    target = lab[:, 1:]
    m = target != ignore
    vocab = logits.shape[2]  # type: ignore[attr-defined]
    if not bool((~m | ((target >= 0) & (target < vocab))).all()):
        raise InvalidArgumentError(f"holds token ids outside [0, {vocab}) (other than ignore_index)", "labels")
    z = logits[:, :-1]  # type: ignore[index]
    z = z if z.dtype == torch.float64 else z.float()
    index = torch.where(m, target, torch.zeros((), dtype=target.dtype, device=target.device)).long()
    lp = torch.log_softmax(z, dim=-1).gather(-1, index.unsqueeze(-1)).squeeze(-1)
    return lp, m
