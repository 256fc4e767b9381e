"""Packing: fastalign.packing against trl.pack_dataset (TRL 1.16.0, imported), invariants, bad input.

Identity means: the same Arrow schema, the same rows token for token (``Table.equals``, which
ignores chunking), the same ``features`` and the same format as TRL's result.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pyarrow as pa
import pytest
import torch
import trl
from _profile import examples
from datasets import Dataset, DatasetDict, IterableDataset, concatenate_datasets, disable_progress_bars
from datasets.table import InMemoryTable
from hypothesis import given, settings
from hypothesis import strategies as st
from reference.partition import differencing_partition

from fastalign import _native
from fastalign.errors import InvalidArgumentError, InvalidTypeError
from fastalign.packing import (
    PackingReport,
    balance_partitions,
    bfd,
    cu_seqlens,
    first_fit_decreasing,
    pack_dataset,
    pack_table,
    patch_trl_sft,
    position_ids,
)

disable_progress_bars()

STRATEGIES = ("bfd", "bfd_split", "wrapped")


def _dataset(lengths, n_columns=2, dtypes=(np.int64, np.int8, np.int32), seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    total = int(offsets[-1])
    cols = {}
    for c in range(n_columns):
        dt = dtypes[c % len(dtypes)]
        vals = rng.integers(0, 100, total).astype(dt)
        cols[f"col{c}"] = pa.ListArray.from_arrays(offsets, pa.array(vals))
    return Dataset(InMemoryTable(pa.table(cols)))


def assert_same(ours, theirs):
    """ours == theirs: schema, rows (token for token), features and format."""
    if isinstance(theirs, DatasetDict):
        assert isinstance(ours, DatasetDict) and list(ours) == list(theirs)
        for k in theirs:
            assert_same(ours[k], theirs[k])
        return
    assert ours.data.schema == theirs.data.schema
    assert ours.num_rows == theirs.num_rows
    assert ours.data.table.equals(theirs.data.table)
    assert ours.features == theirs.features
    assert ours.format == theirs.format


def trl_pack(ds, s, strategy="bfd", map_kwargs=None):
    return trl.pack_dataset(ds, s, strategy, copy.deepcopy(map_kwargs))


def assert_same_as_trl(ds, s, strategy, map_kwargs=None):
    """Compare with TRL; where TRL itself fails (a bfd window whose rows are all empty makes its
    ``pc.take`` of an empty list raise), check instead that fastalign packs such a window to no
    rows: its result equals packing the same windows with those rows' lengths made non-empty
    and then removed (i.e. it is TRL's result on the other windows, in order)."""
    ours = pack_dataset(ds, s, strategy, map_kwargs)
    try:
        theirs = trl_pack(ds, s, strategy, map_kwargs)
    except pa.ArrowNotImplementedError:
        assert strategy != "wrapped"
        lengths = np.array([len(r) for r in ds.data.table.column(0).to_pylist()])
        bs = (map_kwargs or {}).get("batch_size", 1000) or len(lengths)
        empty_windows = [w for w in range(0, len(lengths), bs) if not lengths[w : w + bs].any()]
        assert empty_windows, "TRL failed on a dataset without an all-empty window"
        # per window, fastalign equals TRL on that window alone (an all-empty one gives no rows)
        rows = []
        for w in range(0, len(lengths), bs):
            if lengths[w : w + bs].any():
                rows += trl_pack(ds.select(range(w, min(w + bs, len(lengths)))), s, strategy).data.table.to_pylist()
        assert ours.data.table.to_pylist() == rows
        return
    assert_same(ours, theirs)


# ---------------------------------------------------------------------------------------------
# identity with TRL


def test_trl_docstring_examples():
    ex = {
        "input_ids": [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10], [11]],
        "attention_mask": [[1, 1, 1, 0, 0], [1, 0], [1, 1, 0], [1]],
    }
    ds = Dataset.from_dict(ex)
    got = pack_dataset(ds, 4)
    assert got[:] == {
        "input_ids": [[1, 2, 3, 4], [8, 9, 10, 11], [6, 7]],
        "attention_mask": [[1, 1, 1, 0], [1, 1, 0, 1], [1, 0]],
        "seq_lengths": [[4], [3, 1], [2]],
    }
    assert pack_dataset(ds, 4, "bfd_split")[:]["input_ids"] == [[1, 2, 3, 4], [8, 9, 10, 5], [6, 7, 11]]
    for strategy in STRATEGIES:
        assert_same(pack_dataset(ds, 4, strategy), trl_pack(ds, 4, strategy))


@settings(max_examples=examples(25))
@given(
    lengths=st.lists(st.integers(0, 40), min_size=1, max_size=120),
    s=st.one_of(st.integers(1, 40), st.sampled_from([1, 2, 3, 5, 9, 17, 33, 65])),
    strategy=st.sampled_from(STRATEGIES),
    batch_size=st.sampled_from([None, 1, 7, 32, 1000]),
    n_columns=st.integers(1, 3),
)
def test_identical_to_trl_hypothesis(lengths, s, strategy, batch_size, n_columns):
    ds = _dataset(lengths, n_columns)
    mk = None if batch_size is None else {"batch_size": batch_size}
    assert_same_as_trl(ds, s, strategy, mk)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("s", [1, 2, 17, 65, 257, 4096])
