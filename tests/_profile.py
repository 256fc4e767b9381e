"""The hypothesis profile in force (tests/conftest.py): ``examples(n)`` is the example count for a
property test that runs ``n`` examples in CI and 100,000 under FASTALIGN_HYPOTHESIS_PROFILE=long
(the reliability campaign: at least 100,000 cases per op)."""

import os

LONG = os.environ.get("FASTALIGN_HYPOTHESIS_PROFILE") == "long"


def examples(n: int) -> int:
    return 100_000 if LONG else n
