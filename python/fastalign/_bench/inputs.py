"""Seeded inputs of the benchmarks: what TRL holds at that point of a training step (CPU torch
tensors, Python lists of token ids, a ``datasets.Dataset``), the same for ``fastalign bench`` and
``benches/`` at the same size.

Every builder draws from :data:`SEED` (mixed with its sizes, so each size is its own draw) except
two of the suite's own workloads kept as they were drawn before the registry existed
(:func:`top_k_scores`, :func:`generation_lists`). Builders do not cache: the command builds each
size once, and ``benches/`` keeps what it reuses across tests. torch, pyarrow and datasets are
imported inside the builders that need them, so importing this module costs numpy only (the
packing benchmark's memory subprocess imports it before it measures).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "EOS_ID",
    "PAD_ID",
    "SEED",
    "completion_ids",
    "dpo_logps",
    "entropies",
    "generation_lists",
    "grpo_rewards",
    "kk_lengths",
    "logps",
    "overlong_completions",
    "pack_dataset_input",
    "pack_lengths",
    "scoring_inputs",
    "top_k_scores",
]

SEED = 20260401

# Qwen2.5 tokenizer ids: <|im_end|> is the EOS, <|endoftext|> the pad (vocabulary 151,936).
EOS_ID = 151645
PAD_ID = 151643
VOCAB = 151_936

EOS_FRACTION = 0.7  # completion masks: rows that stop with an EOS
NAN_FRACTION = 0.05  # GRPO rewards: entries a reward function returned None for
OVERLONG_L_MAX = 4096  # soft overlong: lengths uniform in 0..L_max


# --- rollout ----------------------------------------------------------------------------------


def grpo_rewards(n: int, k: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Rewards for ``n`` completions and ``k`` reward functions, uniform in [0, 1).

    Returns (a float32 CPU tensor with NaN where a function returned None, the reward weights as
    GRPOTrainer holds them: a float32 tensor of ones, the same draws without NaN as a float64
    numpy array, for rlox)."""
    import torch

    rng = np.random.default_rng([SEED, n, k])
    clean = rng.random((n, k), dtype=np.float32)
    with_nan = clean.copy()
    with_nan[rng.random((n, k)) < NAN_FRACTION] = np.nan
    return torch.from_numpy(with_nan), torch.ones(k, dtype=torch.float32), clean.astype(np.float64)


def completion_ids(b: int, t: int) -> torch.Tensor:
    """(b, t) int64 generated ids: random tokens (never EOS or pad); ~70% of the rows stop with an
    EOS at a uniformly random position and are padded after it, the others run to ``t``."""
    import torch

    rng = np.random.default_rng([SEED, b, t])
    ids = rng.integers(0, PAD_ID, size=(b, t), dtype=np.int64)  # all < PAD_ID < EOS_ID
    stops = rng.random(b) < EOS_FRACTION
    pos = rng.integers(0, t, size=b)
    for row in np.flatnonzero(stops):
        ids[row, pos[row]] = EOS_ID
        ids[row, pos[row] + 1 :] = PAD_ID
    return torch.from_numpy(ids)


def overlong_completions(b: int) -> tuple[list[list[int]], torch.Tensor]:
    """``b`` completions with lengths uniform in 0..4096, as TRL hands them to reward functions (a
    list of lists of Python ints) and as an int64 lengths tensor.

    Each list is a slice of one pool of Python ints: real, distinct ``list[int]`` objects (which
    is all either implementation looks at) without allocating a Python int per token."""
    import torch

    rng = np.random.default_rng([SEED, b])
    lengths = rng.integers(0, OVERLONG_L_MAX + 1, size=b, dtype=np.int64)
    pool = rng.integers(0, PAD_ID, size=OVERLONG_L_MAX + b, dtype=np.int64).tolist()
    starts = rng.integers(0, b, size=b).tolist()
    lists = [pool[s : s + n] for s, n in zip(starts, lengths.tolist())]
    return lists, torch.from_numpy(lengths)


