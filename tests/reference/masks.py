"""The completion mask and truncation flags of generated ids, as TRL 1.16's GRPOTrainer defines
them, in plain torch and Python.

* mask: 1 up to and including each row's first stop token (any of ``stop_ids``), 0 after it; a
  row without a stop token is all ones. The mask is int32 (the dtype the trainer's mask step
  makes);
* kept rows: each row's ids where the mask is 1, as Python lists (what reward functions get);
* length: the number of kept ids; truncated: the last kept id is neither a stop token nor the
  pad token.

The mask is made the way the trainer makes it (which stop positions, the first of them per row,
a comparison with the column index) and the lists by indexing each row with its boolean mask,
so that timing these functions times the trainer's own amount of work. Proven equal to
``GRPOTrainer._generate_single_turn`` and ``_generate`` in ``test_overlong.py``.
"""

from __future__ import annotations

import torch


def stop_mask(ids: torch.Tensor, stop_ids: list[int]) -> torch.Tensor:
    """(B, T) int32: 1 through each row's first stop token, 0 after; all ones without one."""
    width = ids.shape[1]
    is_stop = torch.isin(ids, torch.tensor(stop_ids, device=ids.device))
    has_stop = is_stop.any(dim=1)
    first_stop = torch.where(has_stop, is_stop.int().argmax(dim=1), width)
    columns = torch.arange(width, device=ids.device)
    return (columns[None, :] <= first_stop[:, None]).int()


def kept_rows(ids: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    """Each row's ids under its mask, as a Python list."""
    ids, keep = ids.cpu(), mask.cpu().bool()
    return [ids[i][keep[i]].tolist() for i in range(ids.shape[0])]


def lengths_and_truncation(rows: list[list[int]], ends: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(int64 lengths, bool truncated) of the kept rows; ``ends``: the stop ids and the pad id."""
    ends = set(ends)
    lengths = torch.tensor([len(row) for row in rows], dtype=torch.int64)
    truncated = torch.tensor([row[-1] not in ends for row in rows], dtype=torch.bool)
    return lengths, truncated


def completion_outputs(ids: torch.Tensor, stop_ids: list[int], pad_id: int):
    """The mask, the lengths and the truncation flags (what ``fastalign.overlong.completion_mask``
    returns), the trainer's way: the tensor mask, then the lists."""
    mask = stop_mask(ids, stop_ids)
    lengths, truncated = lengths_and_truncation(kept_rows(ids, mask), [*stop_ids, pad_id])
    return mask, lengths, truncated
