"""FastGRPOTrainer on two processes (torchrun, gloo, CPU): fastalign's loss on every rank with
TRL's cross-rank metrics (padded, and padding-free with the ranks balanced by tokens), and DAPO
dynamic sampling and GFPO deciding on the whole generation batch, in lockstep, without deadlock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.logs import assert_same_logs

SCRIPT = Path(__file__).parents[1] / "multiprocess" / "grpo_ranks.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("grpo-ranks")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), str(SCRIPT), str(out)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]

    def read(name):
        return [json.loads((out / f"{name}-rank{r}.json").read_text()) for r in (0, 1)]

    return read


PARITY = [
    "padded-dapo",
    "padded-gspo",
    "padded-bnpo-beta",
    "padded-cispo",
    "balanced-dapo",
    "balanced-grpo-beta",
    "padding-free-budget-bnpo",
]


@pytest.mark.parametrize("name", PARITY)
def test_two_processes_log_what_grpo_trainer_logs(ranks, name):
    for run in ranks(name):
        assert_same_logs(run["trl"], run["fastalign"])
        assert run["grpo_loss_calls"] >= 3  # fastalign's loss ran on this rank, every step
        # the ranks meet at the gradient all-reduce only: no collective while a loss is computed
        # (model-call counts agreed per generation batch, metrics reduced once per step)
        assert run["loss_collectives"] == 0
        if name.startswith("balanced"):
            assert run["balance_calls"] >= 3  # a generation per step, dealt to the ranks by tokens


def test_dynamic_sampling_refills_across_ranks_when_one_rank_has_no_signal(ranks):
    r0, r1 = ranks("dynamic-step")
    # rank 0's prompts were all zero-variance, rank 1's all informative: both refill in lockstep,
    # and each ends with an equal share of the kept (informative) groups
    assert r0["rows"] == r1["rows"] == 8
    for r in (r0, r1):
        assert all(s > 0 for s in r["group_signal"])
    assert r0["metrics"] == r1["metrics"]  # decided on the whole batch: the same on every rank
    assert r0["metrics"]["dynamic_sampling/generation_batches"] == 2
    assert r0["metrics"]["dynamic_sampling/filtered_groups"] == 4  # 2 per generation, both on rank 0
    assert r0["metrics"]["dynamic_sampling/zero_variance_groups_kept"] == 0
    assert r0["logged_prompts"] == r1["logged_prompts"] == ["vary"] * 16


@pytest.mark.parametrize("name", ["dynamic-train", "gfpo-train", "dynamic-gfpo-padding-free"])
def test_filtering_trains_on_two_processes(ranks, name):
    r0, r1 = ranks(name)
    assert len(r0["history"]) == len(r1["history"]) == 2
    assert r0["grpo_loss_calls"] >= 2 and r1["grpo_loss_calls"] >= 2
    for a, b in zip(r0["history"], r1["history"]):  # every logged value is global: equal on both ranks
        assert a.keys() == b.keys()
        for key in a:
            if key not in ("loss", "grad_norm") and "time" not in key and "runtime" not in key:
                assert a[key] == pytest.approx(b[key], rel=1e-6, nan_ok=True), key
