"""FastGRPOTrainer: trains exactly like TRL 1.16's GRPOTrainer, and its additions (DAPO dynamic
sampling, GFPO) do what the papers specify.

Parity runs real ``trainer.train()`` steps of a tiny random Qwen2 on the CPU (real generation,
real optimiser) for both trainers from the same seed and compares every logged value. Counts and
lengths must be identical (the same completions were generated, so the RNG streams stayed in
step). Float values may differ by a few ulp: fastalign accumulates means and stds in float64 and
rounds once where torch reduces in float32 (tests/parity/test_advantages.py derives that tolerance); an
advantage off by an ulp moves the loss by about as much, and three optimiser steps carry that
forward, so floats are compared at rel 1e-5 (observed: at most ~1e-7).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from reference import importance
from trl import GRPOTrainer

from fastalign.advantages import grpo_advantages
from fastalign.testing import tiny_grpo_trainer
from fastalign.trl import FastGRPOTrainer

SKIP = ("time", "runtime", "per_second")  # wall-clock metrics differ by nature


def ends_with_eos(completion_ids, **kwargs):
    return [1.0 if ids and ids[-1] == 1 else 0.0 for ids in completion_ids]


def short(completion_ids, **kwargs):
    return [-len(c) / 16 for c in completion_ids]


def _train(cls, steps, **config):
    trainer = tiny_grpo_trainer(
        [ends_with_eos, short],
        trainer_cls=cls,
        train_dataset=Dataset.from_dict({"prompt": ["what is 1 + 1 ?", "what is 2 + 3 ?"] * 16}),
        max_completion_length=12,
        max_steps=steps,
        learning_rate=1e-3,
        **config,
    )
    trainer.train()
    return [row for row in trainer.state.log_history if "loss" in row], trainer


@pytest.mark.parametrize(
    "config",
    [
        dict(mask_truncated_completions=True),
        dict(scale_rewards="batch", loss_type="bnpo", reward_weights=[1.0, 0.5]),
        dict(multi_objective_aggregation="normalize_then_sum", loss_type="dr_grpo", scale_rewards="none"),
        # old log-probs computed (generation reused over iterations), GSPO's sequence ratio
        dict(num_iterations=2, importance_sampling_level="sequence", loss_type="grpo", epsilon=3e-4),
    ],
    ids=["dapo-overlong-filter", "batch-scale-bnpo", "normalize_then_sum-dr_grpo", "gspo-2-iterations"],
)
def test_fast_trainer_trains_like_grpo_trainer(config):
    ref, _ = _train(GRPOTrainer, 3, **config)
    got, trainer = _train(FastGRPOTrainer, 3, **config)
    assert len(ref) == len(got) == 3
    for a, b in zip(ref, got):
        assert set(a) == set(b)
        for key, x in a.items():
            if any(s in key for s in SKIP):
                continue
            y = b[key]
            if isinstance(x, float) and not float(x).is_integer():
                assert y == pytest.approx(x, rel=1e-5, abs=1e-6, nan_ok=True), key
            else:
                assert x == y, (key, x, y)
    assert trainer.fastalign_times.calls("grpo_advantages") >= 2  # one per generation batch
    assert trainer.fastalign_times.calls("grpo_loss") == 3  # the loss went through fastalign every step


def test_gspo_token_trains_like_gspo_with_sequence_advantages():
    """GSPO-token (TRL 1.16 removed it) has GSPO's value and, with one advantage per sequence,
    GSPO's gradient (GSPO paper, §4): three steps of it must log what GRPOTrainer's GSPO logs."""
    config = dict(importance_sampling_level="sequence", loss_type="grpo", epsilon=3e-4, num_iterations=2)
    ref, _ = _train(GRPOTrainer, 3, **config)
    got, _ = _train(FastGRPOTrainer, 3, **{**config, "importance_sampling_level": "sequence_token"})
    assert len(ref) == len(got) == 3
    for a, b in zip(ref, got):
        assert set(a) == set(b)
        for key in ("loss", "reward", "clip_ratio/region_mean", "entropy"):
            if key in a:  # (the reward is logged on generation steps only)
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key


# --- DAPO dynamic sampling ----------------------------------------------------------------------

G = 4


def _random_rollout(seed=0):
    """Completions of random lengths (1..10 tokens, the last one EOS) for every prompt."""
    rng = np.random.default_rng(seed)

    def rollout(prompts, trainer):
        lengths = rng.integers(1, 11, size=len(prompts))
        completions = [[5] * (n - 1) + [1] for n in lengths]
        return {
            "prompt_ids": [[4, 5] for _ in prompts],
            "completion_ids": completions,
            "logprobs": [[0.0] * len(c) for c in completions],
        }

    return rollout


def flat_or_length(prompts, completion_ids, **kwargs):
    """Constant for the prompt "flat" (a zero-variance group); the length otherwise."""
    return [1.0 if p == "flat" else float(len(c)) for p, c in zip(prompts, completion_ids)]


def _sampler(batch, **kwargs):
    return tiny_grpo_trainer(
        [flat_or_length],
        trainer_cls=FastGRPOTrainer,
        num_generations=G,
        per_device_train_batch_size=batch,
        rollout_func=_random_rollout(),
        trainer_kwargs=dict(dynamic_sampling=True, **kwargs),
    )


def _rows(*prompts):
    return [{"prompt": p} for p in prompts for _ in range(G)]


def _groups_of_last_batch(trainer, n):
    return [list(trainer._logs["prompt"])[-n:][i] for i in range(0, n, G)]


def test_dynamic_sampling_refills_with_informative_groups():
    trainer = _sampler(8, max_num_gen_batches=3)
    out = trainer._generate_and_score_completions(_rows("flat", "vary"))
    assert out["completion_ids"].shape[0] == 8  # the batch keeps its size
    assert _groups_of_last_batch(trainer, 8) == ["vary", "vary"]
    m = trainer._metrics["train"]
    assert m["dynamic_sampling/generation_batches"][-1] == 2
    assert m["dynamic_sampling/filtered_groups"][-1] == 2
    assert m["dynamic_sampling/zero_variance_groups_kept"][-1] == 0
    adv = out["advantages"].view(-1, G)
    assert torch.all(adv.abs().sum(dim=1) > 0)  # every kept group carries signal


def test_dynamic_sampling_limit_completes_with_zero_variance_groups():
    trainer = _sampler(8, max_num_gen_batches=1)
    out = trainer._generate_and_score_completions(_rows("flat", "vary"))
    assert sorted(_groups_of_last_batch(trainer, 8)) == ["flat", "vary"]
    assert trainer._metrics["train"]["dynamic_sampling/zero_variance_groups_kept"][-1] == 1
    adv = out["advantages"].view(-1, G)
    assert (adv.abs().sum(dim=1) == 0).sum() == 1  # the filler group moves nothing


def test_dynamic_sampling_replays_buffered_informative_groups():
    trainer = _sampler(12, max_num_gen_batches=2, replay_informative_groups=4)
    trainer._generate_and_score_completions(_rows("flat", "vary", "vary"))  # 4 informative: 1 surplus
    assert len(trainer._replay) == 1
    trainer._generate_and_score_completions(_rows("flat", "flat", "flat"))
    m = trainer._metrics["train"]
    assert m["dynamic_sampling/replayed_groups"][-1] == 1
    assert m["dynamic_sampling/zero_variance_groups_kept"][-1] == 2
    assert trainer._replay == []


def test_dynamic_sampling_drops_near_constant_groups_that_std_zero_misses():
    """A group of equal non-dyadic float32 rewards has a tiny nonzero torch std; it is still
    filtered (TRL's std == 0 test would keep it)."""

    def near_constant(prompts, completion_ids, **kwargs):
        return [1000.1 if p == "flat" else float(len(c)) for p, c in zip(prompts, completion_ids)]

    trainer = tiny_grpo_trainer(
        [near_constant],
        trainer_cls=FastGRPOTrainer,
        num_generations=G,
        per_device_train_batch_size=8,
        rollout_func=_random_rollout(),
        trainer_kwargs=dict(dynamic_sampling=True, max_num_gen_batches=3),
    )
    trainer._generate_and_score_completions(_rows("flat", "vary"))
    assert _groups_of_last_batch(trainer, 8) == ["vary", "vary"]


# --- GFPO ---------------------------------------------------------------------------------------


def test_gfpo_keeps_the_shortest_and_normalises_within_the_kept_group():
    trainer = tiny_grpo_trainer(
        [short],
        trainer_cls=FastGRPOTrainer,
        num_generations=G,
        per_device_train_batch_size=8,
        rollout_func=_random_rollout(seed=3),
        trainer_kwargs=dict(gfpo_num_remains_in_group=2),
    )
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 11, size=8)  # what the rollout will return
    out = trainer._generate_and_score_completions(_rows("a", "b"))
    kept = []
    for g in range(2):
        group = lengths[g * G : (g + 1) * G]
        order = sorted(range(G), key=lambda i: (group[i], i))[:2]
        kept += [g * G + i for i in sorted(order)]
    got_lengths = out["completion_mask"].sum(dim=1).tolist()
    assert got_lengths == [int(lengths[i]) for i in kept]
    rewards = torch.tensor([[-lengths[i] / 16] for i in kept], dtype=torch.float32)
    expect = grpo_advantages(rewards, 2).advantages
    torch.testing.assert_close(out["advantages"], expect)
    assert trainer._metrics["train"]["gfpo/kept_fraction"][-1] == 0.5