def test_identical_to_trl_lognormal(strategy, s):
    # many ties, rows longer than seq_length (truncated or split), empty rows, several windows
    rng = np.random.default_rng(s)
    n = 3000 if s > 2 else 300  # (TRL takes seconds on 100k one-token fragments)
    lengths = np.minimum(rng.lognormal(3.5, 1.2, n).astype(np.int64), 5000)
    lengths[rng.random(n) < 0.05] = 0
    ds = _dataset(lengths, 3)
    for mk in (None, {"batch_size": 77}, {"num_proc": 3}, {"batch_size": 50, "drop_last_batch": True}):
        assert_same(pack_dataset(ds, s, strategy, mk), trl_pack(ds, s, strategy, mk))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sliced_shuffled_and_chunked_datasets(strategy):
    lengths = np.random.default_rng(1).integers(0, 30, 2500)
    ds = _dataset(lengths, 2)
    variants = {
        "select-contiguous": ds.select(range(123, 2100)),  # a table slice: non-zero Arrow offset
        "select-indices": ds.select(np.arange(2400, 3, -3)),  # an indices mapping
        "shuffle": ds.shuffle(seed=3),
        "shard": ds.shard(num_shards=3, index=1),
        "shard-contiguous": ds.shard(num_shards=4, index=2, contiguous=True),
        "chunked": concatenate_datasets([ds.select(range(0, 700)), ds.select(range(900, 2500))]),
        "sliced-arrow": Dataset(InMemoryTable(ds.data.table.slice(37, 1800))),
    }
    for name, d in variants.items():
        for mk in (None, {"batch_size": 333}):
            assert_same(pack_dataset(d, 13, strategy, mk), trl_pack(d, 13, strategy, mk)), name


def test_sliced_child_values_and_chunk_layouts():
    # list arrays whose child values array has its own offset, in several chunks
    vals = pa.array(np.arange(1000, dtype=np.int64)).slice(7)
    offs = np.array([0, 3, 3, 10, 24, 25, 40], dtype=np.int32)
    chunk = pa.ListArray.from_arrays(offs, vals)
    chunks = [chunk, chunk.slice(2), chunk.slice(1, 3)]
    table = pa.table({"input_ids": pa.chunked_array(chunks)})
    ds = Dataset(InMemoryTable(table))
    for strategy in STRATEGIES:
        assert_same(pack_dataset(ds, 8, strategy), trl_pack(ds, 8, strategy))


@pytest.mark.parametrize(
    "value_type",
    [
        pa.int64(),
        pa.int32(),
        pa.int16(),
        pa.int8(),
        pa.uint8(),
        pa.float32(),
        pa.float64(),
        pa.float16(),
        pa.bool_(),
        pa.string(),
    ],
)
@pytest.mark.parametrize("large", [False, True])
def test_value_types_and_large_lists(value_type, large):
    rng = np.random.default_rng(2)
    lengths = rng.integers(0, 12, 300)
    total = int(lengths.sum())
    if pa.types.is_boolean(value_type):
        values = pa.array(rng.random(total) < 0.5)
    elif pa.types.is_string(value_type):
        values = pa.array([str(x) for x in rng.integers(0, 50, total)])
    elif pa.types.is_float16(value_type):
        values = pa.array(rng.random(total).astype(np.float16))
    else:
        values = pa.array(rng.integers(0, 100, total)).cast(value_type)
    dt = np.int64 if large else np.int32
    offs = np.concatenate([[0], np.cumsum(lengths)]).astype(dt)
    cls = pa.LargeListArray if large else pa.ListArray
    table = pa.table({"a": cls.from_arrays(offs, values), "b": cls.from_arrays(offs, pa.array(np.arange(total)))})
    ds = Dataset(InMemoryTable(table))
    for strategy in STRATEGIES:
        assert_same(pack_dataset(ds, 7, strategy, {"batch_size": 50}), trl_pack(ds, 7, strategy, {"batch_size": 50}))


def test_dataset_dict_format_and_columns():
    dd = DatasetDict({"train": _dataset([3, 5, 0, 7, 2, 9], 2), "test": _dataset([1, 1, 4], 2, seed=1)})
    for strategy in STRATEGIES:
        assert_same(pack_dataset(dd, 6, strategy), trl_pack(dd, 6, strategy))
    ds = _dataset([3, 5, 0, 7, 2, 9], 3).with_format("torch", columns=["col0", "col2"])
    for strategy in STRATEGIES:
        ours, theirs = pack_dataset(ds, 6, strategy), trl_pack(ds, 6, strategy)
        assert_same(ours, theirs)
        a, b = ours[:], theirs[:]
        assert a.keys() == b.keys()
        for k in a:
            assert all(torch.equal(x, y) for x, y in zip(a[k], b[k], strict=True))
    ds = _dataset([3, 5, 0, 7], 1).with_format("numpy")
    assert_same(pack_dataset(ds, 6), trl_pack(ds, 6))


