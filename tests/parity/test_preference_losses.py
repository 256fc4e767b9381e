"""dpo_loss / cpo_loss / dft_loss / wpo_weights against TRL 1.16.0's own trainer code.

TRL 1.16 has no stand-alone DPO loss function: the loss is inlined in
``DPOTrainer._compute_loss``. The drivers (``tests/helpers/trl_preference.py``) call TRL's
*unbound* trainer methods on a small stub ``self`` whose model returns chosen per-token
log-probs:

* DPO: ``DPOTrainer._compute_loss`` (precomputed-reference path) — loss, gradients w.r.t. the
  per-token log-probs, and the logged ``rewards/*``/``logps/*`` metrics;
* CPO: ``CPOTrainer.get_batch_loss_metrics`` with ``concatenated_forward`` returning chosen
  sequence log-probs and NLL, so TRL's own ``cpo_loss`` and total-loss line run;
* DFT: ``SFTTrainer.compute_loss`` with ``args.loss_type = "dft"``.

``test_real_*`` then run the real trainers (tiny random Qwen2 on the CPU, no stubs) once each,
so the stubbed paths cannot drift from what a trainer does.

Tolerances: both sides run the same torch kernels in the same order on the same machine, so the
losses, metrics and gradients are compared **bit for bit** (``rtol = atol = 0``, NaN == NaN for
TRL's own NaN cases, e.g. DiscoPOP's ``inf * 0``). The only exceptions are stated where they
occur: the real-trainer checks, where fastalign is fed log-probs from a second forward pass of
the same model (same kernels, so again exact), and the float64 f-divergence/EXO cases noted in
the tests.
"""

from __future__ import annotations

import math
import os
import types

import pytest
import torch
from _profile import examples
from helpers.trl_preference import trl_cpo, trl_dft, trl_dpo
from hypothesis import given, settings
from hypothesis import strategies as st

from fastalign.errors import FastalignError, InvalidArgumentError, InvalidTypeError
from fastalign.losses import (
    CPO_LOSS_TYPES,
    DPO_LOSS_TYPES,
    F_DIVERGENCE_TYPES,
    cpo_loss,
    dft_loss,
    dpo_loss,
    wpo_weights,
)

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # importing trl.experimental.cpo warns otherwise
S = types.SimpleNamespace
# examples per hypothesis test: small by default (the file runs in under a minute), x40 under
# FASTALIGN_HYPOTHESIS_PROFILE=long like the rest of the suite
EXACT = dict(rtol=0.0, atol=0.0, equal_nan=True)


# ------------------------------------------------------------------------------------------
# inputs


@st.composite
def dpo_batches(draw, dtype=torch.float32, min_len=0):
    """(per-token log-probs (2B, T-1) zero off the mask, completion mask (2B, T), ref_c, ref_r,
    log_sum_sq_probs). Scales go from tiny to extreme log-ratios (|beta * delta| in the hundreds)."""
    b = draw(st.integers(1, 6))
    t = draw(st.integers(2, 9))
    seed = draw(st.integers(0, 2**31 - 1))
    token_scale = draw(st.sampled_from([1e-4, 0.5, 3.0, 40.0]))
    ref_offset = draw(st.sampled_from([0.0, 1e-3, 1.0, 30.0, 3000.0]))
    g = torch.Generator().manual_seed(seed)
    # completion mask: a prompt prefix, then completion tokens, then padding (lengths may be 0 or full)
    cm = torch.zeros(2 * b, t, dtype=torch.long)
    for i in range(2 * b):
        start = int(torch.randint(0, t, (1,), generator=g))
        stop = int(torch.randint(start, t + 1, (1,), generator=g))
        if stop - start < min_len:
            start, stop = 0, t
        cm[i, start:stop] = 1
    shift = cm[:, 1:]
    lp = (-torch.rand(2 * b, t - 1, generator=g, dtype=torch.float64) * token_scale).to(dtype) * shift
    lp_sum = lp.sum(1)
    ref = lp_sum.to(torch.float64) + torch.randn(2 * b, generator=g, dtype=torch.float64) * ref_offset
    ref = ref.to(dtype)
    if draw(st.booleans()):  # exact ties between policy and reference for some rows
        ties = torch.rand(2 * b, generator=g) < 0.3
        ref = torch.where(ties, lp_sum, ref)
    lssp = (-torch.rand(2 * b, t - 1, generator=g, dtype=torch.float64) * 2.0).to(dtype)
    return lp, cm, ref[:b].contiguous(), ref[b:].contiguous(), lssp


