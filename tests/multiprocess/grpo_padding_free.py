"""Run under ``ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2``: stock GRPOTrainer and
FastGRPOTrainer(padding_free=True, ...) train the same steps on two processes; rank 0 writes both
log histories to ``<out>/<name>.json`` (tests/robustness/test_padding_free_two_ranks.py compares them)."""

from __future__ import annotations

import json
import sys

import torch
from datasets import Dataset
from trl import GRPOTrainer

from fastalign.testing import tiny_grpo_trainer
from fastalign.trl import FastGRPOTrainer


def ends_with_eos(completion_ids, **kwargs):
    return [1.0 if ids and ids[-1] == 1 else 0.0 for ids in completion_ids]


def short(completion_ids, **kwargs):
    return [-len(c) / 16 for c in completion_ids]


def train(cls, kwargs, config):
    prompts = ["what is 1 + 1 ?", "what is 2 + 3 ?", "a b c d e f g h", "1"] * 8
    t = tiny_grpo_trainer([ends_with_eos, short], trainer_cls=cls, train_dataset=Dataset.from_dict({"prompt": prompts}),
                          max_completion_length=12, trainer_kwargs=kwargs,
                          **{"max_steps": 3, "learning_rate": 1e-3, "temperature": 0.7, **config})  # fmt: skip
    t.train()
    return t, [row for row in t.state.log_history if "loss" in row]


def main(out: str) -> None:
    # dapo's loss does not depend on which rank holds which sequence: those runs deal sequences
    # by tokens (balance_ranks); bnpo's token normaliser, the entropy bonus and the top-entropy
    # quantile are per micro-batch, so those runs keep TRL's layout to compare
    same = {"balance_ranks": False}
    runs = {
        "dapo": ({"balance_ranks": True}, {}),
        "dapo-budget": ({"max_tokens_per_microbatch": 24, "balance_ranks": True}, {}),
        "grpo-entropy-bonus": (same, {"loss_type": "grpo", "entropy_coef": 0.01}),
        "bnpo-budget-gspo": (
            {"max_tokens_per_microbatch": 24, **same},
            {"loss_type": "bnpo", "importance_sampling_level": "sequence", "num_iterations": 2},
        ),
        # several rows, one backward (the quantile is over the micro-batch): DDP syncs on the last call
        "top-entropy-budget": (
            {"max_tokens_per_microbatch": 24, **same},
            {"loss_type": "grpo", "top_entropy_quantile": 0.5},
        ),
    }
    result = {}
    for name, (kwargs, config) in runs.items():
        _, ref = train(GRPOTrainer, None, config)
        fast, got = train(FastGRPOTrainer, {"padding_free": True, **kwargs}, config)
        result[name] = {"trl": ref, "fastalign": got, "grpo_loss_calls": fast.fastalign_times.calls("grpo_loss")}
        if fast.accelerator.is_main_process:
            with open(f"{out}/{name}.json", "w") as f:
                json.dump(result[name], f)


if __name__ == "__main__":
    main(sys.argv[1])
    torch.distributed.barrier()  # tear down before the interpreter does (see grpo_ranks.py)
    torch.distributed.destroy_process_group()
