"""pytest setup for the fastalign benchmarks (pytest-benchmark).

Run:    .venv/bin/python -m pytest benches -q -p no:cacheprovider --benchmark-only
Table:  .venv/bin/python benches/report.py          (runs the suite, prints markdown)

Each benchmark group holds one operation at one size; in it the TRL reference and fastalign run
on the very same inputs. The sizes and the seeded inputs are ``fastalign._bench``'s (shared with
``fastalign bench``); the fixtures below build the reused ones once per session. Inputs are what
TRL has at that point of a training step: CPU torch tensors (float32 rewards, int64 token ids)
and Python lists of token ids. torch runs with its default intra-op thread count (all cores);
fastalign's kernels are single-threaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHES = Path(__file__).resolve().parent
# tests/reference/ holds the plain-torch references for what TRL computes inline (advantages,
# masks, the loss lines) and the pure-Python Karmarkar-Karp, each proven by the tests, and
# tests/helpers/ the drivers of TRL's trainer code shared with them; benches/ itself holds
# _common.py (pytest-benchmark helpers).
for p in (BENCHES.parent / "tests", BENCHES):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from _common import grpo_rewards as cached_grpo_rewards  # noqa: E402

from fastalign._bench import cases, inputs  # noqa: E402


def pytest_collect_file(file_path, parent):
    """Collect ``bench_*.py`` too (pytest's default is ``test_*.py``); the project's pytest
    settings in pyproject.toml (filterwarnings=error, strict markers) still apply."""
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        if parent.session.isinitpath(file_path):
            return None  # named on the command line: pytest's own collector takes it
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_benchmark_update_machine_info(config, machine_info):
    """Versions as they were during the run (report.py prints them from the JSON)."""
    from importlib.metadata import PackageNotFoundError, version

    import numpy
    import torch
    import trl

    import fastalign

    try:
        rlox = version("rlox")
    except PackageNotFoundError:
        rlox = None
    machine_info["fastalign_bench"] = {
        "fastalign": fastalign.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "trl": trl.__version__,
        "numpy": numpy.__version__,
        "rlox": rlox,
    }


@pytest.fixture(scope="session")
def grpo_rewards():
    """``grpo_rewards(n, k)`` -> (float32 tensor with NaN, weights tensor, float64 numpy, no NaN)."""
    return cached_grpo_rewards


@pytest.fixture(scope="session")
def completion_ids():
    """(512, 8192) int64 CPU tensor of generated ids (``fastalign._bench.inputs.completion_ids``)."""
    return inputs.completion_ids(cases.MASK_SUITE_B, cases.MASK_SUITE_T)


@pytest.fixture(scope="session")
def overlong_completions():
    """(8192 lists of token ids, int64 lengths tensor) (``fastalign._bench.inputs.overlong_completions``)."""
    return inputs.overlong_completions(cases.OVERLONG_SUITE_B)