def ours_dpo(
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
    """fastalign's dpo_loss fed the way a FastDPOTrainer would feed it."""
    b = cm.shape[0] // 2
    shift = cm[:, 1:]
    c, r = lp.sum(1).chunk(2)
    lengths = cm.sum(1)
    kw = {}
    if lssp is not None:
        cw, rw = wpo_weights(lp, lssp, shift).chunk(2)
        kw.update(chosen_weights=cw, rejected_weights=rw)
    return dpo_loss(
        c,
        r,
        ref_c,
        ref_r,
        loss_type=list(loss_type),
        loss_weights=loss_weights,
        beta=beta,
        label_smoothing=eps,
        discopop_tau=tau,
        f_divergence_type=fdiv,
        f_alpha_divergence_coef=fa,
        chosen_lengths=lengths[:b],
        rejected_lengths=lengths[b:],
        chosen_token_logps=lp[:b],
        chosen_token_mask=shift[:b],
        **kw,
    )


def _eps_for(types_):
    if "exo_pair" in types_:
        return st.sampled_from([1e-3, 0.1, 0.49])
    if "robust" in types_:
        return st.sampled_from([0.0, 0.1, 0.3, 0.49])
    return st.sampled_from([0.0, 0.1, 0.5, 1.0])


def check_dpo(batch, **cfg):
    lp, cm, ref_c, ref_r, lssp = batch
    if not cfg.pop("wpo", False):
        lssp = None
    a = lp.clone().requires_grad_(True)
    b = lp.clone().requires_grad_(True)
    theirs, their_metrics = trl_dpo(a, cm, ref_c, ref_r, lssp=lssp, **cfg)
    ours = ours_dpo(b, cm, ref_c, ref_r, lssp=lssp, **cfg)
    torch.testing.assert_close(ours.loss, theirs, **EXACT)
    assert ours.loss.dtype == theirs.dtype
    if theirs.requires_grad and torch.isfinite(theirs):
        if cfg.get("loss_type") == ("hinge",) and lssp is not None:
            # TRL bug: `per_sequence_loss *= weights` writes into relu's saved output, so TRL's
            # hinge + use_weighting cannot backpropagate. Check ours against a restatement.
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                theirs.backward()
            c, r = b.sum(1).chunk(2)
            cw, rw = wpo_weights(lp, lssp, cm[:, 1:]).chunk(2)
            beta = cfg.get("beta", 0.1)
            expected = (torch.relu(1 - beta * ((c - ref_c) - (r - ref_r))) * (cw * rw)).mean()
            (want,) = torch.autograd.grad(expected, b)
            ours.loss.backward()
            torch.testing.assert_close(b.grad, want, **EXACT)
        else:
            theirs.backward()
            ours.loss.backward()
            torch.testing.assert_close(b.grad, a.grad, **EXACT)
    mine = ours.metrics()
    for key, value in mine.items():
        assert (value == their_metrics[key]) or (math.isnan(value) and math.isnan(their_metrics[key])), key
    return ours


# ------------------------------------------------------------------------------------------
# DPO parity


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("loss_type", DPO_LOSS_TYPES)
@settings(max_examples=examples(25, cells=2 * len(DPO_LOSS_TYPES)))
@given(data=st.data())
def test_dpo_each_loss_type_matches_trl(loss_type, dtype, data):
    batch = data.draw(dpo_batches(dtype, min_len=1 if loss_type == "sft" else 0))
    check_dpo(
        batch,
        loss_type=(loss_type,),
        beta=data.draw(st.sampled_from([1e-3, 0.1, 2.5])),
        eps=data.draw(_eps_for([loss_type])),
        tau=data.draw(st.sampled_from([0.05, 1.0])),
    )


@pytest.mark.parametrize("fdiv", F_DIVERGENCE_TYPES[1:])
@pytest.mark.parametrize("loss_type", ["sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop"])
@settings(max_examples=examples(10, cells=7 * (len(F_DIVERGENCE_TYPES) - 1)))
@given(data=st.data())
def test_dpo_f_divergences_match_trl(loss_type, fdiv, data):
    # float32 only: TRL's alpha_divergence has no float64 clamp bound (KeyError), see the f64 test below
    batch = data.draw(dpo_batches(torch.float32))
    fa = data.draw(st.sampled_from([0.5, 0.3, 1.0, 1.5])) if fdiv == "alpha_divergence" else 0.5
    check_dpo(batch, loss_type=(loss_type,), fdiv=fdiv, fa=fa, eps=data.draw(_eps_for([loss_type])))


def test_dpo_alpha_divergence_float64_is_an_extension():
    """TRL raises KeyError for float64 scores; fastalign computes them in float64 with TRL's
    float32 clamp bound, which agrees with TRL's float32 result to float32 precision."""
    lp, cm, ref_c, ref_r, _ = _fixed_batch(torch.float64)
    with pytest.raises(KeyError):
        trl_dpo(lp, cm, ref_c, ref_r, fdiv="alpha_divergence", fa=0.5)
    ours = ours_dpo(lp, cm, ref_c, ref_r, fdiv="alpha_divergence", fa=0.5)
    lp32, ref_c32, ref_r32 = lp.float(), ref_c.float(), ref_r.float()
    theirs32, _ = trl_dpo(lp32, cm, ref_c32, ref_r32, fdiv="alpha_divergence", fa=0.5)
    torch.testing.assert_close(ours.loss.float(), theirs32, rtol=1e-5, atol=1e-6)


@settings(max_examples=examples(30))
@given(data=st.data())
def test_dpo_several_loss_types_with_weights_match_trl(data):
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    k = data.draw(st.integers(1, 4))
    names = data.draw(st.lists(st.sampled_from(DPO_LOSS_TYPES), min_size=k, max_size=k))
    weights = data.draw(st.lists(st.sampled_from([1.0, 0.8, 0.2, 0.005, -0.5, 0.0]), min_size=k, max_size=k))
    batch = data.draw(dpo_batches(dtype, min_len=1 if "sft" in names else 0))
    check_dpo(
        batch,
        loss_type=tuple(names),
        loss_weights=weights,
        beta=data.draw(st.sampled_from([0.01, 0.1])),
        eps=data.draw(_eps_for(names)),
    )


@pytest.mark.parametrize(
    "names, weights",
    [(("sigmoid", "sft"), [1.0, 0.005]), (("sigmoid", "bco_pair", "sft"), [0.8, 0.2, 1.0]), (("sigmoid",), None)],
    ids=["rpo", "mpo", "dpo"],
)
def test_dpo_paper_presets_match_trl(names, weights):
    check_dpo(_fixed_batch(torch.float32), loss_type=names, loss_weights=weights, beta=0.01)


@pytest.mark.parametrize("loss_type", [t for t in DPO_LOSS_TYPES if t not in ("aot", "aot_unpaired", "sft")])
@settings(max_examples=examples(10, cells=len(DPO_LOSS_TYPES) - 3))
@given(data=st.data())
def test_dpo_wpo_weighting_matches_trl(loss_type, data):
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    batch = data.draw(dpo_batches(dtype))
    check_dpo(batch, loss_type=(loss_type,), eps=data.draw(_eps_for([loss_type])), wpo=True)


def test_dpo_wpo_with_sft_fails_in_trl_and_is_refused_here():
    lp, cm, ref_c, ref_r, lssp = _fixed_batch(torch.float32)
    with pytest.raises(RuntimeError, match="more than one element"):
        trl_dpo(lp, cm, ref_c, ref_r, loss_type=("sigmoid", "sft"), lssp=lssp)
    with pytest.raises(InvalidArgumentError, match="sft"):
        ours_dpo(lp, cm, ref_c, ref_r, loss_type=("sigmoid", "sft"), lssp=lssp)


def test_dpo_per_type_losses_and_rewards():
    lp, cm, ref_c, ref_r, _ = _fixed_batch(torch.float64)
    out = ours_dpo(lp, cm, ref_c, ref_r, loss_type=("sigmoid", "hinge"), loss_weights=[0.3, 0.7], beta=0.2)
    c, r = lp.sum(1).chunk(2)
    delta = (c - ref_c) - (r - ref_r)
    torch.testing.assert_close(out.losses[0], -torch.nn.functional.logsigmoid(0.2 * delta))
    torch.testing.assert_close(out.losses[1], torch.relu(1 - 0.2 * delta))
    torch.testing.assert_close(out.loss, 0.3 * out.losses[0].mean() + 0.7 * out.losses[1].mean())
    torch.testing.assert_close(out.chosen_rewards, 0.2 * (c - ref_c))
    assert out.loss_types == ("sigmoid", "hinge")
    assert not out.chosen_rewards.requires_grad


def test_dpo_unknown_loss_type_message_lists_trl_names():
    lp, cm, ref_c, ref_r, _ = _fixed_batch(torch.float32)
    with pytest.raises(ValueError) as theirs:
        trl_dpo(lp, cm, ref_c, ref_r, loss_type=("kto_pair",))
    with pytest.raises(InvalidArgumentError) as ours:
        ours_dpo(lp, cm, ref_c, ref_r, loss_type=("kto_pair",))
    assert ours.value.argument == "loss_type"
    for name in DPO_LOSS_TYPES:
        assert repr(name) in str(theirs.value) and repr(name) in str(ours.value)


# ------------------------------------------------------------------------------------------
# CPO parity


@pytest.mark.parametrize("loss_type", CPO_LOSS_TYPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@settings(max_examples=examples(25, cells=2 * len(CPO_LOSS_TYPES)))
@given(data=st.data())
def test_cpo_matches_trl(loss_type, dtype, data):
    b = data.draw(st.integers(1, 8))
    averaged = loss_type in ("ipo", "simpo", "alphapo")
    # averaged log-probs are per-token (small); summed ones can be large; include near-zero ones
    scale = data.draw(st.sampled_from([1e-4, 0.3, 3.0] if averaged else [1e-4, 1.0, 30.0, 300.0]))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    c = (-torch.rand(b, generator=g, dtype=torch.float64) * scale).to(dtype)
    r = (-torch.rand(b, generator=g, dtype=torch.float64) * scale).to(dtype)
    if data.draw(st.booleans()):
        r = torch.where(torch.rand(b, generator=g) < 0.4, c, r)  # ties
    nll = (torch.rand((), generator=g, dtype=torch.float64) * 3).to(dtype)
    beta = data.draw(st.sampled_from([0.1, 2.5, 10.0]))
    eps = data.draw(st.sampled_from([0.0, 0.1, 0.5]))
    gamma = data.draw(st.sampled_from([0.5, 1.375, 0.1, -0.2]))
    alpha = data.draw(st.sampled_from([0.0, 0.25, -0.5, 1.0]))
    cpo_alpha = data.draw(st.sampled_from([1.0, 0.0, 0.3]))
    # CPOConfig.__post_init__ turns "alphapo" into "simpo" with cpo_alpha = 0
    trl_type, trl_cpo_alpha = ("simpo", 0.0) if loss_type == "alphapo" else (loss_type, cpo_alpha)

    ca, ra, na = (x.clone().requires_grad_(True) for x in (c, r, nll))
    cb, rb, nb = (x.clone().requires_grad_(True) for x in (c, r, nll))
    theirs, their_metrics = trl_cpo(
        ca, ra, loss_type=trl_type, beta=beta, eps=eps, gamma=gamma, alpha=alpha, cpo_alpha=trl_cpo_alpha, nll=na
    )
    ours = cpo_loss(
        cb,
        rb,
        loss_type=loss_type,
        beta=beta,
        label_smoothing=eps,
        simpo_gamma=gamma,
        alpha=alpha,
        cpo_alpha=cpo_alpha,
        chosen_nll=nb,
    )
    torch.testing.assert_close(ours.loss, theirs, **EXACT)
    mine = ours.metrics()
    for key, value in mine.items():
        assert (value == their_metrics[key]) or (math.isnan(value) and math.isnan(their_metrics[key])), key
    if torch.isfinite(theirs):
        theirs.backward()
        ours.loss.backward()
        torch.testing.assert_close(cb.grad, ca.grad, **EXACT)
        torch.testing.assert_close(rb.grad, ra.grad, **EXACT)
        if trl_cpo_alpha != 0:
            torch.testing.assert_close(nb.grad, na.grad, **EXACT)


def test_cpo_alphapo_sugar_is_cpoconfigs(tmp_path):
    from trl.experimental.cpo import CPOConfig

    cfg = CPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to=[],
        loss_type="alphapo",
        alpha=0.25,
        beta=2.5,
        simpo_gamma=0.1,
        cpo_alpha=1.0,
    )
    assert (cfg.loss_type, cfg.cpo_alpha) == ("simpo", 0.0)
    c, r = torch.tensor([-0.9, -1.2]), torch.tensor([-1.1, -1.0])
    a = cpo_loss(c, r, loss_type="alphapo", alpha=0.25, beta=2.5, simpo_gamma=0.1, cpo_alpha=1.0)
    b = cpo_loss(c, r, loss_type="simpo", alpha=0.25, beta=2.5, simpo_gamma=0.1, cpo_alpha=0.0)
    torch.testing.assert_close(a.loss, b.loss, **EXACT)
    assert a.metrics()["nll_loss"] == 0.0


def test_cpo_requires_nll_when_cpo_alpha_is_set():
    c, r = torch.tensor([-0.9, -1.2]), torch.tensor([-1.1, -1.0])
    with pytest.raises(InvalidArgumentError) as info:
        cpo_loss(c, r)  # CPOConfig's default cpo_alpha is 1.0
    assert info.value.argument == "chosen_nll"
    cpo_loss(c, r, cpo_alpha=0.0)


# ------------------------------------------------------------------------------------------
# DFT parity


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@settings(max_examples=examples(30, cells=2))
@given(data=st.data())
def test_dft_matches_trl(dtype, data):
    n, t = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 12))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    mask = torch.rand(n, t, generator=g) < data.draw(st.sampled_from([0.0, 0.3, 0.9, 1.0]))
    scale = data.draw(st.sampled_from([1e-6, 1.0, 20.0, 200.0]))
    lp = (-torch.rand(n, t, generator=g, dtype=torch.float64) * scale).to(dtype) * mask
    mode = data.draw(st.sampled_from(["none", "int", "tensor"]))
    procs = data.draw(st.sampled_from([1, 4]))
    avg = data.draw(st.booleans())
    count = int(mask.sum()) + data.draw(st.integers(0, 40))
    nib = None if mode == "none" else count if mode == "int" else torch.tensor(count)
    a, b = lp.clone().requires_grad_(True), lp.clone().requires_grad_(True)
    theirs = trl_dft(a, mask, num_items_in_batch=nib, average_tokens_across_devices=avg, num_processes=procs)
    ours = dft_loss(b, mask, num_items_in_batch=nib, num_processes=procs if avg else 1)
    torch.testing.assert_close(ours, theirs, **EXACT)
    theirs.backward()
    ours.backward()
    # TRL's injected log-probs also receive -1/N at ignored positions (the fused head drops them);
    # fastalign gives those positions 0: compare on the label tokens only.
    torch.testing.assert_close(b.grad[mask], a.grad[mask], **EXACT)
    assert (b.grad[~mask] == 0).all()


