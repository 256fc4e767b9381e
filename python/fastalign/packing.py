"""Token packing: a drop-in ``trl.pack_dataset`` computed in Rust on the Arrow buffers, plus the
kernels it is made of (best/first fit decreasing, position ids, ``cu_seqlens``) and
Karmarkar–Karp balancing across data-parallel ranks.

:func:`pack_dataset` returns, for the same arguments, the same rows as TRL 1.16.0's
``pack_dataset`` token for token: the same bins in the same order (TRL's best-fit-decreasing
tie-breaking), the same ``seq_lengths`` column, the same Arrow types and the same format. TRL
packs each ``datasets.map`` batch (1,000 rows unless ``map_kwargs`` says otherwise; with
``num_proc=k`` the dataset is first cut into ``k`` contiguous shards) on its own; fastalign
reproduces those windows by default, and ``window=None`` packs the whole dataset at once, which
fills bins better.

How: the list columns' offsets and values buffers are read in place (``pa.Array.buffers()``
viewed through ``np.frombuffer``, any chunking and slice offset, any fixed-width value type of
1, 2, 4 or 8 bytes); Rust computes the plan (which piece of which row goes in which packed row)
and then copies each column's values into one fresh buffer, with the GIL released. The packed
table is built from those buffers (``pa.ListArray.from_arrays``) without a Python object per
row or per token.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from . import _extras, _native
from . import _validate as v
from .errors import InvalidArgumentError, InvalidTypeError

__all__ = [
    "BinPacking",
    "PackingReport",
    "balance_partitions",
    "bfd",
    "cu_seqlens",
    "first_fit_decreasing",
    "pack_dataset",
    "pack_table",
    "patch_trl_sft",
    "position_ids",
]

STRATEGIES = ("bfd", "bfd_split", "wrapped")
TRL_WINDOWS = "trl"
"""``window`` value that reproduces TRL's per-``map``-batch windows (the default)."""

# map() arguments the direct path reproduces (windows) or that do not change the result
_DIRECT_MAP_KWARGS = {
    "batch_size",
    "num_proc",
    "drop_last_batch",
    "desc",
    "keep_in_memory",
    "load_from_cache_file",
    "cache_file_name",
    "writer_batch_size",
    "new_fingerprint",
}
_INT32_MAX = 2**31 - 1
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_GATHER = {1: _native.gather_u8, 2: _native.gather_u16, 4: _native.gather_u32, 8: _native.gather_u64}
_PROGRESS_MIN_TOKENS = 50_000_000
_STREAM_CHUNK_TOKENS = 1 << 24  # tokens per record batch when writing a cache file


# --------------------------------------------------------------------------------------------
# kernels on plain arrays


class BinPacking(NamedTuple):
    """Result of :func:`bfd` / :func:`first_fit_decreasing` (arrays of the input's kind)."""

    order: Any
    """(P,) int64: the sequence (index into ``lengths``) of each placed piece, bin after bin."""
    bin_offsets: Any
    """(B + 1,) int64: bin ``b`` holds pieces ``order[bin_offsets[b]:bin_offsets[b + 1]]``."""
    lengths: Any
    """(P,) int64: the tokens of each piece (``min(length, seq_length)`` without split)."""
    starts: Any
    """(P,) int64: where each piece starts inside its sequence (non-zero only for fragments)."""


def _lengths_arg(lengths: Any, name: str = "lengths") -> tuple[np.ndarray, bool]:
    """int32/int64 1-D CPU lengths as an int64 array (a zero-copy view for int64)."""
    torch_in = v.is_torch(lengths)
    arr = v.array(lengths, name, v.INT, (1,))
    if arr.dtype != np.int64:
        arr = arr.astype(np.int64)
    if arr.size and int(arr.min()) < 0:
        i = int(np.argmin(arr))
        raise InvalidArgumentError(f"must be >= 0, got {int(arr[i])} at index {i}", name)
    return arr, torch_in


