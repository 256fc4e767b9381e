"""The training step, timed: stock TRL trainers beside fastalign's padding-free ones.

A user feels the optimizer step, not the ops inside it, so this times whole steps
(``trainer.train()``, one optimizer step after a warm-up one) on a long-tail rollout: 32
completions whose lengths are lognormal (median 200 tokens, sigma 0.9, clipped to [16, 2048], the
longest forced to 2048), 16-token prompts, ``per_device_train_batch_size=8`` and 4 accumulation
steps, so TRL pads every micro-batch to the longest completion of the generation batch
(TRL issue #7179). Models are random Qwen2s built from a config (nothing downloaded), in float32
on the CPU. DPO runs the same way on 32 long-tail preference pairs.

Both trainers of a comparison live in one process and take turns (TRL, fastalign, TRL, ...), so
drift on a noisy machine hits both; the reported time is the median over rounds. Tokens forwarded
are counted by a hook on the input embedding; peak memory is each side's own process's peak
resident memory above its resident memory before the first step (``memory=True`` runs each side
in a subprocess; it cannot be separated inside one process).

Run ``fastalign bench --step`` (or ``benches/bench_step.py`` under pytest-benchmark).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any, TypedDict

import numpy as np

__all__ = ["MODELS", "compare", "long_tail_lengths", "make_trainer", "peak_memory", "time_steps"]


class ModelSize(TypedDict):
    """A Qwen2 model's sizes (``Qwen2Config`` arguments)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int


MODELS: dict[str, ModelSize] = {
    # attention-dominated
    "tiny": ModelSize(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=128, vocab_size=1000),
    # the "small" model: hidden 256, 4 layers
    "small": ModelSize(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                       intermediate_size=768, vocab_size=4096),
}  # fmt: skip
PROMPT_LEN = 16
N_SEQUENCES = 32
MAX_LEN = 2048
SIDES = ("trl", "fastalign")


