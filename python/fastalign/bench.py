"""``fastalign bench``: fastalign beside the code it replaces (TRL 1.16's own functions and
trainer methods) on this machine, at sizes you choose.

Usage::

    fastalign bench                                  # every op at its default sizes
    fastalign bench --ops "grpo scoring step" --sizes "grpo scoring step=1024,8192"
    fastalign bench --list                           # ops, sizes, references
    fastalign bench --plot bench-plots --json bench.json
    fastalign bench --step                           # whole training steps: TRL vs padding-free
    fastalign bench --step --models small --trainers grpo --rounds 5 --memory

(also ``python -m fastalign.bench``). For each op and size it prints the reference's time,
fastalign's, the speed-up, and fastalign's achieved bandwidth (bytes read + written per call over
its time) beside this machine's memory copy bandwidth, measured the same way. Both sides run on
the same inputs in the same process, and every pair's outputs are compared before timing, so a
wrong answer cannot be reported as fast. ``--plot DIR`` writes one PNG per op (speed-up by size).

The references are TRL's own code: its public functions (``trl.rewards``, ``trl.pack_dataset``)
and, where TRL computes inline, its trainer methods on a tiny local model, beside
``FastGRPOTrainer``'s: ``GRPOTrainer._generate_and_score_completions`` with injected completions
(the whole scoring step: decoding, rewards, padding, advantages, metrics) and
``GRPOTrainer._compute_loss`` on injected log-probs. Karmarkar-Karp is timed beside verl's own
``get_seqlen_balanced_partitions`` when verl is installed (skipped, saying so, otherwise).

The longer pytest-benchmark suite in the repository's ``benches/`` saves JSON for
``--benchmark-compare``, and also times single inline computations (the advantage step alone,
the completion mask, GSPO's sequence ratio) against plain-torch references that its tests prove
equal to TRL's trainer methods; those references are not shipped. This command is the quick,
self-contained view a user can run after ``pip install fastalign[trl]``. Needs torch and trl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Case", "Pair", "CASES", "Skip", "copy_bandwidth", "loss_method_pair", "main", "run", "scoring_step_pair"]


@dataclass
class Pair:
    """What one size of an op times: the reference and fastalign on the same inputs."""

    reference: Callable[[], Any]
    fastalign: Callable[[], Any]
    nbytes: int | None = None  # bytes fastalign reads + writes per call (None: not a streaming op)
    check: Callable[[Any, Any], None] | None = None  # raises if the outputs disagree


@dataclass
class Case:
    """An op: its reference's name, default sizes, and how to build a :class:`Pair` for a size."""

    name: str
    reference: str
    size_name: str
    sizes: tuple[int, ...]
    build: Callable[[int], Pair]
    note: str = ""


CASES: dict[str, Case] = {}


def case(name: str, reference: str, size_name: str, sizes: tuple[int, ...], note: str = "") -> Callable:
    def register(build: Callable[[int], Pair]) -> Callable[[int], Pair]:
        CASES[name] = Case(name, reference, size_name, sizes, build, note)
        return build

    return register


# --- the ops ------------------------------------------------------------------------------------

_SEED = 20261123


class Skip(Exception):
    """Raised by a case's ``build`` when this machine cannot run it; the message says why."""


def _rewards_column(name: str) -> Callable:
    def reward(completions: Any, **columns: Any) -> list:
        return columns[name]

    reward.__name__ = name
    return reward


def _scoring_inputs(n: int) -> tuple[list[dict], list[list[int]]]:
    """``n`` dataset rows (a prompt and three reward columns, 5% None, never all three: TRL
    warns about each such row) and ``n`` completions (1..512 tokens of the tiny vocabulary, 80%
    ending in EOS)."""
    from .testing import WORDS

    rng = np.random.default_rng([_SEED, n, 2])
    r = rng.random((n, 3)).round(4)
    none = rng.random((n, 3)) < 0.05
    none[none.all(axis=1), 0] = False
    rows = [
        {"prompt": "what is 1 + 1 ?", **{f"r{j}": None if none[i, j] else float(r[i, j]) for j in range(3)}}
        for i in range(n)
    ]
    lengths = rng.integers(1, 513, n)
    completions = [rng.integers(4, len(WORDS), int(m)).tolist() for m in lengths]
    for c in completions[: int(0.8 * n)]:
        c[-1] = 1
    return rows, completions