def test_empty_dataset_and_all_empty_rows():
    empty = _dataset([3, 4], 2).select([])
    zeros = _dataset([0, 0, 0], 2)
    assert_same(pack_dataset(empty, 5, "wrapped"), trl_pack(empty, 5, "wrapped"))
    assert_same(pack_dataset(zeros, 5, "wrapped"), trl_pack(zeros, 5, "wrapped"))
    for strategy in ("bfd", "bfd_split"):
        # TRL 1.16.0 raises on a window whose rows are all empty (pc.take of an empty list);
        # fastalign packs it to no rows
        with pytest.raises(pa.ArrowNotImplementedError):
            trl_pack(zeros, 5, strategy)
        # and on an empty dataset (map returns it unchanged, then the format names seq_lengths)
        with pytest.raises(ValueError, match="seq_lengths"):
            trl_pack(empty, 5, strategy)
        out = pack_dataset(empty, 5, strategy)
        assert out.num_rows == 0 and out.column_names == ["col0", "col1", "seq_lengths"]
        out = pack_dataset(zeros, 5, strategy)
        assert out.num_rows == 0 and out.column_names == ["col0", "col1", "seq_lengths"]
        mixed = _dataset([0, 0, 3, 4, 2], 2)
        assert_same_as_trl(mixed, 5, strategy, {"batch_size": 2})


def test_iterable_dataset():
    ds = _dataset(np.random.default_rng(4).integers(0, 20, 250), 2)
    it = ds.to_iterable_dataset(num_shards=2)
    for strategy in STRATEGIES:
        ours = pack_dataset(it, 16, strategy, {"batch_size": 40})
        theirs = trl.pack_dataset(it, 16, strategy, {"batch_size": 40})
        assert isinstance(ours, IterableDataset)
        assert list(ours) == list(theirs)


@pytest.mark.parametrize("chunk_tokens", [1 << 24, 97])
def test_on_disk_dataset(tmp_path, monkeypatch, chunk_tokens):
    import fastalign.packing.dataset as packing

    # small chunks: many record batches, wrapped rows cut across pieces at batch boundaries
    monkeypatch.setattr(packing, "_STREAM_CHUNK_TOKENS", chunk_tokens)
    ds = _dataset(np.random.default_rng(5).integers(0, 50, 1500), 2)
    ds.save_to_disk(str(tmp_path / "ds"))
    loaded = Dataset.load_from_disk(str(tmp_path / "ds"))
    assert loaded.cache_files
    for strategy in STRATEGIES:
        ours = pack_dataset(loaded, 64, strategy)
        assert ours.cache_files and ours.cache_files[0]["filename"].startswith(str(tmp_path))  # written, mapped
        assert_same(ours, trl_pack(loaded, 64, strategy))
        in_memory = pack_dataset(loaded, 64, strategy, {"keep_in_memory": True})
        assert not in_memory.cache_files
        assert_same(in_memory, trl_pack(loaded, 64, strategy))


def test_in_memory_output_split_where_int32_offsets_would_overflow(monkeypatch):
    import fastalign.packing.arrow as packing

    monkeypatch.setattr(packing, "_INT32_MAX", 100)  # pretend list<...> offsets end at 100 values
    ds = _dataset(np.random.default_rng(11).integers(0, 40, 400), 2)
    for strategy in STRATEGIES:
        ours = pack_dataset(ds, 32, strategy)
        assert ours.data.table.column(0).num_chunks > 1
        assert_same(ours, trl_pack(ds, 32, strategy))


def test_map_kwargs_not_reproduced_directly_go_through_map():
    ds = _dataset([3, 5, 0, 7, 2, 9, 4], 2)
    mk = {"batch_size": 3, "remove_columns": ["col1"]}
    assert_same(pack_dataset(ds, 6, "bfd", mk), trl_pack(ds, 6, "bfd", mk))


def test_pack_table_in_map_with_num_proc():
    ds = _dataset(np.random.default_rng(6).integers(0, 30, 600), 2)
    kw = {"seq_length": 32, "strategy": "bfd_split"}
    ours = ds.with_format("arrow").map(pack_table, batched=True, batch_size=100, num_proc=2, fn_kwargs=kw)
    theirs = trl_pack(ds, 32, "bfd_split", {"batch_size": 100, "num_proc": 2}).with_format("arrow")
    assert ours.data.table.equals(theirs.data.table)
    assert pickle.loads(pickle.dumps(pack_table)) is pack_table


def test_inputs_not_modified():
    ds = _dataset([3, 5, 0, 7, 2, 9], 2)
    before = ds.data.table.to_pydict()
    fp = ds._fingerprint
    pack_dataset(ds, 4, "bfd_split")
    assert ds.data.table.to_pydict() == before and ds._fingerprint == fp
    lens = np.array([5, 2, 3, 1])
    bfd(lens, 4, split=True)
    assert lens.tolist() == [5, 2, 3, 1]


# ---------------------------------------------------------------------------------------------
# invariants and global mode


def _rows(ds, column="col0"):
    return ds.data.table.column(column).to_pylist()


@settings(max_examples=examples(30))
@given(
    lengths=st.lists(st.integers(0, 50), min_size=1, max_size=200),
    s=st.integers(1, 30),
    window=st.sampled_from([None, 1, 5, 64]),
    strategy=st.sampled_from(["bfd_split", "wrapped"]),
)
def test_no_token_lost_or_duplicated(lengths, s, window, strategy):
    ds = _dataset(lengths, 1)
    # tokens made unique: col0 holds 0..total-1
    total = sum(lengths)
    offs = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    ds = Dataset(InMemoryTable(pa.table({"col0": pa.ListArray.from_arrays(offs, pa.array(np.arange(total)))})))
    out = pack_dataset(ds, s, strategy, window=window)
    rows = _rows(out)
    assert all(0 < len(r) <= s for r in rows)
    assert sorted(t for r in rows for t in r) == list(range(total))
    if strategy == "bfd_split":
        assert [sum(x) for x in out.data.table.column("seq_lengths").to_pylist()] == [len(r) for r in rows]


