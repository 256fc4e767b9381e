"""Helpers and seeded inputs shared by the benchmark modules (benches/ is put on sys.path by
conftest.py, so ``from _common import ...`` works in every bench_*.py)."""

from __future__ import annotations

import numpy as np
import torch

SEED = 20260401

# Qwen2.5 tokenizer ids: <|im_end|> is the EOS, <|endoftext|> the pad (vocabulary 151,936).
EOS_ID = 151645
PAD_ID = 151643

# Completion masks: B rows of T generated tokens.
MASK_B, MASK_T = 512, 8192
EOS_FRACTION = 0.7

# Soft overlong reward: 8192 completions, lengths uniform in 0..4096.
OVERLONG_B = 8192
MAX_COMPLETION_LEN = 4096
SOFT_PUNISH_CACHE = 1024

# GRPO rewards: 5% of the entries NaN (a reward function returned None).
NAN_FRACTION = 0.05


def tag(
    benchmark,
    *,
    op: str,
    size: str,
    impl: str,
    role: str,
    target: float | None = None,
    nbytes: int | None = None,
    note: str | None = None,
    part_of_reference: bool = False,
) -> None:
    """Record what report.py needs in ``benchmark.extra_info``.

    role: "reference" (the group's baseline: TRL), "fastalign" (the row the issue's target
    applies to) or "other" (extra rows: other input kinds, rlox, parts of the reference).
    nbytes: bytes read + written by one fastalign call (for the achieved GB/s).
    part_of_reference: the row times a piece of the reference (reported as a share of it).
    """
    benchmark.extra_info.update(op=op, size=size, impl=impl, role=role)
    if target is not None:
        benchmark.extra_info["target"] = float(target)
    if nbytes is not None:
        benchmark.extra_info["bytes"] = int(nbytes)
    if note is not None:
        benchmark.extra_info["note"] = note
    if part_of_reference:
        benchmark.extra_info["part_of_reference"] = True


def run(benchmark, fn, *args, rounds: int | None = None, **kwargs):
    """Time ``fn(*args, **kwargs)``: pytest-benchmark's calibrated loop for fast calls, or
    ``pedantic`` with ``rounds`` rounds (after one warm-up round) for the slow, large cases."""
    if rounds is None:
        return benchmark(fn, *args, **kwargs)
    return benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=rounds, iterations=1, warmup_rounds=1)


_grpo_cache: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, np.ndarray]] = {}


def make_grpo_rewards(n: int, k: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Rewards for N completions and K reward functions, uniform in [0, 1).

    Returns (float32 CPU tensor with NaN, reward weights as GRPOTrainer holds them: a float32
    tensor of ones, the same draws without NaN as a float64 numpy array, for rlox).
    """
    key = (n, k)
    if key not in _grpo_cache:
        rng = np.random.default_rng([SEED, n, k])
        clean = rng.random((n, k), dtype=np.float32)
        with_nan = clean.copy()
        with_nan[rng.random((n, k)) < NAN_FRACTION] = np.nan
        _grpo_cache[key] = (torch.from_numpy(with_nan), torch.ones(k, dtype=torch.float32), clean.astype(np.float64))
    return _grpo_cache[key]


def make_completion_ids(b: int = MASK_B, t: int = MASK_T) -> torch.Tensor:
    """(B, T) int64 generated ids: random tokens (never EOS or pad); ~70% of the rows stop with an
    EOS at a uniformly random position and are padded after it, the others run to T."""
    rng = np.random.default_rng([SEED, b, t])
    ids = rng.integers(0, PAD_ID, size=(b, t), dtype=np.int64)  # all < PAD_ID < EOS_ID
    stops = rng.random(b) < EOS_FRACTION
    pos = rng.integers(0, t, size=b)
    for row in np.flatnonzero(stops):
        ids[row, pos[row]] = EOS_ID
        ids[row, pos[row] + 1 :] = PAD_ID
    return torch.from_numpy(ids)


def make_overlong_completions(b: int = OVERLONG_B) -> tuple[list[list[int]], torch.Tensor]:
    """B completions with lengths uniform in 0..MAX_COMPLETION_LEN, as TRL hands them to reward
    functions (a list of lists of Python ints) and as an int64 lengths tensor.

    Each list is a slice of one pool of Python ints: real, distinct ``list[int]`` objects (which
    is all either implementation looks at) without allocating ~17M int objects.
    """
    rng = np.random.default_rng([SEED, b])
    lengths = rng.integers(0, MAX_COMPLETION_LEN + 1, size=b, dtype=np.int64)
    pool = rng.integers(0, PAD_ID, size=MAX_COMPLETION_LEN + b, dtype=np.int64).tolist()
    starts = rng.integers(0, b, size=b).tolist()
    lists = [pool[s : s + n] for s, n in zip(starts, lengths.tolist())]
    return lists, torch.from_numpy(lengths)
