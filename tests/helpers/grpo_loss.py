"""Inputs of the GRPO loss and TRL 1.16's ``GRPOTrainer._compute_loss`` as their reference
(tests/parity/test_losses.py), shared with the host-sync counts and the custom-op tests: the
configuration (:class:`Cfg`), a batch with the awkward cases (:func:`make_batch`), the
importance-sampling weights of TRL's scoring step (tests/reference/importance.py), TRL's loss
driven on injected log-probs (:func:`run_trl`), the float32/float64 tolerances, and the arguments
of the ``fastalign::grpo_loss`` op (:func:`op_args`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from reference import importance

from fastalign import ops

GA, SPG = 2, 4  # gradient accumulation steps, steps per generation (scaling of every normaliser)
IS_CLIP = {"token_truncate": (0.5, 2.0), "token_mask": (0.5, 2.0), "sequence_truncate": (None, 3.0),
           "sequence_mask": (0.2, 3.0)}  # fmt: skip


@dataclass(frozen=True)
class Cfg:
    loss_type: str = "dapo"
    level: str = "token"
    is_mode: str | None = None
    beta: float = 0.0
    delta: float | None = None
    epsilon: float = 0.2
    epsilon_high: float | None = 0.28
    opsm: float | None = None
    bias_kl: bool = True
    entropy_q: float = 1.0


@dataclass
class Batch:
    lp: torch.Tensor
    old: torch.Tensor
    ref: torch.Tensor
    samp: torch.Tensor
    adv: torch.Tensor
    mask: torch.Tensor
    ent: torch.Tensor


def make_batch(
    seed: int, b: int = 6, t: int = 7, dtype=torch.float64, spread: float = 0.3, extreme: bool = True
) -> Batch:
    g = torch.Generator().manual_seed(seed)
    lp = -torch.rand(b, t, generator=g, dtype=dtype) * 3
    old = lp + spread * torch.randn(b, t, generator=g, dtype=dtype)
    if extreme and b > 3 and t > 2:
        old[3, 1] = lp[3, 1] - 25.0  # huge ratio
        old[3, 2] = lp[3, 2] + 25.0  # tiny ratio
    ref = lp + spread * torch.randn(b, t, generator=g, dtype=dtype)
    samp = old + 0.2 * torch.randn(b, t, generator=g, dtype=dtype)
    samp[0, 0] = math.nan
    if b > 4:
        samp[4, t // 2] = math.nan
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = (torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)).long()
    mask[0] = 0  # fully masked row
    if b > 1:
        mask[1] = 0
        mask[1, 0] = 1  # length-1 row
    if b > 2 and t > 3:
        mask[2, 1] = 0  # a hole (tool mask)
    adv = torch.randn(b, generator=g, dtype=dtype)
    if b > 5:
        adv[5] = 0.0
    ent = torch.rand(b, t, generator=g, dtype=dtype)
    return Batch(lp, old, ref, samp, adv, mask, ent)


def trl_is_ratio(old, samp, mask, mode):
    """The IS weights TRL's scoring step computes (``tests/reference/importance.py``, proven equal
    to it), with this module's clip range per mode."""
    clip_min, clip_max = IS_CLIP[mode]
    return importance.is_ratio(old, samp, mask, mode, clip_min, clip_max)


def run_trl(trainer, cfg: Cfg, bt: Batch, num_items: int):
    trainer.loss_type = cfg.loss_type
    trainer.importance_sampling_level = cfg.level
    trainer.epsilon_low = cfg.epsilon
    trainer.epsilon_high = cfg.epsilon_high if cfg.epsilon_high is not None else cfg.epsilon
    trainer.args.delta = cfg.delta
    trainer.beta = cfg.beta
    trainer.args.use_bias_correction_kl = cfg.bias_kl
    trainer.use_vllm = cfg.is_mode is not None
    trainer.vllm_importance_sampling_correction = True
    trainer.off_policy_mask_threshold = cfg.opsm
    trainer.top_entropy_quantile = cfg.entropy_q
    trainer.current_gradient_accumulation_steps = GA
    trainer.args.steps_per_generation = SPG
    trainer.model.train()
    trainer._metrics["train"].clear()
    lp = bt.lp.clone().requires_grad_()
    trainer.injected = (lp, bt.ent)
    b, t = bt.lp.shape
    inputs = {
        "prompt_ids": torch.zeros(b, 2, dtype=torch.long),
        "prompt_mask": torch.ones(b, 2, dtype=torch.long),
        "completion_ids": torch.zeros(b, t, dtype=torch.long),
        "completion_mask": bt.mask,
        "advantages": bt.adv,
        "num_items_in_batch": torch.tensor(num_items),
        "old_per_token_logps": bt.old,
        "sampling_per_token_logps": bt.samp,
    }
    if cfg.beta != 0.0:
        inputs["ref_per_token_logps"] = bt.ref
    if cfg.is_mode is not None:
        inputs["importance_sampling_ratio"] = trl_is_ratio(bt.old, bt.samp, bt.mask, cfg.is_mode)
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k != "entropy"}
    return loss.detach(), lp.grad, metrics


def tolerances(dtype):
    return (1e-9, 1e-12) if dtype == torch.float64 else (2e-5, 1e-6)


def op_args(cfg: Cfg, bt, want_grad=True, packed=False, num_items=None):
    isr = None if cfg.is_mode is None else trl_is_ratio(bt.old, bt.samp, bt.mask, cfg.is_mode)
    lp, old, adv, m, ref, samp = bt.lp, bt.old, bt.adv, bt.mask, bt.ref, bt.samp
    cu = None
    if packed:
        b, t = lp.shape
        cu = torch.arange(0, b * t + 1, t)
        lp, old, m, ref, samp = (x.reshape(-1) for x in (lp, old, m, ref, samp))
        if isr is not None and isr.numel() != b:
            isr = isr.reshape(-1)
    if isr is not None and isr.numel() == adv.numel():
        isr = isr.reshape(-1)
    eps_high = cfg.epsilon_high if cfg.epsilon_high is not None else cfg.epsilon
    nan = float("nan")
    scalars = [cfg.epsilon, eps_high, nan if cfg.delta is None else cfg.delta, cfg.beta,
               nan if cfg.opsm is None else cfg.opsm, 1.0, 1.05, 2.0, 3.0, 3.0, 2.0, 2.0, 32.0,
               nan if num_items is None else num_items]  # fmt: skip
    return (
        lp, old, adv, m, ref if cfg.beta else None, isr, samp, None, cu,
        ops.pack_options(cfg.loss_type, cfg.level, cfg.bias_kl, want_grad), scalars,
    )  # fmt: skip