@case(
    "grpo scoring step",
    "TRL GRPOTrainer._generate_and_score_completions",
    "N",
    (1024, 8192),
    note="whole scoring step beside FastGRPOTrainer's: injected completions (1..512 tokens), decoding, "
    "K=3 reward functions (5% None), padding, advantages (G=16) and logged metrics; tiny model, no forward",
)
def scoring_step_pair(n: int) -> Pair:
    """``GRPOTrainer._generate_and_score_completions`` and ``FastGRPOTrainer``'s on the same ``n``
    injected completions (groups of 16) and reward columns; also used by benches/."""
    import torch
    from datasets import Dataset

    from .testing import fixed_rollout, tiny_grpo_trainer
    from .trl import FastGRPOTrainer

    rows, completions = _scoring_inputs(n)
    funcs = [_rewards_column(f"r{j}") for j in range(3)]
    data = Dataset.from_dict({"prompt": ["p"] * n, **{f"r{j}": [0.0] * n for j in range(3)}})
    trainers = [
        tiny_grpo_trainer(
            funcs,
            num_generations=16,
            per_device_train_batch_size=n,
            train_dataset=data,
            rollout_func=fixed_rollout(completions),
            max_completion_length=512,
            trainer_cls=cls,
        )
        for cls in (None, FastGRPOTrainer)
    ]

    def score(trainer: Any) -> Callable[[], Any]:
        def step() -> Any:
            trainer._metrics["train"].clear()
            return trainer._generate_and_score_completions([dict(row) for row in rows])

        return step

    def check(ref: Any, got: Any) -> None:
        for key in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "num_items_in_batch"):
            assert torch.equal(got[key], ref[key]), key
        torch.testing.assert_close(got["advantages"], ref["advantages"], rtol=1e-5, atol=1e-5)

    return Pair(score(trainers[0]), score(trainers[1]), check=check)


@case(
    "soft_overlong (lists)",
    "trl.rewards.get_soft_overlong_punishment",
    "B",
    (1024, 8192, 65536),
    note="lengths uniform in 0..4096, L_max=4096, L_cache=1024; token-id lists as TRL passes them",
)
def _overlong_lists(b: int) -> Pair:
    from trl.rewards import get_soft_overlong_punishment

    from .rewards import soft_overlong

    lists, _ = _overlong_inputs(b)
    ref, ours = get_soft_overlong_punishment(4096, 1024), soft_overlong(4096, 1024)

    def check(r: Any, g: Any) -> None:
        assert r == g

    return Pair(lambda: ref(completion_ids=lists), lambda: ours(completion_ids=lists), check=check)


def _overlong_inputs(b: int) -> tuple[list[list[int]], Any]:
    import torch

    rng = np.random.default_rng([_SEED, b, 1])
    lengths = rng.integers(0, 4097, size=b)
    return [[7] * int(n) for n in lengths], torch.from_numpy(lengths)


@case(
    "soft_overlong (lengths)",
    "trl.rewards.get_soft_overlong_punishment (lists)",
    "B",
    (1024, 8192, 65536),
    note="TRL takes no tensor: its time is on the token lists; fastalign's on an int64 lengths tensor",
)
def _overlong_lengths(b: int) -> Pair:
    from trl.rewards import get_soft_overlong_punishment

    from .rewards import soft_overlong

    lists, lengths = _overlong_inputs(b)
    ref, ours = get_soft_overlong_punishment(4096, 1024), soft_overlong(4096, 1024)

    def check(r: Any, g: Any) -> None:
        assert g.tolist() == r

    return Pair(lambda: ref(completion_ids=lists), lambda: ours(lengths=lengths), nbytes=b * 16, check=check)