def test_dft_gradient_is_minus_p_over_n():
    lp = torch.log(torch.tensor([[0.5, 0.25, 1.0], [0.1, 0.9, 0.3]], dtype=torch.float64)).requires_grad_(True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 1]])
    dft_loss(lp, mask).backward()
    expected = -lp.detach().exp() * mask / 4
    torch.testing.assert_close(lp.grad, expected)


# ------------------------------------------------------------------------------------------
# real trainers (no stubs): tiny random Qwen2 on the CPU


def _words_dataset():
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": ["what is 1 + 1 ?", "what is 2 + 3 ?", "a b c", "what is"],
            "chosen": ["the answer is 2", "5", "d e f g h", "the answer"],
            "rejected": ["3", "the answer is 6 6", "d", "a b c d e f"],
        }
    )


@pytest.mark.parametrize(
    "loss_type, weights", [(["sigmoid", "sft"], [1.0, 0.5]), (["ipo"], None), (["apo_zero", "discopop"], [0.5, 2.0])]
)
def test_real_dpo_trainer(loss_type, weights, tmp_path):
    from trl import DPOConfig, DPOTrainer

    from fastalign.testing import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    args = DPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to=[],
        per_device_train_batch_size=4,
        loss_type=loss_type,
        loss_weights=weights,
        beta=0.3,
        save_strategy="no",
        gradient_checkpointing=False,
        disable_tqdm=True,
    )
    trainer = DPOTrainer(
        model=tiny_model(tok, seed=1),
        ref_model=tiny_model(tok, seed=2),
        args=args,
        train_dataset=_words_dataset(),
        processing_class=tok,
    )
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    theirs = trainer.compute_loss(trainer.model, batch)
    their_metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    theirs.backward()
    their_grads = [p.grad.clone() for p in trainer.model.parameters()]
    trainer.model.zero_grad()

    cm = batch["completion_mask"]
    labels = batch["input_ids"].masked_fill(cm == 0, -100)
    kw = dict(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        use_cache=False,
        labels=labels,
        fused_lm_head=True,
    )
    lp = trainer.model(**kw).log_probs
    with torch.no_grad():
        ref_lp = trainer.ref_model(**kw).log_probs
    b = cm.shape[0] // 2
    c, r = lp.sum(1).chunk(2)
    rc, rr = ref_lp.sum(1).chunk(2)
    lengths = cm.sum(1)
    ours = dpo_loss(
        c,
        r,
        rc,
        rr,
        loss_type=loss_type,
        loss_weights=weights,
        beta=0.3,
        chosen_lengths=lengths[:b],
        rejected_lengths=lengths[b:],
        chosen_token_logps=lp[:b],
        chosen_token_mask=cm[:b, 1:],
    )
    torch.testing.assert_close(ours.loss, theirs, **EXACT)
    ours.loss.backward()
    for p, g in zip(trainer.model.parameters(), their_grads):
        torch.testing.assert_close(p.grad, g, **EXACT)
    for key, value in ours.metrics().items():
        assert value == their_metrics[key], key


