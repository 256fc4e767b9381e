"""FastGRPOTrainer(padding_free=True) trains exactly like TRL 1.16's GRPOTrainer while forwarding
only real tokens; with a token budget too; evaluation works before, during and after training.

Parity runs real ``trainer.train()`` steps of a tiny random Qwen2 (float32, CPU, temperature 0.7
so TRL's fused head carries a temperature) for both trainers from the same seed and compares every
logged value. The two differ in layout (one packed row of real tokens, attention per sequence)
and in summation order, so floats agree to float32 rounding (observed: relative 1e-6 or better,
absolute 1e-7 on values near zero); counts are identical.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from helpers.logs import SKIP, assert_same_logs
from trl import GRPOTrainer

from fastalign.errors import InvalidArgumentError, PaddingFreeError
from fastalign.testing import fixed_rollout, tiny_grpo_trainer
from fastalign.trl import FastGRPOTrainer


def ends_with_eos(completion_ids, **kwargs):
    return [1.0 if ids and ids[-1] == 1 else 0.0 for ids in completion_ids]


def short(completion_ids, **kwargs):
    return [-len(c) / 16 for c in completion_ids]


def _trainer(cls, steps, trainer_kwargs=None, **config):
    prompts = ["what is 1 + 1 ?", "what is 2 + 3 ?", "a b c d e f g h", "1"] * 8
    return tiny_grpo_trainer(
        [ends_with_eos, short],
        trainer_cls=cls,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        max_completion_length=12,
        trainer_kwargs=trainer_kwargs,
        **{"max_steps": steps, "learning_rate": 1e-3, "temperature": 0.7, **config},
    )


def _logs(trainer):
    trainer.train()
    return [row for row in trainer.state.log_history if "loss" in row or "eval_loss" in row]


CONFIGS = {
    "dapo-overlong-filter": dict(mask_truncated_completions=True),
    "grpo-2-steps-per-generation": dict(loss_type="grpo", steps_per_generation=2, gradient_accumulation_steps=1),
    "bnpo-batch-scale": dict(scale_rewards="batch", loss_type="bnpo", reward_weights=[1.0, 0.5]),
    "dr_grpo": dict(multi_objective_aggregation="normalize_then_sum", loss_type="dr_grpo", scale_rewards="none"),
    "gspo-2-iterations": dict(num_iterations=2, importance_sampling_level="sequence", loss_type="grpo", epsilon=3e-4),
    "luspo-kl": dict(beta=0.1, loss_type="luspo"),
    "cispo": dict(loss_type="cispo", epsilon_high=5.0),
    "sapo": dict(loss_type="sapo"),
    "vespo-delta": dict(loss_type="vespo"),
    "dapo-two-sided-opsm": dict(delta=1.5, off_policy_mask_threshold=0.5, num_iterations=2),
    "entropy-bonus": dict(entropy_coef=0.01),  # TRL's own loss code on the packed forward's results
    "top-entropy-quantile": dict(top_entropy_quantile=0.5, loss_type="grpo"),
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_padding_free_trains_like_grpo_trainer(config):
    ref = _logs(_trainer(GRPOTrainer, 3, **config))
    got = _logs(fast := _trainer(FastGRPOTrainer, 3, dict(padding_free=True), **config))
    assert_same_logs(ref, got)
    if not config.get("entropy_coef"):
        assert fast.fastalign_times.calls("grpo_loss") == 3


BUDGET_CONFIGS = {
    k: CONFIGS[k]
    for k in ("dapo-overlong-filter", "bnpo-batch-scale", "dr_grpo", "gspo-2-iterations", "luspo-kl", "entropy-bonus")
}


@pytest.mark.parametrize("config", BUDGET_CONFIGS.values(), ids=BUDGET_CONFIGS.keys())
def test_token_budget_rows_train_like_grpo_trainer(config):
    """Micro-batches split into rows of at most 24 tokens (a backward per row where the loss
    allows it): the accumulated gradient, hence every logged value, is TRL's."""
    ref = _logs(_trainer(GRPOTrainer, 3, **config))
    got = _logs(fast := _trainer(FastGRPOTrainer, 3, dict(padding_free=True, max_tokens_per_microbatch=24), **config))
    assert_same_logs(ref, got)
    if not config.get("entropy_coef"):
        assert fast.fastalign_times.calls("grpo_loss") > 3  # one per row, plus the metrics call


def test_token_budget_gives_the_padded_gradient():
    """One SGD step with lr=1 moves each weight by minus its gradient: equal weights after it mean
    equal gradients (grpo, dapo, dr_grpo weigh sequences by window constants)."""
    for loss_type in ("grpo", "dapo", "dr_grpo"):
        weights = []
        for cls, kwargs in (
            (GRPOTrainer, None),
            (FastGRPOTrainer, dict(padding_free=True, max_tokens_per_microbatch=24)),
        ):
            t = _trainer(
                cls,
                1,
                kwargs,
                loss_type=loss_type,
                optim="sgd",
                learning_rate=1.0,
                max_grad_norm=0.0,
                lr_scheduler_type="constant",
            )
            t.train()
            weights.append(torch.cat([p.detach().flatten() for p in t.model.parameters()]))
        torch.testing.assert_close(weights[1], weights[0], rtol=0, atol=2e-6, msg=loss_type)


