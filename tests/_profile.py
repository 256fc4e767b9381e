"""The hypothesis profile in force (tests/conftest.py): ``examples(n)`` is the example count for a
property test that runs ``n`` examples in CI and 100,000 under FASTALIGN_HYPOTHESIS_PROFILE=long
(the reliability campaign: at least 100,000 cases per op).

A property parametrized over ``cells`` cases of one op (for example ``dpo_loss`` over its 15 loss
types and 2 dtypes) passes ``cells=``: under ``long`` each cell then runs ``ceil(100,000 / cells)``
examples, so the op as a whole still gets at least 100,000 (scripts/campaign.sh logs the counts)."""

import math
import os

LONG = os.environ.get("FASTALIGN_HYPOTHESIS_PROFILE") == "long"
CAMPAIGN = 100_000


def examples(n: int, cells: int = 1) -> int:
    if not LONG:
        return n
    return max(n, math.ceil(CAMPAIGN / cells))
