"""One optimizer step of stock TRL trainers beside fastalign's padding-free ones.

The long-tail rollout of ``fastalign.step_bench`` (32 sequences, lognormal lengths with median
200 and the longest 2,048 tokens, 16-token prompts; per_device_train_batch_size 8, 4 accumulation
steps), on the ``tiny`` and ``small`` random Qwen2 (small: hidden 256, 4 layers), float32, CPU:

* GRPO: ``trl.GRPOTrainer`` vs ``FastGRPOTrainer(padding_free=True)``;
* DPO: ``trl.DPOTrainer`` vs ``FastDPOTrainer`` with ``DPOConfig(padding_free=True)``.

Each benchmark is one side at one size: ``rounds`` optimizer steps after a warm-up step
(``trainer.train()`` with ``max_steps=1``, timed by a callback from step begin to step end).
``extra_info`` carries the tokens forwarded per step (counted at the input embedding). For the
interleaved comparison with peak memory, run ``fastalign bench --step``. Slow (TRL's small GRPO
step takes about a minute here): opt in with ``-m slow``.
"""

from __future__ import annotations

import os

import pytest

from fastalign.step_bench import make_trainer, time_steps

MODELS = os.environ.get("FASTALIGN_BENCH_STEP_MODELS", "tiny,small").split(",")
ROUNDS = int(os.environ.get("FASTALIGN_BENCH_STEP_ROUNDS", "3"))


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("trainer", ["grpo", "dpo"])
@pytest.mark.parametrize("side", ["trl", "fastalign"])
def test_training_step(benchmark, trainer, model, side):
    t = make_trainer(trainer, model, side)
    _, tokens, logs = time_steps(t)  # warm-up step; also counts the tokens one step forwards
    benchmark.group = f"{trainer} optimizer step, {model} model, long-tail batch"
    benchmark.extra_info.update(op=f"{trainer} step", size=model, impl=side, tokens_forwarded=tokens,
                                role="reference" if side == "trl" else "fastalign",
                                first_step_loss=logs[0]["loss"])  # fmt: skip
    benchmark.pedantic(lambda: time_steps(t), rounds=ROUNDS, iterations=1)
