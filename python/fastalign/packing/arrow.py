"""Packing of Arrow tables in Rust, read in place: the per-window work of ``pack_dataset``.

The list columns' offsets and values buffers are read in place (``pa.Array.buffers()`` viewed
through ``np.frombuffer``, any chunking and slice offset, any fixed-width value type of 1, 2, 4
or 8 bytes); Rust computes the plan (which piece of which row goes in which packed row) and then
copies each column's values into one fresh buffer, with the GIL released. The packed table is
built from those buffers (``pa.ListArray.from_arrays``) without a Python object per row or per
token. pyarrow is imported when a table is packed, not with this module.

The packer checks the columns it reads (list types, null rows, equal lengths per row): those are
checks of the data, made where it is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .. import _native
from .. import _validate as v
from ..errors import InvalidArgumentError, InvalidTypeError

__all__ = ["PackedTable", "PackingReport", "pack_table"]

STRATEGIES = ("bfd", "bfd_split", "wrapped")
_INT32_MAX = 2**31 - 1
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_GATHER: dict[int, Callable[..., Any]] = {
    1: _native.gather_u8,
    2: _native.gather_u16,
    4: _native.gather_u32,
    8: _native.gather_u64,
}


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


class PackedTable:
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
                _GATHER[c.width]((c.chunks, c.bases, c.starts), (rows, skips, lens), n, out)
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
    return PackedTable(list(examples.columns), list(examples.column_names), None, windows, s, strategy).table()
