"""fastalign.losses.grpo_loss against TRL 1.16.0's own ``GRPOTrainer._compute_loss``.

TRL is driven through a tiny trainer on the CPU whose model forward is replaced
by returning injected per-token log-probs (``fastalign.testing.injected_logps_grpo_trainer``), so
TRL's loss code runs on exact inputs and ``per_token_logps.grad`` is TRL's own autograd gradient.
One trainer serves every configuration (its loss attributes are set per call).

Batches have a fully masked row, a length-1 row, holes in the mask (tool masks), exact-zero
advantages, large log-ratios (|log π − log π_old| up to ~25) and NaN sampler log-probs (tokens
vLLM could not score).

Tolerances:
* float64: ``rtol=1e-9, atol=1e-12`` (scaled by the largest magnitude). Both sides evaluate the
  same element-wise formulas in float64; they differ only in reduction order (fastalign sums in
  order, torch pairwise), libm vs torch's vectorised ``exp``, and the analytic vs autograd
  association of the gradient's products — each a few ulp, far below 1e-9.
* float32: ``rtol=2e-5``, ``atol=1e-6`` × the largest magnitude: element-wise steps are float32 on
  both sides (fastalign's ``exp`` is within 1 ulp of libm), sums are float64 in fastalign and
  float32 cascades in torch (a few ulp of the sum's scale).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import torch
from _profile import examples
from helpers.grpo_loss import GA, SPG, Batch, Cfg, make_batch, run_trl, tolerances, trl_is_ratio
from hypothesis import given, settings
from hypothesis import strategies as st

from fastalign.errors import InvalidArgumentError, InvalidTypeError
from fastalign.losses import LOSS_TYPES, grpo_loss
from fastalign.testing import injected_logps_grpo_trainer

IS_MODES = (None, "token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


@pytest.fixture(scope="module")
def trainer():
    return injected_logps_grpo_trainer(num_generations=2, per_device_train_batch_size=2)


def run_fastalign(trainer, cfg: Cfg, bt: Batch, num_items: int, **kw):
    lp = bt.lp.clone().requires_grad_()
    isr = None if cfg.is_mode is None else trl_is_ratio(bt.old, bt.samp, bt.mask, cfg.is_mode)
    ent_mask = None
    if cfg.entropy_q < 1.0:
        ent_mask = trainer.get_high_entropy_mask(bt.ent, bt.mask, 1 - cfg.entropy_q)
    out = grpo_loss(
        lp, bt.old, bt.adv, bt.mask,
        loss_type=cfg.loss_type, importance_sampling_level=cfg.level, epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high, delta=cfg.delta, beta=cfg.beta,
        ref_per_token_logps=bt.ref if cfg.beta != 0.0 else None, use_bias_correction_kl=cfg.bias_kl,
        importance_sampling_ratio=isr, sampling_per_token_logps=bt.samp, off_policy_mask_threshold=cfg.opsm,
        entropy_mask=ent_mask, num_items_in_batch=num_items, gradient_accumulation_steps=GA,
        steps_per_generation=SPG, max_completion_length=trainer.max_completion_length, **kw,
    )  # fmt: skip
    out.loss.backward()
    return out.loss.detach(), lp.grad, out.metrics()


def assert_parity(trainer, cfg: Cfg, bt: Batch, num_items: int | None = None):
    num_items = int(bt.mask.sum()) + 3 if num_items is None else num_items
    tl, tg, tm = run_trl(trainer, cfg, bt, num_items)
    fl, fg, fm = run_fastalign(trainer, cfg, bt, num_items)
    rtol, atol = tolerances(bt.lp.dtype)
    scale = max(1.0, float(tg.abs().max()), float(tl.abs()))
    torch.testing.assert_close(fl, tl, rtol=rtol, atol=atol * scale, msg=lambda m: f"{cfg} loss: {m}")
    torch.testing.assert_close(fg, tg, rtol=rtol, atol=atol * scale, msg=lambda m: f"{cfg} grad: {m}")
    assert set(fm) == set(tm), (cfg, set(fm) ^ set(tm))
    for k, want in tm.items():
        got = fm[k]
        assert (math.isnan(got) and math.isnan(want)) or math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-7), (
            cfg,
            k,
            got,
            want,
        )


def _matrix():
    for lt, level, mode, beta, delta in itertools.product(
        LOSS_TYPES, ("token", "sequence"), IS_MODES, (0.0, 0.04), (None, 1.5)
    ):
        if lt == "vespo" and mode is not None and mode.startswith("sequence"):
            continue  # TRL's config rejects vespo with sequence-level IS modes
        if delta is not None and lt not in ("grpo", "bnpo", "dr_grpo", "dapo", "luspo"):
            continue  # delta only affects the PPO family; covered once below
        yield Cfg(loss_type=lt, level=level, is_mode=mode, beta=beta, delta=delta)


MATRIX = list(_matrix())


@pytest.mark.parametrize("cfg", MATRIX, ids=lambda c: f"{c.loss_type}-{c.level}-{c.is_mode}-b{c.beta}-d{c.delta}")
def test_matrix_float64(trainer, cfg):
    assert_parity(trainer, cfg, make_batch(hash(cfg) % 1000))


EXTRA = [
    Cfg(loss_type="cispo", epsilon_high=5.0),
    Cfg(loss_type="cispo", epsilon_high=None),  # the 0.2 cap pitfall
    Cfg(loss_type="sapo", delta=1.5),
    Cfg(loss_type="dapo", opsm=0.05),
    Cfg(loss_type="grpo", level="sequence", opsm=0.0, is_mode="sequence_mask"),
    Cfg(loss_type="vespo", opsm=0.05, is_mode="token_mask"),
    Cfg(loss_type="dapo", beta=0.1, bias_kl=False),
    Cfg(loss_type="grpo", level="sequence", beta=0.1, bias_kl=False),
    Cfg(loss_type="dapo", entropy_q=0.2),
    Cfg(loss_type="luspo", level="sequence", entropy_q=0.5, beta=0.02),
    Cfg(loss_type="dapo", epsilon=0.0, epsilon_high=0.0),
    Cfg(loss_type="grpo", epsilon=3e-4, epsilon_high=4e-4, level="sequence"),  # GSPO recipe
]


@pytest.mark.parametrize("cfg", EXTRA, ids=repr)
def test_extra_configs_float64(trainer, cfg):
    assert_parity(trainer, cfg, make_batch(7))


@pytest.mark.parametrize("lt", LOSS_TYPES)
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_float32(trainer, lt, level):
    cfg = Cfg(loss_type=lt, level=level, beta=0.04, is_mode="token_truncate")
    assert_parity(trainer, cfg, make_batch(11, b=8, t=33, dtype=torch.float32))


@pytest.mark.parametrize("lt", ["dapo", "grpo", "vespo"])
def test_per_token_advantages(trainer, lt):
    bt = make_batch(3)
    bt = replace(bt, adv=torch.randn(bt.lp.shape, dtype=bt.lp.dtype, generator=torch.Generator().manual_seed(5)))
    assert_parity(trainer, Cfg(loss_type=lt, beta=0.04), bt)
    assert_parity(trainer, Cfg(loss_type=lt, level="sequence"), bt)


def test_single_column(trainer):
    """T == 1: TRL's metrics treat (B, 1) tensors as per-sequence values (unmasked)."""
    for lt in ("dapo", "grpo", "cispo", "vespo"):
        assert_parity(trainer, Cfg(loss_type=lt, beta=0.04), make_batch(2, b=5, t=1, spread=0.5))
    # vespo folds a (B, 1) token-mode IS ratio into phi (found by hypothesis)
    assert_parity(
        trainer, Cfg(loss_type="vespo", is_mode="token_mask", opsm=0.05), make_batch(2, b=2, t=1, spread=0.01)
    )


