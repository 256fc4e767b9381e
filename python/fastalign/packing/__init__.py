"""Token packing: a drop-in ``trl.pack_dataset`` computed in Rust on the Arrow buffers, plus the
kernels it is made of and Karmarkar–Karp balancing across data-parallel ranks.

* :mod:`.bins` — :func:`bfd` (TRL's best fit decreasing) and :func:`first_fit_decreasing` on
  plain length arrays;
* :mod:`.positions` — :func:`position_ids` and :func:`cu_seqlens` of packed rows;
* :mod:`.balance` — :func:`balance_partitions` (Karmarkar–Karp, verl's partition);
* :mod:`.arrow` — :func:`pack_table`, one Arrow table packed in Rust, read in place;
* :mod:`.dataset` — :func:`pack_dataset`, identical to TRL 1.16.0's ``pack_dataset`` row for row
  (TRL's per-``map``-batch windows by default, ``window=None`` for one global pack), and
  :func:`patch_trl_sft`, which makes ``SFTTrainer`` pack with it.

The array functions need numpy only; pyarrow, ``datasets`` and TRL are imported when the
functions that use them are called.
"""

from .arrow import PackingReport, pack_table
from .balance import balance_partitions
from .bins import BinPacking, bfd, first_fit_decreasing
from .dataset import pack_dataset, patch_trl_sft
from .positions import cu_seqlens, position_ids

__all__ = [
    "BinPacking",
    "PackingReport",
    "balance_partitions",
    "bfd",
    "cu_seqlens",
    "first_fit_decreasing",
    "pack_dataset",
    "pack_table",
    "patch_trl_sft",
    "position_ids",
]
