"""Plain-torch twins of fastalign's kernels: what runs for tensors on CUDA (or any non-CPU
device), and a second implementation the tests hold against the Rust one on CPU.

Each function returns what its Rust kernel returns (same shapes, same metric slots) by the same
formulas: TRL 1.16.0's element-wise steps in the input dtype, its NaN rules, its Bessel factor
computed as ``f32(n) / f32(n - 1)``, and for the GRPO loss the analytic gradient of
``rust/fastalign-core/src/losses.rs``. Inputs were validated by the public functions
(:mod:`fastalign._validate`); the kernels check only what needs their data (NaN log-probs, where
asked; negative lengths).

A CUDA step must not wait for the device, so these functions never synchronise with it: no
``.item()``, no ``bool(tensor)``, no boolean-mask indexing (masked statistics are reductions over
``torch.where``), and host data reaches the device by non-blocking copies (``torch.tensor(...,
device=...)`` would block until the stream drains; constants stay Python floats, rounded to the
input dtype as torch rounds them). The exceptions are explicit: the scalar statistics of the
advantages, read back together in one synchronisation per call (TRL calls ``.item()`` on them
too), and the opt-in NaN check of the GRPO loss.

Modules mirror the public ones: :mod:`.advantages`, :mod:`.overlong`, :mod:`.rewards`,
:mod:`.ratios`, :mod:`.grpo`, with :mod:`.layout` (padded or packed sequences, float64 sums)
under the last two. They import nothing from fastalign but the result types and the errors.
"""

from .advantages import grpo_advantages, rloo_advantages, top_k_per_group, zero_variance_groups
from .grpo import grpo_loss
from .layout import Layout
from .overlong import completion_mask
from .ratios import masked_reduce, masked_reduce_backward, vllm_is_ratio
from .rewards import soft_overlong_penalty

__all__ = [
    "Layout",
    "completion_mask",
    "grpo_advantages",
    "grpo_loss",
    "masked_reduce",
    "masked_reduce_backward",
    "rloo_advantages",
    "soft_overlong_penalty",
    "top_k_per_group",
    "vllm_is_ratio",
    "zero_variance_groups",
]
