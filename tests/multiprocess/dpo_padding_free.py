"""Run under ``ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2``: stock DPOTrainer and
FastDPOTrainer(DPOConfig(padding_free=True)) train the same steps on two processes; rank 0 writes
both log histories to ``<out>/dpo-<name>.json`` (tests/robustness/test_padding_free_two_ranks.py compares)."""

from __future__ import annotations

import json
import sys
import tempfile

import numpy as np
import torch
from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from fastalign.testing import WORDS, tiny_model, tiny_tokenizer
from fastalign.trl import FastDPOTrainer

TOK = tiny_tokenizer()


def dataset(n=32, seed=0):
    rng = np.random.default_rng(seed)

    def text(k):
        return " ".join(WORDS[i] for i in rng.integers(4, len(WORDS), int(k)))

    return Dataset.from_dict({"prompt": [text(rng.integers(2, 6)) for _ in range(n)],
                              "chosen": [" " + text(rng.integers(1, 20)) for _ in range(n)],
                              "rejected": [" " + text(rng.integers(1, 20)) for _ in range(n)]})  # fmt: skip


def train(cls, padding_free, kwargs, config):
    args = DPOConfig(
        output_dir=tempfile.mkdtemp(),
        use_cpu=True,
        bf16=False,
        report_to=[],
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        max_steps=3,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
        padding_free=padding_free,
        **config,
    )
    t = cls(
        model=tiny_model(TOK),
        ref_model=tiny_model(TOK),
        args=args,
        processing_class=TOK,
        train_dataset=dataset(),
        **kwargs,
    )
    t.train()
    return t, [row for row in t.state.log_history if "loss" in row]


def main(out: str) -> None:
    runs = {"sigmoid": ({}, {}), "ipo-budget": ({"max_tokens_per_microbatch": 30}, {"loss_type": ["ipo"]})}
    for name, (kwargs, config) in runs.items():
        _, ref = train(DPOTrainer, False, {}, config)
        fast, got = train(FastDPOTrainer, True, kwargs, config)
        if fast.accelerator.is_main_process:
            with open(f"{out}/dpo-{name}.json", "w") as f:
                json.dump({"trl": ref, "fastalign": got}, f)


if __name__ == "__main__":
    main(sys.argv[1])
    torch.distributed.barrier()  # tear down before the interpreter does (see grpo_ranks.py)
    torch.distributed.destroy_process_group()
