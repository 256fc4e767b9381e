"""The Rust readers of Python lists (``rust/fastalign-py/src/pylist.rs``): in the abi3 build plain
ints and plain lists take a borrowed fast path; everything else must read exactly as before
(pyo3's conversion, the same values and the same errors), and a list changed by the Python code
a slow item runs must not be read past its end.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastalign import _native
from fastalign.errors import InvalidArgumentError


class Int(int):
    pass


class Index:
    """Not an int, but usable as one (``__index__``), like numpy's integers."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __index__(self) -> int:
        return self.v


def _values(*parts):
    values, offsets, part = _native.concat_lists(list(parts))
    return values.tolist(), offsets.tolist(), part.tolist()


def test_every_kind_of_int_reads_as_its_value():
    row = [1, -1, 0, 2**63 - 1, -(2**63), True, False, Int(7), np.int64(-5), np.int32(9), np.uint8(200), Index(11)]
    want = [1, -1, 0, 2**63 - 1, -(2**63), 1, 0, 7, -5, 9, 200, 11]
    assert _values([row])[0] == want
    assert _values([tuple(row)])[0] == want  # tuples take the same path
    assert _values([np.array(want[:5])])[0] == want[:5]  # any other sequence: pyo3's conversion


@pytest.mark.parametrize(
    "bad, name", [(2**63, "int"), (-(2**63) - 1, "int"), ("a", "str"), (1.5, "float"), (None, "NoneType")]
)
def test_what_is_not_an_i64_is_refused_with_its_row_and_type(bad, name):
    with pytest.raises(InvalidArgumentError, match=rf"parts: row 1: expected ints, got {name}"):
        _native.concat_lists([[[1, 2], [3, bad, 4]]])
    with pytest.raises(InvalidArgumentError, match=rf"row 0: expected ints, got {name}"):
        _native.concat_lists([[(1, bad)]])


def test_a_list_shortened_by_an_items_index_is_not_read_past_its_end():
    row = [1, 2, 3, 4]

    class Shrinks:
        def __index__(self) -> int:
            del row[2:]
            return 9

    row[1] = Shrinks()
    assert _values([row])[0] == [1, 9]


def test_a_list_grown_by_an_items_index_is_read_to_its_length_when_the_read_began():
    row = [1, 2]

    class Grows:
        def __index__(self) -> int:
            row.append(5)
            return 9

    row[0] = Grows()
    assert _values([row])[0] == [9, 2]  # as pyo3's list iterator does


def test_penalties_of_every_kind_of_completion():
    so = _native.SoftOverlong(10, 4)  # 0.0 up to 6 tokens, then -0.25 per token, -1.0 past 10

    class ListSub(list):
        pass

    completions = [[0] * 3, [0] * 8, (0,) * 8, np.zeros(11), ListSub([0] * 7), range(10), [], [0] * 12]
    want = [0.0, -0.5, -0.5, -1.0, -0.25, -1.0, 0.0, -1.0]
    got = so.penalties_of(completions)
    assert got == want and all(type(x) is float for x in got)
    assert so.penalties_of(tuple(completions)) == want  # a sequence, not a list
    assert so.penalties_of([]) == []
    # the shared floats are the list's entries, not aliases that could be changed through it
    got[0] = 5.0
    assert so.penalties_of(completions) == want


def test_penalties_of_a_list_shortened_by_an_items_len():
    so = _native.SoftOverlong(10, 4)
    completions: list = [[0] * 8, None, [0] * 3, [0] * 3]

    class Shrinks:
        def __len__(self) -> int:
            del completions[2:]
            return 12

    completions[1] = Shrinks()
    assert so.penalties_of(completions) == [-0.5, -1.0]


def test_penalties_of_what_has_no_length_is_refused():
    with pytest.raises(InvalidArgumentError, match="completion_ids"):
        _native.SoftOverlong(10, 4).penalties_of([[1], 3])
