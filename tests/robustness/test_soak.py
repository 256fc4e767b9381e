"""Memory soak: 100,000 calls of each op hold resident memory flat.

A training run calls these ops every step for days; a leak of even a few bytes per call (a
reference never released in the binding, a buffer kept alive by a cache) would show here. Each
op is warmed up, then called 100,000 times on small inputs (numpy and torch alternately, so both
wrappers are exercised) and the process's resident set size must not grow by more than 4 MiB
(allocator noise; a leak of 40 bytes per call would already be 4 MB).

Every op family is covered: advantages, overlong, rewards, ratios and the GRPO loss (torch custom
ops: plain calls alternate with calls that record autograd and run the backward), and the
packing array API plus ``pack_table`` (Arrow buffers in, Arrow buffers out). The preference
losses (``dpo_loss``, ``cpo_loss``, ``dft_loss``, ``wpo_weights``) are plain torch with no
fastalign-owned buffers, and are not soaked. The torch-dispatched and Arrow ops run 20,000 calls
by default (a leak of 200 bytes per call still shows); ``FASTALIGN_SOAK_CALLS`` sets every op's
call count (100000: the full soak of the issue; the slack stays 4 MiB).
"""

from __future__ import annotations

import gc
import os

import numpy as np
import pyarrow as pa
import pytest
import torch

from fastalign.advantages import grpo_advantages, rloo_advantages, top_k_per_group, zero_variance_groups
from fastalign.losses import grpo_loss
from fastalign.overlong import completion_mask
from fastalign.packing import balance_partitions, bfd, cu_seqlens, first_fit_decreasing, pack_table, position_ids
from fastalign.ratios import masked_reduce, sequence_log_ratio, vllm_is_ratio
from fastalign.rewards import soft_overlong, soft_overlong_penalty

CALLS = 100_000
HEAVY_CALLS = 20_000
"""Default calls of the ops that go through torch's dispatcher and autograd, or build Arrow
tables (HEAVY below): ~50-150 us a call, so 100,000 calls of each would take minutes.
``FASTALIGN_SOAK_CALLS=100000`` runs every op 100,000 times (the full soak; it passed, 17 ops,
in 9 minutes on 2 shared cores)."""
_ENV_CALLS = os.environ.get("FASTALIGN_SOAK_CALLS")
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
    "top_k_per_group": lambda x: top_k_per_group(
        x[:, 0].copy() if isinstance(x, np.ndarray) else x[:, 0].contiguous(), 8, 3
    ),
    "completion_mask": lambda x: completion_mask(
        _ids if isinstance(x, np.ndarray) else torch.from_numpy(_ids), 1, 0, mask_truncated_completions=True
    ),
    "soft_overlong_penalty": lambda x: soft_overlong_penalty(
        _lengths if isinstance(x, np.ndarray) else torch.from_numpy(_lengths), 32, 8
    ),
    "soft_overlong (lists)": lambda x: _reward(completion_ids=_lists),
}

# ratios and losses: torch tensors (the CPU kernels read them in place); the second input of
# each pair records autograd, and the gradient is computed, so the backward kernels soak too
_g = torch.Generator().manual_seed(0)
_lp = -torch.rand(4, 16, generator=_g)
_old = _lp + 0.1 * torch.randn(4, 16, generator=_g)
_mask = torch.rand(4, 16, generator=_g) > 0.3
_adv = torch.randn(4, generator=_g)
_packed = -torch.rand(24, generator=_g)
_cu = torch.tensor([0, 5, 5, 17, 24])


def _with_grad(x, grad: bool):
    return x.clone().requires_grad_(True) if grad else x


def _backward(out, x):
    if x.requires_grad:
        out.sum().backward()


def _masked_mean(x):
    lp = _with_grad(_lp, isinstance(x, torch.Tensor))
    _backward(masked_reduce(lp, _mask, reduction="mean"), lp)
    masked_reduce(_packed, reduction="max", cu_seqlens=_cu)


def _sequence_log_ratio(x):
    lp = _with_grad(_lp, isinstance(x, torch.Tensor))
    _backward(sequence_log_ratio(lp, _old, _mask), lp)


def _grpo_loss(x):
    lp = _with_grad(_lp, isinstance(x, torch.Tensor))
    out = grpo_loss(lp, _old, _adv, _mask, loss_type="dapo", beta=0.04, ref_per_token_logps=_old)
    _backward(out.loss, lp)
    out.metrics()


_lengths_t = torch.from_numpy(_lengths)
_table = pa.table({"input_ids": _lists[:8], "labels": [[2] * len(x) for x in _lists[:8]]})

OPS.update({
    "masked_reduce (+ backward)": _masked_mean,
    "sequence_log_ratio (+ backward)": _sequence_log_ratio,
    "vllm_is_ratio": lambda x: vllm_is_ratio(_old, _lp, _mask, mode="token_truncate", clip_max=2.0).metrics(),
    "grpo_loss (+ backward)": _grpo_loss,
    "bfd": lambda x: bfd(_lengths if isinstance(x, np.ndarray) else _lengths_t, 48, split=True),
    "first_fit_decreasing": lambda x: first_fit_decreasing(_lengths, 48),
    "position_ids": lambda x: position_ids(_lengths if isinstance(x, np.ndarray) else _lengths_t),
    "cu_seqlens": lambda x: cu_seqlens(_lengths if isinstance(x, np.ndarray) else _lengths_t),
    "balance_partitions": lambda x: balance_partitions(_lengths, 4),
    "pack_table": lambda x: pack_table(_table, 48, "bfd" if isinstance(x, np.ndarray) else "wrapped"),
})  # fmt: skip
HEAVY = {"masked_reduce (+ backward)", "sequence_log_ratio (+ backward)", "vllm_is_ratio", "grpo_loss (+ backward)",
         "pack_table"}  # fmt: skip


@pytest.mark.parametrize("op", list(OPS))
def test_resident_memory_is_flat_over_100k_calls(op):
    fn = OPS[op]
    calls = int(_ENV_CALLS) if _ENV_CALLS else (HEAVY_CALLS if op in HEAVY else CALLS)
    inputs = (_r, torch.from_numpy(_r))
    for i in range(2000):  # warm-up: caches, allocator pools, lazy imports
        fn(inputs[i & 1])
    gc.collect()
    before = _rss()
    for i in range(calls):
        fn(inputs[i & 1])
    gc.collect()
    grown = _rss() - before
    assert grown < SLACK, f"{op}: resident memory grew by {grown / 2**20:.1f} MiB over {calls:,} calls"
