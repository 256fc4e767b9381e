"""TRL 1.16's preference-loss trainer code driven on chosen log-probs (tests/parity/test_preference_losses.py,
tests/robustness/test_host_syncs.py, benches/bench_preference_losses.py): the *unbound* trainer
methods run on a small stub ``self`` whose model returns the given per-token log-probs.

* DPO: ``DPOTrainer._compute_loss`` (precomputed-reference path);
* CPO: ``CPOTrainer.get_batch_loss_metrics`` with ``concatenated_forward`` returning chosen
  sequence log-probs and NLL;
* DFT: ``SFTTrainer.compute_loss`` with ``args.loss_type = "dft"``.
"""

from __future__ import annotations

import functools
import os
import types
from collections import defaultdict

import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # importing trl.experimental.cpo warns otherwise
S = types.SimpleNamespace


class Acc:
    """A single-process stand-in for ``accelerate.Accelerator`` (gathers are identities)."""

    device = torch.device("cpu")
    num_processes = 1
    parallelism_config = None

    @staticmethod
    def gather(x):
        return x

    gather_for_metrics = gather


def trl_dpo(
    lp,
    cm,
    ref_c,
    ref_r,
    *,
    loss_type=("sigmoid",),
    loss_weights=None,
    beta=0.1,
    eps=0.0,
    tau=0.05,
    fdiv="reverse_kl",
    fa=0.5,
    lssp=None,
):
    """TRL's ``DPOTrainer._compute_loss`` on per-token log-probs ``lp`` (2B, T-1), zero off the
    shifted completion mask, and the (unshifted) completion mask ``cm`` (2B, T)."""
    from trl import DPOTrainer

    n, t = cm.shape
    z = torch.zeros(n, t - 1, dtype=lp.dtype)
    stub = S(
        model=S(training=True),
        accelerator=Acc(),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type=fdiv,
        f_alpha_divergence_coef=fa,
        loss_types=list(loss_type),
        loss_weights=list(loss_weights or [1.0] * len(loss_type)),
        beta=beta,
        label_smoothing=eps,
        use_weighting=lssp is not None,
        args=S(discopop_tau=tau),
        _metrics={"train": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    out = S(log_probs=lp, entropy=z, mean_logits=z, is_top1=z.bool(), log_sum_sq_probs=lssp)
    inputs = dict(
        input_ids=torch.zeros(n, t, dtype=torch.long),
        attention_mask=torch.ones(n, t, dtype=torch.long),
        completion_mask=cm,
        ref_chosen_logps=ref_c,
        ref_rejected_logps=ref_r,
    )
    loss = DPOTrainer._compute_loss(stub, lambda **kw: out, inputs, False)
    return loss, {k: v[-1] for k, v in stub._metrics["train"].items()}


def trl_cpo(c, r, *, loss_type="sigmoid", beta=0.1, eps=0.0, gamma=0.5, alpha=0.0, cpo_alpha=1.0, nll=None):
    """TRL's ``CPOTrainer.get_batch_loss_metrics`` with the forward pass replaced by given (B,)
    sequence log-probs and chosen NLL (``loss_type`` as after ``CPOConfig.__post_init__``)."""
    from trl.experimental.cpo import CPOTrainer

    logits = torch.zeros(c.shape[0], 1, 1, dtype=c.dtype)
    nll = torch.tensor(0.0) if cpo_alpha == 0 else nll
    stub = S(
        alpha=alpha,
        beta=beta,
        loss_type=loss_type,
        label_smoothing=eps,
        simpo_gamma=gamma,
        cpo_alpha=cpo_alpha,
        accelerator=Acc(),
        aux_loss_enabled=False,
    )
    stub.concatenated_forward = lambda model, batch: (c, r, logits, logits, nll)
    stub.cpo_loss = functools.partial(CPOTrainer.cpo_loss, stub)
    return CPOTrainer.get_batch_loss_metrics(stub, None, {}, train_eval="train")


def trl_dft(lp, label_mask, *, num_items_in_batch=None, average_tokens_across_devices=True, num_processes=1):
    """TRL's ``SFTTrainer.compute_loss`` with ``loss_type="dft"`` on per-token log-probs ``lp``
    (zero off ``label_mask``)."""
    from trl import SFTTrainer

    acc = Acc()
    acc.num_processes = num_processes
    stub = S(
        model=S(training=True),
        aux_loss_enabled=False,
        accelerator=acc,
        compute_loss_func=None,
        label_smoother=None,
        args=S(loss_type="dft", average_tokens_across_devices=average_tokens_across_devices, max_length=None),
        get_tp_size=lambda: 1,
        current_gradient_accumulation_steps=1,
        _metrics={"train": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    z = torch.zeros_like(lp)
    out = S(log_probs=lp, label_mask=label_mask, entropy=z, is_top1=z.bool())
    n, t = lp.shape
    inputs = {"labels": torch.zeros(n, t + 1, dtype=torch.long), "attention_mask": torch.ones(n, t + 1)}
    return SFTTrainer.compute_loss(stub, lambda **kw: out, inputs, num_items_in_batch=num_items_in_batch)
