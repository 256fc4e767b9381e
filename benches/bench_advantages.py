"""fastalign.advantages.grpo_advantages vs TRL 1.16.0's GRPO advantage step.

TRL computes its advantages inline in ``GRPOTrainer._generate_and_score_completions``, so two
things are timed:

* the advantage step alone: the reference is ``tests/reference/advantages.grpo`` (plain torch, the
  project's own code, equal to the trainer bit for bit by ``tests/parity/test_trl_trainer_parity.py``;
  scale_rewards="group", sum_then_normalize), ``metrics=False`` for the advantages alone and
  ``metrics=True`` for them plus the reward metrics TRL logs each step. fastalign runs with
  ``metrics=False`` / ``metrics=True`` respectively, on the same float32 CPU tensor and the same
  weights tensor;
* the whole scoring step, TRL's own method beside FastGRPOTrainer's
  (``fastalign._bench.cases.scoring_step_pair``, as ``fastalign bench`` times it: completions
  injected, decoded, scored by three reward functions, padded, advantages and metrics), at N=8,192.

Sizes and seeded inputs are ``fastalign._bench``'s (``cases.ADVANTAGE_SUITE_SIZES``,
``inputs.grpo_rewards``: float32 uniform rewards, 5% NaN).

At 64 groups x 8 (N=512, K=1) rlox's group advantages are timed too when rlox is installed
(optional; never a dependency). rlox's published 7.8 us (Apple M3 Pro) is 64 calls of
``compute_group_advantages``, one per pre-split float64 group; ``compute_batch_group_advantages``
is its one-call form. rlox takes float64 without NaN and computes a different formula (population
std, no eps, no NaN handling), so it gets the same draws without NaN as float64, and fastalign is
timed on exactly that array as well ("fastalign-np64").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _common import run, tag
from reference import advantages as reference

from fastalign._bench import cases, inputs
from fastalign._bench.cases import scoring_step_pair
from fastalign.advantages import grpo_advantages

IMPLS = ["trl", "fastalign"]
REFERENCE = "trl advantage step (plain-torch reference, = GRPOTrainer)"


def _nbytes(n: int, k: int, itemsize: int) -> int:
    # read: rewards (N, K); written: advantages (N,), rewards sum (N,), std_is_zero (N,) bool
    return n * k * itemsize + 2 * n * itemsize + n


_reference_cache: dict = {}


def _check(out, rewards, weights, g, metrics):
    key = (tuple(rewards.shape), g, metrics)
    if key not in _reference_cache:
        _reference_cache[key] = reference.grpo(rewards, weights, g, metrics=metrics)
    adv, is_std_zero, ref_metrics = _reference_cache[key]
    torch.testing.assert_close(out.advantages, adv, rtol=1e-5, atol=1e-5)
    assert torch.equal(out.std_is_zero, is_std_zero)
    if metrics:
        got = out.metrics()
        for name, value in ref_metrics.items():
            assert got[name] == pytest.approx(value, rel=1e-5, abs=1e-6, nan_ok=True), name


def _grpo(benchmark, grpo_rewards, impl, *, n, k, g, metrics, target, rounds=None):
    rewards, weights, _ = grpo_rewards(n, k)
    what = "advantages + logged metrics" if metrics else "advantages"
    benchmark.group = f"grpo_advantages ({what}) N={n} K={k} G={g}"
    size = f"N={n:,} K={k} G={g}"
    op = "grpo_advantages" + (" +metrics" if metrics else "")
    if impl == "trl":
        tag(benchmark, op=op, size=size, impl=REFERENCE, role="reference")
        run(benchmark, reference.grpo, rewards, weights, g, metrics=metrics, rounds=rounds)
    else:
        tag(benchmark, op=op, size=size, impl="fastalign", role="fastalign", target=target, nbytes=_nbytes(n, k, 4))
        out = run(
            benchmark,
            grpo_advantages,
            rewards,
            g,
            reward_weights=weights,
            metrics=metrics,
            rounds=None if rounds is None else 3 * rounds,
        )
        _check(out, rewards, weights, g, metrics)


# the registry's two suite sizes (N, K, G): (8192, 3, 16), target >= 30x, and (1,048,576, 3, 16),
# target >= 10x (the tests keep their names, so saved runs still compare)
SMALL, LARGE = cases.ADVANTAGE_SUITE_SIZES


def _nkg(size):
    n, k, g = size
    return {"n": n, "k": k, "g": g}


@pytest.mark.parametrize("impl", IMPLS)
def test_grpo_8192x3(benchmark, grpo_rewards, impl):
    _grpo(benchmark, grpo_rewards, impl, **_nkg(SMALL), metrics=False, target=30)


@pytest.mark.parametrize("impl", IMPLS)
def test_grpo_8192x3_metrics(benchmark, grpo_rewards, impl):
    _grpo(benchmark, grpo_rewards, impl, **_nkg(SMALL), metrics=True, target=30)


@pytest.mark.parametrize("impl", IMPLS)
def test_grpo_1Mx3(benchmark, grpo_rewards, impl):
    _grpo(benchmark, grpo_rewards, impl, **_nkg(LARGE), metrics=False, target=10, rounds=20)


@pytest.mark.parametrize("impl", IMPLS)
def test_grpo_1Mx3_metrics(benchmark, grpo_rewards, impl):
    _grpo(benchmark, grpo_rewards, impl, **_nkg(LARGE), metrics=True, target=10, rounds=15)


# --- the whole scoring step: TRL's GRPOTrainer._generate_and_score_completions vs FastGRPOTrainer's ---

_scoring: dict = {}


@pytest.mark.parametrize("impl", IMPLS)
def test_grpo_scoring_step(benchmark, impl):
    n = cases.SCORING_SUITE_N
    if n not in _scoring:
        pair = scoring_step_pair(n)
        pair.check(pair.reference(), pair.fastalign())
        _scoring[n] = pair
    pair = _scoring[n]
    benchmark.group = f"grpo scoring step N={n}"
    size = f"N={n:,} K={cases.SCORING_K} G={cases.SCORING_G}, completions 1..512 tokens"
    op = "grpo scoring step (whole method)"
    if impl == "trl":
        tag(benchmark, op=op, size=size, impl="trl GRPOTrainer._generate_and_score_completions", role="reference")
        run(benchmark, pair.reference, rounds=5)
    else:
        tag(
            benchmark,
            op=op,
            size=size,
            impl="fastalign FastGRPOTrainer._generate_and_score_completions",
            role="fastalign",
            note="same injected completions; decoding and reward calls are TRL's on both sides",
        )
        run(benchmark, pair.fastalign, rounds=5)


# --- 64 groups x 8 (N=512, K=1): beside rlox (published 7.8 us on an Apple M3 Pro) -----------

N64, G64 = cases.ADVANTAGE_RLOX_GROUPS * cases.ADVANTAGE_RLOX_G, cases.ADVANTAGE_RLOX_G


@pytest.mark.parametrize("impl", ["trl", "fastalign", "fastalign-np64", "rlox-per-group", "rlox-batch"])
def test_grpo_64x8(benchmark, grpo_rewards, impl):
    rewards, weights, clean64 = grpo_rewards(N64, 1)
    benchmark.group = f"grpo_advantages (advantages) 64 groups x {G64} (N={N64} K=1)"
    size = f"64x{G64} (N={N64} K=1)"
    op = "grpo_advantages"
    if impl == "trl":
        tag(benchmark, op=op, size=size, impl=REFERENCE, role="reference")
        run(benchmark, reference.grpo, rewards, weights, G64, metrics=False)
    elif impl == "fastalign":
        tag(
            benchmark,
            op=op,
            size=size,
            impl="fastalign",
            role="fastalign",
            nbytes=_nbytes(N64, 1, 4),
            note="float32 tensor with NaN, weights tensor (TRL's inputs)",
        )
        out = run(benchmark, grpo_advantages, rewards, G64, reward_weights=weights, metrics=False)
        _check(out, rewards, weights, G64, False)
    elif impl == "fastalign-np64":
        flat = np.ascontiguousarray(clean64[:, 0])
        tag(
            benchmark,
            op=op,
            size=size,
            impl="fastalign (numpy f64, no NaN)",
            role="other",
            nbytes=_nbytes(N64, 1, 8),
            note="rlox's input: flat float64 numpy, no NaN",
        )
        out = run(benchmark, grpo_advantages, flat, G64, metrics=False)
        ref = reference.grpo(
            torch.from_numpy(flat).reshape(-1, 1), torch.ones(1, dtype=torch.float64), G64, metrics=False
        ).advantages
        np.testing.assert_allclose(out.advantages, ref.numpy(), rtol=1e-12, atol=1e-12)
    else:
        rlox = pytest.importorskip("rlox", reason="rlox is optional (uv pip install rlox)")
        flat = np.ascontiguousarray(clean64[:, 0])
        if impl == "rlox-per-group":
            groups = [np.ascontiguousarray(flat[i : i + G64]) for i in range(0, N64, G64)]
            fn = rlox.compute_group_advantages

            def per_group():
                return [fn(grp) for grp in groups]

            tag(
                benchmark,
                op=op,
                size=size,
                impl="rlox compute_group_advantages x64",
                role="other",
                note="64 calls on pre-split float64 groups, as rlox's published 7.8 us",
            )
            out = np.concatenate(run(benchmark, per_group))
        else:
            tag(
                benchmark,
                op=op,
                size=size,
                impl="rlox compute_batch_group_advantages",
                role="other",
                note="one call, flat float64",
            )
            out = run(benchmark, rlox.compute_batch_group_advantages, flat, G64)
        # rlox's formula: population std, no eps. Check it ran on the same data.
        grouped = flat.reshape(-1, G64)
        expect = (grouped - grouped.mean(1, keepdims=True)) / grouped.std(1, keepdims=True)
        np.testing.assert_allclose(out, expect.ravel(), rtol=1e-9, atol=1e-9)


# --- top_k_per_group (GFPO's filter): beside torch.topk, as TRL v1.7.1's GFPOTrainer kept rows ---


@pytest.mark.parametrize("impl", ["torch-topk", "fastalign"])
def test_top_k_per_group(benchmark, impl):
    from fastalign.advantages import top_k_per_group

    n, g, k = cases.TOP_K_SUITE_N, cases.TOP_K_G, cases.TOP_K_K
    scores = inputs.top_k_scores(n)  # float64 scores, e.g. lengths
    benchmark.group = f"top_k_per_group N={n} G={g} k={k}"
    size = f"N={n:,} G={g} k={k}"
    op = "top_k_per_group (GFPO)"
    if impl == "torch-topk":
        tag(benchmark, op=op, size=size, impl="torch.topk per group (TRL v1.7.1 GFPO)", role="reference")

        def ref():
            idx = torch.topk(scores.view(-1, g), k, dim=-1).indices
            return (torch.arange(0, n, g).unsqueeze(1) + idx).flatten()

        out = run(benchmark, ref)
    else:
        tag(benchmark, op=op, size=size, impl="fastalign", role="fastalign", nbytes=n * 8 + n // g * k * 8)
        out = run(benchmark, top_k_per_group, scores, g, k)
    # the same rows kept in every group (order within a group differs: topk sorts by score)
    assert torch.equal(
        out.view(-1, k).sort(dim=1).values,
        torch.topk(scores.view(-1, g), k, dim=-1).indices.sort(dim=1).values + torch.arange(0, n, g).unsqueeze(1),
    )