def _bins(lengths: Any, seq_length: Any, split: bool, strategy: str) -> BinPacking:
    arr, torch_in = _lengths_arg(lengths)
    s = v.integer(seq_length, "seq_length", minimum=1)
    if not isinstance(split, (bool, np.bool_)):
        raise InvalidTypeError(f"expected a bool, got {type(split).__name__}", "split")
    n = np.array([0], dtype=np.int64)
    e = np.array([arr.size], dtype=np.int64)
    rows, skips, lens, _, bounds, *_ = _native.pack_plan(arr, n, e, s, strategy + ("_split" if split else ""))
    return BinPacking(*(v.wrap(x, torch_in) for x in (rows, bounds, lens, skips)))


def bfd(lengths: Any, seq_length: int, *, split: bool = False) -> BinPacking:
    """Best-fit-decreasing bins of sequence lengths, exactly as TRL's ``_pack_bfd`` forms them.

    Sequences of length 0 are left out; longer ones than ``seq_length`` are truncated to it
    (``split=False``, TRL's ``"bfd"``) or cut into ``seq_length``-token fragments, the last one
    shorter (``split=True``, ``"bfd_split"``). Pieces are visited longest first (ties in index
    order); each goes to the bin with the least room that still holds it (among equal rooms the
    bin that got there first), else to a new bin. Bins come in creation order.

    Parameters
    ----------
    lengths : (N,), int32 or int64, numpy array or CPU tensor
        Tokens per sequence (>= 0).
    seq_length : int
        Capacity of a bin (>= 1).
    split : bool
        Split overlong sequences instead of truncating them.

    Returns
    -------
    BinPacking
        ``order``, ``bin_offsets``, ``lengths``, ``starts`` (int64, the input's kind).

    Examples
    --------
    >>> import numpy as np
    >>> from fastalign.packing import bfd
    >>> r = bfd(np.array([5, 2, 3, 1]), 4)
    >>> r.order.tolist(), r.bin_offsets.tolist(), r.lengths.tolist()
    ([0, 2, 3, 1], [0, 1, 3, 4], [4, 3, 1, 2])
    """
    return _bins(lengths, seq_length, split, "bfd")


def first_fit_decreasing(lengths: Any, seq_length: int, *, split: bool = False) -> BinPacking:
    """First-fit-decreasing bins: like :func:`bfd`, but each piece goes to the *first* (oldest)
    bin with enough room. Not a TRL strategy; O(N log N). Same arguments and result as
    :func:`bfd`."""
    return _bins(lengths, seq_length, split, "ffd")


def position_ids(seq_lengths: Any) -> Any:
    """Position ids for padding-free attention: ``0..L-1`` for each length ``L``, concatenated
    (int64), which is what TRL's SFT collator derives from a packed row's ``seq_lengths``.

    ``seq_lengths``: (N,) int32/int64 numpy array or CPU tensor; the result has the same kind.
    """
    arr, torch_in = _lengths_arg(seq_lengths, "seq_lengths")
    return v.wrap(_native.position_ids(arr), torch_in)


def cu_seqlens(seq_lengths: Any) -> Any:
    """``cu_seqlens`` in flash-attn's sense: ``[0, L0, L0+L1, ...]`` as int32 (TRL's
    ``cu_seq_lens_q``/``_k``). ``seq_lengths``: (N,) int32/int64 numpy array or CPU tensor."""
    arr, torch_in = _lengths_arg(seq_lengths, "seq_lengths")
    return v.wrap(_native.cu_seqlens(arr), torch_in)


_INT64_MAX = 2**63 - 1


