"""fastalign's TRL integration (requires the ``trl`` extra: ``pip install fastalign[trl]``).

* :class:`FastGRPOTrainer` — TRL 1.16's ``GRPOTrainer`` with fastalign's kernels in the scoring
  step and the loss, DAPO dynamic sampling, GFPO, and padding-free training (``padding_free=True``).
* :class:`FastDPOTrainer` — TRL 1.16's ``DPOTrainer`` with ``DPOConfig(padding_free=True)`` working:
  packed forwards of real tokens, fastalign's sequence sums and DPO losses.
* :mod:`fastalign.trl.presets` — one function per paper of TRL's paper index, returning the
  TRL 1.16 config (or a :class:`~fastalign.trl.presets.Recipe`) with the paper's values.
"""

from . import presets
from .dpo import FastDPOTrainer
from .trainer import FastGRPOTrainer

__all__ = ["FastDPOTrainer", "FastGRPOTrainer", "presets"]
