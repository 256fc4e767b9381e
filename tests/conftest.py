"""Shared test configuration.

Hypothesis profiles: ``ci`` (default; bounded examples, no deadline — CI machines are slow and
shared) and ``long`` (100,000 examples per property test, the reliability campaign; hours on 2
cores), chosen with FASTALIGN_HYPOTHESIS_PROFILE=long. Tests that set their own ``max_examples``
scale it under ``long`` themselves.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", deadline=None, max_examples=100_000, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("FASTALIGN_HYPOTHESIS_PROFILE", "ci"))
