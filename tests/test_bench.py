"""The ``fastalign bench`` command: it runs every op (tiny sizes here), checks answers before
timing, writes JSON and plots, and refuses bad arguments clearly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fastalign import bench
from fastalign.__main__ import main as cli

TINY = ["grpo_advantages=64", "completion_mask=2", "soft_overlong (lists)=16", "soft_overlong (lengths)=16",
        "sequence_log_ratio (GSPO)=2", "grpo_loss fwd+bwd (dapo)=2", "grpo_loss fwd+bwd (GSPO)=2",
        "pack_dataset (bfd, TRL windows)=50", "balance_partitions (k=64)=128",
        "balance_partitions (k=64, equal size)=128"]


def test_every_op_runs_and_reports(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "copy_bandwidth", lambda: 20e9)  # the 256 MiB copy is not under test
    out_json = tmp_path / "b.json"
    assert cli(["bench", "--repeat", "1", "--sizes", *TINY, "--json", str(out_json), "--plot", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    for name in bench.CASES:
        assert f"| {name} |" in text
    data = json.loads(out_json.read_text())
    assert [r["op"] for r in data["results"]] == list(bench.CASES)
    for r in data["results"]:
        assert r["reference_s"] > 0 and r["fastalign_s"] > 0
        assert r["speedup"] == pytest.approx(r["reference_s"] / r["fastalign_s"])
    assert len(list(tmp_path.glob("*.png"))) == len(bench.CASES)


def test_a_wrong_answer_is_not_timed(monkeypatch):
    c = bench.CASES["soft_overlong (lists)"]
    good = c.build

    def broken(size):
        pair = good(size)
        pair.fastalign = lambda: [0.0] * size  # a fast, wrong implementation
        return pair

    monkeypatch.setattr(c, "build", broken)
    with pytest.raises(AssertionError):
        bench.run(["soft_overlong (lists)"], {"soft_overlong (lists)": (64,)}, repeat=1)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ops", "nope"], "unknown nope"),
        (["--sizes", "grpo_advantages=abc"], "integers"),
        (["--sizes", "grpo_advantages=0"], "positive"),
        (["--sizes", "nope=3"], "OP=N"),
        (["--repeat", "0"], "repeat"),
    ],
)
def test_bad_arguments_are_refused(args, message, monkeypatch):
    monkeypatch.setattr(bench, "copy_bandwidth", lambda: 20e9)
    with pytest.raises(SystemExit, match=message):
        bench.main(args)


def test_list_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "fastalign.bench", "--list"], capture_output=True, text=True,
                         check=True).stdout
    assert all(name in out for name in bench.CASES)
    assert cli(["frobnicate"]) == 2
