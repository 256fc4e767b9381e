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

The longer pytest-benchmark suite in the repository's ``benches/`` builds the same cases from the
same registry (``fastalign._bench``: the sizes, the seeded inputs, the pairs), times them with
more rounds, saves JSON for ``--benchmark-compare``, and also times single inline computations
(the advantage step alone, the completion mask, GSPO's sequence ratio) against plain-torch
references that its tests prove equal to TRL's trainer methods; those references are not
shipped. This command is the quick, self-contained view a user can run after
``pip install fastalign[trl]``. Needs torch and trl.
"""

from __future__ import annotations

import argparse
import json
import sys

from ._bench.cases import CASES, INLINE_NOTE, Case, Pair, Skip, loss_method_pair, scoring_step_pair
from ._bench.cases import case as case
from ._bench.report import HEADER, header_lines, plot, run
from ._bench.timing import Timing as Timing
from ._bench.timing import copy_bandwidth, cpu_model
from ._bench.timing import fmt_time as fmt_time
from ._bench.timing import time_call as time_call

# The cases, their inputs, the timing and the report live in fastalign._bench (shared with the
# repository's benches/); this module is the command, and keeps their names importable from here.
__all__ = ["Case", "Pair", "CASES", "Skip", "copy_bandwidth", "loss_method_pair", "main", "run", "scoring_step_pair"]


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
