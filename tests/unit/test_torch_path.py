"""The public API's accelerator branch (what CUDA tensors take), exercised on CPU tensors.

No GPU here, so ``_validate.on_accelerator`` is patched to send CPU tensors down the torch path;
every public function must then give the same results as the Rust path, in the same dtypes, and
raise the same errors. (On a machine with CUDA, ``test_cuda_matches_cpu`` runs for real.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastalign import _validate
from fastalign.advantages import grpo_advantages, rloo_advantages, zero_variance_groups
from fastalign.errors import InvalidArgumentError
from fastalign.overlong import completion_mask
from fastalign.rewards import soft_overlong, soft_overlong_penalty


def _calls():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(64, 3, generator=g)
    r[3] = float("nan")
    r[10, 1] = float("nan")
    r[16:24] = 0.5  # a constant group
    kl = torch.rand(64, generator=g)
    ids = torch.randint(2, 9, (16, 40), generator=g)
    ids[::3, 7] = 1
    lengths = torch.randint(0, 120, (32,), generator=g)
    return [
        ("grpo", lambda: grpo_advantages(r, 8, reward_weights=[1.0, 0.5, 2.0])),
        ("grpo-batch", lambda: grpo_advantages(r.double(), 8, scale_rewards="batch")),
        ("grpo-gdpo", lambda: grpo_advantages(r, 8, multi_objective_aggregation="normalize_then_sum")),
        (
            "rloo",
            lambda: rloo_advantages(r, 8, kl=kl, beta=0.1, reward_clip_range=(0.1, 2.0), normalize_advantages=True),
        ),
        ("zvg", lambda: zero_variance_groups(r, 8)),
        ("mask", lambda: completion_mask(ids, [1, 3], 0, mask_truncated_completions=True)),
        ("mask-i32", lambda: completion_mask(ids.int(), 1, 0, dtype=torch.int32)),
        ("penalty", lambda: soft_overlong_penalty(lengths, 100, 30)),
        ("reward-mask", lambda: soft_overlong(100, 30)(ids, completion_mask=(ids > 2).long())),
    ]


def _flat(out):
    if isinstance(out, tuple):
        return [x for x in out]
    return [out]


@pytest.mark.parametrize("name, call", _calls(), ids=[c[0] for c in _calls()])
def test_torch_branch_matches_rust(monkeypatch, name, call):
    rust = _flat(call())
    monkeypatch.setattr(_validate, "on_accelerator", lambda x: _validate.is_torch(x))
    torch_path = _flat(call())
    assert len(rust) == len(torch_path)
    for a, b in zip(rust, torch_path):
        if isinstance(a, torch.Tensor):
            assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, name
            if a.is_floating_point():
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, equal_nan=True)
            else:
                assert torch.equal(a, b), name
        elif isinstance(a, float):
            assert a == pytest.approx(b, rel=1e-5, abs=1e-6, nan_ok=True), name
        elif isinstance(a, tuple):
            assert a == pytest.approx(b, rel=1e-5, abs=1e-6, nan_ok=True), name
        else:
            assert a == b, name


def test_torch_branch_raises_the_same_errors(monkeypatch):
    monkeypatch.setattr(_validate, "on_accelerator", lambda x: _validate.is_torch(x))
    with pytest.raises(InvalidArgumentError) as e:
        grpo_advantages(torch.rand(6), 4)
    assert e.value.argument == "num_generations"
    with pytest.raises(InvalidArgumentError) as e:
        soft_overlong_penalty(torch.tensor([3, -1]), 10, 2)
    assert e.value.argument == "lengths"
    with pytest.raises(InvalidArgumentError) as e:
        completion_mask(torch.ones(4, 3, dtype=torch.int64).t(), 1, 0)
    assert e.value.argument == "completion_ids"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    r = torch.rand(64, 2)
    cpu = grpo_advantages(r, 8)
    gpu = grpo_advantages(r.cuda(), 8)
    assert gpu.advantages.is_cuda
    torch.testing.assert_close(gpu.advantages.cpu(), cpu.advantages, rtol=1e-5, atol=1e-5)
    ids = torch.randint(0, 5, (8, 30))
    assert torch.equal(completion_mask(ids.cuda(), 1, 0).mask.cpu(), completion_mask(ids, 1, 0).mask)
    np.testing.assert_array_equal(
        soft_overlong_penalty(ids.sum(1).cuda(), 100, 20).cpu().numpy(),
        soft_overlong_penalty(ids.sum(1), 100, 20).numpy(),
    )
