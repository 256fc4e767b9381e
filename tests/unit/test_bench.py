"""The ``fastalign bench`` command: it runs every op (tiny sizes here), checks answers before
timing, writes JSON and plots, skips what the machine lacks with a reason, and refuses bad
arguments clearly."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import types

import pytest

from fastalign import bench
from fastalign.__main__ import main as cli

TINY = [
    "grpo scoring step=32",
    "soft_overlong (lists)=16",
    "soft_overlong (lengths)=16",
    "grpo _compute_loss fwd+bwd (dapo)=2",
    "grpo _compute_loss fwd+bwd (GSPO)=2",
    "pack_dataset (bfd, TRL windows)=50",
    "balance_partitions (k=64)=128",
    "balance_partitions (k=64, equal size)=128",
]
KK = ["balance_partitions (k=64)", "balance_partitions (k=64, equal size)"]


@pytest.fixture
def verl_stand_in(monkeypatch):
    """verl is not installed here: the Karmarkar-Karp cases time verl's
    ``get_seqlen_balanced_partitions`` when it is, so a stand-in module with that function (the
    tests' own differencing method, written from the papers) exercises that path."""
    from reference.partition import differencing_partition

    calls = []

    def get_seqlen_balanced_partitions(seqlen_list, k_partitions, equal_size):
        calls.append(len(seqlen_list))
        return differencing_partition(seqlen_list, k_partitions, equal_size)

    module = types.ModuleType("verl.utils.seqlen_balancing")
    module.get_seqlen_balanced_partitions = get_seqlen_balanced_partitions
    for name in ("verl", "verl.utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "verl.utils.seqlen_balancing", module)
    return calls


def test_every_op_runs_and_reports(tmp_path, capsys, monkeypatch, verl_stand_in):
    monkeypatch.setattr(bench, "copy_bandwidth", lambda: 20e9)  # the 256 MiB copy is not under test
    out_json = tmp_path / "b.json"
    assert cli(["bench", "--repeat", "1", "--sizes", *TINY, "--json", str(out_json), "--plot", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    for name in bench.CASES:
        assert f"| {name} |" in text
    assert "benches/" in text  # where the inline ops are timed
    data = json.loads(out_json.read_text())
    assert [r["op"] for r in data["results"]] == list(bench.CASES)
    for r in data["results"]:
        assert "skipped" not in r
        assert r["reference_s"] > 0 and r["fastalign_s"] > 0
        assert r["speedup"] == pytest.approx(r["reference_s"] / r["fastalign_s"])
    assert len(list(tmp_path.glob("*.png"))) == len(bench.CASES)
    assert verl_stand_in and set(verl_stand_in) == {128}


def test_without_verl_the_partition_cases_say_why(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "verl", None)  # import verl -> ImportError
    out = io.StringIO()
    rows = bench.run(KK, {k: (64,) for k in KK}, repeat=1, out=out)
    for name in KK:
        assert (
            f"| {name} | n=64 | verl get_seqlen_balanced_partitions | skipped: verl is not installed" in out.getvalue()
        )
    assert [r["op"] for r in rows] == KK and all("verl is not installed" in r["skipped"] for r in rows)
    assert bench.plot(rows, str(tmp_path)) == []


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
        (["--sizes", "grpo scoring step=abc"], "integers"),
        (["--sizes", "grpo scoring step=0"], "positive"),
        (["--sizes", "nope=3"], "OP=N"),
        (["--repeat", "0"], "repeat"),
    ],
)
def test_bad_arguments_are_refused(args, message, monkeypatch):
    monkeypatch.setattr(bench, "copy_bandwidth", lambda: 20e9)
    with pytest.raises(SystemExit, match=message):
        bench.main(args)


def test_list_and_module_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "fastalign.bench", "--list"], capture_output=True, text=True, check=True
    ).stdout
    assert all(name in out for name in bench.CASES)
    assert cli(["frobnicate"]) == 2


def test_step_comparison_runs_both_trainers_and_reports(tmp_path, monkeypatch, capsys):
    """``fastalign bench --step`` on a shrunken long-tail batch (the real one takes minutes): both
    sides train, padding-free forwards fewer tokens, the first-step losses agree."""
    from fastalign import step_bench

    monkeypatch.setattr(
        step_bench,
        "long_tail_lengths",
        lambda n=32, seed=0, **kw: step_bench.np.array([2 + (7 * i + seed) % 30 for i in range(n)]),
    )
    out_json = tmp_path / "step.json"
    assert bench.main(["--step", "--models", "tiny", "--rounds", "1", "--json", str(out_json)]) == 0
    rows = json.loads(out_json.read_text())
    assert [(r["trainer"], r["model"]) for r in rows] == [("grpo", "tiny"), ("dpo", "tiny")]
    for r in rows:
        assert r["tokens_per_step"]["fastalign"] < r["tokens_per_step"]["trl"]
        assert r["first_step_loss"]["fastalign"] == pytest.approx(r["first_step_loss"]["trl"], rel=1e-5, abs=1e-6)
        assert r["speedup"] == pytest.approx(r["median_seconds"]["trl"] / r["median_seconds"]["fastalign"])
    assert "grpo tiny: TRL" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args", [["--step", "--models", "huge"], ["--step", "--trainers", "ppo"], ["--step", "--rounds", "0"]]
)
def test_bad_step_arguments_are_refused(args):
    with pytest.raises(SystemExit, match="--step"):
        bench.main(args)
