#!/usr/bin/env bash
# DeepSpeed ZeRO-2, ZeRO-3 and FSDP2 on GPUs (NCCL), with accelerate as it is: FastGRPOTrainer,
# padded and padding-free, logs what GRPOTrainer logs under the same backend, and the backend
# really shards the model (tests/robustness/test_distributed_backends.py with FASTALIGN_BACKENDS_DEVICE=cuda;
# tests/multiprocess/grpo_backends.py trains). docs/distributed.md says what runs where.
#
#   bash scripts/distributed_check.sh            # 2 processes on 2 GPUs (1 on a single GPU)
#   NPROC=4 bash scripts/distributed_check.sh -x # more processes; extra arguments go to pytest
#   PYTHON=/path/to/python bash scripts/distributed_check.sh
#
# Needs torch with CUDA, and deepspeed for the ZeRO cases (they skip without it):
#   DS_BUILD_OPS=0 uv pip install --python .venv/bin/python deepspeed==0.19.8
# Without a CUDA device it says so and exits 0 (this machine's CI runs the same tests on CPU, gloo).
# About a minute (model building and imports; the training steps are a few seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

ngpu=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [ "$ngpu" -eq 0 ]; then
    echo "distributed_check: no CUDA device here; nothing to do. On this machine:"
    echo "  $PY -m pytest tests/robustness/test_distributed_backends.py   # CPU, gloo (docs/distributed.md)"
    exit 0
fi
nproc=${NPROC:-$((ngpu >= 2 ? 2 : 1))}
if [ "$nproc" -gt "$ngpu" ]; then
    echo "distributed_check: NPROC=$nproc but $ngpu CUDA device(s); NCCL needs one device per process" >&2
    exit 2
fi
"$PY" - <<'EOF'
import importlib.util, torch, accelerate, transformers, trl
ds = importlib.util.find_spec("deepspeed")
print(f"distributed_check: torch {torch.__version__} (CUDA {torch.version.cuda}, NCCL "
      f"{'.'.join(map(str, torch.cuda.nccl.version()))}), accelerate {accelerate.__version__}, "
      f"transformers {transformers.__version__}, trl {trl.__version__}, "
      f"deepspeed {__import__('deepspeed').__version__ if ds else 'not installed: ZeRO cases skip'}")
print(f"distributed_check: {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}")
EOF
if [ "$nproc" -eq 1 ]; then
    echo "distributed_check: one process on one GPU: the engines run, nothing is sharded across ranks"
fi
# the CPU settings of the test machine must not leak in
unset DS_ACCELERATOR ACCELERATE_USE_CPU ACCELERATE_USE_DEEPSPEED ACCELERATE_USE_FSDP
export FASTALIGN_BACKENDS_DEVICE=cuda FASTALIGN_BACKENDS_NPROC="$nproc"
exec "$PY" -m pytest -p no:cacheprovider -v -rA tests/robustness/test_distributed_backends.py "$@"
