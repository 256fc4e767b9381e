#!/usr/bin/env bash
# The GPU check, for a machine with CUDA: run the CUDA tests (every test with "cuda" in its name:
# test_cuda_matches_cpu and friends), then time the torch path of every op against TRL's own code
# on the same CUDA tensors, with the host synchronisations of one call counted by CUDA
# (scripts/gpu_ops_check.py; a few minutes). Without CUDA it says so and exits 0.
#
# Usage: bash scripts/gpu_check.sh [arguments of scripts/gpu_ops_check.py, e.g. --reps 100]
# PYTHON overrides the interpreter (default: .venv/bin/python if present, else python3).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing to run."
    echo "gpu_check: on a GPU machine this runs the CUDA tests and times every op against TRL;"
    echo "gpu_check: 'python scripts/gpu_ops_check.py --device cpu --dry-run' checks the timing script on the CPU."
    exit 0
fi
"$PY" -c 'import torch; print("gpu_check:", torch.cuda.get_device_name(0), "torch", torch.__version__, "CUDA", torch.version.cuda)'
# the test files that mention CUDA, and in them the tests with "cuda" in their name
mapfile -t files < <(grep -l -i "cuda" tests/*/test_*.py)
echo "== CUDA tests (pytest -k cuda ${files[*]}) =="
"$PY" -m pytest -q -p no:cacheprovider -rs -k cuda "${files[@]}"
tests_rc=$?
if [ "$tests_rc" -eq 5 ]; then tests_rc=0; fi  # 5: no test selected
echo "== the torch path against TRL on CUDA =="
"$PY" scripts/gpu_ops_check.py "$@"
ops_rc=$?
if [ "$tests_rc" -ne 0 ] || [ "$ops_rc" -ne 0 ]; then
    echo "gpu_check: FAILED (CUDA tests exit $tests_rc, ops check exit $ops_rc)"
    exit 1
fi
echo "gpu_check: OK (padding-free on CUDA has its own check: python scripts/gpu_padding_free_check.py)"