def test_real_sft_trainer_dft(tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from fastalign.testing import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    ds = Dataset.from_dict(
        {"prompt": ["what is 1 + 1 ?", "a b", "what is"], "completion": ["2", "c d e", "the answer"]}
    )
    args = SFTConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to=[],
        per_device_train_batch_size=3,
        loss_type="dft",
        save_strategy="no",
        gradient_checkpointing=False,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(model=tiny_model(tok, seed=3), args=args, train_dataset=ds, processing_class=tok)
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    for nib in (None, torch.tensor(11)):
        theirs = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=nib)
        theirs.backward()
        their_grads = [p.grad.clone() for p in trainer.model.parameters()]
        trainer.model.zero_grad()
        out = trainer.model(**{**batch, "use_cache": False}, fused_lm_head=True)
        ours = dft_loss(out.log_probs, out.label_mask, num_items_in_batch=nib)
        torch.testing.assert_close(ours, theirs, **EXACT)
        ours.backward()
        for p, g in zip(trainer.model.parameters(), their_grads):
            torch.testing.assert_close(p.grad, g, **EXACT)
        trainer.model.zero_grad()


# ------------------------------------------------------------------------------------------
# gradcheck (float64)


def _fixed_batch(dtype, b=3, t=6):
    g = torch.Generator().manual_seed(7)
    cm = torch.tensor(
        [
            [0, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 1],
            [1, 1, 1, 0, 0, 0],
            [0, 1, 1, 0, 0, 0],
            [0, 0, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1],
        ]
    )[: 2 * b, :t]
    lp = (-torch.rand(2 * b, t - 1, generator=g, dtype=torch.float64) * 2).to(dtype) * cm[:, 1:]
    ref = (lp.sum(1).double() + torch.randn(2 * b, generator=g, dtype=torch.float64)).to(dtype)
    lssp = (-torch.rand(2 * b, t - 1, generator=g, dtype=torch.float64)).to(dtype)
    return lp, cm, ref[:b].contiguous(), ref[b:].contiguous(), lssp