@pytest.mark.parametrize("strategy", ["bfd", "bfd_split"])
def test_global_window_fills_better_than_trl_windows(strategy):
    """On a realistic (lognormal) distribution one global window needs fewer rows than TRL's
    windows (not a theorem: see test_global_window_is_not_a_guarantee)."""
    rng = np.random.default_rng(7)
    lengths = np.minimum(rng.lognormal(5.0, 1.0, 20_000).astype(np.int64), 4000)
    ds = _dataset(lengths, 1)
    ours, rep = pack_dataset(ds, 1024, strategy, window=None, return_report=True)
    theirs = trl_pack(ds, 1024, strategy)
    assert isinstance(rep, PackingReport) and rep.windows == 1 and rep.rows_out == ours.num_rows
    assert ours.num_rows <= theirs.num_rows
    assert rep.rows_out >= rep.lower_bound
    assert sorted(map(tuple, _rows(ours))) == sorted(
        map(tuple, _rows(trl_pack(ds, 1024, strategy, {"batch_size": None})))
    )
    assert "fill" in str(rep) and 0 < rep.fill_ratio <= 1
    # the same result as TRL with one map batch over the whole dataset
    assert_same(pack_dataset(ds, 1024, strategy, window=None), trl_pack(ds, 1024, strategy, {"batch_size": None}))


def test_global_window_is_not_a_guarantee():
    # best fit decreasing is not monotone: on this input (found by random search) one window
    # needs 9 rows where TRL's windows of 16 rows need 8; fastalign agrees with TRL on both
    lengths = [8, 1, 0, 1, 5, 10, 5, 7, 4, 8, 8, 10, 1, 15, 15, 14, 4, 6, 7]
    ds = _dataset(lengths, 1)
    assert_same(pack_dataset(ds, 17, window=16), trl_pack(ds, 17, "bfd", {"batch_size": 16}))
    assert_same(pack_dataset(ds, 17, window=None), trl_pack(ds, 17, "bfd", {"batch_size": None}))
    assert (pack_dataset(ds, 17, window=16).num_rows, pack_dataset(ds, 17, window=None).num_rows) == (8, 9)


def test_report_counts():
    ds = _dataset([5, 0, 9, 3], 1)
    _, rep = pack_dataset(ds, 4, "bfd", return_report=True)
    assert (rep.rows_in, rep.tokens_in, rep.tokens_truncated, rep.rows_empty) == (4, 17, 6, 1)
    assert rep.tokens_out == 11 and rep.lower_bound == 3
    _, rep = pack_dataset(ds, 4, "bfd_split", return_report=True)
    assert (rep.tokens_truncated, rep.rows_split, rep.tokens_out) == (0, 2, 17)


# ---------------------------------------------------------------------------------------------
# kernels on plain arrays


def test_bfd_kernel_numpy_and_torch():
    r = bfd(np.array([5, 2, 3, 1]), 4)
    assert r.order.tolist() == [0, 2, 3, 1] and r.bin_offsets.tolist() == [0, 1, 3, 4]
    assert r.lengths.tolist() == [4, 3, 1, 2] and r.starts.tolist() == [0, 0, 0, 0]
    r = bfd(torch.tensor([5, 2, 3, 1], dtype=torch.int32), 4, split=True)
    assert isinstance(r.order, torch.Tensor)
    assert r.order.tolist() == [0, 2, 0, 1, 3] and r.starts.tolist() == [0, 0, 4, 0, 0]
    # FIFO among bins with equal space: the bin that reached that room first (TRL's tie-break)
    r = bfd(np.array([3, 3, 2, 2, 1, 1]), 4)
    assert r.order.tolist() == [0, 4, 1, 5, 2, 3]


def test_first_fit_decreasing_kernel():
    r = first_fit_decreasing(np.array([5, 6, 1]), 7)
    assert r.order.tolist() == [1, 2, 0] and r.bin_offsets.tolist() == [0, 2, 3]
    rng = np.random.default_rng(8)
    lens = rng.integers(0, 100, 5000)
    r = first_fit_decreasing(lens, 128, split=True)
    sums = np.add.reduceat(r.lengths, r.bin_offsets[:-1])
    assert sums.max() <= 128 and r.lengths.sum() == lens.sum()


def test_position_ids_and_cu_seqlens_match_trl_collator():
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    seq = [[3, 1], [2], [4, 2, 1]]
    want = DataCollatorForLanguageModeling.get_position_ids_from_packed_seq_lengths(seq)
    flat = np.array([x for row in seq for x in row])
    got = position_ids(flat)
    assert got.tolist() == torch.cat(want).tolist()
    t = position_ids(torch.from_numpy(flat))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.int64
    cu = cu_seqlens(flat)
    assert cu.dtype == np.int32 and cu.tolist() == [0, 3, 4, 6, 10, 12, 13]
    assert cu.tolist() == np.concatenate([np.flatnonzero(got == 0), [len(got)]]).tolist()


_ROW = 1 << 20  # token value = row * _ROW + position: each packed token names its row and place


