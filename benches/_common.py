"""pytest-benchmark helpers shared by the benchmark modules (benches/ is put on sys.path by
conftest.py, so ``from _common import ...`` works in every bench_*.py).

What is benchmarked (each op's sizes, its seeded inputs, and TRL's callable beside fastalign's
where both time TRL's own code) is not defined here but in the package, ``fastalign._bench``,
which ``fastalign bench`` builds its cases from too: the same case at the same size runs on the
same data on both sides. benches/ adds its rounds, its rows (other libraries, references from
tests/reference/) and the checks against those references.
"""

from __future__ import annotations

import functools

from fastalign._bench import inputs

# inputs several tests reuse, built once per session
grpo_rewards = functools.cache(inputs.grpo_rewards)
logps = functools.cache(inputs.logps)


def tag(
    benchmark,
    *,
    op: str,
    size: str,
    impl: str,
    role: str,
    target: float | None = None,
    nbytes: int | None = None,
    note: str | None = None,
    part_of_reference: bool = False,
) -> None:
    """Record what report.py needs in ``benchmark.extra_info``.

    role: "reference" (the group's baseline: TRL), "fastalign" (the row the issue's target
    applies to) or "other" (extra rows: other input kinds, rlox, parts of the reference).
    nbytes: bytes read + written by one fastalign call (for the achieved GB/s).
    part_of_reference: the row times a piece of the reference (reported as a share of it).
    """
    benchmark.extra_info.update(op=op, size=size, impl=impl, role=role)
    if target is not None:
        benchmark.extra_info["target"] = float(target)
    if nbytes is not None:
        benchmark.extra_info["bytes"] = int(nbytes)
    if note is not None:
        benchmark.extra_info["note"] = note
    if part_of_reference:
        benchmark.extra_info["part_of_reference"] = True


def run(benchmark, fn, *args, rounds: int | None = None, **kwargs):
    """Time ``fn(*args, **kwargs)``: pytest-benchmark's calibrated loop for fast calls, or
    ``pedantic`` with ``rounds`` rounds (after one warm-up round) for the slow, large cases."""
    if rounds is None:
        return benchmark(fn, *args, **kwargs)
    return benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=rounds, iterations=1, warmup_rounds=1)
