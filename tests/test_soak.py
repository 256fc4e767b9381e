"""Memory soak: 100,000 calls of each op hold resident memory flat.

A training run calls these ops every step for days; a leak of even a few bytes per call (a
reference never released in the binding, a buffer kept alive by a cache) would show here. Each
op is warmed up, then called 100,000 times on small inputs (numpy and torch alternately, so both
wrappers are exercised) and the process's resident set size must not grow by more than 4 MiB
(allocator noise; a leak of 40 bytes per call would already be 4 MB).
"""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest
import torch

from fastalign.advantages import grpo_advantages, rloo_advantages, top_k_per_group, zero_variance_groups
from fastalign.overlong import completion_mask
from fastalign.rewards import soft_overlong, soft_overlong_penalty

CALLS = 100_000
SLACK = 4 << 20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


rng = np.random.default_rng(0)
_r = rng.random((32, 2), dtype=np.float32)
_r[3, 1] = np.nan
_ids = rng.integers(0, 6, size=(4, 16)).astype(np.int64)
_lengths = rng.integers(0, 40, size=16).astype(np.int64)
_lists = [[1] * int(n) for n in _lengths]
_reward = soft_overlong(32, 8)

OPS = {
    "grpo_advantages": lambda x: grpo_advantages(x, 8, reward_weights=[1.0, 0.5]),
    "rloo_advantages": lambda x: rloo_advantages(x, 8),
    "zero_variance_groups": lambda x: zero_variance_groups(x, 8),
    "top_k_per_group": lambda x: top_k_per_group(x[:, 0].copy() if isinstance(x, np.ndarray) else x[:, 0].contiguous(),
                                                 8, 3),
    "completion_mask": lambda x: completion_mask(_ids if isinstance(x, np.ndarray) else torch.from_numpy(_ids), 1, 0,
                                                 mask_truncated_completions=True),
    "soft_overlong_penalty": lambda x: soft_overlong_penalty(_lengths if isinstance(x, np.ndarray)
                                                             else torch.from_numpy(_lengths), 32, 8),
    "soft_overlong (lists)": lambda x: _reward(completion_ids=_lists),
}


@pytest.mark.parametrize("op", list(OPS))
def test_resident_memory_is_flat_over_100k_calls(op):
    fn = OPS[op]
    inputs = (_r, torch.from_numpy(_r))
    for i in range(2000):  # warm-up: caches, allocator pools, lazy imports
        fn(inputs[i & 1])
    gc.collect()
    before = _rss()
    for i in range(CALLS):
        fn(inputs[i & 1])
    gc.collect()
    grown = _rss() - before
    assert grown < SLACK, f"{op}: resident memory grew by {grown / 2**20:.1f} MiB over {CALLS:,} calls"
