"""Karmarkar-Karp's differencing method for k-way partitioning, in plain Python.

Written from the published description of the algorithm, not from any implementation:

* N. Karmarkar and R. M. Karp, "The differencing method of set partitioning", Report UCB/CSD
  82/113, Computer Science Division, University of California, Berkeley, 1982: the largest
  differencing method (LDM): repeatedly replace the two largest numbers by their difference,
  which commits them to different sides.
* Its k-way form, as analysed by W. Michiels, J. Korst, E. Aarts and J. van Leeuwen,
  "Performance ratios for the differencing method applied to the balanced number partitioning
  problem", STACS 2003, LNCS 2607, pp. 583-595: every item starts as a *partial partition*
  (a k-tuple of subsets holding that item in one subset); the two partial partitions whose
  subset sums differ most (largest minus smallest) are combined by joining the largest subset of
  one with the smallest of the other, the second largest with the second smallest, and so on;
  until one partial partition, the result, is left. Its balanced variant (BLDM, every subset
  gets ``n / k`` items) starts instead from the items sorted by size and cut into runs of ``k``
  consecutive items, each run a partial partition with one item per subset.

The papers leave ties open. Here (and in fastalign's kernel, whose partitions should therefore
be the same): items are sorted by (weight, index); within a partial partition, subsets are
ordered by decreasing (sum, item count), then by their first item; among partial partitions of
equal spread the one with the larger (largest sum, its item count) goes first, then the older
one; a combined partial partition takes the place (age) of the first of the two.

Pure Python with ``heapq``, so timing it says what a plain-Python implementation costs.
"""

from __future__ import annotations

import heapq

# a subset: [sum, item count, first item, items]


def _order(subsets: list[list]) -> None:
    subsets.sort(key=lambda s: (-s[0], -s[1], s[2]))


def _priority(subsets: list[list], k: int, age: int) -> tuple[int, int, int, int]:
    """Heap key (smallest pops first): largest spread, then largest top subset, then oldest."""
    top = subsets[0]
    bottom = subsets[-1][0] if len(subsets) == k else 0  # absent subsets are empty
    return (bottom - top[0], -top[0], -top[1], age)


def differencing_partition(weights: list[int], k: int, equal_size: bool) -> list[list[int]]:
    """``k`` parts of ``range(len(weights))`` (each sorted), by decreasing sum.

    Only non-empty subsets are stored; a partial partition with fewer than ``k`` of them has
    empty ones, whose sum is 0.
    """
    n = len(weights)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    by_size = sorted(range(n), key=lambda i: (weights[i], i))
    if equal_size:
        if n % k:
            raise ValueError(f"equal_size needs n ({n}) to be a multiple of k ({k})")
        seeds = [by_size[start : start + k] for start in range(0, n, k)]
    else:
        seeds = [[i] for i in by_size]
    partials: list[list[list] | None] = []
    heap = []
    for age, seed in enumerate(seeds):
        subsets = [[weights[i], 1, i, [i]] for i in seed]
        _order(subsets)
        partials.append(subsets)
        heap.append(_priority(subsets, k, age))
    heapq.heapify(heap)
    while len(heap) > 1:
        first = heapq.heappop(heap)[3]
        second = heapq.heappop(heap)[3]
        a, b = partials[first], partials[second]
        partials[second] = None
        combined = []
        for i in range(k):
            j = k - 1 - i  # the i-th largest of one joins the i-th smallest of the other
            x = a[i] if i < len(a) else None
            y = b[j] if j < len(b) else None
            if x is None and y is None:
                continue
            if x is None:
                combined.append(y)
            elif y is None:
                combined.append(x)
            else:
                combined.append([x[0] + y[0], x[1] + y[1], x[2], x[3] + y[3]])
        _order(combined)
        partials[first] = combined
        heapq.heappush(heap, _priority(combined, k, first))
    result = partials[heap[0][3]]
    parts = [sorted(s[3]) for s in result]
    return parts + [[] for _ in range(k - len(parts))]
