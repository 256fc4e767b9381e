"""Markdown table of the fastalign benchmarks: TRL reference vs fastalign, from one run.

Usage (from the repository root):
    .venv/bin/python benches/report.py                  # runs the suite, then prints the table
    .venv/bin/python benches/report.py results.json     # table from an earlier --benchmark-json
    .venv/bin/python benches/report.py --json-out r.json  # run, and keep the JSON

Times are medians of the rounds pytest-benchmark took (speed-ups by the minima are shown too, as
the minimum is less sensitive to a noisy machine). Speed-up = reference time / fastalign time,
both measured in the same run on the same inputs. For array ops the achieved bandwidth is the
bytes fastalign reads + writes in one call divided by its median time, shown beside this
machine's memory copy bandwidth, measured here as a numpy copy of a 256 MiB array (best of 5),
counted the same way: bytes read + bytes written per second.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fastalign._bench.timing import copy_bandwidth, cpu_model, fmt_time

BENCHES = Path(__file__).resolve().parent
REPO = BENCHES.parent


def _busy_ticks() -> int:
    """Busy jiffies of all CPUs so far (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def _proc_ticks(pid: int) -> int | None:
    """utime + stime of a process (all its threads), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def run_suite(json_path: Path) -> dict | None:
    """Run the benchmarks; return what other processes used of the CPUs meanwhile (None where
    /proc is not available): a busy machine slows the multi-threaded torch reference most (its
    threads wait for each other), which would inflate the speed-ups."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(BENCHES.relative_to(REPO)),
        "-q",
        "-p",
        "no:cacheprovider",
        "--benchmark-only",
        f"--benchmark-json={json_path}",
        # with filterwarnings=error, pytest-benchmark's "Not saving anything" (nothing ran, e.g.
        # after a collection error) would raise before pytest reports what went wrong
        "-W",
        "ignore:Not saving anything:pytest_benchmark.logger.PytestBenchmarkWarning",
    ]
    print("running:", " ".join(cmd), file=sys.stderr)
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=sys.stderr)
    samples: list[float] = []
    try:
        hz = os.sysconf("SC_CLK_TCK")
        busy, own, t = _busy_ticks(), _proc_ticks(proc.pid), time.monotonic()
        while proc.poll() is None:
            time.sleep(0.5)
            busy2, own2, t2 = _busy_ticks(), _proc_ticks(proc.pid), time.monotonic()
            if own is not None and own2 is not None and proc.poll() is None:
                samples.append(max(0.0, (busy2 - busy) - (own2 - own)) / hz / (t2 - t))
            busy, own, t = busy2, own2, t2
    except (OSError, ValueError):
        samples = []
    if proc.wait() != 0:
        sys.exit(f"benchmark run failed (exit {proc.returncode})")
    if not samples:
        return None
    return {
        "mean": sum(samples) / len(samples),
        "busy": sum(x > 0.25 for x in samples) / len(samples),
        "n": len(samples),
    }


def versions(data: dict) -> str:
    """Versions recorded during the run by benches/conftest.py (or, failing that, installed now)."""
    info = data.get("machine_info", {}).get("fastalign_bench")
    if info is None:
        import torch
        import trl

        import fastalign

        try:
            from importlib.metadata import version

            rlox = version("rlox")
        except Exception:  # noqa: BLE001 - rlox is optional
            rlox = None
        info = {
            "fastalign": fastalign.__version__,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "trl": trl.__version__,
            "numpy": np.__version__,
            "rlox": rlox,
        }
    py = data.get("machine_info", {}).get("python_version", sys.version.split()[0])
    return (
        f"fastalign {info['fastalign']}, torch {info['torch']} ({info['torch_threads']} threads), "
        f"trl {info['trl']}, numpy {info['numpy']}, Python {py}, "
        + (f"rlox {info['rlox']}" if info.get("rlox") else "rlox not installed")
    )


def git_state(data: dict) -> str:
    """The commit the run was made at (pytest-benchmark records it), and whether the tree was dirty."""
    info = data.get("commit_info") or {}
    if info.get("id"):
        return info["id"][:7] + (" + uncommitted changes" if info.get("dirty") else "")
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(data: dict, copy_bw: float) -> str:
    groups: dict[str, list[dict]] = {}
    for b in data["benchmarks"]:
        groups.setdefault(b["group"] or b["name"], []).append(b)
    head = (
        "| op | size | reference | ref. time | fastalign (or other) | time | speed-up (median) "
        "| speed-up (min) | target | GB/s (r+w) |"
    )
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for name, benches in groups.items():
        ref = next((b for b in benches if b["extra_info"].get("role") == "reference"), None)
        if ref is None:
            continue
        rest = sorted(
            (b for b in benches if b is not ref),
            key=lambda b: (b["extra_info"].get("role") != "fastalign", b["stats"]["median"]),
        )
        for b in rest:
            info = b["extra_info"]
            med, mn = b["stats"]["median"], b["stats"]["min"]
            su_med = ref["stats"]["median"] / med
            su_min = ref["stats"]["min"] / mn
            if info.get("part_of_reference"):  # a piece of the reference, not a competitor
                su_cells = f"{med / ref['stats']['median']:.0%} of ref. time | {mn / ref['stats']['min']:.0%} (min)"
            else:
                su_cells = f"{su_med:.1f}x | {su_min:.1f}x"
            target = info.get("target")
            if target is not None:
                # judged on the lower of the two speed-ups, so a reference slowed down by a noisy
                # machine (torch's multi-threaded ops suffer most) does not flatter fastalign
                su = min(su_med, su_min)
                verdict = "met" if su >= target else f"**missed** ({su / target:.0%} of it)"
                target_cell = f"≥{target:g}x: {verdict}"
            else:
                target_cell = "–"
            impl = info.get("impl", b["name"])
            if info.get("role") == "fastalign":
                impl = f"**{impl}**"
            if "peak_mib" in info and "peak_mib" in ref["extra_info"]:
                # a memory row: the timed value is a whole child process; show what it measured
                r, o = ref["extra_info"], info
                lines.append(
                    f"| {info.get('op', name)} | {info.get('size', '')} | {r.get('impl', 'trl')} "
                    f"| {r['peak_mib']:,.0f} MiB added ({r['peak_process_mib']:,.0f} process) | {impl} "
                    f"| {o['peak_mib']:,.0f} MiB added ({o['peak_process_mib']:,.0f} process) "
                    f"| {r['peak_mib'] / o['peak_mib']:.1f}x less memory | – | – | – |"
                )
                continue
            if "bytes" in info:
                gbs = info["bytes"] / med / 1e9
                bw = f"{gbs:.1f} ({gbs / (copy_bw / 1e9):.0%} of copy)"
            else:
                bw = "–"
            lines.append(
                f"| {info.get('op', name)} | {info.get('size', '')} | {ref['extra_info'].get('impl', 'trl')} "
                f"| {fmt_time(ref['stats']['median'])} | {impl} | {fmt_time(med)} | {su_cells} "
                f"| {target_cell} | {bw} |"
            )
    return "\n".join(lines)