def _trl_bins(lengths, s, split):
    """TRL's ``_pack_bfd`` on a one-column table of the given lengths, read back as pieces:
    (order, bin_offsets, lengths, starts) as :func:`bfd` returns them."""
    from trl.data_utils import _pack_bfd

    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = np.concatenate([r * _ROW + np.arange(n, dtype=np.int64) for r, n in enumerate(lengths)] + [[]])
    col = pa.LargeListArray.from_arrays(offsets, pa.array(values.astype(np.int64)))
    out = _pack_bfd(pa.table({"input_ids": col}), s, "split" if split else "truncate")
    order, starts, plens, bounds = [], [], [], [0]
    for tokens, seq in zip(out["input_ids"].to_pylist(), out["seq_lengths"].to_pylist(), strict=True):
        at = 0
        for n in seq:
            order.append(tokens[at] // _ROW)
            starts.append(tokens[at] % _ROW)
            plens.append(n)
            at += n
        bounds.append(len(order))
    return order, bounds, plens, starts


def _ffd_oracle(lengths, s, split):
    """First fit decreasing, written plainly: the pieces in bfd's visiting order (longest first,
    ties in (row, fragment) order), each into the oldest bin with room, else a new bin."""
    pieces = []
    for r, n in enumerate(lengths):
        if n == 0:
            continue
        if split:
            pieces += [(r, a, min(s, n - a)) for a in range(0, n, s)]
        else:
            pieces.append((r, 0, min(n, s)))
    pieces.sort(key=lambda p: -p[2])  # stable: ties keep (row, fragment) order
    bins, room = [], []
    for p in pieces:
        for b, free in enumerate(room):
            if free >= p[2]:
                bins[b].append(p)
                room[b] -= p[2]
                break
        else:
            bins.append([p])
            room.append(s - p[2])
    flat = [p for b in bins for p in b]
    bounds = np.cumsum([0] + [len(b) for b in bins]).tolist()
    return [p[0] for p in flat], bounds, [p[2] for p in flat], [p[1] for p in flat]


_KERNEL_LENGTHS = st.lists(st.one_of(st.integers(0, 12), st.integers(0, 200)), min_size=0, max_size=150)
_KERNEL_S = st.one_of(st.integers(1, 24), st.sampled_from([1, 2, 3, 5, 17, 33, 64, 65, 129]))


@settings(max_examples=examples(40, cells=2), deadline=None)
@pytest.mark.parametrize("split", [False, True])
@given(lengths=_KERNEL_LENGTHS, s=_KERNEL_S, torch_in=st.booleans())
def test_bfd_kernel_matches_trl_pack_bfd(split, lengths, s, torch_in):
    """``bfd`` forms TRL's bins: the same pieces, in the same bins, in the same order."""
    arr = np.array(lengths, dtype=np.int64)
    got = bfd(torch.from_numpy(arr.astype(np.int32)) if torch_in else arr, s, split=split)
    if not lengths or not any(lengths):
        assert len(got.order) == 0 and list(got.bin_offsets) == [0]
        return
    want = _trl_bins(lengths, s, split)
    assert [x.tolist() for x in got] == list(want)


@settings(max_examples=examples(40, cells=2), deadline=None)
@pytest.mark.parametrize("split", [False, True])
@given(lengths=_KERNEL_LENGTHS, s=_KERNEL_S)
def test_first_fit_decreasing_matches_oracle(split, lengths, s):
    got = first_fit_decreasing(np.array(lengths, dtype=np.int64), s, split=split)
    assert [x.tolist() for x in got] == list(_ffd_oracle(lengths, s, split))


@settings(max_examples=examples(60), deadline=None)
@given(lengths=st.lists(st.integers(1, 300), min_size=1, max_size=60), as_int32=st.booleans())
def test_position_ids_and_cu_seqlens_match_trl_collator_hypothesis(lengths, as_int32):
    """Against TRL's collator for one packed row: its position ids, and the ``cu_seq_lens`` it
    derives from them (positive lengths: TRL's packed rows never hold empty sequences)."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    arr = np.array(lengths, dtype=np.int32 if as_int32 else np.int64)
    (want,) = DataCollatorForLanguageModeling.get_position_ids_from_packed_seq_lengths([lengths])
    got = position_ids(torch.from_numpy(arr))
    assert got.dtype == torch.int64 and torch.equal(got, want)
    starts = (want == 0).nonzero().flatten()
    want_cu = torch.cat([starts, torch.tensor([want.numel()])]).to(torch.int32)
    cu = cu_seqlens(arr)
    assert cu.dtype == np.int32 and cu.tolist() == want_cu.tolist()
    assert position_ids(arr).tolist() == want.tolist()


@settings(max_examples=examples(40), deadline=None)
@given(data=st.data())
def test_balance_partitions_spread_no_worse_than_the_differencing_reference(data):
    """A valid partition (every item once, parts sorted, ``N / k`` items each with
    ``equal_size``, listed by decreasing sum) whose spread is at most that of Karmarkar-Karp's
    differencing method written from its papers (``tests/reference/partition.py``) on the same
    weights (small weight ranges: many ties, where tie-breaking could matter)."""
    k = data.draw(st.integers(1, 9), label="k")
    equal_size = data.draw(st.booleans(), label="equal_size")
    n = k * data.draw(st.integers(1, 6)) if equal_size else data.draw(st.integers(k, 6 * k))
    hi = data.draw(st.sampled_from([0, 1, 2, 4, 9, 100, 10_000]), label="hi")
    lengths = data.draw(st.lists(st.integers(0, hi), min_size=n, max_size=n), label="lengths")
    parts = balance_partitions(np.array(lengths, dtype=np.int64), k, equal_size=equal_size)
    assert len(parts) == k and sorted(i for p in parts for i in p) == list(range(n))
    assert all(p == sorted(p) for p in parts)
    if equal_size:
        assert all(len(p) == n // k for p in parts)
    sums = [sum(lengths[i] for i in p) for p in parts]
    assert sums == sorted(sums, reverse=True)
    assert max(sums) - min(sums) <= _differencing_spread(lengths, k, equal_size)


def _differencing_spread(lengths, k, equal_size):
    """Spread (largest minus smallest part sum) of the differencing reference's partition."""
    parts = differencing_partition(list(map(int, lengths)), k, equal_size)
    sums = [sum(int(lengths[i]) for i in p) for p in parts]
    return max(sums) - min(sums)


@pytest.mark.parametrize("equal_size", [True, False])
def test_balance_partitions_quality_and_shape(equal_size):
    rng = np.random.default_rng(9)
    for n, k in ((64, 4), (512, 8), (1024, 32)):
        lengths = rng.integers(1, 4096, n)
        parts = balance_partitions(lengths, k, equal_size=equal_size)
        assert sorted(i for p in parts for i in p) == list(range(n))
        assert all(p == sorted(p) and p for p in parts)
        if equal_size:
            assert all(len(p) == n // k for p in parts)
        sums = [int(lengths[p].sum()) for p in parts]
        assert max(sums) - min(sums) <= _differencing_spread(lengths, k, equal_size)


def test_differencing_reference_follows_the_papers():
    """The reference on small cases worked by hand from the method's description: two-way,
    8, 7, 6, 5, 4 -> differences 1 (8 - 7), 1 (6 - 5), 3 (4 - 1), 2 (3 - 1): parts {8, 6} and
    {7, 5, 4}, sums 14 and 16 (the optimum, 15 and 15, is missed: the method is a heuristic);
    balanced three-way, the runs (1, 2, 3) and (4, 5, 6) are joined largest with smallest:
    {3, 4}, {2, 5}, {1, 6}, all 7."""
    w = [8, 7, 6, 5, 4]
    parts = differencing_partition(w, 2, equal_size=False)
    assert sorted(sum(w[i] for i in p) for p in parts) == [14, 16]
    assert sorted(parts) == [[0, 2], [1, 3, 4]]  # {8, 6} and {7, 5, 4}
    w = [1, 2, 3, 4, 5, 6]
    parts = differencing_partition(w, 3, equal_size=True)
    assert sorted(sorted(w[i] for i in p) for p in parts) == [[1, 6], [2, 5], [3, 4]]
    assert differencing_partition([5, 0, 0], 3, equal_size=False) == [[0], [1], [2]]


def test_balance_partitions_result_ints_beyond_the_shared_ones():
    """Items below 65,536 come from a shared list of ints, the others are made per call: the
    parts are the same either way, and they are fresh lists the caller may change."""
    import fastalign.packing.balance as packing

    rng = np.random.default_rng(12)
    n = packing._INT_OBJECTS_MAX + 4_000
    lengths = rng.integers(1, 50, n)
    parts = balance_partitions(lengths, 8, equal_size=True)
    assert sorted(i for p in parts for i in p) == list(range(n))
    assert all(type(i) is int for p in parts for i in p)
    parts[0].append(-1)
    parts[1][0] = -2
    again = balance_partitions(lengths, 8, equal_size=True)
    assert again[0] == parts[0][:-1] and again[1][1:] == parts[1][1:]
    assert packing._int_objects(10) == list(range(len(packing._int_objects(10))))


def test_balance_partitions_cap():
    lengths = np.array([7, 7, 6, 5, 4, 3, 2, 2])
    parts = balance_partitions(lengths, 3, equal_size=False, max_tokens=13)
    assert max(int(lengths[p].sum()) for p in parts) <= 13
    with pytest.raises(InvalidArgumentError) as info:
        balance_partitions(lengths, 3, equal_size=False, max_tokens=8)
    assert info.value.argument == "max_tokens"
    with pytest.raises(InvalidArgumentError, match="max_tokens"):
        balance_partitions(lengths, 4, max_tokens=6)
    assert balance_partitions([3, 1, 2, 2], 2) == [[0, 1], [2, 3]]


@settings(max_examples=examples(40), deadline=None)
@given(data=st.data())
def test_balance_partitions_refine_is_never_worse_and_keeps_the_shape(data):
    k = data.draw(st.integers(1, 8), label="k")
    equal_size = data.draw(st.booleans(), label="equal_size")
    n = k * data.draw(st.integers(1, 8)) if equal_size else data.draw(st.integers(k, 8 * k))
    lengths = np.array(data.draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n)), dtype=np.int64)
    plain = balance_partitions(lengths, k, equal_size=equal_size)
    parts = balance_partitions(lengths, k, equal_size=equal_size, refine=True)
    assert sorted(i for p in parts for i in p) == list(range(n)) and all(p == sorted(p) for p in parts)
    if equal_size:
        assert all(len(p) == n // k for p in parts)
    sums = [int(lengths[p].sum()) for p in parts]
    assert sums == sorted(sums, reverse=True)
    assert max(sums) <= max(int(lengths[p].sum()) for p in plain)


def test_balance_partitions_refine_closes_a_long_outlier_gap():
    """Equal-size KK pairs the 2,048-token outlier with its nearest neighbour, a gap the other
    pairs cannot offset; refinement swaps its way to near-equal parts."""
    from fastalign.step_bench import long_tail_lengths

    for seed in range(5):
        tokens = long_tail_lengths(32, seed=seed) + 16
        plain = [int(tokens[p].sum()) for p in balance_partitions(tokens, 2)]
        refined = [int(tokens[p].sum()) for p in balance_partitions(tokens, 2, refine=True)]
        assert refined[0] - refined[1] < (plain[0] - plain[1]) / 4, (plain, refined)
    with pytest.raises(TypeError, match="refine"):
        balance_partitions(tokens, 2, refine="yes")


# ---------------------------------------------------------------------------------------------
# SFTTrainer


def test_sft_trainer_dataset_preparation_identical(tmp_path, monkeypatch):
    from trl import SFTConfig, SFTTrainer

    import fastalign.packing.dataset as packing
    from fastalign.testing import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_model(tok)
    rng = np.random.default_rng(10)
    ids = [rng.integers(4, len(tok), rng.integers(1, 40)).tolist() for _ in range(300)]
    ds = Dataset.from_dict({"input_ids": ids})

    def prepared(strategy):
        args = SFTConfig(
            output_dir=str(tmp_path),
            packing=True,
            packing_strategy=strategy,
            max_length=64,
            use_cpu=True,
            report_to=[],
            disable_tqdm=True,
            dataset_num_proc=None,
        )
        return SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok).train_dataset

    calls = []
    real = packing.pack_dataset

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(packing, "pack_dataset", counting)
    for strategy in ("bfd", "wrapped"):
        theirs = prepared(strategy)
        with patch_trl_sft():
            ours = prepared(strategy)
        assert calls[-1] == strategy  # fastalign packed it
        assert ours.num_rows < len(ids) and "seq_lengths" in ours.column_names or strategy == "wrapped"
        assert ours.data.table.equals(theirs.data.table)
        assert ours.column_names == theirs.column_names
    import trl.trainer.sft_trainer as sft

    assert sft.pack_dataset is trl.pack_dataset  # restored


