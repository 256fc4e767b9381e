"""fastalign.overlong.completion_mask vs TRL 1.16.0's completion-mask step.

B=512 rows x T=8192 generated int64 ids (CPU tensor), one EOS id and a pad id; ~70% of the rows
stop with an EOS at a uniformly random position (pad after it), the rest run to T (the
``completion_ids`` fixture: ``fastalign._bench.inputs.completion_ids`` at
``fastalign._bench.cases.MASK_SUITE_B`` x ``MASK_SUITE_T``).

TRL makes the mask inline in ``GRPOTrainer._generate_single_turn``, so the reference is
``tests/reference/masks.py`` (plain torch, the project's own code: which positions hold a stop
token, the first of them per row, a comparison with the column index; the kept ids of each row
as a list, their lengths and last ids), proven equal to the trainer by
``tests/parity/test_overlong.py::test_matches_grpo_trainer``.

* ``test_completion_mask``: the tensor step -> the mask, as int32 (the dtype TRL's step makes).
  fastalign's single call returns the mask plus ``is_truncated``, ``lengths`` and ``num_items``
  (so it does more than this reference); it is timed making the same int32 mask, and making the
  int64 mask that ``GRPOTrainer`` later uses as ``completion_mask`` (its default dtype).
* ``test_completion_mask_truncation``: the whole path to the same outputs: the tensor step, then
  each masked row as a Python list, the lengths and ``is_truncated`` from those lists. The list
  part alone is a row; TRL's own method, ``GRPOTrainer._generate_single_turn`` with the model's
  ``generate`` returning these ids (prompt padding, the mask step, the lists), is another. (TRL
  also needs those lists to call reward functions, so a trainer using fastalign still builds
  them; this group only says what the truncation flags cost TRL.)
"""

from __future__ import annotations

import pytest
import torch
from _common import run, tag
from reference.masks import completion_outputs, kept_rows, lengths_and_truncation, stop_mask

from fastalign._bench.inputs import EOS_ID, PAD_ID
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
        _expected["out"] = completion_outputs(ids, [EOS_ID], PAD_ID)
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
        tag(
            benchmark,
            op="completion_mask",
            size=_size(ids),
            impl="trl mask step (plain-torch reference, = _generate_single_turn; int32 mask)",
            role="reference",
        )
        run(benchmark, stop_mask, ids, [EOS_ID], rounds=15)
    elif impl == "fastalign":
        _, lengths, _ = _reference_outputs(ids)
        tag(
            benchmark,
            op="completion_mask",
            size=_size(ids),
            impl="fastalign (int32 mask)",
            role="fastalign",
            target=5,
            nbytes=_nbytes(ids, lengths, 4),
            note="also returns is_truncated, lengths, num_items",
        )
        out = run(benchmark, completion_mask, ids, EOS_ID, PAD_ID, dtype=torch.int32, rounds=40)
        _check(out, ids)
    else:
        _, lengths, _ = _reference_outputs(ids)
        tag(
            benchmark,
            op="completion_mask",
            size=_size(ids),
            impl="fastalign (int64 mask, the default)",
            role="other",
            nbytes=_nbytes(ids, lengths, 8),
        )
        out = run(benchmark, completion_mask, ids, EOS_ID, PAD_ID, rounds=40)
        _check(out, ids)


def _list_part(ids, mask, ends):
    return lengths_and_truncation(kept_rows(ids, mask), ends)


def _single_turn(ids):
    """TRL's ``_generate_single_turn`` on a tiny trainer whose model's ``generate`` returns the
    prompts followed by ``ids`` (built once: not timed)."""
    from fastalign.testing import tiny_grpo_trainer

    def zero(completions, **kwargs):
        return [0.0] * len(completions)

    trainer = tiny_grpo_trainer([zero])
    trainer.eos_token_ids = [EOS_ID]
    prompts = [[4, 5]] * ids.shape[0]
    generated = torch.cat([torch.tensor(prompts), ids], dim=1)
    trainer.model.generate = lambda **kwargs: generated
    return lambda: trainer._generate_single_turn(prompts, None, {}, 1)[0]


@pytest.mark.parametrize("impl", ["trl", "trl-list-part", "trl-method", "fastalign"])
def test_completion_mask_truncation(benchmark, completion_ids, impl):
    ids = completion_ids
    benchmark.group = f"completion_mask + lengths + is_truncated {_size(ids)}"
    op = "completion_mask +lengths +is_truncated"
    if impl == "trl":
        tag(
            benchmark, op=op, size=_size(ids), impl="trl (plain-torch reference: tensor step + lists)", role="reference"
        )
        run(benchmark, completion_outputs, ids, [EOS_ID], PAD_ID, rounds=8)
    elif impl == "trl-list-part":
        mask = stop_mask(ids, [EOS_ID])
        tag(
            benchmark,
            op=op,
            size=_size(ids),
            impl="trl list part only (lists, len, last id)",
            role="other",
            part_of_reference=True,
        )
        run(benchmark, _list_part, ids, mask, [EOS_ID, PAD_ID], rounds=8)
    elif impl == "trl-method":
        step = _single_turn(ids)
        assert step() == kept_rows(ids, stop_mask(ids, [EOS_ID]))
        tag(
            benchmark,
            op=op,
            size=_size(ids),
            impl="trl GRPOTrainer._generate_single_turn (generate injected)",
            role="other",
            note="TRL's own method: prompt padding, the mask step and the lists (no lengths/flags)",
        )
        run(benchmark, step, rounds=8)
    else:
        _, lengths, _ = _reference_outputs(ids)
        tag(benchmark, op=op, size=_size(ids), impl="fastalign", role="fastalign", nbytes=_nbytes(ids, lengths))
        out = run(benchmark, completion_mask, ids, EOS_ID, PAD_ID, rounds=40)
        _check(out, ids)
