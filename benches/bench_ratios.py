"""fastalign.ratios vs TRL 1.16.0's sequence reductions.

Inputs are what ``GRPOTrainer._compute_loss`` holds: float32 (B, T) per-token log-probs, old
log-probs, and the int64 completion mask (rows of random length 1..T): ``fastalign._bench.inputs.logps``,
as in ``bench_losses.py`` and ``fastalign bench``. Sizes: B=512, T=8192 by default
(``fastalign._bench.cases.RATIO_SUITE_SIZES``); set ``FASTALIGN_BENCH_RATIO_SIZES="512x8192,64x4096"``
to change them.

TRL computes both inline in ``GRPOTrainer._compute_loss``; the references are
``tests/reference/policy_loss`` (plain torch, the project's own code: the masked mean of
``logp - old`` over ``max(1, count)``), proven equal to the trainer method by
``tests/parity/test_trl_trainer_parity.py::test_policy_loss_reference_is_grpo_trainer``.

* ``sequence_log_ratio`` (GSPO's sequence log importance weight):
  ``reference.policy_loss.sequence_log_ratio`` vs ``fastalign.ratios.sequence_log_ratio`` (one
  fused pass, no (B, T) temporaries);
* ``masked_mean``: ``reference.policy_loss.sequence_mean`` vs ``fastalign.ratios.masked_mean``;
* ``memory read``: ``torch.sum`` of a 256 MiB float32 tensor (all threads): this machine's read
  bandwidth, the yardstick of the issue's "70% of measured memory read bandwidth".

GB/s counts the bytes fastalign reads: 4 + 4 + 8 bytes per token (``sequence_log_ratio``), 4 + 8
(``masked_mean``).
"""

from __future__ import annotations

import os

import pytest
import torch
from _common import logps, run, tag
from reference.policy_loss import sequence_log_ratio as ref_sequence_log_ratio
from reference.policy_loss import sequence_mean as ref_masked_mean

from fastalign import _torch_backend as _torch_losses
from fastalign._bench import cases
from fastalign.ratios import masked_mean, sequence_log_ratio


def _sizes() -> list[tuple[int, int]]:
    default = ",".join(f"{b}x{t}" for b, t in cases.RATIO_SUITE_SIZES)
    spec = os.environ.get("FASTALIGN_BENCH_RATIO_SIZES", default)
    return [tuple(int(v) for v in s.split("x")) for s in spec.split(",") if s]  # type: ignore[misc]


REFERENCE = "trl (plain-torch reference, = _compute_loss)"

# 2-6 ms calls: 60 rounds (about 0.4 s) give a median that holds still on a shared machine
ROUNDS = 60


@pytest.mark.parametrize("size", _sizes(), ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("impl", ["trl", "fastalign", "torch-path"])
def test_sequence_log_ratio(benchmark, size, impl):
    b, t = size
    lp, old, mask, _ = logps(b, t)
    benchmark.group = f"sequence_log_ratio B={b} T={t:,}"
    torch.testing.assert_close(sequence_log_ratio(lp, old, mask), ref_sequence_log_ratio(lp, old, mask),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    nbytes = b * t * (4 + 4 + 8)
    if impl == "trl":
        tag(benchmark, op="sequence_log_ratio (GSPO)", size=f"B={b} T={t:,}", impl=REFERENCE, role="reference")
        run(benchmark, ref_sequence_log_ratio, lp, old, mask, rounds=ROUNDS)
    elif impl == "torch-path":
        tag(benchmark, op="sequence_log_ratio (GSPO)", size=f"B={b} T={t:,}",
            impl="fastalign torch path (CUDA code) on CPU", role="other")  # fmt: skip
        run(benchmark, _torch_losses.masked_reduce, lp, old, mask, None, "mean", rounds=15)
    else:
        tag(benchmark, op="sequence_log_ratio (GSPO)", size=f"B={b} T={t:,}", impl="fastalign", role="fastalign",
            target=3.0, nbytes=nbytes)  # fmt: skip
        run(benchmark, sequence_log_ratio, lp, old, mask, rounds=ROUNDS)


@pytest.mark.parametrize("size", _sizes(), ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("impl", ["trl", "fastalign"])
def test_masked_mean(benchmark, size, impl):
    b, t = size
    lp, _, mask, _ = logps(b, t)
    benchmark.group = f"masked_mean B={b} T={t:,}"
    torch.testing.assert_close(masked_mean(lp, mask), ref_masked_mean(lp, mask), rtol=1e-5, atol=1e-6)
    if impl == "trl":
        tag(benchmark, op="masked_mean", size=f"B={b} T={t:,}", impl=REFERENCE, role="reference")
        run(benchmark, ref_masked_mean, lp, mask, rounds=ROUNDS)
    else:
        tag(benchmark, op="masked_mean", size=f"B={b} T={t:,}", impl="fastalign", role="fastalign", target=3.0,
            nbytes=b * t * (4 + 8))  # fmt: skip
        run(benchmark, masked_mean, lp, mask, rounds=ROUNDS)


def test_memory_read_bandwidth(benchmark):
    """torch.sum over 256 MiB of float32: the machine's read bandwidth (bytes read / time)."""
    x = torch.ones(64 << 20)
    benchmark.group = "memory read (torch.sum, 256 MiB)"
    tag(benchmark, op="memory read (torch.sum)", size="256 MiB", impl="torch.sum", role="other", nbytes=x.numel() * 4,
        note="read bandwidth yardstick")  # fmt: skip
    run(benchmark, torch.sum, x, rounds=15)