def long_tail_lengths(
    n: int = N_SEQUENCES, *, median: float = 200.0, sigma: float = 0.9, seed: int = 0, lo: int = 16, hi: int = MAX_LEN
) -> np.ndarray:
    """Completion lengths of a long-tail rollout: lognormal, clipped, the longest forced to ``hi``."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(median), sigma, n)), lo, hi).astype(np.int64)
    lengths[int(np.argmax(lengths))] = hi
    return lengths


def _model(name: str, tokenizer: Any) -> Any:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        **MODELS[name],
        max_position_embeddings=4 * MAX_LEN,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def _completions(tokenizer: Any) -> list[list[int]]:
    rng = np.random.default_rng(1)
    words = len(tokenizer)
    out = []
    for n in long_tail_lengths().tolist():
        ids = rng.integers(4, words, size=n).tolist()
        ids[-1] = tokenizer.eos_token_id
        out.append(ids)
    return out


def _length_reward(completion_ids: list, **kwargs: Any) -> list[float]:
    return [(len(c) % 7) / 7.0 for c in completion_ids]


def _grpo(model_name: str, side: str, **config: Any) -> Any:
    from datasets import Dataset

    from .testing import fixed_rollout, tiny_grpo_trainer, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    completions = _completions(tokenizer)
    kwargs: dict[str, Any] = {}
    if side == "fastalign":
        from .trl import FastGRPOTrainer

        kwargs = dict(trainer_cls=FastGRPOTrainer, trainer_kwargs={"padding_free": True})
    prompt = [4 + (i % 20) for i in range(PROMPT_LEN)]
    return tiny_grpo_trainer(
        [_length_reward],
        model=_model(model_name, tokenizer),
        rollout_func=fixed_rollout(completions, prompt_ids=prompt),
        train_dataset=Dataset.from_dict({"prompt": ["what is 1 + 1 ?"] * 64}),
        num_generations=8,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=4,
        max_completion_length=MAX_LEN,
        learning_rate=1e-5,
        logging_steps=1,
        **kwargs,
        **config,
    )


def _dpo(model_name: str, side: str, **config: Any) -> Any:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from .testing import WORDS, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    rng = np.random.default_rng(2)

    def text(n: int) -> str:  # n words of the tiny vocabulary: n tokens
        return " ".join(WORDS[i] for i in rng.integers(4, len(WORDS), n))

    # completions one word short of their length: TRL appends the EOS token
    rows = {
        "prompt": [text(PROMPT_LEN) for _ in range(N_SEQUENCES)],
        "chosen": [text(int(n) - 1) for n in long_tail_lengths(seed=3)],
        "rejected": [text(int(n) - 1) for n in long_tail_lengths(seed=4)],
    }
    cls = DPOTrainer
    if side == "fastalign":
        from .trl import FastDPOTrainer

        cls = FastDPOTrainer
    args = DPOConfig(output_dir=tempfile.mkdtemp(prefix="fastalign-step-"), use_cpu=True, bf16=False, report_to=[],
                     per_device_train_batch_size=8, gradient_accumulation_steps=4, max_length=None,
                     learning_rate=1e-6, logging_steps=1, save_strategy="no", seed=0, disable_tqdm=True,
                     padding_free=side == "fastalign", **config)  # fmt: skip
    return cls(
        model=_model(model_name, tokenizer),
        ref_model=_model(model_name, tokenizer),
        args=args,
        processing_class=tokenizer,
        train_dataset=Dataset.from_dict(rows),
    )


def make_trainer(trainer: str, model_name: str, side: str, **config: Any) -> Any:
    """A GRPO or DPO trainer on the long-tail workload: ``side`` "trl" (stock) or "fastalign"."""
    from transformers.trainer_callback import PrinterCallback

    if model_name not in MODELS or side not in SIDES or trainer not in ("grpo", "dpo"):
        raise ValueError(f"unknown trainer/model/side {trainer!r}/{model_name!r}/{side!r}")
    t = (_grpo if trainer == "grpo" else _dpo)(model_name, side, **config)
    t.remove_callback(PrinterCallback)  # the step's log rows are returned, not printed
    return t


@contextlib.contextmanager
def _token_counter(model: Any) -> Iterator[list[int]]:
    count = [0]

    def hook(module: Any, args: Any, output: Any) -> None:
        count[0] += int(args[0].numel())

    handle = model.get_input_embeddings().register_forward_hook(hook)
    try:
        yield count
    finally:
        handle.remove()


def time_steps(trainer: Any, steps: int = 1) -> tuple[list[float], int, list[dict]]:
    """Run ``steps`` optimizer steps (``trainer.train()``); return the wall seconds of each step,
    the tokens forwarded in all of them, and the logged rows."""
    from transformers import TrainerCallback

    times: list[float] = []

    class _Clock(TrainerCallback):
        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self.t = time.perf_counter()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            times.append(time.perf_counter() - self.t)

    trainer.args.max_steps = steps
    clock = _Clock()
    trainer.add_callback(clock)
    try:
        with _token_counter(trainer.model) as tokens:
            trainer.train()
    finally:
        trainer.remove_callback(clock)
    return times, tokens[0], [row for row in trainer.state.log_history if "loss" in row]


def compare(trainer: str = "grpo", model_name: str = "small", rounds: int = 3, out: Any = None) -> dict:
    """Interleaved step times of stock TRL and fastalign (one warm-up step each, then ``rounds``
    rounds of one step each); returns medians, all samples, tokens per step and the ratio."""
    out = out or sys.stdout
    sides = {side: make_trainer(trainer, model_name, side) for side in SIDES}
    samples: dict[str, list[float]] = {side: [] for side in SIDES}
    tokens: dict[str, int] = {}
    first: dict[str, dict] = {}
    for side, t in sides.items():  # warm-up step (first-call allocations, kernels)
        _, tokens[side], logs = time_steps(t)
        first[side] = logs[0]
    for _ in range(rounds):
        for side, t in sides.items():
            secs, _, _ = time_steps(t)
            samples[side].extend(secs)
    med = {side: statistics.median(xs) for side, xs in samples.items()}
    result = {
        "trainer": trainer,
        "model": model_name,
        "rounds": rounds,
        "seconds": samples,
        "median_seconds": med,
        "tokens_per_step": tokens,
        "speedup": med["trl"] / med["fastalign"],
        "first_step_loss": {side: first[side]["loss"] for side in SIDES},
    }
    print(f"{trainer} {model_name}: TRL {med['trl']:.2f} s, fastalign {med['fastalign']:.2f} s "
          f"-> {result['speedup']:.1f}x; tokens forwarded {tokens['trl']:,} vs {tokens['fastalign']:,} "
          f"(median of {rounds} interleaved steps)", file=out, flush=True)  # fmt: skip
    return result


def _status_bytes(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, from /proc. (Not
    ``ru_maxrss``: a child started by fork + exec inherits its parent's.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _memory_child(trainer: str, model_name: str, side: str) -> None:
    t = make_trainer(trainer, model_name, side)
    before = _status_bytes("VmRSS")
    time_steps(t)
    print(json.dumps({"peak_above_start": _status_bytes("VmHWM") - before}))


def peak_memory(trainer: str = "grpo", model_name: str = "small") -> dict[str, int]:
    """Peak resident bytes above the start of one step, each side in its own process."""
    result = {}
    for side in SIDES:
        code = f"from fastalign.step_bench import _memory_child; _memory_child({trainer!r}, {model_name!r}, {side!r})"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        result[side] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_above_start"]
    return result
