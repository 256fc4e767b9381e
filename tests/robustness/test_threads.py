"""The GIL is released while Rust works, and concurrent calls give the serial results."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from fastalign.advantages import grpo_advantages
from fastalign.overlong import completion_mask


def _spin_rate(done: threading.Event | None, seconds: float = 0.05) -> float:
    """Iterations per second of a pure-Python loop, until ``done`` (or for ``seconds``)."""
    spins, start = 0, time.perf_counter()
    while (not done.is_set()) if done is not None else (time.perf_counter() - start < seconds):
        spins += 1
    return spins / (time.perf_counter() - start)


def test_other_python_threads_run_during_a_kernel():
    # 64 x 8000 ids: below the parallel threshold, so the kernel uses one core and this thread
    # has the other one, if the GIL lets it run.
    ids = torch.randint(2, 50, (64, 8000))
    solo = _spin_rate(None)
    done = threading.Event()

    def work():
        for _ in range(300):
            completion_mask(ids, 1, 0)
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    during = _spin_rate(done)
    worker.join()
    # With the GIL held by the kernel this loop would only run in the gaps between calls (a C
    # loop that keeps the GIL measured about 20% of the solo rate here); released, it runs at
    # close to full speed.
    assert during > 0.5 * solo, (during, solo)


def test_concurrent_calls_equal_serial_calls():
    rng = np.random.default_rng(0)
    batches = [rng.random((1 << 16, 2)).astype(np.float32) for _ in range(6)]
    for b in batches:
        b[rng.random(b.shape[0]) < 0.05] = np.nan
    serial = [grpo_advantages(b, 16).advantages for b in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda b: grpo_advantages(b, 16).advantages, batches * 3))
    for i, adv in enumerate(parallel):
        np.testing.assert_array_equal(adv, serial[i % len(batches)])


def _child_computes_in_parallel_sized_call(queue):
    rng = np.random.default_rng(1)
    r = rng.random((1 << 20, 1)).astype(np.float32)  # above the parallel threshold
    queue.put(float(np.abs(grpo_advantages(r, 16, metrics=False).advantages).sum()))


def test_forked_child_does_not_deadlock_on_the_thread_pool():
    """DataLoader workers are forked: a child must not wait on the parent's pool threads."""
    import multiprocessing as mp

    r = np.random.default_rng(1).random((1 << 20, 1)).astype(np.float32)
    expected = float(np.abs(grpo_advantages(r, 16, metrics=False).advantages).sum())  # pool now exists
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_computes_in_parallel_sized_call, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        raise AssertionError("the forked child hung on the parent's thread pool")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == expected  # same result serially in the child


# ---------------------------------------------------------------------------------------------
# every op family at once: each op is called from several threads concurrently, interleaved with
# the other families, and every result must equal the serial call's bit for bit. Some inputs are
# above the kernels' parallel threshold (2^19 elements), so concurrent calls also share the
# thread pool.


def _family_ops():
    from fastalign.advantages import rloo_advantages, top_k_per_group, zero_variance_groups
    from fastalign.losses import grpo_loss
    from fastalign.packing import balance_partitions, bfd, cu_seqlens, first_fit_decreasing, position_ids
    from fastalign.ratios import masked_reduce, sequence_log_ratio, vllm_is_ratio
    from fastalign.rewards import soft_overlong, soft_overlong_penalty

    rng = np.random.default_rng(7)
    big = rng.random((1 << 19, 2)).astype(np.float32)  # above the parallel threshold
    big[rng.random(big.shape[0]) < 0.05, 0] = np.nan
    small = rng.random((4096, 3))
    scores = rng.random(1 << 16).astype(np.float32)
    ids = torch.from_numpy(rng.integers(2, 60, size=(256, 2048)))  # 2^19 ids
    lengths = rng.integers(0, 3000, size=1 << 16).astype(np.int64)
    lists = [[0] * int(n) for n in lengths[:512]]
    reward = soft_overlong(2048, 512)
    g = torch.Generator().manual_seed(7)
    lp = -torch.rand(256, 2048, generator=g, dtype=torch.float64)
    old = lp + 0.05 * torch.randn(256, 2048, generator=g, dtype=torch.float64)
    mask = torch.rand(256, 2048, generator=g) > 0.2
    adv = torch.randn(256, generator=g, dtype=torch.float64)
    seq = torch.from_numpy(rng.integers(0, 900, size=4096))

    def loss_and_grad():
        x = lp.clone().requires_grad_(True)
        out = grpo_loss(x, old, adv, mask, loss_type="grpo", importance_sampling_level="sequence")
        out.loss.backward()
        return out.loss.detach(), out.raw_metrics, x.grad

    return {
        "grpo_advantages": lambda: grpo_advantages(big, 16).advantages,
        "rloo_advantages": lambda: rloo_advantages(small, 8, normalize_advantages=True).advantages,
        "zero_variance_groups": lambda: zero_variance_groups(big, 16),
        "top_k_per_group": lambda: top_k_per_group(scores, 16, 4),
        "completion_mask": lambda: tuple(completion_mask(ids, [1, 7], 0, mask_truncated_completions=True)[:3]),
        "soft_overlong_penalty": lambda: soft_overlong_penalty(lengths, 2048, 512),
        "soft_overlong (lists)": lambda: reward(completion_ids=lists),
        "masked_reduce": lambda: masked_reduce(lp, mask, reduction="mean"),
        "sequence_log_ratio": lambda: sequence_log_ratio(lp, old, mask),
        "vllm_is_ratio": lambda: tuple(vllm_is_ratio(old, lp, mask, mode="token_truncate", clip_max=2.0)),
        "grpo_loss (+ backward)": loss_and_grad,
        "bfd": lambda: tuple(bfd(lengths, 4096, split=True)),
        "first_fit_decreasing": lambda: tuple(first_fit_decreasing(lengths, 4096)),
        "position_ids": lambda: position_ids(seq),
        "cu_seqlens": lambda: cu_seqlens(seq),
        "balance_partitions": lambda: balance_partitions(lengths[:4096], 8),
    }


def _assert_same(a, b, where):
    if isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b), where
        for x, y in zip(a, b):
            _assert_same(x, y, where)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=where)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, where


def test_every_op_family_concurrently_equals_serial():
    ops = _family_ops()
    serial = {name: fn() for name, fn in ops.items()}
    # 3 rounds of every op, interleaved so that different families run at the same time
    jobs = [name for _ in range(3) for name in ops]
    np.random.default_rng(0).shuffle(jobs)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda name: (name, ops[name]()), jobs))
    assert sorted(n for n, _ in results) == sorted(jobs)
    for name, got in results:
        _assert_same(serial[name], got, name)


def test_same_op_from_many_threads_at_once():
    """Eight threads start the same op together (a barrier), for each family in turn."""
    ops = _family_ops()
    for name, fn in ops.items():
        expected = fn()
        barrier = threading.Barrier(8)

        def run(fn=fn, barrier=barrier):
            barrier.wait()
            return fn()

        with ThreadPoolExecutor(max_workers=8) as pool:
            for got in [f.result() for f in [pool.submit(run) for _ in range(8)]]:
                _assert_same(expected, got, name)