@pytest.mark.parametrize(
    "options, error, name",
    [
        (dict(gfpo_num_remains_in_group=4), ValueError, "gfpo_num_remains_in_group"),
        (dict(gfpo_num_remains_in_group=1), ValueError, "gfpo_num_remains_in_group"),
        (dict(gfpo_num_remains_in_group=2, gfpo_metric="shortest"), ValueError, "gfpo_metric"),
        (dict(dynamic_sampling=True, max_num_gen_batches=0), ValueError, "max_num_gen_batches"),
        (dict(dynamic_sampling="yes"), TypeError, "dynamic_sampling"),
        (dict(replay_informative_groups=-1), ValueError, "replay_informative_groups"),
        (dict(balance_ranks=None, padding_free=True), TypeError, "balance_ranks"),
        (dict(balance_ranks=True), ValueError, "balance_ranks"),  # needs padding_free
    ],
)
def test_options_are_checked(options, error, name):
    with pytest.raises(error, match=name):
        tiny_grpo_trainer([short], trainer_cls=FastGRPOTrainer, num_generations=G, trainer_kwargs=options)


# --- vLLM importance-sampling path (vLLM itself cannot run here: sampling log-probs injected) ---


def _logprob_rollout(seed=7):
    """Fixed random completions with made-up sampler log-probs (one None, as vLLM reports NaN)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, size=8)
    completions = [[int(t) for t in rng.integers(4, 20, size=n - 1)] + [1] for n in lengths]
    logprobs = [[float(x) for x in -rng.exponential(2.0, size=len(c))] for c in completions]
    logprobs[2][0] = None

    def rollout(prompts, trainer):
        return {
            "prompt_ids": [[4, 5] for _ in prompts],
            "completion_ids": [list(c) for c in completions],
            "logprobs": [list(lp) for lp in logprobs],
        }

    return rollout


@pytest.mark.parametrize("mode", ["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"])
def test_vllm_importance_sampling_matches_grpo_trainer(mode):
    outs = []
    for cls in (GRPOTrainer, FastGRPOTrainer):
        trainer = tiny_grpo_trainer(
            [short],
            trainer_cls=cls,
            num_generations=G,
            per_device_train_batch_size=8,
            rollout_func=_logprob_rollout(),
            vllm_importance_sampling_mode=mode,
            vllm_importance_sampling_clip_min=0.5 if mode.endswith("mask") else None,
        )
        # what use_vllm=True changes in the scoring step, without a vLLM engine: the rollout_func
        # path skips generation, and the weight sync is marked done for this step
        trainer.use_vllm = True
        trainer._last_loaded_step = trainer.state.global_step
        out = trainer._generate_and_score_completions(_rows("a", "b"))
        outs.append((out, {k: v[-1] for k, v in trainer._metrics["train"].items() if k.startswith("sampling/")}))
    (ref, ref_m), (got, got_m) = outs
    for key in ("importance_sampling_ratio", "old_per_token_logps", "sampling_per_token_logps", "completion_mask"):
        torch.testing.assert_close(got[key], ref[key], rtol=1e-6, atol=0, equal_nan=True, msg=key)
    assert set(ref_m) == set(got_m) and len(ref_m) == 5
    for k, x in ref_m.items():
        assert got_m[k] == pytest.approx(x, rel=1e-6, nan_ok=True), k


@pytest.mark.parametrize("mode", ["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"])
@pytest.mark.parametrize("clips", [(None, 3.0), (0.5, 2.0), (0.9, None), (0.99, 1.01)])
def test_is_reference_is_grpo_trainer(mode, clips):
    """tests/reference/importance.py (the IS weights and metrics other tests compare fastalign
    with) equals GRPOTrainer's own scoring step, on its own log-probs and mask."""
    clip_min, clip_max = clips
    trainer = tiny_grpo_trainer(
        [short],
        num_generations=G,
        per_device_train_batch_size=8,
        rollout_func=_logprob_rollout(seed=3),
        vllm_importance_sampling_mode=mode,
        vllm_importance_sampling_clip_min=clip_min,
        vllm_importance_sampling_clip_max=clip_max,
    )
    trainer.use_vllm = True
    trainer._last_loaded_step = trainer.state.global_step
    out = trainer._generate_and_score_completions(_rows("a", "b"))
    logged = {k: v[-1] for k, v in trainer._metrics["train"].items() if k.startswith("sampling/")}
    args = (out["old_per_token_logps"], out["sampling_per_token_logps"], out["completion_mask"], mode)
    want = importance.is_ratio(*args, clip_min, clip_max)
    torch.testing.assert_close(want, out["importance_sampling_ratio"], rtol=1e-6, atol=0)
    mine = importance.is_metrics(*args, clip_min, clip_max)
    assert len(logged) == 5
    for k, x in logged.items():
        assert mine[k] == pytest.approx(x, rel=1e-6, abs=1e-7), k