@pytest.mark.parametrize("loss_type", DPO_LOSS_TYPES)
def test_dpo_gradcheck(loss_type):
    lp, cm, ref_c, ref_r, _ = _fixed_batch(torch.float64)
    eps = 0.1 if loss_type in ("exo_pair", "robust", "aot", "aot_unpaired") else 0.0
    lengths = cm.sum(1)
    c0, r0 = lp.sum(1).chunk(2)

    def f(c, r, tok):
        return dpo_loss(
            c,
            r,
            ref_c,
            ref_r,
            loss_type=[loss_type],
            beta=0.7,
            label_smoothing=eps,
            discopop_tau=0.5,
            chosen_lengths=lengths[:3],
            rejected_lengths=lengths[3:],
            chosen_token_logps=tok,
            chosen_token_mask=cm[:3, 1:],
        ).loss

    args = (c0.clone().requires_grad_(True), r0.clone().requires_grad_(True), lp[:3].clone().requires_grad_(True))
    assert torch.autograd.gradcheck(f, args)


@pytest.mark.parametrize("loss_type", CPO_LOSS_TYPES)
@pytest.mark.parametrize("alpha", [0.0, 0.25])
def test_cpo_gradcheck(loss_type, alpha):
    c = torch.tensor([-0.9, -1.2, -0.3], dtype=torch.float64, requires_grad=True)
    r = torch.tensor([-1.1, -1.0, -0.35], dtype=torch.float64, requires_grad=True)
    nll = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)

    def f(c, r, nll):
        return cpo_loss(
            c,
            r,
            loss_type=loss_type,
            beta=2.0,
            label_smoothing=0.1,
            simpo_gamma=0.4,
            alpha=alpha,
            cpo_alpha=0.5,
            chosen_nll=nll,
        ).loss

    assert torch.autograd.gradcheck(f, (c, r, nll))


def test_dft_gradcheck():
    lp = (-torch.rand(3, 5, dtype=torch.float64) * 3).requires_grad_(True)
    mask = torch.rand(3, 5) < 0.6
    mask[0, 0] = True
    # the analytic gradient (-p/N) treats p as a constant: check it against a function with p frozen
    p = lp.detach().exp()

    def frozen(x):
        return (-(x * mask) * p).sum() / mask.sum()

    got = torch.autograd.grad(dft_loss(lp, mask), lp)[0]
    want = torch.autograd.grad(frozen(lp), lp)[0]
    torch.testing.assert_close(got, want)
    assert torch.autograd.gradcheck(frozen, (lp,))


# ------------------------------------------------------------------------------------------
# devices, dtypes, no mutation


def test_result_dtype_and_device_follow_inputs():
    lp, cm, ref_c, ref_r, _ = _fixed_batch(torch.float64)
    out = ours_dpo(lp, cm, ref_c, ref_r, loss_type=("sigmoid", "ipo", "sft"))
    assert out.loss.dtype == torch.float64 and out.loss.device == lp.device
    c = torch.tensor([-1.0, -2.0], dtype=torch.float64)
    assert cpo_loss(c, c - 1, cpo_alpha=0.0).loss.dtype == torch.float64
    assert dft_loss(lp, cm[:, 1:]).dtype == torch.float64


@pytest.mark.parametrize("loss_type", [t for t in DPO_LOSS_TYPES if t != "sft"])
def test_device_agnostic_on_meta(loss_type):
    """Every op stays on the inputs' device (no hidden CPU tensors): run on the meta device.
    ``sft`` is left out: its boolean indexing (TRL's) has a data-dependent size, which meta
    tensors cannot compute."""
    lp, cm, ref_c, ref_r, lssp = (x.to("meta") for x in _fixed_batch(torch.float32))
    c, r = lp.sum(1).chunk(2)
    lengths = cm.sum(1)
    kw = (
        {}
        if loss_type.startswith("aot")
        else dict(zip(("chosen_weights", "rejected_weights"), wpo_weights(lp, lssp, cm[:, 1:]).chunk(2)))
    )
    out = dpo_loss(
        c,
        r,
        ref_c,
        ref_r,
        loss_type=loss_type,
        label_smoothing=0.1,
        chosen_lengths=lengths[:3],
        rejected_lengths=lengths[3:],
        check_finite=False,
        **kw,
    )
    assert out.loss.device.type == "meta" and out.loss.shape == ()
    assert cpo_loss(c, r, alpha=0.3, chosen_nll=c.sum(), check_finite=False).loss.device.type == "meta"
    assert dft_loss(lp, cm[:, 1:], check_finite=False).device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    lp, cm, ref_c, ref_r, lssp = _fixed_batch(torch.float64)
    names = ("sigmoid", "ipo", "sft", "aot", "discopop", "exo_pair")
    cpu = ours_dpo(lp, cm, ref_c, ref_r, loss_type=names, eps=0.1)
    gpu = ours_dpo(*(x.cuda() for x in (lp, cm, ref_c, ref_r)), loss_type=names, eps=0.1)
    torch.testing.assert_close(gpu.loss.cpu(), cpu.loss)
    assert gpu.metrics() == pytest.approx(cpu.metrics())