def balance_partitions(
    lengths: Any, k: int, *, equal_size: bool = True, max_tokens: int | None = None, refine: bool = False
) -> list[list[int]]:
    """Karmarkar–Karp partition of sequences into ``k`` balanced parts (data-parallel ranks or
    micro-batches), as verl's ``get_seqlen_balanced_partitions``.

    Parameters
    ----------
    lengths : (N,) int32/int64 array or CPU tensor, or a sequence of ints
        Weight of each item (tokens, or a workload such as verl's ``24576*s + s**2``), >= 0.
    k : int
        Number of parts, 1 <= k <= N.
    equal_size : bool
        Every part gets exactly ``N / k`` items (N must be a multiple of k).
    max_tokens : int, optional
        Cap on every part's sum. KK does not enforce one by itself; when its result exceeds the
        cap, items are moved (swapped, with ``equal_size``) from the largest part to the
        smallest while that helps, and ``InvalidArgumentError`` is raised if the cap still
        cannot be met (or obviously cannot: an item above it, or a total above ``k * cap``).
    refine : bool
        After KK, move (with ``equal_size``: swap) items between the largest and the smallest
        part while that lowers the larger of the two. KK's equal-size seeds pair items of
        neighbouring weights, so a long outlier leaves a gap no later merge closes; on a
        long-tail batch of 32 sequences into 2 parts the busiest part drops from 1.08x the
        mean to 1.000x (median of 200 draws, ``benches/rank_balance.py``).
        ``False`` (the default) returns verl's partition exactly.

    Returns
    -------
    list of k lists of int
        The item indices of each part, sorted (verl's format); parts by decreasing sum.
    """
    if isinstance(lengths, (list, tuple)):
        lengths = np.array([v.integer(x, "lengths") for x in lengths], dtype=np.int64).reshape(-1)
    arr, _ = _lengths_arg(lengths)
    kk = v.integer(k, "k", minimum=1)
    if not isinstance(equal_size, (bool, np.bool_)):
        raise InvalidTypeError(f"expected a bool, got {type(equal_size).__name__}", "equal_size")
    cap = None if max_tokens is None else v.integer(max_tokens, "max_tokens", minimum=0)
    if not isinstance(refine, (bool, np.bool_)):
        raise InvalidTypeError(f"expected a bool, got {type(refine).__name__}", "refine")
    if arr.size and int(arr.max()) > _INT64_MAX // arr.size and sum(arr.tolist()) > _INT64_MAX:
        # part sums are int64: refuse a total that could wrap rather than compare wrapped sums
        raise InvalidArgumentError(f"sum to {sum(arr.tolist())}, beyond int64 (2^63 - 1)", "lengths")
    return _native.balance_partitions(arr, kk, bool(equal_size), cap, _int_objects(arr.size), bool(refine))


_INT_OBJECTS_MAX = 1 << 16
_int_objects_cache: list[int] = []


def _int_objects(n: int) -> list[int]:
    """``list(range(m))`` for ``m = min(n, 65,536)``, kept between calls: the result lists of
    :func:`balance_partitions` reference these ints instead of making ``n`` new ones (which is
    about a third of a call at n=16,384). Never mutated: a longer one replaces it, so threads
    only ever see complete lists."""
    global _int_objects_cache
    cache = _int_objects_cache
    m = min(n, _INT_OBJECTS_MAX)
    if len(cache) < m:
        cache = list(range(m))
        _int_objects_cache = cache
    return cache


# --------------------------------------------------------------------------------------------
# Arrow tables


