"""fastalign's TRL integration (requires the ``trl`` extra: ``pip install fastalign[trl]``).

* :mod:`fastalign.trl.presets` — one function per paper of TRL's paper index, returning the
  TRL 1.16 config (or a :class:`~fastalign.trl.presets.Recipe`) with the paper's values.
"""

from . import presets

__all__ = ["presets"]
