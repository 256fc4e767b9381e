"""The bad-input cases of tests/robustness/test_bad_input.py (every public function x every kind of
wrong argument, with the exception class and the argument it must name), and the snapshot and
comparison that check a failed call left its inputs unmodified."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from fastalign.advantages import grpo_advantages, rloo_advantages, zero_variance_groups
from fastalign.errors import InvalidArgumentError, InvalidTypeError
from fastalign.overlong import completion_mask
from fastalign.rewards import soft_overlong, soft_overlong_penalty

T, V = InvalidTypeError, InvalidArgumentError

R = np.random.default_rng(0).random((8, 2)).astype(np.float32)
R_T = torch.from_numpy(R.copy())
IDS = np.random.default_rng(1).integers(0, 5, size=(4, 6)).astype(np.int64)
LENS = np.array([3, 9, 12], dtype=np.int64)


def _cases():
    c = []

    def add(label, fn, args, kwargs, exc, arg):
        c.append(pytest.param(fn, args, kwargs, exc, arg, id=label))

    for name, fn in (("grpo", grpo_advantages), ("rloo", rloo_advantages), ("zvg", zero_variance_groups)):
        add(f"{name}-list", fn, ([1.0, 2.0], 2), {}, T, "rewards")
        add(f"{name}-int-dtype", fn, (np.ones(4, np.int64), 2), {}, T, "rewards")
        add(f"{name}-f16-dtype", fn, (np.ones(4, np.float16), 2), {}, T, "rewards")
        add(f"{name}-bf16-tensor", fn, (torch.ones(4, dtype=torch.bfloat16), 2), {}, T, "rewards")
        add(f"{name}-3d", fn, (np.ones((2, 2, 2), np.float32), 2), {}, V, "rewards")
        add(f"{name}-0d", fn, (np.ones((), np.float32), 1), {}, V, "rewards")
        add(f"{name}-noncontig-np", fn, (R.T, 2), {}, V, "rewards")
        add(f"{name}-noncontig-torch", fn, (R_T[::2], 2), {}, V, "rewards")
        add(f"{name}-fortran", fn, (np.asfortranarray(R), 2), {}, V, "rewards")
        add(f"{name}-byteorder", fn, (R.astype(">f4"), 2), {}, T, "rewards")
        add(f"{name}-empty", fn, (np.ones(0, np.float32), 2), {}, V, "rewards")
        add(f"{name}-empty-cols", fn, (np.ones((4, 0), np.float32), 2), {}, V, "rewards")
        add(f"{name}-not-dividing", fn, (R, 3), {}, V, "num_generations")
        add(f"{name}-g0", fn, (R, 0), {}, V, "num_generations")
        add(f"{name}-g-negative", fn, (R, -2), {}, V, "num_generations")
        add(f"{name}-g-float", fn, (R, 2.0), {}, T, "num_generations")
        add(f"{name}-g-bool", fn, (R, True), {}, T, "num_generations")
        add(f"{name}-weights-len", fn, (R, 2), {"reward_weights": [1.0]}, V, "reward_weights")
        add(f"{name}-weights-nan", fn, (R, 2), {"reward_weights": [1.0, float("nan")]}, V, "reward_weights")
        add(f"{name}-weights-str", fn, (R, 2), {"reward_weights": ["a", "b"]}, T, "reward_weights")
    for name, fn in (("grpo", grpo_advantages), ("rloo", rloo_advantages)):
        add(f"{name}-eps-nan", fn, (R, 2), {"eps": float("nan")}, V, "eps")
        add(f"{name}-eps-negative", fn, (R, 2), {"eps": -1.0}, V, "eps")
        add(f"{name}-metrics-type", fn, (R, 2), {"metrics": "yes"}, T, "metrics")
    add("grpo-scale-unknown", grpo_advantages, (R, 2), {"scale_rewards": "max"}, V, "scale_rewards")
    add("grpo-scale-type", grpo_advantages, (R, 2), {"scale_rewards": 1}, V, "scale_rewards")
    add(
        "grpo-agg-unknown",
        grpo_advantages,
        (R, 2),
        {"multi_objective_aggregation": "sum"},
        V,
        "multi_objective_aggregation",
    )
    add("rloo-kl-missing", rloo_advantages, (R, 2), {"beta": 0.1}, V, "kl")
    add("rloo-kl-len", rloo_advantages, (R, 2), {"beta": 0.1, "kl": np.ones(3, np.float32)}, V, "kl")
    add("rloo-kl-dtype", rloo_advantages, (R, 2), {"beta": 0.1, "kl": np.ones(8, np.float64)}, T, "kl")
    add("rloo-kl-device", rloo_advantages, (R, 2), {"beta": 0.1, "kl": torch.ones(8, device="meta")}, T, "kl")
    add("rloo-beta-inf", rloo_advantages, (R, 2), {"beta": float("inf"), "kl": np.ones(8, np.float32)}, V, "beta")
    add("rloo-clip-order", rloo_advantages, (R, 2), {"reward_clip_range": (1.0, -1.0)}, V, "reward_clip_range")
    add("rloo-clip-shape", rloo_advantages, (R, 2), {"reward_clip_range": 1.0}, V, "reward_clip_range")
    add("rloo-normalize-type", rloo_advantages, (R, 2), {"normalize_advantages": "no"}, T, "normalize_advantages")
    add("zvg-atol-negative", zero_variance_groups, (R, 2), {"atol": -1e-6}, V, "atol")
    add("zvg-rtol-nan", zero_variance_groups, (R, 2), {"rtol": float("nan")}, V, "rtol")

    add("mask-list", completion_mask, ([[1, 2]], 1, 0), {}, T, "completion_ids")
    add("mask-float", completion_mask, (IDS.astype(np.float32), 1, 0), {}, T, "completion_ids")
    add("mask-uint8", completion_mask, (IDS.astype(np.uint8), 1, 0), {}, T, "completion_ids")
    add("mask-1d", completion_mask, (IDS[0], 1, 0), {}, V, "completion_ids")
    add("mask-noncontig", completion_mask, (IDS.T, 1, 0), {}, V, "completion_ids")
    add("mask-empty-rows", completion_mask, (IDS[:0], 1, 0), {}, V, "completion_ids")
    add("mask-empty-cols", completion_mask, (IDS[:, :0].copy(), 1, 0), {}, V, "completion_ids")
    add("mask-eos-float", completion_mask, (IDS, 1.5, 0), {}, T, "eos_token_id")
    add("mask-eos-str", completion_mask, (IDS, "eos", 0), {}, T, "eos_token_id")
    add("mask-pad-none", completion_mask, (IDS, 1, None), {}, T, "pad_token_id")
    add(
        "mask-flag-type",
        completion_mask,
        (IDS, 1, 0),
        {"mask_truncated_completions": 1},
        T,
        "mask_truncated_completions",
    )

    add("mask-dtype", completion_mask, (IDS, 1, 0), {"dtype": np.float32}, T, "dtype")
    add("mask-dtype-str", completion_mask, (IDS, 1, 0), {"dtype": "uint8"}, T, "dtype")
    add("soft-cache-too-big", soft_overlong, (10, 11), {}, V, "soft_punish_cache")
    add("soft-cache-negative", soft_overlong, (10, -1), {}, V, "soft_punish_cache")
    add("soft-max-zero", soft_overlong, (0, 0), {}, V, "max_completion_len")
    add("soft-max-float", soft_overlong, (10.5, 2), {}, T, "max_completion_len")
    add("soft-call-not-list", soft_overlong(10, 2), (), {"completion_ids": 5}, V, "completion_ids")
    add("soft-call-items", soft_overlong(10, 2), (), {"completion_ids": [1, 2]}, V, "completion_ids")
    add("soft-call-padded-no-mask", soft_overlong(10, 2), (IDS,), {}, V, "completion_ids")
    add("soft-call-mask-1d", soft_overlong(10, 2), (IDS,), {"completion_mask": IDS[0]}, V, "completion_mask")
    add("soft-call-nothing", soft_overlong(10, 2), (), {}, V, "completion_ids")
    add("pen-negative", soft_overlong_penalty, (np.array([3, -1, 2]), 10, 2), {}, V, "lengths")
    add(
        "pen-negative-torch", soft_overlong_penalty, (torch.tensor([3, -1], dtype=torch.int32), 10, 2), {}, V, "lengths"
    )
    add("pen-float", soft_overlong_penalty, (LENS.astype(np.float64), 10, 2), {}, T, "lengths")
    add("pen-2d", soft_overlong_penalty, (IDS, 10, 2), {}, V, "lengths")
    add("pen-noncontig", soft_overlong_penalty, (LENS[::2], 10, 2), {}, V, "lengths")
    add("pen-dtype", soft_overlong_penalty, (LENS, 10, 2), {"dtype": np.int32}, T, "dtype")
    add("pen-cache", soft_overlong_penalty, (LENS, 10, 20), {}, V, "soft_punish_cache")
    add("pen-max-list", soft_overlong_penalty, (LENS, [10], 2), {}, T, "max_completion_len")
    add("pen-max-float", soft_overlong_penalty, (LENS, 10.0, 2), {}, T, "max_completion_len")
    add("pen-list", soft_overlong_penalty, ([1, 2], 10, 2), {}, T, "lengths")
    return c


CASES = _cases()


def snapshot(x):
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, torch.Tensor):
        return x.clone() if x.device.type != "meta" else x
    return copy.deepcopy(x)


def same(a, b):
    if isinstance(a, float) and a != a:
        return b != b
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, torch.Tensor):
        return a.device.type == "meta" or torch.equal(a, b)
    return a == b