def test_inputs_are_not_modified():
    lp, cm, ref_c, ref_r, lssp = _fixed_batch(torch.float32)
    before = [x.clone() for x in (lp, cm, ref_c, ref_r, lssp)]
    ours_dpo(lp, cm, ref_c, ref_r, loss_type=("sigmoid", "ipo", "nca_pair"), lssp=lssp)
    ours_dpo(lp, cm, ref_c, ref_r, loss_type=("sft", "aot"), eps=0.2)
    c, r = lp.sum(1).chunk(2)
    cpo_loss(c, r, alpha=0.5, cpo_alpha=0.0)
    dft_loss(lp, cm[:, 1:])
    for x, y in zip(before, (lp, cm, ref_c, ref_r, lssp)):
        assert torch.equal(x, y)


# ------------------------------------------------------------------------------------------
# bad input


V4 = torch.tensor([-1.0, -2.0, -3.0, -4.0])
L4 = torch.tensor([3, 1, 0, 2])
TOK = torch.zeros(4, 5)
MSK = torch.ones(4, 5, dtype=torch.bool)
IT, IA = InvalidTypeError, InvalidArgumentError


def _bad_cases():
    cases = []

    def add(label, fn, args, kwargs, exc, arg, match=None):
        cases.append(pytest.param(fn, args, kwargs, exc, arg, match, id=label))

    d4 = (V4, V4 - 1, V4 + 0.5, V4 - 0.5)
    add("dpo-list", dpo_loss, ([-1.0], [-2.0], [-1.0], [-2.0]), {}, IT, "chosen_logps")
    add("dpo-numpy", dpo_loss, (V4.numpy(), *d4[1:]), {}, IT, "chosen_logps")
    add("dpo-int", dpo_loss, (L4, *d4[1:]), {}, IT, "chosen_logps")
    add("dpo-bf16", dpo_loss, (V4.bfloat16(), *d4[1:]), {}, IT, "chosen_logps")
    add("dpo-dtype-mix", dpo_loss, (V4, V4.double(), V4, V4), {}, IT, "rejected_logps")
    add("dpo-device-mix", dpo_loss, (V4, V4, torch.ones(4, device="meta"), V4), {}, IT, "ref_chosen_logps")
    add("dpo-2d", dpo_loss, (TOK, *d4[1:]), {}, IA, "chosen_logps")
    add("dpo-shape", dpo_loss, (V4, V4[:3], V4, V4), {}, IA, "rejected_logps")
    add("dpo-empty", dpo_loss, (V4[:0], V4[:0], V4[:0], V4[:0]), {}, IA, "chosen_logps")
    add("dpo-nan", dpo_loss, (V4, V4, V4, torch.tensor([0.0, float("nan"), 0, 0])), {}, IA, "ref_rejected_logps", "NaN")
    add("dpo-inf", dpo_loss, (torch.tensor([0.0, -float("inf"), 0, 0]), V4, V4, V4), {}, IA, "chosen_logps", "inf")
    add("dpo-unknown", dpo_loss, d4, {"loss_type": "dpo"}, IA, "loss_type", "'sigmoid_norm'")
    add("dpo-unknown-in-list", dpo_loss, d4, {"loss_type": ["sigmoid", "aot_pair"]}, IA, "loss_type", "'aot_unpaired'")
    add("dpo-empty-list", dpo_loss, d4, {"loss_type": []}, IA, "loss_type")
    add("dpo-type-int", dpo_loss, d4, {"loss_type": 3}, IT, "loss_type")
    add("dpo-weights-len", dpo_loss, d4, {"loss_type": ["sigmoid", "hinge"], "loss_weights": [1.0]}, IA, "loss_weights")
    add("dpo-weights-nan", dpo_loss, d4, {"loss_weights": [float("nan")]}, IA, "loss_weights")
    add("dpo-weights-str", dpo_loss, d4, {"loss_weights": "1"}, IT, "loss_weights")
    add("dpo-beta-negative", dpo_loss, d4, {"beta": -0.1}, IA, "beta")
    add("dpo-beta-zero", dpo_loss, d4, {"beta": 0.0}, IA, "beta")
    add("dpo-beta-str", dpo_loss, d4, {"beta": "0.1"}, IT, "beta")
    add("dpo-eps-negative", dpo_loss, d4, {"label_smoothing": -0.1}, IA, "label_smoothing")
    add("dpo-robust-eps-half", dpo_loss, d4, {"loss_type": "robust", "label_smoothing": 0.5}, IA, "label_smoothing")
    add("dpo-exo-eps-zero", dpo_loss, d4, {"loss_type": "exo_pair"}, IA, "label_smoothing", "1e-3")
    add("dpo-tau-zero", dpo_loss, d4, {"discopop_tau": 0.0}, IA, "discopop_tau")
    add("dpo-fdiv-unknown", dpo_loss, d4, {"f_divergence_type": "kl"}, IA, "f_divergence_type")
    add(
        "dpo-fdiv-with-bco",
        dpo_loss,
        d4,
        {"loss_type": "bco_pair", "f_divergence_type": "forward_kl"},
        IA,
        "f_divergence_type",
    )
    add("dpo-ipo-no-lengths", dpo_loss, d4, {"loss_type": "ipo"}, IA, "chosen_lengths")
    add(
        "dpo-norm-no-rej-lengths",
        dpo_loss,
        d4,
        {"loss_type": "sigmoid_norm", "chosen_lengths": L4},
        IA,
        "rejected_lengths",
    )
    add(
        "dpo-lengths-float",
        dpo_loss,
        d4,
        {"loss_type": "ipo", "chosen_lengths": V4, "rejected_lengths": L4},
        IT,
        "chosen_lengths",
    )
    add(
        "dpo-lengths-shape",
        dpo_loss,
        d4,
        {"loss_type": "ipo", "chosen_lengths": L4[:2], "rejected_lengths": L4},
        IA,
        "chosen_lengths",
    )
    add("dpo-sft-no-tokens", dpo_loss, d4, {"loss_type": "sft"}, IA, "chosen_token_logps")
    add("dpo-sft-no-mask", dpo_loss, d4, {"loss_type": "sft", "chosen_token_logps": TOK}, IA, "chosen_token_mask")
    add(
        "dpo-sft-mask-shape",
        dpo_loss,
        d4,
        {"loss_type": "sft", "chosen_token_logps": TOK, "chosen_token_mask": MSK[:, :3]},
        IA,
        "chosen_token_mask",
    )
    add(
        "dpo-sft-mask-float",
        dpo_loss,
        d4,
        {"loss_type": "sft", "chosen_token_logps": TOK, "chosen_token_mask": TOK},
        IT,
        "chosen_token_mask",
    )
    add(
        "dpo-sft-tokens-rows",
        dpo_loss,
        d4,
        {"loss_type": "sft", "chosen_token_logps": TOK[:2], "chosen_token_mask": MSK[:2]},
        IA,
        "chosen_token_logps",
    )
    add(
        "dpo-sft-tokens-nan",
        dpo_loss,
        d4,
        {"loss_type": "sft", "chosen_token_logps": TOK + float("nan"), "chosen_token_mask": MSK},
        IA,
        "chosen_token_logps",
    )
    add("dpo-wpo-one-side", dpo_loss, d4, {"chosen_weights": V4}, IA, "rejected_weights")
    add(
        "dpo-wpo-aot", dpo_loss, d4, {"loss_type": "aot", "chosen_weights": V4, "rejected_weights": V4}, IA, "loss_type"
    )
    add("dpo-wpo-shape", dpo_loss, d4, {"chosen_weights": V4[:2], "rejected_weights": V4}, IA, "chosen_weights")
    add("dpo-check-finite-type", dpo_loss, d4, {"check_finite": 1}, IT, "check_finite")

    add("wpo-shape", wpo_weights, (TOK, TOK[:, :2], MSK), {}, IA, "log_sum_sq_probs")
    add("wpo-mask-float", wpo_weights, (TOK, TOK, TOK), {}, IT, "mask")
    add("wpo-dtype", wpo_weights, (TOK, TOK.double(), MSK), {}, IT, "log_sum_sq_probs")

    c2 = (V4, V4 - 1)
    add("cpo-list", cpo_loss, ([-1.0], [-2.0]), {"cpo_alpha": 0.0}, IT, "chosen_logps")
    add("cpo-int", cpo_loss, (V4, L4), {"cpo_alpha": 0.0}, IT, "rejected_logps")
    add("cpo-shape", cpo_loss, (V4, V4[:2]), {"cpo_alpha": 0.0}, IA, "rejected_logps")
    add("cpo-nan", cpo_loss, (V4 * float("nan"), V4), {"cpo_alpha": 0.0}, IA, "chosen_logps")
    add("cpo-unknown", cpo_loss, c2, {"loss_type": "kto_pair", "cpo_alpha": 0.0}, IA, "loss_type", "'alphapo'")
    add("cpo-type-list", cpo_loss, c2, {"loss_type": ["simpo"], "cpo_alpha": 0.0}, IT, "loss_type")
    add("cpo-beta-negative", cpo_loss, c2, {"beta": -2.5, "cpo_alpha": 0.0}, IA, "beta")
    add("cpo-eps-big", cpo_loss, c2, {"label_smoothing": 1.5, "cpo_alpha": 0.0}, IA, "label_smoothing")
    add("cpo-gamma-inf", cpo_loss, c2, {"simpo_gamma": float("inf"), "cpo_alpha": 0.0}, IA, "simpo_gamma")
    add("cpo-alpha-nan", cpo_loss, c2, {"alpha": float("nan"), "cpo_alpha": 0.0}, IA, "alpha")
    add("cpo-nll-missing", cpo_loss, c2, {}, IA, "chosen_nll")
    add("cpo-nll-vector", cpo_loss, c2, {"chosen_nll": V4}, IA, "chosen_nll")
    add("cpo-nll-nan", cpo_loss, c2, {"chosen_nll": torch.tensor(float("nan"))}, IA, "chosen_nll")

    add("dft-list", dft_loss, ([[-1.0]], [[1]]), {}, IT, "per_token_logps")
    add("dft-int", dft_loss, (L4, L4), {}, IT, "per_token_logps")
    add("dft-mask-shape", dft_loss, (TOK, MSK[:, :2]), {}, IA, "mask")
    add("dft-mask-float", dft_loss, (TOK, TOK), {}, IT, "mask")
    add("dft-nan", dft_loss, (TOK + float("nan"), MSK), {}, IA, "per_token_logps")
    add("dft-nib-negative", dft_loss, (TOK, MSK), {"num_items_in_batch": -1}, IA, "num_items_in_batch")
    add("dft-nib-float", dft_loss, (TOK, MSK), {"num_items_in_batch": 3.0}, IT, "num_items_in_batch")
    add("dft-procs-zero", dft_loss, (TOK, MSK), {"num_processes": 0}, IA, "num_processes")
    add("dft-nothing", dft_loss, (), {}, IA, "per_token_logps")
    add("dft-no-mask", dft_loss, (TOK,), {}, IA, "mask")
    logits, labels = torch.zeros(2, 4, 7), torch.zeros(2, 4, dtype=torch.long)
    add("dft-logits-no-labels", dft_loss, (), {"logits": logits}, IA, "labels")
    add("dft-logits-int", dft_loss, (), {"logits": labels[..., None], "labels": labels}, IT, "logits")
    add("dft-logits-2d", dft_loss, (), {"logits": logits[0], "labels": labels}, IA, "logits")
    add("dft-labels-float", dft_loss, (), {"logits": logits, "labels": logits[..., 0]}, IT, "labels")
    add("dft-labels-shape", dft_loss, (), {"logits": logits, "labels": labels[:, :3]}, IA, "labels")
    add("dft-labels-range", dft_loss, (), {"logits": logits, "labels": labels - 5}, IA, "labels")
    return cases


