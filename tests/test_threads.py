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