def test_only_real_tokens_are_forwarded():
    """With fixed completions (no generation forwards) and the one-time packed/padded check done,
    a step forwards each real token once per pass: the old log-prob pass and the training pass."""
    rng = np.random.default_rng(0)
    completions = [[5] * int(n) + [1] for n in rng.integers(0, 11, size=8)]
    counts = {}
    for cls, kwargs in ((GRPOTrainer, None), (FastGRPOTrainer, dict(padding_free=True))):
        t = _trainer(cls, 1, kwargs, num_iterations=2, rollout_func=fixed_rollout(completions, prompt_ids=(4, 5, 6)))
        if cls is FastGRPOTrainer:
            t._checked_models.add(id(t.model))
        seen = [0]
        t.model.get_input_embeddings().register_forward_hook(
            lambda m, a, o, seen=seen: seen.__setitem__(0, seen[0] + a[0].numel())
        )
        t.train()
        counts[cls.__name__] = seen[0]
    real = sum(3 + len(c) for c in completions)
    assert counts["FastGRPOTrainer"] == 2 * real
    assert counts["GRPOTrainer"] == 2 * 8 * (3 + max(len(c) for c in completions))


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "bnpo", "dr_grpo", "luspo", "cispo", "sapo", "vespo"])
@pytest.mark.parametrize("padding_free", [False, True], ids=["padded", "padding-free"])
def test_evaluate_before_training_matches_grpo_trainer(loss_type, padding_free):
    """A fresh trainer's evaluate() (TRL issue: FastGRPOTrainer read an attribute that exists only
    inside the training loop) returns stock TRL's eval metrics."""
    eval_set = Dataset.from_dict({"prompt": ["what is 1 + 1 ?", "a b"] * 4})
    results = []
    for cls, kwargs in ((GRPOTrainer, {}), (FastGRPOTrainer, dict(padding_free=padding_free))):
        t = _trainer(cls, 2, kwargs, loss_type=loss_type)
        torch.manual_seed(0)
        results.append(t.evaluate(eval_set))
    ref, got = results
    assert "eval_loss" in got and set(ref) == set(got)
    for key, x in ref.items():
        if not any(s in key for s in SKIP):
            assert got[key] == pytest.approx(x, rel=2e-5, abs=1e-6, nan_ok=True), key


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(padding_free=True),
        dict(padding_free=True, dynamic_sampling=True),
        dict(padding_free=True, gfpo_num_remains_in_group=2),
        dict(dynamic_sampling=True),
        dict(gfpo_num_remains_in_group=2),
    ],
    ids=["padding-free", "padding-free-dynamic-sampling", "padding-free-gfpo", "dynamic-sampling", "gfpo"],
)
def test_evaluation_on_start_during_and_after_training(kwargs):
    eval_set = Dataset.from_dict({"prompt": ["what is 1 + 1 ?", "a b"] * 4})
    t = tiny_grpo_trainer(
        [ends_with_eos, short],
        trainer_cls=FastGRPOTrainer,
        max_completion_length=12,
        max_steps=2,
        learning_rate=1e-3,
        eval_strategy="steps",
        eval_steps=1,
        eval_on_start=True,
        per_device_eval_batch_size=8,
        trainer_kwargs={**kwargs, "eval_dataset": eval_set},
    )
    t.train()
    evals = [row for row in t.state.log_history if "eval_loss" in row]
    assert len(evals) == 3  # on start, after step 1, after step 2
    after = t.evaluate()
    assert np.isfinite(after["eval_loss"])


def test_dynamic_sampling_and_gfpo_train_padding_free():
    for kwargs in (dict(dynamic_sampling=True, max_num_gen_batches=2), dict(gfpo_num_remains_in_group=2)):
        t = _trainer(FastGRPOTrainer, 2, dict(padding_free=True, **kwargs))
        logs = _logs(t)
        assert len(logs) == 2 and all(np.isfinite(r["loss"]) for r in logs)


@pytest.mark.parametrize(
    "kwargs, config, error, match",
    [
        (dict(max_tokens_per_microbatch=64), {}, InvalidArgumentError, "needs padding_free=True"),
        (
            dict(padding_free=True, max_tokens_per_microbatch=8),
            {},
            InvalidArgumentError,
            "max_tokens_per_microbatch: is 8 tokens, below",
        ),
        (dict(padding_free=True, max_tokens_per_microbatch=0), {}, InvalidArgumentError, "max_tokens_per_microbatch"),
        (dict(padding_free="yes"), {}, TypeError, "padding_free"),
    ],
)
def test_options_are_checked(kwargs, config, error, match):
    with pytest.raises(error, match=match):
        _trainer(FastGRPOTrainer, 1, kwargs, **config)


def test_a_budget_below_the_longest_sequence_is_refused_at_the_step():
    t = _trainer(FastGRPOTrainer, 1, dict(padding_free=True, max_tokens_per_microbatch=13))
    # 12-token completions fit the init check (13 >= 1 + 12); prompts of 2+ tokens then do not fit
    with pytest.raises(
        InvalidArgumentError, match=r"max_tokens_per_microbatch: is 13 tokens, but sequence \d+ has \d+"
    ):
        t.train()


def test_a_model_that_merges_packed_sequences_is_refused_on_the_first_step(monkeypatch):
    """The first packed forward is compared with a padded one; a model that leaks across the
    sequences of a row (here: an attention that ignores the segment boundaries) stops training."""
    import fastalign.padding_free.attention as attention

    def leaky(module, q, k, v, mask, dropout=0.0, scaling=None, sliding_window=None, cu_seq_lens_q=None, **kw):
        if cu_seq_lens_q is None:  # padded calls (generation) as before
            return attention.segment_attention_forward(module, q, k, v, mask, dropout, scaling, sliding_window, **kw)
        return attention._segments(module, q, k, v, [0, q.shape[2]], dropout, scaling, None), None

    monkeypatch.setitem(attention.AttentionInterface._global_mapping, attention.SEGMENT_ATTENTION, leaky)
    t = _trainer(FastGRPOTrainer, 1, dict(padding_free=True), num_iterations=2)
    with pytest.raises(PaddingFreeError, match="packed and padded log-probs disagree"):
        t.train()
