"""Completion masks, truncation flags and overlong filtering, as GRPOTrainer builds them.

TRL 1.16.0 keeps each generated row up to and including its first EOS token, calls a
completion *truncated* when what it kept ends in neither an EOS nor the pad token, and with
``mask_truncated_completions=True`` (DAPO's overlong filtering) zeroes the whole mask row of
truncated completions, which also removes their tokens from ``num_items_in_batch``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import _native
from . import _validate as v
from ._results import CompletionMask

__all__ = ["CompletionMask", "completion_mask"]


def completion_mask(
    completion_ids: Any,
    eos_token_id: int | Sequence[int],
    pad_token_id: int,
    *,
    mask_truncated_completions: bool = False,
    dtype: Any = None,
) -> CompletionMask:
    """The completion mask of right-padded generated ids, exactly as ``GRPOTrainer`` makes it.

    Parameters
    ----------
    completion_ids : (B, T), int32 or int64
        Generated token ids, right-padded (as ``model.generate`` returns them after the prompt).
    eos_token_id : int or sequence of int
        The EOS id(s) (``generation_config.eos_token_id`` may list several).
    pad_token_id : int
        The pad id; a row without EOS whose last token is the pad is not truncated (TRL's rule).
    mask_truncated_completions : bool
        Zero the mask rows of truncated completions (overlong filtering).
    dtype : int64 (default), int32 or bool, numpy or torch dtype
        The mask's dtype: int64 is TRL's ``completion_mask``; ``_generate_single_turn`` makes an
        int32 one; bool halves the memory again.

    Returns
    -------
    CompletionMask
        ``mask``, ``is_truncated``, ``lengths`` and ``num_items``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastalign.overlong import completion_mask
    >>> ids = np.array([[5, 2, 0], [5, 6, 7]])
    >>> out = completion_mask(ids, eos_token_id=2, pad_token_id=0)
    >>> out.mask.tolist(), out.is_truncated.tolist()
    ([[1, 1, 0], [1, 1, 1]], [False, True])
    """
    eos = v.token_ids(eos_token_id, "eos_token_id")
    pad = v.integer(pad_token_id, "pad_token_id")
    mask_truncated = v.boolean(mask_truncated_completions, "mask_truncated_completions")
    kind = v.mask_dtype(dtype)
    if v.on_accelerator(completion_ids):
        from ._torch_backend import overlong as torch_path

        ids = v.tensor(completion_ids, "completion_ids", v.INT, (2,))
        v.completion_ids_shape(tuple(ids.shape))
        return torch_path.completion_mask(ids, eos, pad, mask_truncated, kind)
    arr = v.array(completion_ids, "completion_ids", v.INT, (2,))
    v.completion_ids_shape(arr.shape)
    mask, truncated, lengths, num_items = _KERNELS[(arr.dtype == np.int32, kind)](arr, eos, pad, mask_truncated)
    like_torch = v.is_torch(completion_ids)
    if like_torch:
        num_items = v._torch().tensor(num_items, dtype=v._torch().int64)
    return CompletionMask(
        v.wrap(mask, like_torch), v.wrap(truncated, like_torch), v.wrap(lengths, like_torch), num_items
    )


_KERNELS: dict[tuple[bool, str], Callable[..., Any]] = {
    (True, "int64"): _native.completion_mask_i32,
    (False, "int64"): _native.completion_mask_i64,
    (True, "int32"): _native.completion_mask_i32_to_i32,
    (False, "int32"): _native.completion_mask_i64_to_i32,
    (True, "bool"): _native.completion_mask_i32_to_bool,
    (False, "bool"): _native.completion_mask_i64_to_bool,
}