# --- the presets' recipes run on FastGRPOTrainer ---------------------------------------------------


@pytest.mark.parametrize("name", ["dapo", "gfpo"])
def test_recipes_construct_and_score_on_fast_trainer(name, tmp_path):
    """The keywords a recipe carries are FastGRPOTrainer's own: it builds and runs a scoring step."""
    from fastalign.trl import presets

    if name == "dapo":
        recipe = presets.dapo(
            output_dir=str(tmp_path), max_completion_length=16, soft_punish_cache=8, max_num_gen_batches=2
        )
    else:
        recipe = presets.gfpo(
            output_dir=str(tmp_path),
            num_remains_in_group=2,
            group_filter="reward_per_token",
            num_generations=4,
            per_device_train_batch_size=8,
        )
    assert recipe.trainer_class() is FastGRPOTrainer
    trainer = tiny_grpo_trainer(
        [flat_or_length, *recipe.reward_funcs],
        trainer_cls=recipe.trainer_class(),
        num_generations=G,
        per_device_train_batch_size=8,
        rollout_func=_random_rollout(),
        max_completion_length=16,
        trainer_kwargs=dict(recipe.trainer_kwargs),
    )
    out = trainer._generate_and_score_completions(_rows("vary", "vary"))
    kept = 8 if name == "dapo" else 4
    assert out["completion_ids"].shape[0] == kept and out["advantages"].shape == (kept,)
