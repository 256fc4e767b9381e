"""fastalign's TRL integration (requires the ``trl`` extra: ``pip install fastalign[trl]``).

* :class:`FastGRPOTrainer` — TRL 1.16's ``GRPOTrainer`` with fastalign's kernels in the scoring
  step and the loss, plus DAPO dynamic sampling and GFPO.
* :mod:`fastalign.trl.presets` — one function per paper of TRL's paper index, returning the
  TRL 1.16 config (or a :class:`~fastalign.trl.presets.Recipe`) with the paper's values.
"""

from . import presets
from .trainer import FastGRPOTrainer

__all__ = ["FastGRPOTrainer", "presets"]
