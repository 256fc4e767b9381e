"""``pack_dataset``, a drop-in for ``trl.pack_dataset`` on ``datasets`` datasets, and
``patch_trl_sft``, which makes ``SFTTrainer`` use it.

:func:`pack_dataset` returns, for the same arguments, the same rows as TRL 1.16.0's
``pack_dataset`` token for token: the same bins in the same order (TRL's best-fit-decreasing
tie-breaking), the same ``seq_lengths`` column, the same Arrow types and the same format. TRL
packs each ``datasets.map`` batch (1,000 rows unless ``map_kwargs`` says otherwise; with
``num_proc=k`` the dataset is first cut into ``k`` contiguous shards) on its own; fastalign
reproduces those windows by default, and ``window=None`` packs the whole dataset at once, which
fills bins better. ``datasets`` and TRL are imported when called, not with this module.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import _extras
from .. import _validate as v
from .arrow import STRATEGIES, PackedTable, PackingReport, pack_table

__all__ = ["TRL_WINDOWS", "pack_dataset", "patch_trl_sft"]

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
_PROGRESS_MIN_TOKENS = 50_000_000
_STREAM_CHUNK_TOKENS = 1 << 24  # tokens per record batch when writing a cache file


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
        packer = PackedTable(
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
    strategy = v.packing_strategy(strategy, STRATEGIES)
    map_kwargs = v.map_kwargs(map_kwargs)
    if window is not None and not (isinstance(window, str) and window == TRL_WINDOWS):
        window = v.integer(window, "window", minimum=1)
    return_report = v.boolean(return_report, "return_report")
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        results = {k: _pack_one(d, s, strategy, map_kwargs, window) for k, d in dataset.items()}
        out = type(dataset)({k: r[0] for k, r in results.items()})
        return (out, {k: r[1] for k, r in results.items()}) if return_report else out
    v.dataset(dataset)
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