BAD = _bad_cases()


@pytest.mark.parametrize("fn, args, kwargs, exc, argument, match", BAD)
def test_bad_input(fn, args, kwargs, exc, argument, match):
    before = [x.clone() if isinstance(x, torch.Tensor) and x.device.type != "meta" else x for x in args]
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    err = info.value
    assert isinstance(err, FastalignError)
    assert isinstance(err, TypeError if exc is IT else ValueError)
    assert err.argument == argument, str(err)
    assert str(err).startswith(f"{argument}: ")
    if match is not None:
        assert match in str(err)
    for x, y in zip(before, args):
        if isinstance(x, torch.Tensor) and x.device.type != "meta":
            assert torch.equal(x, y) or (x.isnan().any() and torch.equal(x.isnan(), y.isnan()))


def test_nan_can_pass_when_unchecked():
    """``check_finite=False`` skips the sync and lets NaN flow, as TRL would."""
    nan = torch.tensor([float("nan"), -1.0])
    out = dpo_loss(nan, nan, nan, nan, check_finite=False)
    assert torch.isnan(out.loss)


@pytest.mark.parametrize("loss_type, alpha", [("sigmoid", 0.0), ("simpo", 0.0), ("alphapo", 0.25), ("ipo", 0.0)])
def test_real_cpo_trainer(loss_type, alpha, tmp_path):
    """A real ``CPOTrainer`` step. fastalign is fed the trainer's own sequence log-probs
    (``get_batch_logps``, averaged for ipo/simpo) and, for the NLL term, the documented recipe
    ``-(lp * mask).sum() / mask.sum()`` over the chosen per-token log-probs. That recipe sums in a
    different order than ``nn.CrossEntropyLoss``, so loss and gradients agree to float32 rounding
    (rtol 1e-6, atol 1e-7, a few ulps of values of order 1), not bit for bit."""
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    from fastalign.testing import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    args = CPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to=[],
        per_device_train_batch_size=4,
        loss_type=loss_type,
        alpha=alpha,
        beta=2.0,
        simpo_gamma=0.3,
        cpo_alpha=0.7,
        max_length=32,
        save_strategy="no",
        gradient_checkpointing=False,
        disable_tqdm=True,
    )
    trainer = CPOTrainer(model=tiny_model(tok, seed=4), args=args, train_dataset=_words_dataset(), processing_class=tok)
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    theirs, their_metrics = trainer.get_batch_loss_metrics(trainer.model, batch)
    theirs.backward()
    their_grads = [p.grad.clone() for p in trainer.model.parameters()]
    trainer.model.zero_grad()

    cat = trainer.concatenated_inputs(batch, is_encoder_decoder=False, padding_value=tok.pad_token_id)
    logits = trainer.model(
        cat["concatenated_input_ids"], attention_mask=cat["concatenated_attention_mask"], use_cache=False
    ).logits
    labels = cat["concatenated_labels"]
    b = batch["chosen_labels"].shape[0]
    seq = CPOTrainer.get_batch_logps(logits, labels, average_log_prob=trainer.loss_type in ("ipo", "simpo"))
    mask = labels[:b, 1:] != -100
    token_lp = torch.log_softmax(logits[:b, :-1], dim=-1).gather(-1, labels[:b, 1:].clamp(min=0)[..., None])[..., 0]
    nll = -(token_lp * mask).sum() / mask.sum()
    ours = cpo_loss(
        seq[:b], seq[b:], loss_type=loss_type, alpha=alpha, beta=2.0, simpo_gamma=0.3, cpo_alpha=0.7, chosen_nll=nll
    )
    tol = dict(rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ours.loss, theirs, **tol)
    ours.loss.backward()
    for p, g in zip(trainer.model.parameters(), their_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)
    for key, value in ours.metrics().items():
        assert value == pytest.approx(their_metrics[key], rel=1e-6, abs=1e-7), key