# ---------------------------------------------------------------------------------------------
# bad input

V, T = InvalidArgumentError, InvalidTypeError


@pytest.mark.parametrize(
    "kwargs, exc, arg",
    [
        ({"seq_length": 0}, V, "seq_length"),
        ({"seq_length": -3}, V, "seq_length"),
        ({"seq_length": 2.5}, T, "seq_length"),
        ({"seq_length": 4, "strategy": "bfd-requeue"}, V, "strategy"),
        ({"seq_length": 4, "strategy": "ffd"}, V, "strategy"),
        ({"seq_length": 4, "map_kwargs": [1]}, T, "map_kwargs"),
        ({"seq_length": 4, "window": 0}, V, "window"),
        ({"seq_length": 4, "window": "global"}, T, "window"),
    ],
)
def test_pack_dataset_bad_arguments(kwargs, exc, arg):
    ds = _dataset([3, 4], 1)
    with pytest.raises(exc) as info:
        pack_dataset(ds, **kwargs)
    assert info.value.argument == arg


def test_pack_dataset_bad_datasets():
    with pytest.raises(TypeError, match="lists of lists") as info:
        pack_dataset(Dataset.from_dict({"input_ids": [[1, 2], [3]], "label": [0, 1]}), 4)
    assert info.value.argument == "dataset"
    with pytest.raises(ValueError, match="same length") as info:
        pack_dataset(Dataset.from_dict({"input_ids": [[1, 2], [3]], "labels": [[1], [3, 4]]}), 4)
    assert info.value.argument == "dataset" and "row 0" in str(info.value)
    with pytest.raises(ValueError, match="null"):
        pack_dataset(Dataset.from_dict({"input_ids": [[1, 2], None]}), 4)
    with pytest.raises(InvalidTypeError):
        pack_dataset({"input_ids": [[1]]}, 4)


