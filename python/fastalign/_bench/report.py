"""Running the cases of :data:`.cases.CASES` and reporting them: one markdown table row per op and
size as it comes, the header that says on what machine and versions, and one plot per op."""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import Any

import numpy as np

from .cases import CASES, Skip
from .timing import cpu_model, fmt_time, time_call

__all__ = ["HEADER", "header_lines", "plot", "run"]


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