@settings(max_examples=examples(60))
@given(
    cfg=st.sampled_from(MATRIX + EXTRA),
    b=st.integers(1, 9),
    t=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
    spread=st.sampled_from([0.01, 0.3, 3.0]),
)
def test_hypothesis_batches(trainer, cfg, b, t, seed, spread):
    assert_parity(trainer, cfg, make_batch(seed, b=b, t=t, spread=spread))


def test_eval_mode_normalisers(trainer):
    """training=False: no GA scaling, dapo divides by num_items / P only (TRL's eval branch)."""
    bt = make_batch(9)
    for lt in ("dapo", "grpo", "bnpo"):
        cfg = Cfg(loss_type=lt)
        trainer.model.eval()
        try:
            trainer.loss_type = lt
            trainer.importance_sampling_level = "token"
            trainer.beta = 0.0
            trainer.use_vllm = False
            trainer.off_policy_mask_threshold = None
            trainer.top_entropy_quantile = 1.0
            trainer.args.delta = None
            trainer.epsilon_low, trainer.epsilon_high = 0.2, 0.28
            lp = bt.lp.clone().requires_grad_()
            trainer.injected = (lp, bt.ent)
            inputs = {
                "prompt_ids": torch.zeros(bt.lp.shape[0], 2, dtype=torch.long),
                "prompt_mask": torch.ones(bt.lp.shape[0], 2, dtype=torch.long),
                "completion_ids": torch.zeros(bt.lp.shape, dtype=torch.long),
                "completion_mask": bt.mask,
                "advantages": bt.adv,
                "num_items_in_batch": torch.tensor(17),
                "old_per_token_logps": bt.old,
            }
            want = trainer._compute_loss(trainer.model, inputs)
        finally:
            trainer.model.train()
        got = grpo_loss(bt.lp, bt.old, bt.adv, bt.mask, loss_type=lt, epsilon_high=0.28, num_items_in_batch=17,
                        gradient_accumulation_steps=GA, training=False).loss  # fmt: skip
        torch.testing.assert_close(got, want.detach(), rtol=1e-9, atol=1e-12, msg=lambda m, cfg=cfg: f"{cfg}: {m}")


