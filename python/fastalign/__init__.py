"""fastalign: fast, TRL-exact hot paths for LLM post-training, with a Rust core.

Submodules (import what you need):

* :mod:`fastalign.advantages` — GRPO/RLOO advantages, zero-variance groups (DAPO), GFPO's top-k.
* :mod:`fastalign.overlong` — completion masks, truncation flags, overlong filtering.
* :mod:`fastalign.rewards` — DAPO's soft overlong punishment as a TRL reward function.
* :mod:`fastalign.ratios` — masked per-sequence reductions, GSPO sequence ratios, vLLM IS ratios.
* :mod:`fastalign.losses` — the GRPO loss family as fused torch custom ops (``fastalign.ops``),
  and the DPO/CPO/DFT losses.
* :mod:`fastalign.packing` — ``pack_dataset`` identical to ``trl.pack_dataset``, bin packing, KK balancing.
* :mod:`fastalign.trl` — ``FastGRPOTrainer`` (DAPO dynamic sampling, GFPO) and paper presets.
* :mod:`fastalign.bench` — the ``fastalign bench`` command.
* :mod:`fastalign.errors` — the exception hierarchy.

numpy arrays and CPU torch tensors are read in place by Rust (GIL released); tensors on other
devices take a plain-torch path with the same results.
"""

from . import _native
from .errors import FastalignError, InternalError, InvalidArgumentError, InvalidTypeError

__version__: str = _native.__version__

__all__ = [
    "FastalignError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "__version__",
]
