"""fastalign.overlong.completion_mask against TRL 1.16.0.

* The real trainer: ``GRPOTrainer._generate_single_turn`` (transformers ``generate`` path, with
  the model's ``generate`` replaced by one that returns chosen ids) followed by
  ``_generate_and_score_completions``, which builds ``completion_mask``, applies
  ``mask_truncated_completions`` and counts ``num_items_in_batch``.
* ``tests/reference/masks.py``, the mask and the truncation rule written in plain torch in the
  project's own form (what the benchmarks time as TRL's mask step), on many random batches
  (hypothesis); the real-trainer test below proves that reference equal to TRL itself.
All outputs are integers or booleans, so every comparison is exact.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from reference.masks import completion_outputs, kept_rows, stop_mask

from fastalign._torch_backend import overlong as _torch_impl
from fastalign.overlong import completion_mask

EOS, END, PAD = 1, 3, 0


def _trl_mask(ids: torch.Tensor, eos_ids: list[int], pad: int, mask_truncated: bool):
    """TRL 1.16's mask and ``is_truncated`` rule (``tests/reference/masks.py``, proven equal to
    the trainer below) + ``mask_truncated_completions``."""
    mask, lengths, truncated = completion_outputs(ids, eos_ids, pad)
    full = mask.long()
    if mask_truncated:
        full = full * (~truncated).unsqueeze(1).long()
    return full, truncated, lengths, int(full.sum())


@st.composite
def batches(draw):
    b = draw(st.integers(1, 12))
    t = draw(st.integers(1, 70))
    vocab = draw(st.integers(2, 8))
    ids = draw(st.lists(st.integers(0, vocab), min_size=b * t, max_size=b * t))
    eos = draw(st.lists(st.integers(0, vocab), min_size=1, max_size=3, unique=True))
    pad = draw(st.integers(0, vocab))
    dtype = draw(st.sampled_from([torch.int32, torch.int64]))
    return torch.tensor(ids, dtype=dtype).view(b, t), eos, pad


@given(batches(), st.booleans())
def test_matches_trl_lines(batch, mask_truncated):
    ids, eos, pad = batch
    want = _trl_mask(ids.long(), eos, pad, mask_truncated)
    for x in (ids, ids.numpy()):
        got = completion_mask(x, eos if len(eos) > 1 else eos[0], pad, mask_truncated_completions=mask_truncated)
        np.testing.assert_array_equal(np.asarray(got.mask), want[0].numpy())
        np.testing.assert_array_equal(np.asarray(got.is_truncated), want[1].numpy())
        np.testing.assert_array_equal(np.asarray(got.lengths), want[2].numpy())
        assert int(got.num_items) == want[3]
    # the plain-torch path (what CUDA runs) gives the same
    t = _torch_impl.completion_mask(ids, eos, pad, mask_truncated)
    assert torch.equal(t.mask, want[0]) and torch.equal(t.is_truncated, want[1])
    assert torch.equal(t.lengths, want[2]) and int(t.num_items) == want[3]


@given(batches(), st.booleans(), st.sampled_from(["int32", "bool"]))
def test_other_mask_dtypes(batch, mask_truncated, kind):
    ids, eos, pad = batch
    want = _trl_mask(ids.long(), eos, pad, mask_truncated)
    tdtype = getattr(torch, kind)
    got = completion_mask(ids, eos, pad, mask_truncated_completions=mask_truncated, dtype=tdtype)
    assert got.mask.dtype == tdtype and torch.equal(got.mask, want[0].to(tdtype))
    got_np = completion_mask(ids.numpy(), eos, pad, mask_truncated_completions=mask_truncated, dtype=kind)
    assert got_np.mask.dtype == np.dtype(kind) and int(got_np.num_items) == want[3]
    t = _torch_impl.completion_mask(ids, eos, pad, mask_truncated, kind)
    assert t.mask.dtype == tdtype and torch.equal(t.mask, want[0].to(tdtype)) and int(t.num_items) == want[3]


def test_output_kinds_and_dtypes():
    ids = torch.tensor([[5, EOS, PAD], [5, 6, 7]], dtype=torch.int32)
    out = completion_mask(ids, EOS, PAD)
    assert isinstance(out.mask, torch.Tensor) and out.mask.dtype == torch.int64
    assert out.is_truncated.dtype == torch.bool and out.lengths.dtype == torch.int64
    assert isinstance(out.num_items, torch.Tensor) and out.num_items.dim() == 0
    out = completion_mask(ids.numpy(), [EOS, END], PAD)
    assert isinstance(out.mask, np.ndarray) and out.mask.dtype == np.int64
    assert isinstance(out.num_items, int)


# ---------------------------------------------------------------------------------------------
# The real trainer
# ---------------------------------------------------------------------------------------------


def _trainer(mask_truncated: bool, eos_ids):
    from fastalign.testing import tiny_grpo_trainer, tiny_model, tiny_tokenizer

    model = tiny_model(tiny_tokenizer())
    model.generation_config.eos_token_id = eos_ids

    def zero_reward(completions, **kw):
        return [0.0] * len(completions)

    return tiny_grpo_trainer(
        zero_reward,
        model=model,
        mask_truncated_completions=mask_truncated,
        num_generations=4,
        per_device_train_batch_size=8,
    )


def _run_trainer(trainer, completion_ids: torch.Tensor, generated: list | None = None):
    """Make ``model.generate`` return ``completion_ids`` after the prompt and run TRL; the id
    lists ``_generate_single_turn`` returns are appended to ``generated``."""
    model = trainer.model
    single_turn = trainer._generate_single_turn

    def fake_generate(input_ids, **kwargs):
        return torch.cat([input_ids, completion_ids.to(input_ids.dtype)], dim=1)

    def recording_single_turn(*args, **kwargs):
        out = single_turn(*args, **kwargs)
        if generated is not None:
            generated.append(out[0])
        return out

    model.generate = fake_generate
    trainer._generate_single_turn = recording_single_turn
    try:
        trainer._metrics["train"].clear()
        inputs = [{"prompt": "what is 1 + 1 ?"} for _ in range(completion_ids.shape[0])]
        return trainer._generate_and_score_completions(inputs)
    finally:
        del model.generate
        del trainer._generate_single_turn


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("mask_truncated", [False, True])
@pytest.mark.parametrize("eos_ids", [[EOS], [EOS, END]])
def test_matches_grpo_trainer(mask_truncated, eos_ids):
    trainer = _trainer(mask_truncated, eos_ids)
    rng = np.random.default_rng(0)
    for _ in range(5):
        t = int(rng.integers(1, 20))
        ids = rng.integers(4, 12, size=(8, t))
        for row in range(8):
            kind = rng.integers(0, 4)
            if kind == 0:  # EOS somewhere, pad after
                p = rng.integers(0, t)
                ids[row, p] = eos_ids[rng.integers(0, len(eos_ids))]
                ids[row, p + 1 :] = PAD
            elif kind == 1 and t > 1:  # two EOS: only the first counts
                ids[row, 0] = EOS
                ids[row, -1] = eos_ids[-1]
            elif kind == 2:  # no EOS but ends in the pad token: not truncated (TRL's rule)
                ids[row, -1] = PAD
            # kind 3: no EOS at all: truncated
        ids_t = torch.tensor(ids)
        generated: list = []
        out = _run_trainer(trainer, ids_t, generated)
        ours = completion_mask(ids_t, eos_ids, PAD, mask_truncated_completions=mask_truncated)
        trl_mask = out["completion_mask"]
        width = trl_mask.shape[1]  # TRL pads to the longest kept completion
        assert torch.equal(ours.mask[:, :width], trl_mask)
        # the reference (what the benchmarks time as TRL's mask step) is the trainer's too
        lines, lines_truncated, lines_lengths, lines_items = _trl_mask(ids_t, eos_ids, PAD, mask_truncated)
        assert torch.equal(lines[:, :width], trl_mask) and lines_items == int(out["num_items_in_batch"])
        assert kept_rows(ids_t, stop_mask(ids_t, eos_ids)) == generated[-1]
        assert lines_truncated.float().mean().item() == trainer._metrics["train"]["completions/clipped_ratio"][-1]
        assert lines_lengths.float().mean().item() == trainer._metrics["train"]["completions/mean_length"][-1]
        assert int(ours.mask[:, width:].sum()) == 0
        assert int(ours.num_items) == int(out["num_items_in_batch"])
        clipped = trainer._metrics["train"]["completions/clipped_ratio"][-1]
        assert ours.is_truncated.float().mean().item() == pytest.approx(clipped, abs=0)
        assert ours.lengths.float().mean().item() == pytest.approx(
            trainer._metrics["train"]["completions/mean_length"][-1], rel=1e-6
        )
