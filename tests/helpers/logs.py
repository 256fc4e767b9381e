"""Comparing two trainers' log histories (``trainer.state.log_history``) row by row."""

from __future__ import annotations

import pytest

SKIP = ("time", "runtime", "per_second")  # wall-clock metrics differ by nature


def assert_same_logs(ref, got, rel=2e-5, abs=1e-6):
    """Every logged row has the same keys; counts equal, floats within (rel, abs); wall-clock skipped."""
    assert len(ref) == len(got) > 0
    for a, b in zip(ref, got):
        assert set(a) == set(b), set(a) ^ set(b)
        for key, x in a.items():
            if any(s in key for s in SKIP):
                continue
            y = b[key]
            if isinstance(x, float) and not float(x).is_integer():
                assert y == pytest.approx(x, rel=rel, abs=abs, nan_ok=True), key
            else:
                assert x == y, (key, x, y)