def notes(data: dict) -> list[str]:
    out = []
    by_name = {b["name"]: b for b in data["benchmarks"]}
    fa = by_name.get("test_grpo_64x8[fastalign]")
    fa64 = by_name.get("test_grpo_64x8[fastalign-np64]")
    rl = by_name.get("test_grpo_64x8[rlox-per-group]")
    rlb = by_name.get("test_grpo_64x8[rlox-batch]")
    if fa is not None:
        s = (
            f"- 64 groups x 8 vs rlox: rlox publishes 7.8 µs (Apple M3 Pro; 64 calls of "
            f"`compute_group_advantages` on pre-split float64 groups). Here: fastalign "
            f"{fmt_time(fa['stats']['median'])} (TRL's float32 tensor with NaN, TRL semantics)"
        )
        if fa64 is not None:
            s += f", {fmt_time(fa64['stats']['median'])} on rlox's input (flat float64 numpy, no NaN)"
        if rl is not None and rlb is not None:
            s += (
                f"; rlox in this run: {fmt_time(rl['stats']['median'])} per-group, "
                f"{fmt_time(rlb['stats']['median'])} batched (rlox: population std, no eps, no NaN handling)"
            )
            if fa64 is not None:
                s += (
                    f". Time ratio rlox / fastalign on the same array: per-group "
                    f"{rl['stats']['median'] / fa64['stats']['median']:.2f}, batched "
                    f"{rlb['stats']['median'] / fa64['stats']['median']:.2f} (above 1: fastalign faster)."
                )
        else:
            s += "; rlox not installed in this run (its rows are skipped)."
        out.append(s)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="?", help="pytest-benchmark JSON (default: run the suite now)")
    ap.add_argument("--json-out", help="where to keep the JSON of the run (default: a temporary file)")
    args = ap.parse_args()
    other = None
    if args.json:
        path = Path(args.json)
    else:
        if args.json_out:
            path = Path(args.json_out)
        else:
            path = Path(tempfile.mkdtemp(prefix="fastalign-bench-")) / "bench.json"
        other = run_suite(path.resolve())
    data = json.loads(path.read_text())
    bw = copy_bandwidth()
    when = data.get("datetime") or dt.datetime.now(dt.UTC).isoformat()
    print(f"## fastalign vs TRL — benchmark run of {when[:19].replace('T', ' ')} UTC\n")
    print(f"- CPU: {cpu_model()} (lscpu)")
    print(f"- {versions(data)}")
    print(
        f"- repository: {git_state(data)}; fastalign on its own pool for large inputs "
        "(FASTALIGN_NUM_THREADS, default: all CPUs), torch on its default threads"
    )
    print(
        f"- memory copy bandwidth: {bw / 1e9:.1f} GB/s (numpy copy of a 256 MiB array, best of 5; "
        "bytes read + bytes written per second)"
    )
    if other is not None:
        print(
            f"- CPU used by other processes during the run: {other['mean']:.2f} cores on average, above "
            f"0.25 core in {other['busy']:.0%} of {other['n']} half-second samples"
            + (
                " (quiet)"
                if other["mean"] < 0.1 and other["busy"] < 0.05
                else " — **not a quiet machine: torch's multi-threaded reference slows down most, so the speed-ups "
                "are inflated; run again when the machine is idle**"
            )
        )
    print(
        "- times are medians over pytest-benchmark's rounds; speed-up = reference / fastalign, same run, "
        "same inputs; a target counts as met when both the median and the min speed-up reach it. "
        "GB/s = bytes fastalign reads + writes per call / its median time (inputs at N=8192 and below "
        "fit in cache, so only the large rows are comparable with the copy bandwidth).\n"
    )
    print(table(data, bw))
    extra = notes(data)
    if extra:
        print()
        print("\n".join(extra))
    print(f"\n(JSON: {path})", file=sys.stderr)


if __name__ == "__main__":
    os.chdir(REPO)
    main()
