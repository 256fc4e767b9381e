"""FastDPOTrainer with DPOConfig(padding_free=True) trains like TRL 1.16's (padded) DPOTrainer.

Real ``trainer.train()`` steps on a tiny random Qwen2 (float32, CPU) for both trainers, same
seeds, every logged value compared. Sequence log-probs are sums over up to ~25 tokens; fastalign
sums in float64 over the packed layout where TRL sums a padded float32 row, so the rewards (beta
times differences of such sums) agree to ~1e-7 absolute, which is relative 1e-3 on rewards of
1e-4: floats are compared at rel 1e-4 or abs 1e-6.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import torch
from datasets import Dataset
from helpers.logs import assert_same_logs
from trl import DPOConfig, DPOTrainer

from fastalign.errors import InvalidArgumentError, PaddingFreeError
from fastalign.testing import WORDS, tiny_model, tiny_tokenizer
from fastalign.trl import FastDPOTrainer
from fastalign.trl.dpo import DataCollatorForPackedPreference

TOK = tiny_tokenizer()
SKIP = ("time", "runtime", "per_second")


def _dataset(n=32, seed=0):
    rng = np.random.default_rng(seed)

    def text(k):
        return " ".join(WORDS[i] for i in rng.integers(4, len(WORDS), int(k)))

    return Dataset.from_dict(
        {
            "prompt": [text(rng.integers(2, 6)) for _ in range(n)],
            "chosen": [" " + text(rng.integers(1, 20)) for _ in range(n)],
            "rejected": [" " + text(rng.integers(1, 20)) for _ in range(n)],
        }
    )


def _trainer(cls, padding_free, steps=3, trainer_kwargs=None, eval_dataset=None, **config):
    args = DPOConfig(output_dir=tempfile.mkdtemp(prefix="fastalign-dpo-"), use_cpu=True, bf16=False, report_to=[],
                     per_device_train_batch_size=4, gradient_accumulation_steps=2, max_steps=steps,
                     learning_rate=1e-3, logging_steps=1, save_strategy="no", seed=0, disable_tqdm=True,
                     padding_free=padding_free, **config)  # fmt: skip
    return cls(
        model=tiny_model(TOK),
        ref_model=tiny_model(TOK),
        args=args,
        processing_class=TOK,
        train_dataset=_dataset(),
        eval_dataset=eval_dataset,
        **(trainer_kwargs or {}),
    )


def _logs(trainer):
    trainer.train()
    return [row for row in trainer.state.log_history if "loss" in row]


def assert_same(ref, got):
    assert_same_logs(ref, got, rel=1e-4, abs=1e-6)


CONFIGS = {
    "sigmoid": dict(),
    "sigmoid+sft": dict(loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.5]),
    "ipo": dict(loss_type=["ipo"]),
    "ld_alpha": dict(ld_alpha=0.5),
    "wpo": dict(use_weighting=True),
    "keep_end-sigmoid_norm": dict(max_length=10, truncation_mode="keep_end", loss_type=["sigmoid_norm"]),
    "keep_start-hinge": dict(max_length=10, loss_type=["hinge"]),
    "precomputed-reference": dict(precompute_ref_log_probs=True),
    "gradient-checkpointing": dict(gradient_checkpointing=True, loss_type=["apo_zero", "bco_pair"]),
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("budget", [None, 30], ids=["one-row", "30-token-rows"])
def test_padding_free_dpo_trains_like_dpo_trainer(config, budget):
    ref = _logs(_trainer(DPOTrainer, False, **config))
    got = _logs(_trainer(FastDPOTrainer, True, trainer_kwargs=dict(max_tokens_per_microbatch=budget), **config))
    assert_same(ref, got)


def test_evaluation_matches_and_without_padding_free_it_is_dpo_trainer():
    evals = []
    for cls, pf in ((DPOTrainer, False), (FastDPOTrainer, True), (FastDPOTrainer, False)):
        t = _trainer(cls, pf, eval_dataset=_dataset(8, seed=1))
        evals.append(t.evaluate())
    for got in evals[1:]:
        assert set(got) == set(evals[0])
        for key, x in evals[0].items():
            if not any(s in key for s in SKIP):
                assert got[key] == pytest.approx(x, rel=1e-4, abs=1e-6), key


def test_iterable_eval_datasets_and_what_needs_logits():
    """An iterable eval set works (batches are not dispatched: a ragged batch cannot be split along
    a first dimension); compute_metrics, which needs logits, is refused instead of skipped."""
    t = _trainer(FastDPOTrainer, True)
    assert np.isfinite(t.evaluate(eval_dataset=_dataset(8, seed=2).to_iterable_dataset())["eval_loss"])
    with pytest.raises(PaddingFreeError, match="compute_metrics"):
        _trainer(FastDPOTrainer, True, trainer_kwargs=dict(compute_metrics=lambda p: {"m": 1.0}))
    with pytest.raises(PaddingFreeError, match="accelerator_config"):
        _trainer(FastDPOTrainer, True, accelerator_config={"dispatch_batches": True})


def test_collator_truncates_like_trl_and_does_not_pad():
    examples = [
        {"prompt_ids": [1, 2, 3], "chosen_ids": [4, 5], "rejected_ids": [6]},
        {"prompt_ids": [7], "chosen_ids": [8, 9, 10], "rejected_ids": [11, 12]},
    ]
    batch = DataCollatorForPackedPreference(max_length=3, truncation_mode="keep_end")(examples)["packed"]
    assert batch.values.tolist() == [3, 4, 5, 8, 9, 10, 2, 3, 6, 7, 11, 12]
    assert batch.offsets.tolist() == [0, 3, 6, 9, 12]
    assert batch.completion_lengths.tolist() == [2, 3, 1, 2]
    with pytest.raises(InvalidArgumentError, match="truncation_mode"):
        DataCollatorForPackedPreference(max_length=3, truncation_mode="middle")(examples)


def test_options_are_checked():
    with pytest.raises(InvalidArgumentError, match="max_tokens_per_microbatch: needs DPOConfig"):
        _trainer(FastDPOTrainer, False, trainer_kwargs=dict(max_tokens_per_microbatch=64))
    with pytest.raises(InvalidArgumentError, match="max_tokens_per_microbatch"):
        _trainer(FastDPOTrainer, True, trainer_kwargs=dict(max_tokens_per_microbatch=0))
    t = _trainer(FastDPOTrainer, True, trainer_kwargs=dict(max_tokens_per_microbatch=5))
    with pytest.raises(InvalidArgumentError, match=r"max_tokens_per_microbatch: is 5 tokens, but sequence \d+ has"):
        t.train()


def test_the_dpo_preset_names_the_fast_trainer_when_padding_free(tmp_path):
    from fastalign.trl import presets

    recipe = presets.dpo(output_dir=str(tmp_path), padding_free=True)
    assert recipe.trainer_class() is FastDPOTrainer and recipe.config.padding_free is True
    plain = presets.dpo(output_dir=str(tmp_path))
    assert plain.padding_free is False  # a DPOConfig, as before


def test_a_leaking_model_is_caught_by_the_forward_check():
    """Reference and policy forwards share the packed path; the GRPO trainer's first-step check
    (tests/parity/test_padding_free_grpo.py) and check_packed_forward cover the leak; here the packed
    DPO log-probs equal the padded ones sequence by sequence."""
    t = _trainer(FastDPOTrainer, True)
    batch = t.data_collator([t.train_dataset[i] for i in range(4)])["packed"]
    from fastalign.padding_free import check_packed_forward

    assert check_packed_forward(t.model, batch.values, batch.offsets, targets=batch.targets) < 1e-5
    with pytest.raises(PaddingFreeError):
        check_packed_forward(
            t.model,
            batch.values,
            batch.offsets,
            targets=batch.targets,
            attention="model",
            model_kwargs={"attention_mask": torch.ones(1, int(batch.offsets[-1]), dtype=torch.long)},
        )
