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


def test_step_comparison_runs_both_trainers_and_reports(tmp_path, monkeypatch, capsys):
    """``fastalign bench --step`` on a shrunken long-tail batch (the real one takes minutes): both
    sides train, padding-free forwards fewer tokens, the first-step losses agree."""
    from fastalign import step_bench

    monkeypatch.setattr(step_bench, "long_tail_lengths", lambda n=32, seed=0, **kw: step_bench.np.array(
        [2 + (7 * i + seed) % 30 for i in range(n)]))
    out_json = tmp_path / "step.json"
    assert bench.main(["--step", "--models", "tiny", "--rounds", "1", "--json", str(out_json)]) == 0
    rows = json.loads(out_json.read_text())
    assert [(r["trainer"], r["model"]) for r in rows] == [("grpo", "tiny"), ("dpo", "tiny")]
    for r in rows:
        assert r["tokens_per_step"]["fastalign"] < r["tokens_per_step"]["trl"]
        assert r["first_step_loss"]["fastalign"] == pytest.approx(r["first_step_loss"]["trl"], rel=1e-5, abs=1e-6)
        assert r["speedup"] == pytest.approx(r["median_seconds"]["trl"] / r["median_seconds"]["fastalign"])
    assert "grpo tiny: TRL" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--step", "--models", "huge"], ["--step", "--trainers", "ppo"],
                                  ["--step", "--rounds", "0"]])
def test_bad_step_arguments_are_refused(args):
    with pytest.raises(SystemExit, match="--step"):
        bench.main(args)
