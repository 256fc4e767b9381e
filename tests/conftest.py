"""Shared test configuration.

Layout
------
Test modules live in one of three directories, by what they compare against:

* ``unit/``: fastalign's own behaviour against expectations written in the test (values, errors,
  invariants, a plain-Python oracle, its own paths agreeing with each other: Rust and torch,
  eager and compiled, numpy and tensors, stub and compiled module), and its command-line tools
  and scripts.
* ``parity/``: fastalign against another implementation of the same thing: TRL 1.16's trainers
  and functions (imported), transformers' padded forwards, verl, or the plain-torch references in
  ``reference/`` (themselves proven equal to TRL's trainer methods).
* ``robustness/``: behaviour outside one ordinary call: bad input, long runs (soak), threads,
  memory bounds and copies, host synchronisations, several processes (DDP, DeepSpeed, FSDP), and
  the installed package (the wheel and sdist, environments missing an optional extra).

A module whose tests span two of these goes where most of them belong (``parity/test_packing.py``
also refuses bad input).
Not tests: ``helpers/`` (helpers shared by several modules; test modules never import each
other), ``reference/`` (the plain-torch references), ``_profile.py`` (hypothesis example counts),
``multiprocess/`` (scripts run under torchrun by the multi-process tests) and ``packaging/``
(scripts run in fresh virtual environments by ``robustness/test_wheel.py``).

This directory is put on ``sys.path`` below, so ``helpers``, ``reference`` and ``_profile``
import the same way from every test directory (and under any ``--import-mode``); the asserts of
``helpers`` are rewritten by pytest like the tests' own.

Hypothesis profiles
-------------------
``ci`` (default; bounded examples, no deadline — CI machines are slow and shared) and ``long``
(100,000 examples per property test, the reliability campaign; hours on 2 cores), chosen with
FASTALIGN_HYPOTHESIS_PROFILE=long. Tests that set their own ``max_examples`` scale it under
``long`` themselves.
"""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
pytest.register_assert_rewrite("helpers")

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", deadline=None, max_examples=100_000, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("FASTALIGN_HYPOTHESIS_PROFILE", "ci"))
