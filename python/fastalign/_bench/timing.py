"""The clock and the machine: calibrated timing of a call, this machine's memory copy bandwidth
(the yardstick of the GB/s columns), its CPU model, and times printed for people."""

from __future__ import annotations

import math
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Timing", "copy_bandwidth", "cpu_model", "fmt_time", "time_call"]


@dataclass
class Timing:
    median: float
    best: float
    runs: list[float] = field(default_factory=list)


def time_call(fn: Callable[[], Any], repeat: int = 7, min_batch_time: float = 0.02) -> Timing:
    """Seconds per call: calls batched until a batch takes ``min_batch_time``, ``repeat`` batches
    (3 when one call takes over a second)."""
    fn()  # warm-up (first-call setup, caches)
    n, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
        if t >= min_batch_time or n >= 1 << 20:
            break
        n *= 2 if t == 0 else max(2, min(10, math.ceil(min_batch_time / t)))
    runs = [t / n]
    if t > 1.0:  # a slow reference (seconds per call): three runs are enough
        repeat = min(repeat, 3)
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t0) / n)
    runs.sort()
    return Timing(runs[len(runs) // 2], runs[0], runs)


def copy_bandwidth(nbytes: int = 256 << 20, repeats: int = 5) -> float:
    """Memory copy bandwidth in bytes/s, counting bytes read + bytes written (2 x nbytes)."""
    src = np.ones(nbytes // 8, dtype=np.float64)
    dst = np.zeros_like(src)  # touched, so page faults are not timed
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * nbytes / best


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"unknown CPU, {os.cpu_count()} CPU(s)"
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}
    return f"{fields.get('Model name', 'unknown')}, {fields.get('CPU(s)', '?')} CPU(s)"


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:,.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds:,.2f} s"