def _logps(b: int, t: int) -> tuple[Any, Any, Any, Any]:
    """float32 log-probs, old log-probs, an int64 right-padded mask and per-row advantages."""
    import torch

    g = torch.Generator().manual_seed(_SEED + 31 * b + t)
    lp = -torch.rand(b, t, generator=g) * 3
    old = lp + 0.05 * torch.randn(b, t, generator=g)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = (torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)).long()
    return lp, old, mask, torch.randn(b, generator=g)


def loss_method_pair(level: str, loss_type: str, b: int, t: int) -> Pair:
    """``GRPOTrainer._compute_loss`` and ``FastGRPOTrainer``'s, then the gradient, on the same
    injected (b, t) log-probs; also used by benches/."""
    import torch

    from .testing import injected_logps_grpo_trainer
    from .trl import FastGRPOTrainer

    lp0, old, mask, adv = _logps(b, t)
    entropies = torch.rand(b, t, generator=torch.Generator().manual_seed(_SEED + b))
    inputs = {
        "prompt_ids": torch.zeros(b, 2, dtype=torch.long),
        "prompt_mask": torch.ones(b, 2, dtype=torch.long),
        "completion_ids": torch.zeros(b, t, dtype=torch.long),
        "completion_mask": mask,
        "advantages": adv,
        "num_items_in_batch": mask.sum(),
        "old_per_token_logps": old,
    }

    def step(base: type | None) -> Callable[[], Any]:
        trainer = injected_logps_grpo_trainer(
            base=base,
            num_generations=2,
            per_device_train_batch_size=2,
            loss_type=loss_type,
            importance_sampling_level=level,
            epsilon=0.2,
            epsilon_high=0.28,
            max_completion_length=t,
        )
        trainer.current_gradient_accumulation_steps = 1

        def run() -> Any:
            trainer._metrics["train"].clear()
            lp = lp0.clone().requires_grad_(True)
            trainer.injected = (lp, entropies)
            loss = trainer._compute_loss(trainer.model, inputs)
            return loss.detach(), torch.autograd.grad(loss, lp)[0]

        return run

    def check(r: Any, g: Any) -> None:
        torch.testing.assert_close(g[0], r[0], rtol=2e-5, atol=1e-6)
        torch.testing.assert_close(g[1], r[1], rtol=2e-5, atol=1e-8)

    return Pair(step(None), step(FastGRPOTrainer), check=check)


def _loss_case(level: str, loss_type: str) -> Callable[[int], Pair]:
    return lambda b: loss_method_pair(level, loss_type, b, 4096)


case(
    "grpo _compute_loss fwd+bwd (dapo)",
    "TRL GRPOTrainer._compute_loss + autograd",
    "B",
    (64, 512),
    note="T=4096; the trainers' loss methods on injected log-probs (loss, gradient and logged metrics) beside "
    "FastGRPOTrainer's; TRL's default loss: token ratio, clip 0.2/0.28, / num_items_in_batch",
)(_loss_case("token", "dapo"))
case(
    "grpo _compute_loss fwd+bwd (GSPO)",
    "TRL GRPOTrainer._compute_loss + autograd",
    "B",
    (64, 512),
    note="T=4096; importance_sampling_level='sequence', loss_type='grpo'",
)(_loss_case("sequence", "grpo"))


