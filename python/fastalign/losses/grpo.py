"""The GRPO-family loss, identical to TRL 1.16.0's ``GRPOTrainer._compute_loss``, as a fused
torch custom op (:mod:`fastalign.ops`).

On CPU one Rust pass per sequence computes the loss, its gradient with respect to
``per_token_logps`` and the metrics (GIL released, no ``(B, T)`` temporaries besides the
gradient); on other devices the same formulas run in torch (:mod:`fastalign._torch_backend.grpo`).
Gradients flow to ``per_token_logps`` only (TRL's other inputs carry no gradient).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import _validate as v
from .. import ops

__all__ = ["GrpoLoss", "LOSS_TYPES", "grpo_loss"]

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")
_PPO = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")
_LEVELS = ("token", "sequence", "sequence_token")


class GrpoLoss(NamedTuple):
    """Result of :func:`grpo_loss`: ``loss, raw = grpo_loss(...)``."""

    loss: Any
    """0-d tensor (already divided for gradient accumulation, as TRL's), differentiable with
    respect to ``per_token_logps``."""
    raw_metrics: Any
    """(8,) float64 tensor: clip low/high/region mean, low min, high max, cispo clip ratio, kl,
    vespo phi mean (see :data:`fastalign.ops.N_LOSS_METRICS`); no gradient."""
    loss_type: str = "dapo"
    beta: float = 0.0

    def metrics(self) -> dict[str, float]:
        """The metrics ``_compute_loss`` logs for this configuration, under TRL's keys (values of
        one process; TRL gathers them across processes)."""
        if self.beta == 0.0 and self.loss_type == "sapo":
            return {}  # nothing to log: no read of the device's metrics (no sync)
        low, high, region, low_min, high_max, cispo, kl, phi = self.raw_metrics.tolist()
        out: dict[str, float] = {}
        if self.beta != 0.0:
            out["kl"] = kl
        if self.loss_type in _PPO:
            out.update(
                {
                    "clip_ratio/low_mean": low,
                    "clip_ratio/high_mean": high,
                    "clip_ratio/region_mean": region,
                    "clip_ratio/low_min": low_min,
                    "clip_ratio/high_max": high_max,
                }
            )
        elif self.loss_type == "cispo":
            out["cispo_clip_ratio"] = cispo
        elif self.loss_type == "vespo":
            out["vespo/phi_seq_mean"] = phi
        return out


def _token_denominator(n: Any, num_processes: int, ga: int, spg: int, training: bool) -> Any:
    """dapo/cispo/vespo's ``num_items_in_batch.clamp(min=1.0) / P (* GA / spg in train)`` in f32
    from a checked count (:func:`fastalign._validate.items_count`): a Python float, or a 0-d
    float32 tensor on the device for a count that lives there (no sync)."""
    if n is None:
        return None
    torch = v._torch()
    if isinstance(n, torch.Tensor):
        # TRL's lines on the device, in float32 as the float path below
        d = n.detach().reshape(()).to(torch.float32).clamp(min=1.0) / num_processes
        return d * ga / spg if training else d
    d = np.float32(max(n, 1.0)) / np.float32(num_processes)
    if training:
        d = d * np.float32(ga) / np.float32(spg)
    return float(d)


def grpo_loss(
    per_token_logps: Any,
    old_per_token_logps: Any,
    advantages: Any,
    mask: Any,
    *,
    loss_type: str = "dapo",
    importance_sampling_level: str = "token",
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    delta: float | None = None,
    beta: float = 0.0,
    ref_per_token_logps: Any = None,
    use_bias_correction_kl: bool = True,
    importance_sampling_ratio: Any = None,
    sampling_per_token_logps: Any = None,
    off_policy_mask_threshold: float | None = None,
    entropy_mask: Any = None,
    sapo_temperature_pos: float = 1.0,
    sapo_temperature_neg: float = 1.05,
    vespo_k_pos: float = 2.0,
    vespo_lambda_pos: float = 3.0,
    vespo_k_neg: float = 3.0,
    vespo_lambda_neg: float = 2.0,
    num_items_in_batch: Any = None,
    num_processes: int = 1,
    gradient_accumulation_steps: int = 1,
    steps_per_generation: int | None = None,
    max_completion_length: int | None = None,
    training: bool = True,
    cu_seqlens: Any = None,
    check_finite: bool | None = None,
) -> GrpoLoss:
    """TRL 1.16.0's GRPO-family loss (``GRPOTrainer._compute_loss``) and its logged metrics.

    Parameters
    ----------
    per_token_logps: (B, T) float (or (N,) packed with ``cu_seqlens``), the policy's log-probs;
        the loss is differentiable with respect to it. bfloat16/float16 are computed in float32.
    old_per_token_logps: same shape and dtype, or ``None`` (TRL's ``per_token_logps.detach()``).
    advantages: (B,) or (B, 1) per sequence, or the log-probs' shape per token; their dtype.
    mask: the loss mask (``completion_mask`` [× ``tool_mask``]); bool/int32/int64/float, same shape.
    loss_type, importance_sampling_level, epsilon, epsilon_high, delta, beta,
    use_bias_correction_kl, off_policy_mask_threshold, sapo_*, vespo_*, max_completion_length:
        ``GRPOConfig``'s fields and defaults (``epsilon_high=None`` means ``epsilon``).
        ``importance_sampling_level="sequence_token"`` is GSPO-token.
    ref_per_token_logps: required when ``beta != 0``.
    importance_sampling_ratio: the vLLM IS ratio (:func:`fastalign.ratios.vllm_is_ratio`): (B, T) /
        (N,) per token or (B,) / (B, 1) per sequence; multiplies the per-token loss (vespo folds a
        per-token one into φ instead, as TRL).
    sampling_per_token_logps: the sampler's log-probs for the off-policy mask (default: ``old``).
    entropy_mask: bool, the log-probs' shape (TRL's ``get_high_entropy_mask``), or ``None``.
    num_items_in_batch: the generation batch's token count (dapo/cispo/vespo normaliser); ``None``
        uses this batch's mask sum. With ``num_processes``, ``gradient_accumulation_steps`` and
        ``steps_per_generation`` (default: ``gradient_accumulation_steps``) it gives TRL's
        ``num_items_in_batch.clamp(1) / P * GA / spg`` (train) or ``/ P`` (``training=False``).
        Every other loss type divides by ``gradient_accumulation_steps`` in train, as TRL.
        A 0-d tensor on the log-probs' accelerator (TRL's) is used there, without a sync; its
        value is then not checked (TRL's ``clamp(min=1.0)`` applies) unless ``check_finite=True``.
    cu_seqlens: (B + 1,) int32/int64 for packed (N,) inputs. Its values are checked, which on an
        accelerator reads them back (one sync; skipped under torch.compile).
    check_finite: refuse NaN in ``per_token_logps``, ``old_per_token_logps`` and
        ``ref_per_token_logps``. ``None`` (default): always on CPU tensors, where the Rust kernel
        checks in the pass it makes anyway (``False`` does not turn that off); skipped on other
        devices, where a check costs a device synchronisation. ``True`` checks there too (one
        sync for the three tensors, and ``num_items_in_batch``'s value, one more).

    Returns
    -------
    :class:`GrpoLoss` ``(loss, raw_metrics)``; ``.metrics()`` gives TRL's keys. Not included: the
    entropy bonus and the MoE aux loss TRL adds after aggregation (add ``- coef * H`` yourself).

    Raises
    ------
    InvalidTypeError / InvalidArgumentError naming the argument: wrong dtype/device/shape,
    mismatched shapes, bad ``cu_seqlens``, unknown ``loss_type``/level, NaN log-probs (see
    ``check_finite``), ``beta != 0``
    without ``ref_per_token_logps``, dr_grpo without ``max_completion_length``, vespo with a
    per-sequence IS ratio.
    """
    torch = v._torch()
    lt = v.choice(loss_type, "loss_type", LOSS_TYPES)
    lvl = v.choice(importance_sampling_level, "importance_sampling_level", _LEVELS)
    lp, cu = v.token_values(per_token_logps, "per_token_logps", cu_seqlens)
    packed = cu is not None
    b = lp.shape[0] if cu is None else cu.shape[0] - 1
    shape = tuple(lp.shape)
    old = None
    if old_per_token_logps is not None:
        old = v.like_tensor(old_per_token_logps, "old_per_token_logps", lp, "per_token_logps")
    per_row = ((b,), shape) if packed else ((b,), (b, 1), shape)  # per sequence or per token
    adv = v.like_tensor(advantages, "advantages", lp, "per_token_logps", shapes=per_row)
    if adv.numel() == b:
        adv = adv.reshape(b)
    m = v.mask_tensor(mask, "mask", lp, "per_token_logps")
    eps_low = v.real(epsilon, "epsilon")
    eps_high = eps_low if epsilon_high is None else v.real(epsilon_high, "epsilon_high")
    dlt = v.optional_real(delta, "delta")
    bt = v.real(beta, "beta")
    ref = None
    if bt != 0.0:
        v.required(ref_per_token_logps, "ref_per_token_logps", "is required when beta != 0")
        ref = v.like_tensor(ref_per_token_logps, "ref_per_token_logps", lp, "per_token_logps")
    isr = None
    if importance_sampling_ratio is not None:
        isr = v.like_tensor(
            importance_sampling_ratio, "importance_sampling_ratio", lp, "per_token_logps", shapes=per_row
        )
        v.vespo_ratio(isr, b, lp.numel(), lt)
        if isr.numel() == b:
            isr = isr.reshape(b)
        isr = isr.detach()
    samp = None
    if sampling_per_token_logps is not None:
        samp = v.like_tensor(sampling_per_token_logps, "sampling_per_token_logps", lp, "per_token_logps").detach()
    ent = (
        None
        if entropy_mask is None
        else v.mask_tensor(entropy_mask, "entropy_mask", lp, "per_token_logps", bool_only=True)
    )
    opsm = v.optional_real(off_policy_mask_threshold, "off_policy_mask_threshold")
    ga = v.integer(gradient_accumulation_steps, "gradient_accumulation_steps", minimum=1)
    spg = ga if steps_per_generation is None else v.integer(steps_per_generation, "steps_per_generation", minimum=1)
    nproc = v.integer(num_processes, "num_processes", minimum=1)
    if lt == "dr_grpo":
        v.required(max_completion_length, "max_completion_length", "is required for loss_type='dr_grpo'")
    max_len = None
    if max_completion_length is not None:
        max_len = float(v.integer(max_completion_length, "max_completion_length", minimum=1))
    training = v.boolean(training, "training", numpy=False)
    check = v.finite_check(check_finite, lp)
    token_den = _token_denominator(v.items_count(num_items_in_batch, lp, check), nproc, ga, spg, training)
    if token_den is None and lt in ("dapo", "cispo", "vespo") and (nproc != 1 or (training and ga != spg)):
        v.required(
            num_items_in_batch,
            "num_items_in_batch",
            "is required for dapo/cispo/vespo with several processes or steps_per_generation != "
            "gradient_accumulation_steps",
        )
    ga_eff = float(ga) if training else 1.0
    params = [v.real(x, name) for x, name in (
        (sapo_temperature_pos, "sapo_temperature_pos"), (sapo_temperature_neg, "sapo_temperature_neg"),
        (vespo_k_pos, "vespo_k_pos"), (vespo_lambda_pos, "vespo_lambda_pos"),
        (vespo_k_neg, "vespo_k_neg"), (vespo_lambda_neg, "vespo_lambda_neg"),
    )]  # fmt: skip
    want_grad = bool(torch.is_grad_enabled() and lp.requires_grad)
    nan = float("nan")
    den_t = token_den if isinstance(token_den, torch.Tensor) else None
    den_f = nan if token_den is None or den_t is not None else token_den
    scalars = [eps_low, eps_high, nan if dlt is None else dlt, bt, nan if opsm is None else opsm, *params, ga_eff,
               nan if max_len is None else max_len, den_f]  # fmt: skip
    loss, _grad, metrics = ops.grpo_loss_eager(
        lp, None if old is None else old.detach(), adv.detach(), m, None if ref is None else ref.detach(), isr, samp,
        ent, cu, ops.pack_options(lt, lvl, bool(use_bias_correction_kl), want_grad, check), scalars, den_t,
    )  # fmt: skip
    return GrpoLoss(loss, metrics, lt, bt)