def test_real_sft_trainer_dft_from_logits(tmp_path):
    """``dft_loss(logits=..., labels=...)`` against a real ``SFTTrainer`` dft step. TRL's fused
    head computes the log-probs with a chunked online logsumexp, fastalign with
    ``torch.log_softmax`` on the full logits: the per-token log-probs may differ in the last
    float32 bits, so the loss and parameter gradients are compared at rtol 1e-5, atol 1e-7 (the
    loss is a mean of O(1) terms; a few float32 ulps of it is ~1e-6 relative)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from fastalign.testing import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    ds = Dataset.from_dict(
        {"prompt": ["what is 1 + 1 ?", "a b", "what is"], "completion": ["2", "c d e", "the answer"]}
    )
    args = SFTConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to=[],
        per_device_train_batch_size=3,
        loss_type="dft",
        save_strategy="no",
        gradient_checkpointing=False,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(model=tiny_model(tok, seed=5), args=args, train_dataset=ds, processing_class=tok)
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    assert (batch["labels"] == -100).any()  # prompts and padding are ignored
    theirs = trainer.compute_loss(trainer.model, dict(batch))
    theirs.backward()
    their_grads = [p.grad.clone() for p in trainer.model.parameters()]
    trainer.model.zero_grad()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = trainer.model(**inputs, use_cache=False).logits
    ours = dft_loss(logits=logits, labels=batch["labels"])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)
    ours.backward()
    for p, g in zip(trainer.model.parameters(), their_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-7)


def test_dft_from_logits_equals_from_logps():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 6, 11, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 11, (3, 6), generator=g)
    labels[0, :3] = -100
    labels[2, 4:] = -100
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, labels[:, 1:].clamp(min=0)[..., None])[..., 0]
    mask = labels[:, 1:] != -100
    torch.testing.assert_close(dft_loss(logits=logits, labels=labels), dft_loss(lp, mask), **EXACT)
    bf = dft_loss(logits=logits.bfloat16(), labels=labels)
    assert bf.dtype == torch.float32
    with pytest.raises(InvalidArgumentError) as info:
        dft_loss(lp, mask, logits=logits, labels=labels)
    assert info.value.argument == "per_token_logps"
    bad = labels.clone()
    bad[1, 2] = 11
    with pytest.raises(InvalidArgumentError) as info:
        dft_loss(logits=logits, labels=bad)
    assert info.value.argument == "labels"
