"""fastalign.rewards.soft_overlong against ``trl.rewards.get_soft_overlong_punishment``.

The values are exact by construction (an integer numerator and one correctly rounded
division, as in Python), so every comparison here is ``==`` on floats, not approximate.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from trl.rewards import get_soft_overlong_punishment

from fastalign._torch_backend import rewards as _torch_impl
from fastalign.errors import InvalidArgumentError, InvalidTypeError
from fastalign.rewards import SoftOverlongPunishment, _penalties, _penalties_fast, soft_overlong, soft_overlong_penalty


@st.composite
def params_and_lengths(draw):
    lmax = draw(st.integers(1, 5000))
    cache = draw(st.one_of(st.just(0), st.just(lmax), st.integers(0, lmax)))
    lengths = draw(st.lists(st.integers(0, lmax + 50), min_size=1, max_size=60))
    return lmax, cache, lengths


@given(params_and_lengths())
def test_lists_match_trl_exactly(case):
    lmax, cache, lengths = case
    completions = [[7] * n for n in lengths]
    want = get_soft_overlong_punishment(lmax, cache)(completion_ids=completions)
    got = soft_overlong(lmax, cache)(completion_ids=completions)
    assert type(got) is list and all(type(x) is float for x in got)
    assert got == want  # exact


@given(params_and_lengths(), st.sampled_from([np.int32, np.int64]))
def test_vectorised_matches_trl_exactly(case, dtype):
    lmax, cache, lengths = case
    want = np.array(get_soft_overlong_punishment(lmax, cache)(completion_ids=[[0] * n for n in lengths]))
    arr = np.array(lengths, dtype=dtype)
    got = soft_overlong_penalty(arr, lmax, cache)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
    got32 = soft_overlong_penalty(torch.from_numpy(arr), lmax, cache, dtype=torch.float32)
    assert got32.dtype == torch.float32
    # TRL turns the reward list into a float32 tensor: the same rounding
    assert torch.equal(got32, torch.tensor(want.tolist(), dtype=torch.float32))
    # the plain-torch path (what CUDA runs)
    assert torch.equal(
        _torch_impl.soft_overlong_penalty(torch.from_numpy(arr), lmax, cache, True), torch.from_numpy(want)
    )


def test_reward_function_contract():
    trl_fn = get_soft_overlong_punishment(100, 20)
    ours = soft_overlong(100, 20)
    assert ours.__name__ == trl_fn.__name__ == "soft_overlong_punishment_reward"
    kwargs = dict(prompts=["p"] * 3, completions=["c"] * 3, trainer_state=None, log_extra=None, log_metric=None)
    comps = [[1] * 90, [1] * 10, [1] * 120]
    assert ours(completion_ids=comps, **kwargs) == trl_fn(completion_ids=comps, **kwargs) == [-0.5, 0.0, -1.0]
    # tuples, nested tuples and other sized items are accepted like TRL's len()
    assert ours(completion_ids=[tuple(c) for c in comps]) == [-0.5, 0.0, -1.0]
    assert ours(completion_ids=tuple(np.array(c) for c in comps)) == [-0.5, 0.0, -1.0]
    clone = pickle.loads(pickle.dumps(ours))
    assert isinstance(clone, SoftOverlongPunishment) and clone(completion_ids=comps) == [-0.5, 0.0, -1.0]
    assert "max_completion_len=100" in repr(ours)


def test_padded_ids_with_mask_and_lengths():
    ours = soft_overlong(10, 4)
    ids = torch.tensor([[5, 5, 5, 5, 5, 5, 5, 1, 0, 0, 0, 0], [5] * 12])
    mask = torch.tensor([[1] * 8 + [0] * 4, [1] * 12])
    got = ours(ids, completion_mask=mask)
    assert torch.equal(got, torch.tensor([-0.5, -1.0], dtype=torch.float64))  # (6 - 8) / 4; 12 > 10
    got = ours(lengths=np.array([6, 8, 10, 11]))
    np.testing.assert_array_equal(got, [0.0, -0.5, -1.0, -1.0])
    with pytest.raises(ValueError, match="completion_mask"):
        ours(ids)


def test_dataset_columns_named_lengths_or_completion_mask_are_ignored_with_token_lists():
    """TRL passes every dataset column to reward functions as a keyword: with token-id lists (the
    trainer's call) a column called ``lengths`` or ``completion_mask`` must not change the rewards."""
    ours, trl_fn = soft_overlong(100, 20), get_soft_overlong_punishment(100, 20)
    comps = [[1] * 90, [1] * 10, [1] * 120]
    columns = dict(lengths=[1, 2, 3], completion_mask=["a", "b", "c"], prompts=["p"] * 3)
    assert ours(completion_ids=comps, **columns) == trl_fn(completion_ids=comps, **columns) == [-0.5, 0.0, -1.0]


@pytest.mark.filterwarnings("ignore")
def test_same_metrics_inside_grpo_trainer():
    """Both reward functions inside a real GRPOTrainer give the same logged metrics and advantages."""
    from fastalign.testing import fixed_rollout, tiny_grpo_trainer

    comps = [[5] * n + [1] for n in (3, 10, 20, 31, 0, 28, 25, 15)]
    results = []
    for fn in (get_soft_overlong_punishment(32, 8), soft_overlong(32, 8)):
        trainer = tiny_grpo_trainer(fn, rollout_func=fixed_rollout(comps), max_completion_length=32)
        out = trainer._generate_and_score_completions([{"prompt": "what is 1 + 1 ?"}] * 8)
        results.append((out["advantages"], dict(trainer._metrics["train"])))
    (adv_a, met_a), (adv_b, met_b) = results
    assert torch.equal(adv_a, adv_b)
    key = "rewards/soft_overlong_punishment_reward/mean"
    assert met_a[key] == met_b[key] and met_a["reward_std"] == met_b["reward_std"]


# ------------------------------------------------------------------------------------------
# the native fast path for lengths (SoftOverlong.penalties_fast)


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "tensor"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("max_len, cache", [(4096, 1024), (100, 0), (100, 100), (7, 3), (2**53, 2**20)])
def test_lengths_fast_path_equals_checked_path(as_tensor, dtype, max_len, cache):
    """The one-call native path gives the checked path's bits and kind, for every ramp shape."""
    rng = np.random.default_rng(max_len + cache)
    hi = min(max_len + 3, np.iinfo(dtype).max)
    edges = [v for v in (0, max_len - cache, max_len - cache + 1, max_len, max_len + 1) if v < hi]
    lengths = np.concatenate([rng.integers(0, hi, 997), edges]).astype(dtype)
    fn = soft_overlong(max_len, cache)
    x = torch.from_numpy(lengths) if as_tensor else lengths
    fast = _penalties_fast(fn._kernel, x)
    slow = _penalties(fn._kernel, x, True)
    assert type(fast) is type(slow)
    np.testing.assert_array_equal(np.asarray(fast), np.asarray(slow))
    assert np.asarray(fast).dtype == np.float64
    assert np.asarray(fast).tolist() == [_trl_formula(int(v), max_len, cache) for v in lengths]


def _trl_formula(length: int, max_len: int, cache: int) -> float:
    # TRL 1.16's _SoftOverlongPunishment arithmetic on Python ints, for lengths too long to
    # build as token lists
    if length <= max_len - cache:
        return 0.0
    if length <= max_len:
        return (max_len - cache - length) / cache
    return -1.0


def test_lengths_fast_path_declines_what_it_does_not_handle():
    """Anything but a 1-D contiguous int32/int64 array or CPU tensor returns None; the checked
    path then accepts or rejects it with its message."""
    kernel = soft_overlong(10, 4)._kernel
    a = np.arange(8, dtype=np.int64)
    assert kernel.penalties_fast(a) is not None
    declined = [
        [1, 2, 3],
        a.astype(np.int16),
        a.astype(np.float64),
        a.astype(">i8"),
        a[::2],
        a.reshape(2, 4),
        np.zeros(0, np.int64),
        torch.from_numpy(a)[::2],
        torch.from_numpy(a).to(torch.int16),
        None,
    ]
    assert all(d is None for d in (kernel.penalties_fast(x) for x in declined))
    fn = soft_overlong(10, 4)
    with pytest.raises(InvalidArgumentError, match="lengths: must be C-contiguous"):
        fn(lengths=a[::2])
    with pytest.raises(InvalidTypeError, match="lengths: expected dtype"):
        fn(lengths=torch.from_numpy(a).to(torch.int16))
    with pytest.raises(InvalidArgumentError, match="lengths"):
        fn(lengths=np.array([3, -1], dtype=np.int64))  # the kernel's own error, same on both paths
    with pytest.raises(InvalidArgumentError, match="lengths"):
        fn(lengths=torch.tensor([3, -1]))
    with pytest.raises(InvalidArgumentError, match="lengths"):
        _penalties(kernel, np.array([3, -1], dtype=np.int64), True)
