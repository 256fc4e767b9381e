"""FastGRPOTrainer(padding_free=True) and FastDPOTrainer on two processes (gloo, CPU) log what
GRPOTrainer and DPOTrainer log. GRPO:
TRL's cross-process reductions of the loss metrics, the same number of forwards on every rank
(token-budget rows differ per rank), no deadlock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.logs import assert_same_logs

MULTIPROCESS = Path(__file__).parents[1] / "multiprocess"
SCRIPTS = [MULTIPROCESS / name for name in ("grpo_padding_free.py", "dpo_padding_free.py")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_rank_logs(tmp_path_factory):
    out = tmp_path_factory.mktemp("two-ranks")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for script in SCRIPTS:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(_free_port()), str(script), str(out)]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


@pytest.mark.parametrize(
    "name", ["dapo", "dapo-budget", "grpo-entropy-bonus", "bnpo-budget-gspo", "top-entropy-budget"]
)
def test_two_processes_train_like_grpo_trainer(two_rank_logs, name):
    run = two_rank_logs[name]
    assert_same_logs(run["trl"], run["fastalign"])
    if "entropy" not in name:
        assert run["grpo_loss_calls"] >= 3  # fastalign's loss ran on this rank


@pytest.mark.parametrize("name", ["sigmoid", "ipo-budget"])
def test_two_processes_train_like_dpo_trainer(two_rank_logs, name):
    run = two_rank_logs[f"dpo-{name}"]
    assert_same_logs(run["trl"], run["fastalign"], rel=1e-4, abs=1e-6)
