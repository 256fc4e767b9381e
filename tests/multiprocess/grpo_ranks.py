"""Run under ``ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2``: FastGRPOTrainer on two
processes. Every rank writes ``<out>/<name>-rank<r>.json`` (tests/robustness/test_two_ranks_grpo.py reads
them):

* ``padded-*`` / ``balanced-*``: GRPOTrainer and FastGRPOTrainer (padded, or padding-free with
  the ranks balanced by tokens) train the same steps; both log histories and how often
  fastalign's loss ran on this rank;
* ``dynamic-step``: one scoring step where this rank's prompts are all zero-variance on rank 0
  and all informative on rank 1; what this rank got back;
* ``dynamic-train`` / ``gfpo-train`` / ``dynamic-gfpo-padding-free``: a few real steps.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from datasets import Dataset
from trl import GRPOTrainer

from fastalign.testing import tiny_grpo_trainer
from fastalign.trl import FastGRPOTrainer

G = 4

# Python-level collectives made while FastGRPOTrainer computes a training loss: none, since the
# call counts are agreed per generation batch and the metrics are reduced once per optimizer step
_LOSS = {"inside": False, "collectives": 0}


def _counted(fn):
    def call(*args, **kwargs):
        if _LOSS["inside"]:
            _LOSS["collectives"] += 1
        return fn(*args, **kwargs)

    return call


_COLLECTIVES = "all_reduce all_gather all_gather_into_tensor all_gather_object broadcast broadcast_object_list gather"
for _name in (_COLLECTIVES + " gather_object reduce reduce_scatter_tensor barrier").split():
    setattr(torch.distributed, _name, _counted(getattr(torch.distributed, _name)))


class CountingTrainer(FastGRPOTrainer):
    def _compute_loss(self, model, inputs):
        _LOSS["inside"] = self.model.training
        try:
            return super()._compute_loss(model, inputs)
        finally:
            _LOSS["inside"] = False


def ends_with_eos(completion_ids, **kwargs):
    return [1.0 if ids and ids[-1] == 1 else 0.0 for ids in completion_ids]


def short(completion_ids, **kwargs):
    return [-len(c) / 16 for c in completion_ids]


def flat_or_length(prompts, completion_ids, **kwargs):
    """Constant for the prompt "flat" (a zero-variance group); the length otherwise."""
    return [1.0 if p == "flat" else float(len(c)) for p, c in zip(prompts, completion_ids)]


def random_rollout(seed):
    rng = np.random.default_rng(seed)

    def rollout(prompts, trainer):
        lengths = rng.integers(1, 11, size=len(prompts))
        completions = [[5] * (n - 1) + [1] for n in lengths]
        return {"prompt_ids": [[4, 5] for _ in prompts], "completion_ids": completions,
                "logprobs": [[0.0] * len(c) for c in completions]}  # fmt: skip

    return rollout


def history(t):
    return [row for row in t.state.log_history if "loss" in row]


def train(cls, kwargs, config, prompts=None):
    prompts = prompts or ["what is 1 + 1 ?", "what is 2 + 3 ?", "a b c d e f g h", "1"] * 8
    t = tiny_grpo_trainer([ends_with_eos, short], trainer_cls=cls, train_dataset=Dataset.from_dict({"prompt": prompts}),
                          max_completion_length=12, trainer_kwargs=kwargs,
                          **{"max_steps": 3, "learning_rate": 1e-3, "temperature": 0.7, **config})  # fmt: skip
    t.train()
    return t


def write(out, name, rank, payload):
    with open(f"{out}/{name}-rank{rank}.json", "w") as f:
        json.dump(payload, f)


def parity(out):
    runs = {
        "padded-dapo": ({}, {}),
        "padded-gspo": ({}, {"loss_type": "grpo", "importance_sampling_level": "sequence", "num_iterations": 2}),
        "padded-bnpo-beta": ({}, {"loss_type": "bnpo", "beta": 0.04}),
        "padded-cispo": ({}, {"loss_type": "cispo", "epsilon_high": 1.5}),
        "balanced-dapo": ({"padding_free": True, "balance_ranks": True}, {}),
        "balanced-grpo-beta": ({"padding_free": True, "balance_ranks": True}, {"loss_type": "grpo", "beta": 0.04}),
        "padding-free-budget-bnpo": ({"padding_free": True, "max_tokens_per_microbatch": 32}, {"loss_type": "bnpo"}),
    }
    for name, (kwargs, config) in runs.items():
        ref = train(GRPOTrainer, None, config)
        _LOSS["collectives"] = 0
        fast = train(CountingTrainer, kwargs, config)
        write(out, name, fast.accelerator.process_index, {
            "trl": history(ref), "fastalign": history(fast),
            "grpo_loss_calls": fast.fastalign_times.calls("grpo_loss"),
            "balance_calls": fast.fastalign_times.calls("balance_partitions"),
            "loss_collectives": _LOSS["collectives"],
        })  # fmt: skip


def dynamic_step(out):
    t = tiny_grpo_trainer([flat_or_length], trainer_cls=FastGRPOTrainer, num_generations=G,
                          per_device_train_batch_size=8, rollout_func=random_rollout(0),
                          trainer_kwargs={"dynamic_sampling": True, "max_num_gen_batches": 3})  # fmt: skip
    rank = t.accelerator.process_index
    prompt = "flat" if rank == 0 else "vary"
    got = t._generate_and_score_completions([{"prompt": prompt} for _ in range(2 * G)])
    adv = got["advantages"].view(-1, G)
    metrics = {k: v[-1] for k, v in t._metrics["train"].items() if k.startswith("dynamic_sampling/")}
    write(out, "dynamic-step", rank, {
        "rows": int(got["completion_ids"].shape[0]),
        "group_signal": adv.abs().sum(dim=1).tolist(),
        "logged_prompts": list(t._logs["prompt"]),
        "metrics": metrics,
    })  # fmt: skip


def feature_runs(out):
    prompts = ["flat", "vary"] * 8
    runs = {
        "dynamic-train": {"dynamic_sampling": True, "max_num_gen_batches": 2},
        "gfpo-train": {"gfpo_num_remains_in_group": 2},
        "dynamic-gfpo-padding-free": {"dynamic_sampling": True, "gfpo_num_remains_in_group": 2,
                                      "padding_free": True, "max_tokens_per_microbatch": 16},
    }  # fmt: skip
    for name, kwargs in runs.items():
        t = tiny_grpo_trainer([flat_or_length], trainer_cls=FastGRPOTrainer, num_generations=G,
                              per_device_train_batch_size=8, rollout_func=random_rollout(1),
                              train_dataset=Dataset.from_dict({"prompt": prompts}), trainer_kwargs=kwargs,
                              max_completion_length=12, max_steps=2, learning_rate=1e-3)  # fmt: skip
        t.train()
        write(out, name, t.accelerator.process_index, {
            "history": history(t), "grpo_loss_calls": t.fastalign_times.calls("grpo_loss"),
        })  # fmt: skip


if __name__ == "__main__":
    dynamic_step(sys.argv[1])
    feature_runs(sys.argv[1])
    parity(sys.argv[1])
    # tear the process group down before the interpreter does: left to exit, a rank could abort
    # ("terminate called without an active exception") after writing its results
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