def test_old_logps_none_is_on_policy():
    """old=None is TRL's per_token_logps.detach(): ratio 1, gradient -A/normaliser per token."""
    bt = make_batch(1)
    a = grpo_loss(bt.lp, None, bt.adv, bt.mask)
    b = grpo_loss(bt.lp, bt.lp, bt.adv, bt.mask)
    torch.testing.assert_close(a.loss, b.loss, rtol=0, atol=0)


def test_gspo_token_value_and_gradient():
    """GSPO-token (GSPO paper; TRL ≤1.9 `sequence_token`): same value as "sequence", per-token
    gradient sg[s_i]·(∂ loss/∂ coef)·… — checked against autograd of the paper's formula."""
    bt = make_batch(4, spread=0.05, extreme=False)
    for lt in ("grpo", "dapo", "bnpo", "dr_grpo"):
        kw = dict(loss_type=lt, epsilon_high=0.28, max_completion_length=32, num_items_in_batch=20)
        seq = grpo_loss(bt.lp, bt.old, bt.adv, bt.mask, importance_sampling_level="sequence", **kw).loss
        lp = bt.lp.clone().requires_grad_()
        tok = grpo_loss(lp, bt.old, bt.adv, bt.mask, importance_sampling_level="sequence_token", **kw)
        torch.testing.assert_close(tok.loss.detach(), seq, rtol=1e-12, atol=1e-14)
        tok.loss.backward()
        # reference: the formula of TRL v1.9's experimental GSPO-token trainer, through autograd
        x = bt.lp.clone().requires_grad_()
        m = bt.mask.to(x.dtype)
        s = (((x - bt.old) * m).sum(-1) / m.sum(-1).clamp(min=1.0)).detach().unsqueeze(-1)
        coef = torch.exp(x - x.detach() + s)
        c2 = torch.clamp(coef, 0.8, 1.28)
        a = bt.adv.unsqueeze(1)
        pt = -torch.min(coef * a, c2 * a)
        if lt == "grpo":
            ref = ((pt * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
        elif lt == "bnpo":
            ref = (pt * m).sum() / m.sum().clamp(min=1.0)
        elif lt == "dr_grpo":
            ref = (pt * m).sum() / (pt.size(0) * 32)
        else:
            ref = (pt * m).sum() / 20
        ref.backward()
        torch.testing.assert_close(lp.grad, x.grad, rtol=1e-10, atol=1e-14)


def test_bf16_inputs_compute_in_float32():
    bt = make_batch(6, dtype=torch.float32)
    lp16 = bt.lp.to(torch.bfloat16).requires_grad_()
    out = grpo_loss(lp16, bt.old, bt.adv, bt.mask)
    want = grpo_loss(lp16.detach().float(), bt.old, bt.adv, bt.mask)
    assert out.loss.dtype == torch.float32
    torch.testing.assert_close(out.loss.detach(), want.loss)
    out.loss.backward()
    assert lp16.grad.dtype == torch.bfloat16


def test_inputs_not_modified():
    bt = make_batch(8)
    copies = [x.clone() for x in (bt.lp, bt.old, bt.adv, bt.mask, bt.ref)]
    lp = bt.lp.requires_grad_()
    grpo_loss(lp, bt.old, bt.adv, bt.mask, beta=0.1, ref_per_token_logps=bt.ref).loss.backward()
    for a, b in zip((bt.lp, bt.old, bt.adv, bt.mask, bt.ref), copies):
        assert torch.equal(a.detach(), b)


# ---------------------------------------------------------------------------------------------
# bad input


def test_bad_input():
    bt = make_batch(0)
    lp, old, adv, m = bt.lp, bt.old, bt.adv, bt.mask
    cases = [
        (dict(per_token_logps=lp[:, :3].contiguous()), InvalidArgumentError, "old_per_token_logps"),
        (dict(mask=m[:, :3].contiguous()), InvalidArgumentError, "mask"),
        (dict(advantages=adv[:3]), InvalidArgumentError, "advantages"),
        (dict(old_per_token_logps=old.float()), InvalidTypeError, "old_per_token_logps"),
        (dict(per_token_logps=lp.long()), InvalidTypeError, "per_token_logps"),
        (dict(per_token_logps=lp.t()), InvalidArgumentError, "per_token_logps"),
        (dict(per_token_logps=lp.numpy()), InvalidTypeError, "per_token_logps"),
        (dict(loss_type="ppo"), InvalidArgumentError, "loss_type"),
        (dict(importance_sampling_level="seq"), InvalidArgumentError, "importance_sampling_level"),
        (dict(beta=0.1), InvalidArgumentError, "ref_per_token_logps"),
        (dict(loss_type="dr_grpo"), InvalidArgumentError, "max_completion_length"),
        (dict(epsilon=float("nan")), InvalidArgumentError, "epsilon"),
        (dict(loss_type="vespo", importance_sampling_ratio=torch.ones(6, 1, dtype=lp.dtype)), InvalidArgumentError,
         "importance_sampling_ratio"),
        (dict(entropy_mask=m), InvalidTypeError, "entropy_mask"),
        (dict(gradient_accumulation_steps=0), InvalidArgumentError, "gradient_accumulation_steps"),
    ]  # fmt: skip
    base = dict(per_token_logps=lp, old_per_token_logps=old, advantages=adv, mask=m)
    for change, exc, name in cases:
        kw = {**base, **change}
        args = [kw.pop(k) for k in ("per_token_logps", "old_per_token_logps", "advantages", "mask")]
        with pytest.raises(exc) as e:
            grpo_loss(*args, **kw)
        assert e.value.argument == name, (change, e.value)


@pytest.mark.parametrize("device_path", ["rust", "torch"])
def test_nan_logps_raise(device_path):
    from fastalign import _torch_backend as _torch_losses

    bt = make_batch(0)
    lp = bt.lp.clone()
    lp[2, 3] = math.nan
    if device_path == "rust":
        with pytest.raises(InvalidArgumentError, match="per_token_logps"):
            grpo_loss(lp, bt.old, bt.adv, bt.mask)
    else:
        with pytest.raises(InvalidArgumentError, match="per_token_logps"):
            _torch_losses.grpo_loss(
                lp,
                bt.old,
                bt.adv,
                bt.mask,
                None,
                None,
                None,
                None,
                None,
                "dapo",
                "token",
                0.2,
                0.2,
                None,
                0.0,
                True,
                None,
                1.0,
                1.05,
                2.0,
                3.0,
                3.0,
                2.0,
                1.0,
                None,
                None,
                True,
            )
    old = bt.old.clone()
    old[0, 0] = math.nan
    with pytest.raises(InvalidArgumentError, match="old_per_token_logps"):
        grpo_loss(bt.lp, old, bt.adv, bt.mask)


def test_bad_cu_seqlens():
    lp = torch.zeros(10, dtype=torch.float64)
    adv = torch.zeros(3, dtype=torch.float64)
    m = torch.ones(10, dtype=torch.long)
    for cu, msg in [
        ([0, 5, 4, 10], "non-decreasing"),
        ([0, 5, 7, 9], "end at"),
        ([1, 5, 7, 10], "start at 0"),
    ]:
        with pytest.raises(InvalidArgumentError, match=msg) as e:
            grpo_loss(lp, None, adv, m, cu_seqlens=torch.tensor(cu))
        assert e.value.argument == "cu_seqlens"
    with pytest.raises(InvalidTypeError):
        grpo_loss(lp, None, adv, m, cu_seqlens=torch.tensor([0.0, 10.0]))


@pytest.mark.parametrize("level, lt", [("token", "dapo"), ("sequence", "grpo"), ("sequence_token", "bnpo")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mask_dtypes_and_weights_agree(level, lt, dtype):
    """Every mask dtype the kernels read (each its own variant, picked from the array's dtype)
    gives the same loss, gradient and metrics on the vectorised fast paths (rows longer than one
    16-token block plus a tail), and an integer mask with weights other than 0/1 equals the same
    weights as floats."""
    bt = make_batch(11, b=5, t=37, dtype=dtype, extreme=False)
    kw = dict(loss_type=lt, importance_sampling_level=level, epsilon_high=0.28)

    def run(mask):
        lp = bt.lp.clone().requires_grad_()
        out = grpo_loss(lp, bt.old, bt.adv, mask, **kw)
        out.loss.backward()
        return out.loss.detach(), lp.grad, out.raw_metrics

    want = run(bt.mask.to(torch.float64))
    for mdt in (torch.bool, torch.int32, torch.int64, torch.float32):
        for w, g in zip(run(bt.mask.to(mdt)), want):
            torch.testing.assert_close(w, g, rtol=0, atol=0, equal_nan=True)
    weights = bt.mask * torch.randint(1, 4, bt.mask.shape, generator=torch.Generator().manual_seed(3))
    want = run(weights.to(torch.float64))
    for mdt in (torch.int32, torch.int64, torch.float32):
        for w, g in zip(run(weights.to(mdt)), want):
            torch.testing.assert_close(w, g, rtol=0, atol=0, equal_nan=True)


def test_native_mask_of_another_dtype_is_a_type_error():
    """The kernels' mask argument rejects dtypes they do not read (the Python layer validates
    first; this is the binding's own check)."""
    import numpy as np

    from fastalign import _native, ops

    x = np.zeros(8, np.float32)
    config = ops._LossConfig("dapo", "token", 0.2, 0.2, None, 0.0, True, None, 1.0, 1.05, 2.0, 3.0, 3.0, 2.0, 1.0,
                             None, None, False, False)  # fmt: skip
    with pytest.raises(TypeError):
        _native.grpo_loss_f32((x, None, np.zeros(2, np.float32), np.ones(8, np.uint8), None, None, None, None), 2, None,
                              config, None)  # fmt: skip