@pytest.mark.parametrize(
    "fn, args, kwargs, exc, arg",
    [
        (bfd, ([1.0, 2.0], 4), {}, T, "lengths"),
        (bfd, (np.array([1.0]), 4), {}, T, "lengths"),
        (bfd, (np.array([[1, 2]]), 4), {}, V, "lengths"),
        (bfd, (np.array([1, -2]), 4), {}, V, "lengths"),
        (bfd, (np.array([1, 2, 3])[::2], 4), {}, V, "lengths"),
        (bfd, (np.array([1, 2]), 0), {}, V, "seq_length"),
        (bfd, (np.array([1, 2]), 4), {"split": "yes"}, T, "split"),
        (first_fit_decreasing, (np.array([1, 2]), -1), {}, V, "seq_length"),
        (position_ids, (np.array([1, -1]),), {}, V, "seq_lengths"),
        (cu_seqlens, (np.array([2**31, 1]),), {}, V, "seq_lengths"),
        (cu_seqlens, (np.array([1.5]),), {}, T, "seq_lengths"),
        (balance_partitions, (np.array([1, 2, 3]), 2), {}, V, "k"),
        (balance_partitions, (np.array([1, 2, 3]), 4), {"equal_size": False}, V, "k"),
        (balance_partitions, (np.array([1, 2, 3]), 0), {}, V, "k"),
        (balance_partitions, (np.array([1, 2]), 2), {"max_tokens": -1}, V, "max_tokens"),
        (balance_partitions, (np.array([1, 2]), 2), {"equal_size": 1}, T, "equal_size"),
    ],
)
def test_kernel_bad_input(fn, args, kwargs, exc, arg):
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert info.value.argument == arg


