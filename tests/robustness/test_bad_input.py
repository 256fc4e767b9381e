"""Bad input: every public function x every kind of wrong argument -> a clear exception.

Each case asserts the exception class (a ``FastalignError`` that is also the builtin a user
expects: ``TypeError`` for types/dtypes/devices, ``ValueError`` for values/shapes), that the
message names the offending argument, and that no input was modified by the failed call.
"""

from __future__ import annotations

import pytest
from helpers.bad_input import CASES, T, same, snapshot

from fastalign.errors import FastalignError


def test_matrix_size(capsys):
    with capsys.disabled():
        print(f"\nbad-input matrix: {len(CASES)} cases over 7 public entry points")
    assert len(CASES) > 80


@pytest.mark.parametrize("fn, args, kwargs, exc, argument", CASES)
def test_bad_input(fn, args, kwargs, exc, argument):
    before = [snapshot(a) for a in args] + [snapshot(v) for v in kwargs.values()]
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    err = info.value
    assert isinstance(err, FastalignError)
    assert isinstance(err, TypeError if exc is T else ValueError)
    assert err.argument == argument, str(err)
    assert str(err).startswith(f"{argument}: ")
    after = list(args) + list(kwargs.values())
    assert all(same(a, b) for a, b in zip(before, after)), "a failed call modified its input"
