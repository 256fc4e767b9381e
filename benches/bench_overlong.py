"""fastalign.overlong.completion_mask vs TRL 1.16.0's completion-mask code.

B=512 rows x T=8192 generated int64 ids (CPU tensor), one EOS id and a pad id; ~70% of the rows
stop with an EOS at a uniformly random position (pad after it), the rest run to T.

* ``test_completion_mask``: TRL's tensor ops in ``GRPOTrainer._generate_single_turn`` (isin,
  argmax of the first EOS, arange compare) -> the mask, as int32 (``.int()``). fastalign's single
  call returns the mask plus ``is_truncated``, ``lengths`` and ``num_items`` (so it does more than
  this reference); it is timed making the same int32 mask, and making the int64 mask that
  ``GRPOTrainer`` later uses as ``completion_mask`` (its default dtype).
* ``test_completion_mask_truncation``: TRL's whole path to the same outputs: the tensor ops, then
  each masked row as a Python list (``c[m].tolist()``), the lengths (``len(ids)``) and
  ``is_truncated`` (``ids[-1] not in eos_and_pad``) from those lists. The list part alone is a
  third row. (TRL also needs those lists to call reward functions, so a trainer using fastalign
  still builds them; this group only says what the truncation flags cost TRL.)
"""

from __future__ import annotations

import pytest
import torch
from _common import EOS_ID, PAD_ID, run, tag
from _reference import trl_completion_mask, trl_completion_mask_and_truncation, trl_truncation_from_lists

from fastalign.overlong import completion_mask


def _nbytes(ids: torch.Tensor, lengths: torch.Tensor, mask_itemsize: int = 8) -> int:
    # read: each row up to and including its first EOS (the kernel stops there; rows without EOS
    # are read whole); written: the (B, T) mask, lengths (int64) and is_truncated (bool).
    b, t = ids.shape
    return int(lengths.sum()) * ids.element_size() + b * t * mask_itemsize + b * 8 + b


def _size(ids):
    b, t = ids.shape
    return f"B={b} T={t:,}"


_expected: dict = {}


def _reference_outputs(ids):
    if "out" not in _expected:
        _expected["out"] = trl_completion_mask_and_truncation(ids, [EOS_ID], PAD_ID)
    return _expected["out"]


def _check(out, ids):
    mask, lengths, is_truncated = _reference_outputs(ids)
    assert torch.equal(out.mask, mask.to(out.mask.dtype))
    assert torch.equal(out.lengths, lengths)
    assert torch.equal(out.is_truncated, is_truncated)
    assert int(out.num_items) == int(mask.sum())


@pytest.mark.parametrize("impl", ["trl", "fastalign", "fastalign-int64"])
def test_completion_mask(benchmark, completion_ids, impl):
    ids = completion_ids
    benchmark.group = f"completion_mask (tensor ops) {_size(ids)}"
    if impl == "trl":
        tag(benchmark, op="completion_mask", size=_size(ids), impl="trl (isin/argmax/arange, int32 mask)",
            role="reference")
        run(benchmark, trl_completion_mask, ids, [EOS_ID], rounds=15)
    elif impl == "fastalign":
        _, lengths, _ = _reference_outputs(ids)
        tag(benchmark, op="completion_mask", size=_size(ids), impl="fastalign (int32 mask)", role="fastalign",
            target=5, nbytes=_nbytes(ids, lengths, 4), note="also returns is_truncated, lengths, num_items")
        out = run(benchmark, completion_mask, ids, EOS_ID, PAD_ID, dtype=torch.int32, rounds=40)
        _check(out, ids)
    else:
        _, lengths, _ = _reference_outputs(ids)
        tag(benchmark, op="completion_mask", size=_size(ids), impl="fastalign (int64 mask, the default)",
            role="other", nbytes=_nbytes(ids, lengths, 8))
        out = run(benchmark, completion_mask, ids, EOS_ID, PAD_ID, rounds=40)
        _check(out, ids)


@pytest.mark.parametrize("impl", ["trl", "trl-list-part", "fastalign"])
def test_completion_mask_truncation(benchmark, completion_ids, impl):
    ids = completion_ids
    benchmark.group = f"completion_mask + lengths + is_truncated {_size(ids)}"
    op = "completion_mask +lengths +is_truncated"
    if impl == "trl":
        tag(benchmark, op=op, size=_size(ids), impl="trl (tensor ops + lists)", role="reference")
        run(benchmark, trl_completion_mask_and_truncation, ids, [EOS_ID], PAD_ID, rounds=8)
    elif impl == "trl-list-part":
        mask = trl_completion_mask(ids, [EOS_ID])
        tag(benchmark, op=op, size=_size(ids), impl="trl list part only (tolist, len, ids[-1])", role="other",
            part_of_reference=True)
        run(benchmark, trl_truncation_from_lists, ids, mask, [EOS_ID, PAD_ID], rounds=8)
    else:
        _, lengths, _ = _reference_outputs(ids)
        tag(benchmark, op=op, size=_size(ids), impl="fastalign", role="fastalign",
            nbytes=_nbytes(ids, lengths))
        out = run(benchmark, completion_mask, ids, EOS_ID, PAD_ID, rounds=40)
        _check(out, ids)
