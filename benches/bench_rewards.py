"""fastalign.rewards.soft_overlong vs TRL 1.16.0's ``trl.rewards.get_soft_overlong_punishment``.

8192 completions with lengths uniform in 0..4096, max_completion_len=4096, soft_punish_cache=1024:
the cases ``soft_overlong (lists)`` and ``soft_overlong (lengths)`` of ``fastalign bench``, at
``fastalign._bench.cases.OVERLONG_SUITE_B``, on the same inputs (the ``overlong_completions``
fixture, ``fastalign._bench.inputs.overlong_completions``) and the same pairs of calls.

* lists: both called the way GRPOTrainer calls a reward function, ``f(completion_ids=lists)``
  with a list of lists of Python ints; both return ``list[float]``.
* lengths: fastalign's ``f(lengths=tensor)`` on an int64 CPU tensor of the same lengths (a float64
  tensor comes back). TRL only accepts lists, so its reference is the same list call as above.
"""

from __future__ import annotations

import pytest
from _common import run, tag

from fastalign._bench.cases import OVERLONG_CACHE, OVERLONG_L_MAX, overlong_lengths_pair, overlong_lists_pair

IMPLS = ["trl", "fastalign"]


def _size(lengths):
    return f"B={lengths.numel()} (L_max={OVERLONG_L_MAX}, cache={OVERLONG_CACHE})"


@pytest.mark.parametrize("impl", IMPLS)
def test_soft_overlong_lists(benchmark, overlong_completions, impl):
    lists, lengths = overlong_completions
    pair = overlong_lists_pair(lists)
    benchmark.group = f"soft_overlong from lists {_size(lengths)}"
    op = "soft_overlong (list[list[int]])"
    if impl == "trl":
        tag(benchmark, op=op, size=_size(lengths), impl="trl", role="reference")
        run(benchmark, pair.reference)
    else:
        tag(benchmark, op=op, size=_size(lengths), impl="fastalign", role="fastalign", target=5)
        out = run(benchmark, pair.fastalign)
        pair.check(pair.reference(), out)


@pytest.mark.parametrize("impl", IMPLS)
def test_soft_overlong_lengths(benchmark, overlong_completions, impl):
    lists, lengths = overlong_completions
    pair = overlong_lengths_pair(lists, lengths)
    benchmark.group = f"soft_overlong from a lengths tensor {_size(lengths)}"
    op = "soft_overlong (int64 lengths tensor)"
    if impl == "trl":
        tag(benchmark, op=op, size=_size(lengths), impl="trl (lists; it takes no tensor)", role="reference")
        run(benchmark, pair.reference)
    else:
        tag(benchmark, op=op, size=_size(lengths), impl="fastalign", role="fastalign", target=100, nbytes=pair.nbytes)
        out = run(benchmark, pair.fastalign)
        pair.check(pair.reference(), out)
