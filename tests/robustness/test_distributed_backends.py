"""FastGRPOTrainer under DeepSpeed ZeRO-2, ZeRO-3 and FSDP2 on two CPU processes (torchrun, gloo)
logs what GRPOTrainer logs under the same backend, padded and padding-free.

tests/multiprocess/grpo_backends.py runs every backend in one launch (about 80 s on 2 cores):
accelerate 1.15 does not run DeepSpeed or FSDP on a CPU-only machine, so the script opens those
two gates in accelerate and leaves the engines, the sharding, TRL and fastalign as they are (its
docstring says how). Each run records what the backend did to the model, so a silent fallback to
DDP fails here. The DeepSpeed cases skip when deepspeed is not installed; FSDP2 is torch's own.
docs/distributed.md says what runs where; scripts/distributed_check.sh runs the same tests on
GPUs with NCCL and accelerate as it is (FASTALIGN_BACKENDS_DEVICE=cuda, FASTALIGN_BACKENDS_NPROC).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.logs import assert_same_logs

SCRIPT = Path(__file__).parents[1] / "multiprocess" / "grpo_backends.py"
HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
DEVICE = os.environ.get("FASTALIGN_BACKENDS_DEVICE", "cpu")  # cuda: scripts/distributed_check.sh
NPROC = int(os.environ.get("FASTALIGN_BACKENDS_NPROC", "2"))
# float32 on CPU agrees to rounding (as tests/robustness/test_padding_free_two_ranks.py); CUDA kernels differ
# more between the padded and the packed layouts
TOLERANCE = {"rel": 2e-5, "abs": 1e-6} if DEVICE == "cpu" else {"rel": 1e-4, "abs": 1e-5}
NO_DEEPSPEED = "deepspeed is not installed (DS_BUILD_OPS=0 pip install deepspeed==0.19.8 runs these on CPU)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def backend_logs(tmp_path_factory):
    out = tmp_path_factory.mktemp("backends")
    env = {k: v for k, v in os.environ.items() if k not in ("ACCELERATE_USE_CPU", "ACCELERATE_USE_DEEPSPEED",
                                                             "ACCELERATE_USE_FSDP")}  # fmt: skip
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", FASTALIGN_BACKENDS_DEVICE=DEVICE)
    if DEVICE == "cpu":
        env.update(DS_ACCELERATOR="cpu", CUDA_VISIBLE_DEVICES="")
    env.setdefault("HF_HUB_OFFLINE", "1")
    backends = ["zero2", "zero3", "fsdp2"] if HAS_DEEPSPEED else ["fsdp2"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(NPROC), "--master_port",
           str(_free_port()), str(SCRIPT), str(out), *backends]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def _needs(backend):
    return pytest.mark.skipif(backend.startswith("zero") and not HAS_DEEPSPEED, reason=NO_DEEPSPEED)


BACKENDS = [pytest.param(b, marks=_needs(b)) for b in ("zero2", "zero3", "fsdp2")]


def _run(logs, backend, run):
    result = logs[f"{backend}-{run}"]
    assert "error" not in result, result.get("traceback")
    return result


def _assert_sharded(result, backend):
    info = result["sharding"]
    assert result["num_processes"] == NPROC
    assert result["device"].startswith(DEVICE)
    if backend.startswith("zero"):
        assert info["distributed_type"] == "DEEPSPEED" and info["wrapped"] == "DeepSpeedEngine"
        assert info["zero_stage"] == int(backend[-1])
        # ZeRO-3 keeps a shard of each parameter on each rank (and empties the module's tensor,
        # on one rank too); ZeRO-2 keeps whole parameters, it shards gradients and optimizer states
        assert info["partitioned"] == (backend == "zero3")
    else:
        assert info["distributed_type"] == "FSDP" and info["wrapped"].startswith("FSDP")
        assert info["dtensor"] and 0 < info["local_numel"] <= info["numel"]
        assert (info["local_numel"] < info["numel"]) == (NPROC > 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_backend_shards_the_model(backend_logs, backend):
    _assert_sharded(_run(backend_logs, backend, "trl"), backend)


@pytest.mark.parametrize("run", ["fast-padded", "fast-padding-free"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_fast_grpo_trainer_logs_what_grpo_trainer_logs(backend_logs, backend, run):
    ref = _run(backend_logs, backend, "trl")
    got = _run(backend_logs, backend, run)
    _assert_sharded(got, backend)
    assert len(got["logs"]) == 2
    assert_same_logs(ref["logs"], got["logs"], **TOLERANCE)
    if run == "fast-padding-free":
        assert got["grpo_loss_calls"] >= 2  # fastalign's loss ran on this rank, every step