@case(
    "pack_dataset (bfd, TRL windows)",
    "trl.pack_dataset",
    "N",
    (10_000, 100_000),
    note="lognormal lengths (mean ~400 tokens), one int64 column, seq_length 4096, 1,000-row windows",
)
def _pack(n: int) -> Pair:
    import numpy as np_
    import pyarrow as pa
    from datasets import Dataset, disable_progress_bars
    from trl import pack_dataset as trl_pack

    from .packing import pack_dataset

    disable_progress_bars()
    rng = np_.random.default_rng([_SEED, n])
    lengths = np_.maximum(rng.lognormal(5.5, 1.0, n).astype(np_.int64), 1)
    offsets = np_.zeros(n + 1, dtype=np_.int32)
    np_.cumsum(lengths, out=offsets[1:])
    values = pa.array(np_.arange(int(offsets[-1]), dtype=np_.int64) % 151_936)
    ds = Dataset.from_dict({"input_ids": pa.ListArray.from_arrays(offsets, values)})

    def check(r: Any, g: Any) -> None:
        assert r.data.table.equals(g.data.table)

    return Pair(lambda: trl_pack(ds, 4096), lambda: pack_dataset(ds, 4096), nbytes=int(offsets[-1]) * 16, check=check)


def _kk_case(equal_size: bool) -> Callable[[int], Pair]:
    def build(n: int) -> Pair:
        try:
            from verl.utils.seqlen_balancing import get_seqlen_balanced_partitions
        except ImportError:
            raise Skip(
                "verl is not installed (pip install verl); benches/bench_packing.py in the repository "
                "times a pure-Python Karmarkar-Karp instead"
            ) from None

        from .packing import balance_partitions

        lengths = np.random.default_rng([_SEED, n]).integers(64, 8192, n)

        def check(r: Any, g: Any) -> None:
            spread = lambda parts: max(int(lengths[list(p)].sum()) for p in parts) - min(  # noqa: E731
                int(lengths[list(p)].sum()) for p in parts
            )
            assert spread(g) <= spread(r), "fastalign's partition is less balanced than verl's"

        return Pair(
            lambda: get_seqlen_balanced_partitions(lengths.tolist(), 64, equal_size),
            lambda: balance_partitions(lengths, 64, equal_size=equal_size),
            check=check,
        )

    return build


case(
    "balance_partitions (k=64)",
    "verl get_seqlen_balanced_partitions",
    "n",
    (1024, 16_384),
    note="lengths uniform in 64..8191; fastalign's spread must be at most verl's (needs verl)",
)(_kk_case(False))
case(
    "balance_partitions (k=64, equal size)",
    "verl get_seqlen_balanced_partitions",
    "n",
    (1024, 16_384),
    note="equal_size=True",
)(_kk_case(True))

# What TRL computes inline in a trainer method has nothing of TRL's to call on its own: the
# advantage step alone, the completion mask, GSPO's sequence ratio, the loss lines alone. The
# repository's benches/ time those against plain-torch references proven equal to the trainer
# methods by its tests; this command, shipped in the wheel, times only TRL's (and verl's) own code.
INLINE_NOTE = (
    "ops TRL computes inline (the advantage step alone, completion_mask, sequence_log_ratio, the loss "
    "lines alone) are timed in the repository's benches/, against plain-torch references proven equal "
    "to TRL's trainer methods by its tests"
)


# --- timing and the machine ----------------------------------------------------------------------


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


# --- running and reporting -----------------------------------------------------------------------