def test_sums_beyond_the_output_dtype_are_refused_or_handled():
    """Lengths whose sums overflow int32/int64, built without allocating a token."""
    big = 2**63 - 1
    # cu_seqlens is int32: a later length must not wrap the running total back into range
    for lengths in ([1, big], [2**31 - 1, 1], [2**30, 2**30]):
        with pytest.raises(InvalidArgumentError) as info:
            cu_seqlens(np.array(lengths))
        assert info.value.argument == "seq_lengths"
    assert cu_seqlens(np.array([2**31 - 2, 1])).tolist() == [0, 2**31 - 2, 2**31 - 1]
    # position_ids: a total beyond int64, or beyond what can be allocated, is an error, not a crash
    for lengths in ([big, 1], [2**60]):
        with pytest.raises(InvalidArgumentError) as info:
            position_ids(np.array(lengths))
        assert info.value.argument == "seq_lengths"
    # bfd: a total beyond int64 is refused; capacities beyond 2^32 keep the longest-first order
    with pytest.raises(InvalidArgumentError) as info:
        bfd(np.array([big, 1]), 4)
    assert info.value.argument == "lengths"
    assert bfd(np.array([5, 2**32 + 5]), 2**34).order.tolist() == [1, 0]
    r = bfd(np.array([big]), 2**62, split=True)
    assert r.lengths.tolist() == [2**62, big - 2**62] and r.starts.tolist() == [0, 2**62]


def test_native_rejects_inconsistent_plans():
    # the Rust side re-checks what it relies on, so a direct call cannot crash the process
    z = np.zeros(1, np.int64)
    with pytest.raises(InvalidArgumentError):
        _native.gather_u64(([np.zeros(2, np.uint64)], z, z), (z, z, np.array([3])), 3)
    with pytest.raises(InvalidArgumentError):
        _native.gather_u64(([np.zeros(2, np.uint64)], z, z), (np.array([5]), z, np.array([1])), 1)
    # a caller's output buffer must hold exactly the planned tokens; the right one is filled
    src = [np.array([7, 8, 9], np.uint64)]
    with pytest.raises(InvalidArgumentError) as info:
        _native.gather_u64((src, z, z), (z, np.array([1]), np.array([2])), 2, np.zeros(3, np.uint64))
    assert info.value.argument == "out"
    out = np.zeros(2, np.uint64)
    assert _native.gather_u64((src, z, z), (z, np.array([1]), np.array([2])), 2, out) is not None
    assert out.tolist() == [8, 9]
    with pytest.raises(InvalidArgumentError):
        _native.pack_plan(np.array([1, 2]), np.array([0]), np.array([3]), 4, "bfd")
    with pytest.raises(InvalidArgumentError):
        _native.pack_plan(np.array([1, 2]), np.array([0]), np.array([2]), 4, "nope")


def test_progress_bar_for_large_packs(monkeypatch, capsys):
    from datasets import enable_progress_bars

    import fastalign.packing.dataset as packing

    monkeypatch.setattr(packing, "_PROGRESS_MIN_TOKENS", 0)
    enable_progress_bars()
    try:
        pack_dataset(_dataset([3, 5, 7], 2), 8, map_kwargs={"desc": "Packing train"})
    finally:
        disable_progress_bars()
    assert "Packing train" in capsys.readouterr().err
    pack_dataset(_dataset([3, 5, 7], 2), 8)  # progress bars disabled: nothing printed
    assert capsys.readouterr().err == ""


def test_short_sft_run_with_fastalign_packing_trains_like_trl(tmp_path):
    """End to end on the CPU: two SFT steps on data packed by fastalign (inside SFTTrainer, and
    pre-packed by the user) log the same losses as SFTTrainer packing with TRL."""
    from trl import SFTConfig, SFTTrainer

    from fastalign.packing import pack_dataset
    from fastalign.testing import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    rng = np.random.default_rng(11)
    ds = Dataset.from_dict({"input_ids": [rng.integers(4, len(tok), rng.integers(2, 30)).tolist() for _ in range(96)]})

    def losses(dataset, **config):
        args = SFTConfig(
            output_dir=str(tmp_path),
            max_steps=2,
            per_device_train_batch_size=4,
            learning_rate=1e-3,
            use_cpu=True,
            report_to=[],
            disable_tqdm=True,
            logging_steps=1,
            save_strategy="no",
            seed=0,
            dataset_num_proc=None,
            **config,
        )
        trainer = SFTTrainer(model=tiny_model(tok), args=args, train_dataset=dataset, processing_class=tok)
        trainer.train()
        return [row["loss"] for row in trainer.state.log_history if "loss" in row]

    stock = losses(ds, packing=True, max_length=64)
    with patch_trl_sft():
        patched = losses(ds, packing=True, max_length=64)
    prepacked = losses(pack_dataset(ds, 64), packing=False, padding_free=True, max_length=None)
    assert len(stock) == 2 and all(np.isfinite(stock))
    assert patched == stock
    assert prepacked == pytest.approx(stock, rel=1e-6)
