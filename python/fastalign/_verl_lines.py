"""verl's Karmarkar–Karp partitioning, *restated* (not copied) as the reference for
``fastalign.packing.balance_partitions``.

verl (``verl/utils/seqlen_balancing.py``: ``karmarkar_karp`` / ``get_seqlen_balanced_partitions``)
is not installed here (it pulls in ray, tensordict and more). This module restates its algorithm
in our own code, in the same pure-Python style with ``heapq`` and per-set Python lists, so the
quality comparison (spread) and the timing comparison are fair:

* items are sorted ascending by (length, index);
* ``equal_size``: each run of ``k`` consecutive sorted items seeds one state with one item per
  set; otherwise each item seeds a state holding it in one set and ``k - 1`` empty sets;
* a state's sets are kept sorted descending by (sum, size, items); its spread is largest minus
  smallest sum; the heap pops the largest spread first (ties: the larger top set first);
* the two popped states merge set ``i`` of the first with set ``k - 1 - i`` of the second, and
  the result is pushed back, until one state is left; its sets are the partitions (each sorted
  by ``get_seqlen_balanced_partitions``).
"""

from __future__ import annotations

import heapq
from functools import total_ordering


@total_ordering
class _Part:
    __slots__ = ("total", "members")

    def __init__(self) -> None:
        self.total = 0
        self.members: list[tuple[int, int]] = []

    def _key(self):
        return (self.total, len(self.members), self.members)

    def __eq__(self, other):
        return self._key() == other._key()

    def __lt__(self, other):
        return self._key() < other._key()


class _Candidate:
    __slots__ = ("parts",)

    def __init__(self, seed: list[tuple[int, int]], k: int) -> None:
        self.parts = [_Part() for _ in range(k)]
        for part, (idx, length) in zip(self.parts, seed):
            part.members.append((idx, length))
            part.total += length
        self.parts.sort(reverse=True)

    def spread(self) -> int:
        return self.parts[0].total - self.parts[-1].total

    def absorb(self, other: "_Candidate") -> None:
        k = len(self.parts)
        for i in range(k):
            src = other.parts[k - 1 - i]
            self.parts[i].members.extend(src.members)
            self.parts[i].total += src.total
        self.parts.sort(reverse=True)

    def __lt__(self, other: "_Candidate") -> bool:  # heapq is a min-heap: "smaller" pops first
        a, b = self.spread(), other.spread()
        if a != b:
            return a > b
        return self.parts[0] > other.parts[0]


def verl_karmarkar_karp(lengths: list[int], k: int, equal_size: bool) -> list[list[int]]:
    """Partitions (sorted index lists), as ``get_seqlen_balanced_partitions`` returns them."""
    assert len(lengths) >= k
    order = sorted((length, i) for i, length in enumerate(lengths))
    heap: list[_Candidate] = []
    if equal_size:
        assert len(lengths) % k == 0
        for start in range(0, len(order), k):
            seed = [(i, length) for length, i in order[start : start + k]]
            heapq.heappush(heap, _Candidate(seed, k))
    else:
        for length, i in order:
            heapq.heappush(heap, _Candidate([(i, length)], k))
    while len(heap) > 1:
        first = heapq.heappop(heap)
        second = heapq.heappop(heap)
        first.absorb(second)
        heapq.heappush(heap, first)
    return [sorted(i for i, _ in part.members) for part in heap[0].parts]
