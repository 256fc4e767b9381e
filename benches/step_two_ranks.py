"""The GRPO training step on several processes: stock GRPOTrainer beside FastGRPOTrainer
(padding-free, with TRL's contiguous split of the ranks and with ``balance_ranks``), on the long-tail rollout.

Launch with ``ACCELERATE_USE_CPU=1 OMP_NUM_THREADS=1 torchrun --nproc_per_node 2
benches/step_two_ranks.py [tiny|small] [rounds]``. Each rank generates its own long-tail
completions (``fastalign.step_bench``'s workload, a different draw per rank: 32 per rank,
``per_device_train_batch_size=8``, 4 accumulation steps); the three trainers take turns, one
optimizer step each per round after a warm-up step. A data-parallel step ends at the gradient
all-reduce, so every rank's step time is the slowest rank's; rank 0 prints the medians, the
tokens each rank forwarded, and the first step's loss of each side.
"""

from __future__ import annotations

import os
import statistics
import sys

import numpy as np
import torch

from fastalign import step_bench as sb
from fastalign.testing import fixed_rollout, tiny_grpo_trainer, tiny_tokenizer
from fastalign.trl import FastGRPOTrainer

SIDES = {
    "TRL": None,
    "fastalign": {"padding_free": True},
    "fastalign, balance_ranks": {"padding_free": True, "balance_ranks": True},
}


def trainer(model_name: str, kwargs: dict | None, rank: int):
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback

    tokenizer = tiny_tokenizer()
    rng = np.random.default_rng(100 + rank)
    completions = []
    for n in sb.long_tail_lengths(seed=rank).tolist():
        ids = rng.integers(4, len(tokenizer), size=n).tolist()
        ids[-1] = tokenizer.eos_token_id
        completions.append(ids)
    extra = {} if kwargs is None else {"trainer_cls": FastGRPOTrainer, "trainer_kwargs": kwargs}
    t = tiny_grpo_trainer(
        [sb._length_reward], model=sb._model(model_name, tokenizer),
        rollout_func=fixed_rollout(completions, prompt_ids=[4 + (i % 20) for i in range(sb.PROMPT_LEN)]),
        train_dataset=Dataset.from_dict({"prompt": ["what is 1 + 1 ?"] * 128}), num_generations=8,
        per_device_train_batch_size=8, gradient_accumulation_steps=4, max_completion_length=sb.MAX_LEN,
        learning_rate=1e-5, logging_steps=1, **extra,
    )  # fmt: skip
    t.remove_callback(PrinterCallback)
    return t


def main() -> None:
    model_name = sys.argv[1] if len(sys.argv) > 1 else "tiny"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    rank = int(os.environ.get("RANK", "0"))
    trainers = {side: trainer(model_name, kwargs, rank) for side, kwargs in SIDES.items()}
    samples: dict[str, list[float]] = {side: [] for side in SIDES}
    tokens: dict[str, int] = {}
    loss: dict[str, float] = {}
    for side, t in trainers.items():  # warm-up
        _, tokens[side], logs = sb.time_steps(t)
        loss[side] = logs[0]["loss"]
    for _ in range(rounds):
        for side, t in trainers.items():
            secs, _, _ = sb.time_steps(t)
            samples[side].extend(secs)
    acc = next(iter(trainers.values())).accelerator
    per_rank = acc.gather(torch.tensor([tokens[s] for s in SIDES])).view(acc.num_processes, -1).tolist()
    if acc.is_main_process:
        base = statistics.median(samples["TRL"])
        print(f"{model_name} model, {acc.num_processes} processes, median of {rounds} interleaved steps")
        print("| trainer | step | speed-up | tokens forwarded per rank (warm-up step) | first loss |")
        print("|---|---|---|---|---|")
        for i, side in enumerate(SIDES):
            med = statistics.median(samples[side])
            ranks = " / ".join(f"{row[i]:,}" for row in per_rank)
            print(f"| {side} | {med:.2f} s ({min(samples[side]):.2f}-{max(samples[side]):.2f}) | "
                  f"{base / med:.1f}x | {ranks} | {loss[side]:.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
    torch.distributed.barrier()  # tear down before the interpreter does (see tests/multiprocess/grpo_ranks.py)
    torch.distributed.destroy_process_group()