def run(
    ops: list[str], sizes: dict[str, tuple[int, ...]], repeat: int, copy_bw: float | None = None, out: Any = None
) -> list[dict]:
    """Time every op at its sizes; print one table row per result as it comes (to ``out``, default
    stdout); return the rows. An op this machine cannot run (:class:`Skip`) gets a row saying
    why, with ``"skipped"`` set and no times."""
    out = sys.stdout if out is None else out
    rows = []
    for name in ops:
        c = CASES[name]
        for size in sizes.get(name, c.sizes):
            try:
                pair = c.build(size)
            except Skip as why:
                row = {
                    "op": name,
                    "size": f"{c.size_name}={size:,}",
                    "size_value": size,
                    "reference": c.reference,
                    "skipped": str(why),
                }
                rows.append(row)
                print(f"| {name} | {row['size']} | {c.reference} | skipped: {why} | | | | |", file=out, flush=True)
                continue
            ref_out, our_out = pair.reference(), pair.fastalign()
            if pair.check is not None:
                pair.check(ref_out, our_out)  # same answer first, then the clock
            del ref_out, our_out
            ref, ours = time_call(pair.reference, repeat), time_call(pair.fastalign, repeat)
            row = {
                "op": name,
                "size": f"{c.size_name}={size:,}",
                "size_value": size,
                "reference": c.reference,
                "reference_s": ref.median,
                "reference_best_s": ref.best,
                "fastalign_s": ours.median,
                "fastalign_best_s": ours.best,
                "speedup": ref.median / ours.median,
                "speedup_best": ref.best / ours.best,
                "bytes": pair.nbytes,
            }
            rows.append(row)
            print(_row(row, copy_bw), file=out, flush=True)
    return rows


def _row(r: dict, copy_bw: float | None) -> str:
    if r["bytes"]:
        gbs = r["bytes"] / r["fastalign_s"] / 1e9
        bw = f"{gbs:.1f}" + (f" ({gbs / (copy_bw / 1e9):.0%} of copy)" if copy_bw else "")
    else:
        bw = "–"
    return (
        f"| {r['op']} | {r['size']} | {r['reference']} | {fmt_time(r['reference_s'])} "
        f"| {fmt_time(r['fastalign_s'])} | {r['speedup']:.1f}x | {r['speedup_best']:.1f}x | {bw} |"
    )


HEADER = (
    "| op | size | reference | reference time | fastalign time | speed-up (median) | speed-up (best) "
    "| fastalign GB/s (r+w) |\n|---|---|---|---|---|---|---|---|"
)


def header_lines(copy_bw: float) -> list[str]:
    import torch

    import fastalign

    try:
        import trl

        trl_version = trl.__version__
    except ImportError:
        trl_version = "not installed"
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"## fastalign bench — {when}",
        "",
        f"- CPU: {cpu_model()}; memory copy bandwidth {copy_bw / 1e9:.1f} GB/s (numpy copy of 256 MiB, "
        "best of 5, bytes read + written per second)",
        f"- fastalign {fastalign.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"trl {trl_version}, numpy {np.__version__}, Python {sys.version.split()[0]}",
        "- median and best of the timed batches; speed-up = reference time / fastalign time, same inputs, "
        "same process; outputs compared before timing. GB/s above the copy bandwidth means the inputs "
        "stayed in cache between calls (small sizes)",
    ]


