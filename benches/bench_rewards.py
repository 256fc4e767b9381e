"""fastalign.rewards.soft_overlong vs TRL 1.16.0's ``trl.rewards.get_soft_overlong_punishment``.

8192 completions with lengths uniform in 0..4096, max_completion_len=4096, soft_punish_cache=1024.

* lists: both called the way GRPOTrainer calls a reward function, ``f(completion_ids=lists)``
  with a list of lists of Python ints; both return ``list[float]``.
* lengths: fastalign's ``f(lengths=tensor)`` on an int64 CPU tensor of the same lengths (a float64
  tensor comes back). TRL only accepts lists, so its reference is the same list call as above.
"""

from __future__ import annotations

import pytest
import torch
from _common import MAX_COMPLETION_LEN, SOFT_PUNISH_CACHE, run, tag
from trl.rewards import get_soft_overlong_punishment

from fastalign.rewards import soft_overlong

IMPLS = ["trl", "fastalign"]


def _size(lengths):
    return f"B={lengths.numel()} (L_max={MAX_COMPLETION_LEN}, cache={SOFT_PUNISH_CACHE})"


@pytest.mark.parametrize("impl", IMPLS)
def test_soft_overlong_lists(benchmark, overlong_completions, impl):
    lists, lengths = overlong_completions
    benchmark.group = f"soft_overlong from lists {_size(lengths)}"
    op = "soft_overlong (list[list[int]])"
    trl_fn = get_soft_overlong_punishment(MAX_COMPLETION_LEN, SOFT_PUNISH_CACHE)
    if impl == "trl":
        tag(benchmark, op=op, size=_size(lengths), impl="trl", role="reference")
        run(benchmark, trl_fn, completion_ids=lists)
    else:
        fn = soft_overlong(MAX_COMPLETION_LEN, SOFT_PUNISH_CACHE)
        tag(benchmark, op=op, size=_size(lengths), impl="fastalign", role="fastalign", target=5)
        out = run(benchmark, fn, completion_ids=lists)
        assert out == trl_fn(completion_ids=lists)


@pytest.mark.parametrize("impl", IMPLS)
def test_soft_overlong_lengths(benchmark, overlong_completions, impl):
    lists, lengths = overlong_completions
    benchmark.group = f"soft_overlong from a lengths tensor {_size(lengths)}"
    op = "soft_overlong (int64 lengths tensor)"
    trl_fn = get_soft_overlong_punishment(MAX_COMPLETION_LEN, SOFT_PUNISH_CACHE)
    if impl == "trl":
        tag(benchmark, op=op, size=_size(lengths), impl="trl (lists; it takes no tensor)", role="reference")
        run(benchmark, trl_fn, completion_ids=lists)
    else:
        fn = soft_overlong(MAX_COMPLETION_LEN, SOFT_PUNISH_CACHE)
        # read: int64 lengths; written: float64 penalties
        tag(
            benchmark,
            op=op,
            size=_size(lengths),
            impl="fastalign",
            role="fastalign",
            target=100,
            nbytes=lengths.numel() * (8 + 8),
        )
        out = run(benchmark, fn, lengths=lengths)
        assert torch.equal(out, torch.tensor(trl_fn(completion_ids=lists), dtype=torch.float64))
