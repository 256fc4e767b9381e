"""Smoke test of the installed wheel with its ``torch`` extra (torch from requirements/dev.lock,
no TRL): the torch custom ops and the losses built on them, forward and backward, against plain
torch; and fastalign.trl still says it needs the ``trl`` extra. Run by tests/robustness/test_wheel.py.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import torch

import fastalign
from fastalign import ops  # noqa: F401  (the custom ops register on import)
from fastalign.losses import grpo_loss
from fastalign.ratios import masked_reduce, sequence_log_ratio

assert "site-packages" in pathlib.Path(fastalign.__file__).parts
assert importlib.util.find_spec("trl") is None, "this environment should have torch but not trl"

g = torch.Generator().manual_seed(0)
B, T = 4, 7
logps = (-torch.rand(B, T, generator=g, dtype=torch.float64)).requires_grad_()
old = logps.detach() + 0.05 * torch.randn(B, T, generator=g, dtype=torch.float64)
mask = torch.rand(B, T, generator=g) < 0.8
mask[:, 0] = True

# masked per-sequence mean and GSPO's sequence log-ratio against plain torch
m = mask.to(logps.dtype)
want = (logps * m).sum(-1) / m.sum(-1).clamp(min=1)
torch.testing.assert_close(masked_reduce(logps, mask, reduction="mean"), want)
torch.testing.assert_close(sequence_log_ratio(logps, old, mask), ((logps - old) * m).sum(-1) / m.sum(-1).clamp(min=1))

# TRL's default loss (dapo, token ratios, clip 0.2): forward and gradient against plain torch
adv = torch.randn(B, generator=g, dtype=torch.float64)
loss = grpo_loss(logps, old, adv, mask, loss_type="dapo", epsilon=0.2).loss
loss.backward()
got_grad = logps.grad.clone()
logps.grad = None
ratio = torch.exp(logps - old)
per_token = -torch.min(ratio * adv[:, None], torch.clamp(ratio, 0.8, 1.2) * adv[:, None])
ref = (per_token * m).sum() / m.sum()
ref.backward()
torch.testing.assert_close(loss, ref)
torch.testing.assert_close(got_grad, logps.grad)

# torch is here, TRL is not: the trl extra is named
try:
    import fastalign.trl  # noqa: F401
except ImportError as e:
    assert 'pip install "fastalign[trl]"' in str(e), str(e)
else:
    raise AssertionError("fastalign.trl imported without TRL")

print(f"smoke (torch {torch.__version__}): losses, ratios, ops OK on Python {sys.version.split()[0]}")
