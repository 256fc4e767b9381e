"""scripts/gpu_check.sh and scripts/gpu_ops_check.py, on a machine without a GPU.

The shell script must say that there is no CUDA device and exit 0 (``CUDA_VISIBLE_DEVICES=""``
hides a GPU if there is one, so this test never starts the GPU check itself). The timing script
runs its whole table on the CPU with ``--device cpu --dry-run`` (tiny sizes, the torch path
forced), so that it cannot rot unseen between the sessions that have a GPU.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_without_a_gpu_says_so_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    done = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no CUDA device" in done.stdout
    assert "== CUDA tests" not in done.stdout


def test_gpu_ops_check_dry_run_on_the_cpu(capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_ops_check", ROOT / "scripts" / "gpu_ops_check.py")
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_ops_check", script)  # its dataclass looks its module up
    spec.loader.exec_module(script)
    assert script.main(["--device", "cpu", "--dry-run", "--reps", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| op ")]
    names = {row.split("|")[1].strip() for row in rows}
    for op in ("grpo_loss dapo (token)", "sequence_log_ratio", "vllm_is_ratio token_mask", "grpo_advantages group",
               "rloo_advantages", "zero_variance_groups", "top_k_per_group", "completion_mask",
               "soft_overlong_penalty", "dpo_loss sigmoid", "cpo_loss simpo", "dft_loss"):  # fmt: skip
        assert op in names, (op, out)
    assert "error" not in out, out
    # every TRL reference ran (a time, not "-") where the op has one
    trl = {row.split("|")[1].strip(): row.split("|")[4].strip() for row in rows}
    assert all(trl[n] != "-" for n in names if n.startswith(("grpo_loss", "dpo_loss", "cpo_loss", "dft_loss"))), out
    # the patches that force the torch path are gone
    from fastalign import _validate

    assert _validate.on_accelerator.__name__ == "on_accelerator"