def plot(rows: list[dict], directory: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    written = []
    rows = [r for r in rows if "skipped" not in r]
    for op in dict.fromkeys(r["op"] for r in rows):
        mine = [r for r in rows if r["op"] == op]
        fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=120)
        xs = [r["size_value"] for r in mine]
        ax.plot(xs, [r["speedup"] for r in mine], marker="o", label="median")
        ax.plot(xs, [r["speedup_best"] for r in mine], marker="s", ls="--", label="best")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(mine[0]["size"].split("=")[0])
        ax.set_ylabel(f"speed-up vs {mine[0]['reference'][:40]}")
        ax.set_title(op)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(directory, "".join(ch if ch.isalnum() else "_" for ch in op).strip("_") + ".png")
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def _parse_sizes(specs: list[str]) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, sep, values = spec.rpartition("=")
        if not sep or name not in CASES:
            raise SystemExit(f"--sizes: expected OP=N[,N...] with OP one of {', '.join(CASES)}; got {spec!r}")
        try:
            sizes = tuple(int(v.replace("_", "")) for v in values.split(",") if v)
        except ValueError:
            raise SystemExit(f"--sizes: sizes must be integers, got {values!r}") from None
        if not sizes or min(sizes) < 1:
            raise SystemExit(f"--sizes: sizes must be positive integers, got {values!r}")
        out[name] = sizes
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="fastalign bench",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--ops", help="comma-separated ops (default: all; see --list)")
    ap.add_argument(
        "--sizes", nargs="*", default=[], metavar="OP=N,N", help="sizes per op, e.g. 'grpo scoring step=1024'"
    )
    ap.add_argument("--repeat", type=int, default=7, help="timed batches per measurement (default 7)")
    ap.add_argument("--plot", metavar="DIR", help="write one PNG per op (speed-up by size) into DIR")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--list", action="store_true", help="list the ops and exit")
    step = ap.add_argument_group("training steps (--step)")
    step.add_argument(
        "--step",
        action="store_true",
        help="time whole optimizer steps of TRL's trainers beside fastalign's padding-free ones "
        "on a long-tail batch (see fastalign.step_bench) instead of the ops",
    )
    step.add_argument("--trainers", default="grpo,dpo", help="with --step: grpo and/or dpo (default both)")
    step.add_argument("--models", default="tiny,small", help="with --step: tiny and/or small (default both)")
    step.add_argument("--rounds", type=int, default=3, help="with --step: interleaved steps per side (default 3)")
    step.add_argument("--memory", action="store_true", help="with --step: also each side's peak memory (subprocesses)")
    args = ap.parse_args(argv)
    if args.step:
        return _steps(args)
    if args.list:
        for c in CASES.values():
            listed = ",".join(map(str, c.sizes))
            print(f"{c.name:<26} {c.size_name}={listed:<22} vs {c.reference}" + (f"  [{c.note}]" if c.note else ""))
        print(f"\n({INLINE_NOTE})")
        return 0
    ops = list(CASES) if not args.ops else [o.strip() for o in args.ops.split(",") if o.strip()]
    unknown = [o for o in ops if o not in CASES]
    if unknown:
        raise SystemExit(f"--ops: unknown {', '.join(unknown)}; known: {', '.join(CASES)}")
    if args.repeat < 1:
        raise SystemExit("--repeat must be >= 1")
    sizes = _parse_sizes(args.sizes)
    bw = copy_bandwidth()
    print("\n".join(header_lines(bw)) + "\n")
    print(HEADER, flush=True)
    rows = run(ops, sizes, args.repeat, bw)
    notes = [f"- {c.name}: {c.note}" for c in CASES.values() if c.name in ops and c.note]
    print("\n" + "\n".join([*notes, f"- {INLINE_NOTE}"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"copy_bandwidth": bw, "header": header_lines(bw), "results": rows}, f, indent=1)
        print(f"\nJSON: {args.json}")
    if args.plot:
        for path in plot(rows, args.plot):
            print(f"plot: {path}")
    return 0


def _steps(args: argparse.Namespace) -> int:
    from .step_bench import MODELS, compare, peak_memory

    trainers = [t.strip() for t in args.trainers.split(",") if t.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [t for t in trainers if t not in ("grpo", "dpo")] + [m for m in models if m not in MODELS]
    if bad or args.rounds < 1:
        raise SystemExit(f"--step: unknown trainers/models {bad} (grpo, dpo; {', '.join(MODELS)}) or --rounds < 1")
    print(f"CPU: {cpu_model()}; torch threads: {_torch_threads()}\n")
    rows = []
    for trainer in trainers:
        for model in models:
            r = compare(trainer, model, args.rounds)
            if args.memory:
                r["peak_memory"] = peak_memory(trainer, model)
                m = r["peak_memory"]
                print(f"  peak memory above start: TRL {m['trl'] / 2**20:,.0f} MiB, "
                      f"fastalign {m['fastalign'] / 2**20:,.0f} MiB ({m['trl'] / max(m['fastalign'], 1):.1f}x less)",
                      flush=True)  # fmt: skip
            rows.append(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
        print(f"\nJSON: {args.json}")
    return 0


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