def scoring_inputs(n: int) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """``n`` dataset rows (a prompt and three reward columns ``r0..r2``, 5% None, never all three:
    TRL warns about each such row) and ``n`` completions (1..512 tokens of
    :data:`fastalign.testing.WORDS`, 80% ending in EOS, id 1)."""
    from ..testing import WORDS

    rng = np.random.default_rng([SEED, n, 2])
    r = rng.random((n, 3)).round(4)
    none = rng.random((n, 3)) < NAN_FRACTION
    none[none.all(axis=1), 0] = False
    rows = [
        {"prompt": "what is 1 + 1 ?", **{f"r{j}": None if none[i, j] else float(r[i, j]) for j in range(3)}}
        for i in range(n)
    ]
    lengths = rng.integers(1, 513, n)
    completions = [rng.integers(4, len(WORDS), int(m)).tolist() for m in lengths]
    for c in completions[: int(0.8 * n)]:
        c[-1] = 1
    return rows, completions


def top_k_scores(n: int) -> torch.Tensor:
    """``n`` float64 scores uniform in [0, 1) (GFPO ranks a group by such a score, e.g. lengths)."""
    import torch

    return torch.from_numpy(np.random.default_rng(7).random(n))


def generation_lists(n: int) -> tuple[list[list[int]], list[list[int]]]:
    """A generation batch as Python lists: ``n`` 16-token prompts and ``n`` completions, lengths
    lognormal (median 200, sigma 0.9, clipped to [16, 2048], the first one 2,048 tokens)."""
    rng = np.random.default_rng(0)
    lengths = np.clip(np.round(rng.lognormal(np.log(200), 0.9, n)), 16, 2048).astype(int)
    lengths[0] = 2048
    prompts = [rng.integers(10, 150_000, 16).tolist() for _ in range(n)]
    completions = [rng.integers(10, 150_000, int(k)).tolist() for k in lengths]
    return prompts, completions


# --- losses -----------------------------------------------------------------------------------


def logps(b: int, t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """What ``GRPOTrainer._compute_loss`` holds: float32 (b, t) per-token log-probs in (-3, 0],
    old log-probs (the same + 0.05 N(0, 1)), the int64 right-padded completion mask (rows of
    random length 1..t) and float32 per-row advantages N(0, 1)."""
    import torch

    g = torch.Generator().manual_seed(SEED + b * 7 + t)
    lp = -torch.rand(b, t, generator=g) * 3
    old = lp + 0.05 * torch.randn(b, t, generator=g)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = (torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)).long()
    return lp, old, mask, torch.randn(b, generator=g)


def entropies(b: int, t: int) -> torch.Tensor:
    """float32 (b, t) per-token entropies uniform in [0, 1) (what the trainers' loss logs)."""
    import torch

    return torch.rand(b, t, generator=torch.Generator().manual_seed(SEED + b))


def dpo_logps(b: int, t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A DPO step after the forward pass, ``b`` pairs of ``t`` tokens (chosen rows first): float32
    per-token log-probs (2b, t - 1), zero over a 16-token prompt; the int64 completion mask (2b, t);
    the reference model's chosen and rejected sequence log-probs (b,) each."""
    import torch

    g = torch.Generator().manual_seed(SEED + b)
    cm = torch.ones(2 * b, t, dtype=torch.long)
    cm[:, :16] = 0  # a prompt
    lp = -torch.rand(2 * b, t - 1, generator=g) * cm[:, 1:]
    ref = lp.sum(1) + torch.randn(2 * b, generator=g)
    return lp, cm, ref[:b].contiguous(), ref[b:].contiguous()


# --- packing ------------------------------------------------------------------------------------


def pack_lengths(n: int) -> np.ndarray:
    """``n`` int64 sequence lengths, lognormal (mu=5.5, sigma=1: mean about 403 tokens), at least 1."""
    rng = np.random.default_rng(SEED)
    return np.maximum(rng.lognormal(5.5, 1.0, n).astype(np.int64), 1)


def pack_dataset_input(n: int) -> Any:
    """A ``datasets.Dataset`` of ``n`` rows of :func:`pack_lengths` tokens: one ``input_ids``
    column of int64 ids (consecutive, modulo the vocabulary), held in memory."""
    import pyarrow as pa
    from datasets import Dataset
    from datasets.table import InMemoryTable

    lengths = pack_lengths(n)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = pa.array(np.arange(int(offsets[-1]), dtype=np.int64) % VOCAB)
    return Dataset(InMemoryTable(pa.table({"input_ids": pa.ListArray.from_arrays(offsets, values)})))


def kk_lengths(n: int) -> np.ndarray:
    """``n`` int64 sequence lengths uniform in 64..8191 (to be balanced across ranks)."""
    return np.random.default_rng(SEED).integers(64, 8192, n)
