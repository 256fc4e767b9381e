"""Tokens per rank of a long-tail GRPO generation batch: TRL's contiguous slices against
``FastGRPOTrainer(padding_free=True)``'s Karmarkar-Karp deal (``balance_ranks``).

With data parallelism every rank waits for the slowest at the gradient all-reduce, so a step
costs what the busiest rank's tokens cost. The batch is ``fastalign.step_bench``'s long tail
(16-token prompts, completions lognormal with median 200, clipped to [16, 2048]); each draw
deals ``16 P`` sequences (two ranks: the 32-sequence batch) to ``P`` ranks both ways.
Printed: the busiest rank's tokens over the
mean (1.00 is perfect balance; the step's straggling overhead is this minus one), as the median
and the worst of the draws, and the spread (busiest minus idlest) of the median draw.

    .venv/bin/python benches/rank_balance.py [--draws 200] [--per-rank 16]
"""

from __future__ import annotations

import argparse

import numpy as np

from fastalign.packing import balance_partitions
from fastalign.step_bench import long_tail_lengths

PROMPT = 16


WAYS = {"TRL contiguous": None, "KK": False, "KK + refine (FastGRPOTrainer)": True}


def rank_loads(tokens: np.ndarray, procs: int, refine: bool | None) -> np.ndarray:
    """Tokens on each rank: TRL's contiguous slices (``refine=None``) or a KK deal."""
    if refine is None:
        return tokens.reshape(procs, -1).sum(axis=1)  # TRL: rank r takes the r-th contiguous slice
    parts = balance_partitions(tokens, procs, equal_size=True, refine=refine)
    return np.array([tokens[p].sum() for p in parts])


def table(draws: int, per_rank: int) -> list[dict]:
    out = []
    for procs in (2, 4, 8):
        n = per_rank * procs
        loads = {way: [] for way in WAYS}
        for seed in range(draws):
            tokens = long_tail_lengths(n, seed=seed) + PROMPT
            for way, refine in WAYS.items():
                got = rank_loads(tokens, procs, refine)
                loads[way].append((got.max() / got.mean(), got.max() - got.min()))
        row = {"ranks": procs, "sequences": n}
        for way, values in loads.items():
            ratios = np.array([r for r, _ in values])
            spreads = np.array([s for _, s in values])
            row[way] = (float(np.median(ratios)), float(ratios.max()), int(np.median(spreads)))
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--per-rank", type=int, default=16, help="sequences per rank (the batch grows with ranks)")
    args = parser.parse_args()
    print(f"{args.draws} draws; busiest rank / mean: median (worst), and the median spread (busiest - idlest)")
    print("| ranks | sequences | " + " | ".join(WAYS) + " |")
    print("|---|---|" + "---|" * len(WAYS))
    for row in table(args.draws, args.per_rank):
        cells = [f"{row[w][0]:.3f} ({row[w][1]:.2f}), {row[w][2]:,} tokens" for w in WAYS]
        print(f"| {row['ranks']} | {row['sequences']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
