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

The core needs numpy only; the modules that need torch or TRL say which extra to install when it
is missing (``pip install "fastalign[torch]"``, ``"fastalign[trl]"``).

numpy arrays and CPU torch tensors are read in place by Rust (GIL released); tensors on other
devices take a plain-torch path with the same results.
"""

from . import _extras

# first: a fastalign module whose optional dependency (torch, trl, ...) is missing then fails with
# an ImportError that names the extra to install (fastalign/_extras.py)
_extras.install()

from . import _native  # noqa: E402
from ._extras import MissingExtraError  # noqa: E402
from .errors import FastalignError, InternalError, InvalidArgumentError, InvalidTypeError  # noqa: E402

__version__: str = _native.__version__

__all__ = [
    "FastalignError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "MissingExtraError",
    "__version__",
]
