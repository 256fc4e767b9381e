"""The zero-copy bridge: inputs are read in place, never copied on the way into Rust.

* The address the Rust kernels borrow is the tensor's own ``data_ptr()`` (numpy arrays and
  CPU torch tensors, every accepted dtype), through the same validation the public API uses.
* Peak memory of a large call grows by the size of the outputs only: a copy of the input
  would show up as extra peak resident memory (measured in a fresh subprocess).
* Outputs come back as the caller's kind, and the torch outputs share the numpy buffers that
  Rust allocated (no copy on the way out either).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from fastalign import _native
from fastalign import _validate as v
from fastalign.advantages import grpo_advantages
from fastalign.overlong import completion_mask


@pytest.mark.parametrize(
    "dtype, allowed",
    [(torch.float32, v.FLOAT), (torch.float64, v.FLOAT), (torch.int32, v.INT), (torch.int64, v.INT)],
)
def test_kernel_reads_the_tensor_memory(dtype, allowed):
    t = torch.arange(24).to(dtype).reshape(6, 4)
    t_grad = t.clone().requires_grad_(dtype.is_floating_point)
    for x in (t, t_grad, t.numpy()):
        arr = v.array(x, "x", allowed, (2,))
        ptr = x.data_ptr() if isinstance(x, torch.Tensor) else x.ctypes.data
        assert arr.ctypes.data == ptr
        assert _native._borrowed_address(arr) == ptr


def test_results_are_of_the_callers_kind():
    r = torch.rand(8, 2)
    out = grpo_advantages(r, 4)
    assert all(isinstance(x, torch.Tensor) for x in (out.advantages, out.std_is_zero, out.rewards))
    out_np = grpo_advantages(r.numpy(), 4)
    assert all(isinstance(x, np.ndarray) for x in (out_np.advantages, out_np.std_is_zero, out_np.rewards))
    # the tensor wraps the array Rust returned: same memory, no copy on the way out
    assert out.advantages.data_ptr() == out.advantages.numpy().ctypes.data


def test_inputs_are_not_modified():
    r = torch.rand(64, 3)
    r[5] = float("nan")
    before = r.clone()
    grpo_advantages(r, 8, scale_rewards="batch")
    assert torch.equal(torch.nan_to_num(r, nan=-7.0), torch.nan_to_num(before, nan=-7.0))
    ids = torch.randint(0, 5, (16, 32))
    before = ids.clone()
    completion_mask(ids, [1, 2], 0, mask_truncated_completions=True)
    assert torch.equal(ids, before)


_PEAK = textwrap.dedent(
    """
    import resource, sys, torch
    from fastalign.advantages import grpo_advantages
    from fastalign.overlong import completion_mask

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    which = sys.argv[1]
    if which == "mask":
        x = torch.randint(2, 9, (2048, 8192))            # 128 MiB of int64 ids
        x[:, -1] = 1
        base = peak()
        out = completion_mask(x, 1, 0)
        outputs = out.mask.numel() * 8 + 2048 * 9
    else:
        x = torch.rand(1 << 24)                           # 64 MiB of float32 rewards
        base = peak()
        out = grpo_advantages(x, 16, metrics=False)
        outputs = x.numel() * (4 + 1 + 4)                 # advantages, std_is_zero, rewards
    print(base, peak(), outputs, x.numel() * x.element_size())
    """
)


@pytest.mark.parametrize("which", ["mask", "advantages"])
def test_peak_memory_grows_by_the_outputs_only(which):
    res = subprocess.run([sys.executable, "-c", _PEAK, which], capture_output=True, text=True, check=True)
    base, peak, outputs, input_bytes = map(int, res.stdout.split())
    grown = peak - base
    # a copy of the input would add `input_bytes` on top of the outputs
    assert grown < outputs + input_bytes // 2, (grown, outputs, input_bytes)
