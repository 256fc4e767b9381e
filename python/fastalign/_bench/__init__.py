"""What fastalign is benchmarked on, defined once for ``fastalign bench`` and the repository's
``benches/`` (pytest-benchmark).

* :mod:`.inputs`: the seeded input builders (one seed, :data:`.inputs.SEED`): the same case at the
  same size gets the same data, dtypes included, on both sides;
* :mod:`.cases`: the sizes of every benchmarked op, the pairs (TRL's callable beside fastalign's on
  given inputs, and the check of their answers) and the registry of what ``fastalign bench`` times,
  :data:`.cases.CASES`;
* :mod:`.timing`: the clock and the machine (calibrated timing, memory copy bandwidth, CPU model);
* :mod:`.report`: running the cases and printing, plotting their results.

``fastalign.bench`` is the command built on these (and re-exports their public names);
``benches/`` adds what only it has: references from ``tests/reference/`` (not in the wheel), other
libraries' rows (rlox, seqpacker), and pytest-benchmark's rounds and JSON. Nothing here imports
from ``tests/`` or ``benches/``.
"""
