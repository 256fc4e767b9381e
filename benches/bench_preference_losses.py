"""fastalign.losses' preference losses vs TRL 1.16.0's inline loss code (CPU, float32).

These losses are elementwise over the B pairs: speed is not their point, correctness is (they
are plain torch, the same kernels as TRL). This bench only shows that calling them costs about
what TRL's own lines cost, so swapping them into a trainer is free.

Both sides time one DPO loss step the way a trainer runs it after the forward pass: from per-token
log-probs (2B, T) and the completion mask to the loss, its backward, and the logged reward metrics
(inputs: ``fastalign._bench.inputs.dpo_logps``; sizes: ``fastalign._bench.cases.DPO_SUITE_SIZES``
pairs of ``DPO_T`` tokens).
The reference is ``DPOTrainer._compute_loss`` itself, on a stub ``self`` whose model returns the
log-probs (the recipe of ``tests/helpers/trl_preference.trl_dpo``, with the stub and its zero
tensors built once, outside the timed call). TRL's step also computes the model-output metrics
(entropy, logits, token accuracy: a few (2B, T) masked sums), which fastalign leaves to the caller.
"""

from __future__ import annotations

import types
from collections import defaultdict

import pytest
import torch
from _common import run, tag
from helpers.trl_preference import Acc
from trl import DPOTrainer

from fastalign._bench import cases, inputs
from fastalign.losses import dpo_loss

T = cases.DPO_T
IMPLS = ["trl", "fastalign", "fastalign (check_finite=False)"]
LOSSES = {"sigmoid": (["sigmoid"], None), "rpo (sigmoid+sft)": (["sigmoid", "sft"], [1.0, 0.005])}


def _fastalign_step(lp, cm, ref_c, ref_r, names, weights, check_finite):
    x = lp.detach().requires_grad_(True)
    b = cm.shape[0] // 2
    c, r = x.sum(1).chunk(2)
    out = dpo_loss(
        c,
        r,
        ref_c,
        ref_r,
        loss_type=names,
        loss_weights=weights,
        beta=0.1,
        chosen_token_logps=x[:b],
        chosen_token_mask=cm[:b, 1:],
        check_finite=check_finite,
    )
    out.loss.backward()
    return out.loss.item(), out.metrics()


def _trl_stub(lp, cm, ref_c, ref_r, names, weights):
    """(stub self, model, inputs) for ``DPOTrainer._compute_loss`` (precomputed-reference path)."""
    s = types.SimpleNamespace
    n, t = cm.shape
    z = torch.zeros(n, t - 1)
    stub = s(
        model=s(training=True),
        accelerator=Acc(),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        f_alpha_divergence_coef=0.5,
        loss_types=list(names),
        loss_weights=list(weights or [1.0] * len(names)),
        beta=0.1,
        label_smoothing=0.0,
        use_weighting=False,
        args=s(discopop_tau=0.05),
        _metrics={"train": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    out = s(log_probs=None, entropy=z, mean_logits=z, is_top1=z.bool(), log_sum_sq_probs=None)
    inputs = dict(
        input_ids=torch.zeros(n, t, dtype=torch.long),
        attention_mask=torch.ones(n, t, dtype=torch.long),
        completion_mask=cm,
        ref_chosen_logps=ref_c,
        ref_rejected_logps=ref_r,
    )
    return stub, out, inputs


def _trl_step(lp, stub, out, inputs):
    out.log_probs = lp.detach().requires_grad_(True)
    loss = DPOTrainer._compute_loss(stub, lambda **kw: out, inputs, False)
    loss.backward()
    return loss.item(), {k: v[-1] for k, v in stub._metrics["train"].items()}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("b", cases.DPO_SUITE_SIZES)
def test_dpo_loss_step(benchmark, b, loss, impl):
    lp, cm, ref_c, ref_r = inputs.dpo_logps(b, T)
    names, weights = LOSSES[loss]
    size = f"B={b} pairs, T={T}"
    benchmark.group = f"dpo_loss {loss} {size}"
    op = f"dpo_loss {loss} fwd+bwd+metrics"
    stub = _trl_stub(lp, cm, ref_c, ref_r, names, weights)
    want = _trl_step(lp, *stub)
    if impl == "trl":
        tag(benchmark, op=op, size=size, impl="trl (DPOTrainer._compute_loss)", role="reference")
        run(benchmark, _trl_step, lp, *stub)
    else:
        check = impl == "fastalign"
        tag(benchmark, op=op, size=size, impl=impl, role="fastalign" if check else "other")
        got = run(benchmark, _fastalign_step, lp, cm, ref_c, ref_r, names, weights, check)
        assert got[0] == want[0]
        assert all(got[1][k] == want[1][k] for k in got[1])
