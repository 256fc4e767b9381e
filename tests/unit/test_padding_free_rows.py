"""fastalign.padding_free.concat_lists / pack_rows against a plain-Python oracle, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastalign.errors import InvalidArgumentError, InvalidTypeError
from fastalign.padding_free import concat_lists, pack_rows


def _oracle(seqs, targets, order, loss_order):
    """Rows built token by token: the layout pack_rows documents."""
    ids, pos, labels, start = [], [], [], {}
    for s in order:
        start[s] = len(ids)
        toks = seqs[s]
        for k, t in enumerate(toks):
            ids.append(t)
            pos.append(k)
            nxt = k + 1
            labels.append(toks[nxt] if nxt < len(toks) and targets[s][nxt] else -100)
    index, cu = [], [0]
    for s in loss_order:
        for k in range(1, len(seqs[s])):
            if targets[s][k]:
                index.append(start[s] + k - 1)
        cu.append(len(index))
    return ids, pos, labels, index, cu


def test_concat_lists_joins_sequence_by_sequence():
    r = concat_lists([[1, 2], [3], []], [[4], [], [5, 6]])
    assert r.values.tolist() == [1, 2, 4, 3, 5, 6]
    assert r.offsets.tolist() == [0, 3, 4, 6]
    assert r.part.tolist() == [0, 0, 1, 0, 1, 1]
    assert concat_lists([(7, 8)], [[9]]).values.tolist() == [7, 8, 9]  # tuples too


@pytest.mark.parametrize("seed", range(20))
def test_pack_rows_matches_the_oracle(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    seqs = [rng.integers(0, 1000, int(rng.integers(0, 9))).tolist() for _ in range(n)]
    targets = [(rng.random(len(s)) < 0.6).tolist() for s in seqs]
    ragged = concat_lists(seqs)
    flags = np.array([f for t in targets for f in t], dtype=bool)
    sequences = rng.permutation(n)[: int(rng.integers(1, n + 1))]
    budget = None if seed % 2 else int(max((len(seqs[s]) for s in sequences), default=1) + rng.integers(0, 6))
    budget = max(budget, 1) if budget is not None else None
    rows = pack_rows(ragged.values, ragged.offsets, targets=flags, sequences=sequences, max_tokens=budget)
    # rows' segments in placement order
    order = []
    for r in range(rows.num_rows):
        a, b = rows.row_span(r)
        assert budget is None or b - a <= budget
        seg = rows.segment_offsets[rows.bin_offsets[r] : rows.bin_offsets[r + 1] + 1]
        for x, y in zip(seg[:-1], seg[1:]):
            hit = [s for s in sequences if s not in order and seqs[s] == rows.input_ids[x:y].tolist()]
            order.append(hit[0])
    assert sorted(order) == sorted(s for s in sequences if seqs[s])  # every non-empty sequence once
    ids, pos, labels, index, cu = _oracle(seqs, targets, order, sequences)
    assert rows.input_ids.tolist() == ids
    assert rows.position_ids.tolist() == pos
    assert rows.shift_labels.tolist() == labels
    assert rows.score_index.tolist() == index
    assert rows.cu_seqlens.tolist() == cu


def test_pack_rows_without_targets_scores_all_but_first_and_takes_torch():
    v = torch.tensor([5, 6, 7, 8, 9])
    o = torch.tensor([0, 3, 5])
    rows = pack_rows(v, o)
    assert rows.num_rows == 1 and rows.shift_labels.tolist() == [6, 7, -100, 9, -100]
    assert rows.cu_seqlens.tolist() == [0, 2, 3]
    assert rows.row_cu_seqlens(0).tolist() == [0, 3, 5]


def test_budget_below_the_longest_sequence_is_refused_with_both_numbers():
    r = concat_lists([[1, 2, 3, 4], [5]])
    with pytest.raises(InvalidArgumentError, match=r"max_tokens: is 3 tokens, but sequence 0 has 4"):
        pack_rows(r.values, r.offsets, max_tokens=3)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(sequences=[0, 5]), InvalidArgumentError, "sequences"),
        (dict(sequences=[0, 0]), InvalidArgumentError, "order"),  # placed twice
        (dict(targets=np.ones(2, bool)), InvalidArgumentError, "targets"),
        (dict(targets=np.ones(5, np.float32)), InvalidTypeError, "targets"),
        (dict(max_tokens=0), InvalidArgumentError, "max_tokens"),
        (dict(max_tokens="8"), InvalidTypeError, "max_tokens"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, name):
    r = concat_lists([[1, 2, 3], [4, 5]])
    with pytest.raises(error, match=name):
        pack_rows(r.values, r.offsets, **kwargs)


@pytest.mark.parametrize(
    "values, offsets, name",
    [
        (np.arange(4), np.array([0, 3, 2, 4]), "offsets"),
        (np.arange(4), np.array([0, 3]), "offsets"),
        (np.arange(4), np.array([1, 4]), "offsets"),
        (np.arange(4, dtype=np.float32), np.array([0, 4]), "values"),
    ],
)
def test_bad_ragged_arrays_are_refused(values, offsets, name):
    with pytest.raises((InvalidArgumentError, InvalidTypeError), match=name):
        pack_rows(values, offsets)


@pytest.mark.parametrize("parts", [([[1, "a"]],), ([[1]], [[2], [3]]), ([[1.5]],), ([None],)])
def test_concat_lists_refuses_what_is_not_token_lists(parts):
    with pytest.raises((InvalidArgumentError, TypeError), match="parts"):
        concat_lists(*parts)


def test_inputs_are_not_mutated():
    r = concat_lists([[1, 2, 3], [4, 5]])
    v, o = r.values.copy(), r.offsets.copy()
    pack_rows(r.values, r.offsets, sequences=[1, 0], max_tokens=4)
    assert (r.values == v).all() and (r.offsets == o).all()