class PackingReport(NamedTuple):
    """What a pack did (one split of a dataset)."""

    rows_in: int
    rows_out: int
    tokens_in: int
    tokens_out: int
    tokens_truncated: int
    rows_split: int
    rows_empty: int
    seq_length: int
    windows: int

    @property
    def lower_bound(self) -> int:
        """``ceil(tokens_out / seq_length)``: no packing can use fewer rows."""
        return -(-self.tokens_out // self.seq_length)

    @property
    def fill_ratio(self) -> float:
        """Tokens over capacity of the rows used (1.0 = every row full)."""
        return self.tokens_out / (self.rows_out * self.seq_length) if self.rows_out else 1.0

    @property
    def rows_over_lower_bound(self) -> float:
        """``rows_out / lower_bound`` (1.0 = optimal)."""
        return self.rows_out / self.lower_bound if self.lower_bound else 1.0

    def __str__(self) -> str:
        return (
            f"packed {self.rows_in:,} rows ({self.tokens_in:,} tokens) into {self.rows_out:,} rows of "
            f"<= {self.seq_length:,} tokens in {self.windows:,} window(s): fill {self.fill_ratio:.2%}, "
            f"{self.rows_over_lower_bound:.4f}x the lower bound {self.lower_bound:,}; "
            f"{self.tokens_truncated:,} tokens truncated, {self.rows_split:,} rows split, "
            f"{self.rows_empty:,} empty rows"
        )


class _Column:
    """One list column, read in place: per-chunk value views and per-row starts and lengths."""

    __slots__ = ("name", "large", "value_type", "width", "chunks", "children", "bases", "starts", "lengths")

    def __init__(self, name: str, column: Any, pa: Any) -> None:
        t = column.type
        if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
            raise InvalidTypeError(
                f"column {name!r} is of type {t}; packing requires all columns to be lists of lists "
                "(list or large_list), as trl.pack_dataset does",
                "dataset",
            )
        self.name = name
        self.large = pa.types.is_large_list(t)
        self.value_type = t.value_type
        vt = self.value_type
        width = 0
        if pa.types.is_primitive(vt) and not pa.types.is_boolean(vt) and vt.bit_width in (8, 16, 32, 64):
            width = vt.bit_width // 8
        chunks: list[np.ndarray] = []
        children: list[Any] = []
        starts: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        bases: list[int] = []
        base = 0
        for chunk in column.chunks:
            if chunk.null_count:
                raise InvalidArgumentError(
                    f"column {name!r} has {chunk.null_count} null rows; packing needs a list in every row", "dataset"
                )
            offs = chunk.offsets.to_numpy(zero_copy_only=True)
            child = chunk.values
            if width and child.null_count:
                width = 0  # null values inside lists: take the generic (pyarrow) gather
            n_child = len(child)
            if width:
                buf = child.buffers()[1]
                end = child.offset + n_child
                data = (
                    np.frombuffer(buf, dtype=_UINT[width], count=end)[child.offset :]
                    if buf is not None and end
                    else np.empty(0, dtype=_UINT[width])
                )
                chunks.append(data)
            children.append(child)
            bases.append(base)
            lengths.append(np.subtract(offs[1:], offs[:-1], dtype=np.int64))
            st = offs[:-1].astype(np.int64)
            if base:
                st += base
            starts.append(st)
            base += n_child
        self.width = width
        self.chunks = chunks
        self.children = children
        self.bases = np.array(bases, dtype=np.int64)
        self.starts = _concat(starts)
        self.lengths = _concat(lengths)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    """``np.concatenate`` without the copy of a single part."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


class _Packed:
    """A computed plan over read-in-place columns; produces the packed rows in record batches."""

    def __init__(
        self,
        columns: list[Any],
        names: list[str],
        rows: np.ndarray | None,
        windows: tuple[np.ndarray, np.ndarray],
        seq_length: int,
        strategy: str,
    ) -> None:
        import pyarrow as pa

        self.pa = pa
        if not columns:
            raise InvalidArgumentError("has no columns to pack", "dataset")
        cols = [_Column(name, col, pa) for name, col in zip(names, columns, strict=True)]
        if rows is not None:
            for c in cols:
                c.starts = c.starts[rows]
                c.lengths = c.lengths[rows]
        lengths = cols[0].lengths
        for c in cols[1:]:
            if not np.array_equal(c.lengths, lengths):
                r = int(np.flatnonzero(c.lengths != lengths)[0])
                raise InvalidArgumentError(
                    f"column {c.name!r} has {int(c.lengths[r])} values in row {r} where column {cols[0].name!r} "
                    f"has {int(lengths[r])}; all columns must have values of the same length",
                    "dataset",
                )
        self.cols = cols
        (self.prow, self.pskip, self.plen, self.out_offsets, self.bounds, truncated, split, empty) = _native.pack_plan(
            lengths, windows[0], windows[1], seq_length, strategy
        )
        self.total = int(self.out_offsets[-1])
        self.n_out = len(self.out_offsets) - 1
        self._ends: np.ndarray | None = None
        self.seq_type = pa.int64() if cols[0].large else pa.int32()
        fields = [pa.field(c.name, pa.large_list(c.value_type) if c.large else pa.list_(c.value_type)) for c in cols]
        if self.bounds is not None:
            fields.append(pa.field("seq_lengths", pa.list_(self.seq_type)))
        self.schema = pa.schema(fields)
        self.report = PackingReport(
            rows_in=len(lengths),
            rows_out=self.n_out,
            tokens_in=int(lengths.sum()),
            tokens_out=self.total,
            tokens_truncated=int(truncated),
            rows_split=int(split),
            rows_empty=int(empty),
            seq_length=seq_length,
            windows=len(windows[0]),
        )

    def cuts(self, max_tokens: int) -> list[int]:
        """Output row boundaries of chunks of at most ``max_tokens`` tokens (at least one row)."""
        cuts = [0]
        offs = self.out_offsets
        while cuts[-1] < self.n_out:
            stop = int(np.searchsorted(offs, offs[cuts[-1]] + max_tokens, side="right")) - 1
            cuts.append(min(max(stop, cuts[-1] + 1), self.n_out))
        return cuts if self.n_out else [0, 0]

    def _pieces(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The plan's pieces that fill output rows ``[a, b)``, trimmed to them."""
        if self.bounds is not None:
            p0, p1 = int(self.bounds[a]), int(self.bounds[b])
            return self.prow[p0:p1], self.pskip[p0:p1], self.plen[p0:p1]
        if (a == 0 and b == self.n_out) or a == b:
            return self.prow, self.pskip, self.plen
        # wrapped: rows are cut across pieces; take the pieces overlapping the token range
        t0, t1 = int(self.out_offsets[a]), int(self.out_offsets[b])
        if self._ends is None:
            self._ends = np.cumsum(self.plen)
        ends = self._ends
        p0 = int(np.searchsorted(ends, t0, side="right"))
        p1 = int(np.searchsorted(ends, t1, side="left")) + 1
        rows, skips, lens = self.prow[p0:p1], self.pskip[p0:p1].copy(), self.plen[p0:p1].copy()
        front = t0 - (int(ends[p0]) - int(self.plen[p0]))
        skips[0] += front
        lens[0] -= front
        lens[-1] -= int(ends[p1 - 1]) - t1
        return rows, skips, lens

    def batch(self, a: int, b: int) -> Any:
        """Output rows ``[a, b)`` as a ``pa.RecordBatch``."""
        pa = self.pa
        t0, t1 = int(self.out_offsets[a]), int(self.out_offsets[b])
        n = t1 - t0
        rows, skips, lens = self._pieces(a, b)
        offsets = self.out_offsets[a : b + 1] - t0
        arrays = []
        for c in self.cols:
            if c.width:
                # the output lives in Arrow's memory pool (as TRL's does): memory freed earlier
                # is reused there without fresh page faults, and the table owns it directly
                buf = pa.allocate_buffer(n * c.width)
                out = np.frombuffer(buf, dtype=_UINT[c.width]) if n else np.empty(0, dtype=_UINT[c.width])
                _GATHER[c.width](c.chunks, c.bases, c.starts, rows, skips, lens, n, out)
                del out
                values = pa.Array.from_buffers(c.value_type, n, [None, buf])
            else:
                values = _take_values(c, rows, skips, lens, n, pa)
            cls = pa.LargeListArray if c.large else pa.ListArray
            arrays.append(cls.from_arrays(offsets.astype(np.int64 if c.large else np.int32), values))
        if self.bounds is not None:
            p0 = int(self.bounds[a])
            seq_offsets = (self.bounds[a : b + 1] - p0).astype(np.int32)
            seq_values = pa.array(lens.astype(np.int64 if self.cols[0].large else np.int32))
            arrays.append(pa.ListArray.from_arrays(seq_offsets, seq_values))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def table(self, progress: Any = None) -> Any:
        """All output rows in memory (chunked only where int32 list offsets require it)."""
        limit = _INT32_MAX if not all(c.large for c in self.cols) else max(self.total, 1)
        cuts = self.cuts(limit)
        batches = []
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            batches.append(self.batch(a, b))
            if progress is not None:
                progress.update(b - a)
        return self.pa.Table.from_batches(batches, schema=self.schema)

    def write(self, path: str, chunk_tokens: int, progress: Any = None) -> None:
        """Stream the output rows to an Arrow IPC stream file (the format of ``datasets``' cache
        files), about ``chunk_tokens`` tokens at a time: memory holds one chunk, not the output."""
        cuts = self.cuts(min(chunk_tokens, _INT32_MAX))
        with self.pa.OSFile(path, "wb") as sink, self.pa.ipc.new_stream(sink, self.schema) as writer:
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                writer.write_batch(self.batch(a, b))
                if progress is not None:
                    progress.update(b - a)


def _take_values(c: _Column, prow: np.ndarray, pskip: np.ndarray, plen: np.ndarray, total: int, pa: Any) -> Any:
    """Generic gather (value types Rust does not copy: bool, strings, nested lists, nulls)."""
    import pyarrow.compute as pc

    src = c.starts[prow] + pskip
    first = np.cumsum(plen) - plen
    idx = np.repeat(src - first, plen) + np.arange(total, dtype=np.int64)
    values = pa.concat_arrays(c.children) if c.children else pa.array([], type=c.value_type)
    return pc.take(values, pa.array(idx))


def pack_table(examples: Any, seq_length: int, strategy: str = "bfd") -> Any:
    """Pack one ``pa.Table`` as one window: the per-batch function of ``pack_dataset``, usable
    directly in ``dataset.map(pack_table, batched=True, fn_kwargs=..., num_proc=N)`` on a
    dataset in ``"arrow"`` format (a picklable module-level function). Equals TRL's
    ``_pack_bfd`` / ``_pack_wrapped`` on the same table."""
    s = v.integer(seq_length, "seq_length", minimum=1)
    strategy = v.choice(strategy, "strategy", STRATEGIES)
    n = examples.num_rows
    windows = (np.array([0], dtype=np.int64), np.array([n], dtype=np.int64))
    return _Packed(list(examples.columns), list(examples.column_names), None, windows, s, strategy).table()


def _trl_windows(n: int, batch_size: Any, num_proc: Any, drop_last_batch: bool) -> tuple[np.ndarray, np.ndarray]:
    """The row ranges ``datasets.map(batched=True)`` hands to the function, in order."""
    shards = 1 if not num_proc else min(int(num_proc), n)
    starts, ends = [], []
    div, mod = divmod(n, shards)
    for i in range(shards):
        s = div * i + min(i, mod)
        e = s + div + (1 if i < mod else 0)
        b = batch_size if batch_size is not None and batch_size > 0 else (e - s)
        if b <= 0:
            continue
        ws = np.arange(s, e, b, dtype=np.int64)
        we = np.minimum(ws + b, e)
        if drop_last_batch:
            keep = (we - ws) == b
            ws, we = ws[keep], we[keep]
        starts.append(ws)
        ends.append(we)
    if not starts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(starts), np.concatenate(ends)


def _dataset_format(dataset: Any) -> dict[str, Any]:
    """The format to restore after packing (what TRL's ``_get_dataset_format`` returns)."""
    from datasets import Dataset, DatasetDict, IterableDatasetDict

    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        dataset = dataset[next(iter(dataset))]
    if isinstance(dataset, Dataset):
        fmt = dict(dataset.format)
    else:
        fmt = {"type": dataset._formatting.format_type if dataset._formatting is not None else None}
    fmt.update(fmt.pop("format_kwargs", {}))
    return fmt


def _progress(total_tokens: int, rows: int, desc: str | None) -> Any:
    if total_tokens < _PROGRESS_MIN_TOKENS:
        return None
    try:
        from datasets.utils import logging as ds_logging
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - datasets depends on tqdm
        return None
    if not ds_logging.is_progress_bar_enabled():
        return None
    return tqdm(total=rows, desc=desc or "Packing dataset", unit=" packed rows", leave=False)


def _pack_one(
    dataset: Any, seq_length: int, strategy: str, map_kwargs: dict[str, Any], window: Any
) -> tuple[Any, PackingReport | None]:
    from datasets import Dataset
    from datasets.fingerprint import Hasher
    from datasets.table import InMemoryTable

    fmt = _dataset_format(dataset)
    direct = isinstance(dataset, Dataset) and set(map_kwargs) <= _DIRECT_MAP_KWARGS
    if not direct:
        # IterableDataset, or map() arguments that change what map does: run the
        # same per-batch function through map(), exactly as TRL does
        out = dataset.with_format("arrow").map(
            pack_table, batched=True, fn_kwargs={"seq_length": seq_length, "strategy": strategy}, **map_kwargs
        )
        report = None
    else:
        n = len(dataset)
        if window is None:
            windows = (np.array([0], dtype=np.int64), np.array([n], dtype=np.int64))
        elif isinstance(window, str):
            windows = _trl_windows(
                n,
                map_kwargs.get("batch_size", 1000),
                map_kwargs.get("num_proc"),
                map_kwargs.get("drop_last_batch", False),
            )
        else:
            windows = _trl_windows(n, window, None, False)
        table = dataset.data.table
        rows = None
        if dataset._indices is not None:
            rows = dataset._indices.column(0).to_numpy().astype(np.int64, copy=False)
        names = list(table.column_names)
        packer = _Packed(
            [table.column(i) for i in range(table.num_columns)], names, rows, windows, seq_length, strategy
        )
        report = packer.report
        fingerprint = map_kwargs.get("new_fingerprint") or Hasher.hash(
            ("fastalign.packing.pack_dataset", dataset._fingerprint, seq_length, strategy, windows[0], windows[1])
        )
        info = dataset.info.copy()
        info.features = None
        progress = _progress(packer.total, packer.n_out, map_kwargs.get("desc"))
        try:
            if dataset.cache_files and not map_kwargs.get("keep_in_memory", False):
                # like map(): an on-disk dataset gets an on-disk result, written chunk by chunk
                path = map_kwargs.get("cache_file_name") or dataset._get_cache_file_path(fingerprint)
                tmp = f"{path}.fastalign-{os.getpid()}.tmp"
                try:
                    packer.write(tmp, _STREAM_CHUNK_TOKENS, progress)
                    os.replace(tmp, path)
                finally:
                    if os.path.exists(tmp):
                        os.remove(tmp)
                out = Dataset.from_file(path, info=info, split=dataset.split)
                out._fingerprint = fingerprint
            else:
                out = Dataset(
                    InMemoryTable(packer.table(progress)), info=info, split=dataset.split, fingerprint=fingerprint
                )
        finally:
            if progress is not None:
                progress.close()
    if strategy in {"bfd", "bfd_split"} and "columns" in fmt and fmt["columns"] is not None:
        fmt["columns"] = fmt["columns"] + ["seq_lengths"]
    return out.with_format(**fmt), report


def pack_dataset(
    dataset: Any,
    seq_length: int,
    strategy: str = "bfd",
    map_kwargs: dict[str, Any] | None = None,
    *,
    window: int | str | None = TRL_WINDOWS,
    return_report: bool = False,
) -> Any:
    """Pack a dataset's sequences into rows of at most ``seq_length`` tokens: a drop-in for
    ``trl.pack_dataset`` (TRL 1.16.0) with identical output, computed in Rust.

    Parameters
    ----------
    dataset : datasets.Dataset, DatasetDict, IterableDataset or IterableDatasetDict
        Every column must be a list column (``list`` or ``large_list``) with the same number of
        values per row in every column (``input_ids``, ``labels``, ``attention_mask``, ...).
    seq_length : int
        Tokens per packed row (>= 1).
    strategy : {"bfd", "bfd_split", "wrapped"}
        As TRL: best fit decreasing truncating overlong rows, best fit decreasing splitting them,
        or concatenate-and-cut. The bin strategies add a ``seq_lengths`` column.
    map_kwargs : dict, optional
        What TRL passes to ``dataset.map``: ``batch_size`` (default 1000) and ``num_proc`` set
        the windows; ``desc`` labels the progress bar. Other ``map`` arguments (``remove_columns``,
        ``features``, ...) make fastalign run its packer through ``dataset.map`` like TRL.
    window : "trl" (default), int or None
        ``"trl"``: TRL's windows (``map``'s batches, per ``num_proc`` shard), identical output.
        ``None``: one window, the whole dataset (better filled rows: on realistic length
        distributions fewer rows than TRL's windows, but best fit decreasing is not monotone, so
        on rare inputs one more). An int: windows of that many rows.
    return_report : bool
        Also return a :class:`PackingReport` (a dict of them for a DatasetDict; ``None`` where
        the pack ran through ``map``).

    Returns
    -------
    The packed dataset, of the same kind and format (plus ``seq_lengths`` in the format's
    columns for the bin strategies); with ``return_report``, ``(dataset, report)``.

    Raises
    ------
    InvalidArgumentError (ValueError)
        Bad ``seq_length``, unknown strategy, columns of different lengths per row, null rows.
    InvalidTypeError (TypeError)
        A column that is not a list column.

    Notes
    -----
    As ``map`` does, the result of an on-disk dataset (one with cache files) is written to a cache
    file next to them, record batch by record batch, and memory-mapped (memory holds one batch);
    an in-memory dataset, or ``map_kwargs={"keep_in_memory": True}``, gives an in-memory result.

    Examples
    --------
    >>> from datasets import Dataset
    >>> from fastalign.packing import pack_dataset
    >>> ds = Dataset.from_dict({"input_ids": [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10], [11]]})
    >>> pack_dataset(ds, seq_length=4)[:]
    {'input_ids': [[1, 2, 3, 4], [8, 9, 10, 11], [6, 7]], 'seq_lengths': [[4], [3, 1], [2]]}
    """
    _extras.require("datasets", "fastalign.packing.pack_dataset")
    from datasets import DatasetDict, IterableDatasetDict

    s = v.integer(seq_length, "seq_length", minimum=1)
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise InvalidArgumentError(f"invalid packing strategy {strategy!r}, must be one of {STRATEGIES}", "strategy")
    if map_kwargs is None:
        map_kwargs = {}
    if not isinstance(map_kwargs, dict):
        raise InvalidTypeError(f"expected a dict or None, got {type(map_kwargs).__name__}", "map_kwargs")
    if window is not None and not (isinstance(window, str) and window == TRL_WINDOWS):
        window = v.integer(window, "window", minimum=1)
    if not isinstance(return_report, (bool, np.bool_)):
        raise InvalidTypeError(f"expected a bool, got {type(return_report).__name__}", "return_report")
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        results = {k: _pack_one(d, s, strategy, map_kwargs, window) for k, d in dataset.items()}
        out = type(dataset)({k: r[0] for k, r in results.items()})
        return (out, {k: r[1] for k, r in results.items()}) if return_report else out
    from datasets import Dataset, IterableDataset

    if not isinstance(dataset, (Dataset, IterableDataset)):
        raise InvalidTypeError(
            f"expected a datasets Dataset, DatasetDict, IterableDataset or IterableDatasetDict, got "
            f"{type(dataset).__name__}",
            "dataset",
        )
    out, report = _pack_one(dataset, s, strategy, map_kwargs, window)
    return (out, report) if return_report else out


@contextlib.contextmanager
def patch_trl_sft(*, window: int | str | None = TRL_WINDOWS) -> Iterator[None]:
    """Within the ``with`` block, ``SFTTrainer``'s dataset preparation packs with fastalign.

    With the default ``window`` the prepared dataset is identical to TRL's own; ``window=None``
    packs each split globally instead.

    >>> from fastalign.packing import patch_trl_sft
    >>> with patch_trl_sft():  # doctest: +SKIP
    ...     trainer = SFTTrainer(model, args=SFTConfig(packing=True, max_length=4096), train_dataset=ds)
    """
    _extras.require("trl", "fastalign.packing.patch_trl_sft")
    import trl.trainer.sft_trainer as sft

    original = sft.pack_dataset

    def fastalign_pack_dataset(dataset: Any, seq_length: int, strategy: str = "bfd", map_kwargs: Any = None) -> Any:
        return pack_dataset(dataset, seq_length, strategy, map_kwargs, window=window)

    sft.pack_dataset = fastalign_pack_dataset
    try:
        yield
    finally:
        sft.pack_dataset = original
