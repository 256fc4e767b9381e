"""The bad-input matrix: every public function of fastalign x every kind of bad input.

Rows are the public functions (everything exported by ``fastalign.advantages``, ``overlong``,
``rewards``, ``ratios``, ``losses`` and ``packing``; the torch custom ops of ``fastalign.ops``
take already-validated arguments and are reached through the ``ratios``/``losses`` wrappers).
Columns are the categories in :data:`CATEGORIES`. Each cell holds one or more cases:

* ``raises``: the call raises the expected :class:`~fastalign.errors.FastalignError` subclass
  (``InvalidTypeError`` is a ``TypeError``, ``InvalidArgumentError`` a ``ValueError``) whose
  ``argument`` names the offending parameter and whose message starts with it;
* ``handles``: the input is legal (TRL accepts it, e.g. NaN rewards of an unscorable completion)
  and the result is checked against the plain-torch references proven equal to TRL's
  trainers (``tests/reference``) or the plain-torch path;

and in both cases no input was modified. A cell that does not apply to a function is listed
with the reason (``test_matrix_is_complete`` fails when a function or a cell is missing), and
is reported as a skip. Cells already covered by ``tests/robustness/test_bad_input.py`` reuse its cases by
id instead of restating them. A "meta" tensor stands in for a CUDA tensor: functions with a
Rust-only path must refuse it; functions with a torch path must still validate it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from helpers.bad_input import CASES as BAD_INPUT_CASES
from helpers.bad_input import same, snapshot

import fastalign.advantages as adv_mod
import fastalign.losses as losses_mod
import fastalign.overlong as overlong_mod
import fastalign.packing as packing_mod
import fastalign.ratios as ratios_mod
import fastalign.rewards as rewards_mod
from fastalign import _torch_backend as tl
from fastalign._torch_backend import advantages as _torch_impl
from fastalign.advantages import grpo_advantages, rloo_advantages, top_k_per_group, zero_variance_groups
from fastalign.errors import FastalignError, InvalidArgumentError, InvalidTypeError
from fastalign.losses import cpo_loss, dft_loss, dpo_loss, grpo_loss, wpo_weights
from fastalign.overlong import completion_mask
from fastalign.packing import (
    balance_partitions,
    bfd,
    cu_seqlens,
    first_fit_decreasing,
    pack_dataset,
    pack_table,
    position_ids,
)
from fastalign.ratios import (
    importance_weights,
    masked_max,
    masked_mean,
    masked_reduce,
    masked_sum,
    sequence_log_ratio,
    vllm_is_ratio,
)
from fastalign.rewards import soft_overlong, soft_overlong_penalty

T, V = InvalidTypeError, InvalidArgumentError
META = "meta"

CATEGORIES = (
    "dtype",  # wrong dtype
    "device",  # wrong / mixed device (meta stands in for CUDA)
    "noncontig",  # non-contiguous memory
    "rank",  # wrong number of dimensions
    "empty",  # zero-size inputs
    "mismatch",  # lengths or shapes that do not agree between arguments
    "nonfinite",  # NaN / inf: refused, or handled as TRL does
    "size",  # negative or oversized sizes and counts
    "pytype",  # wrong Python types: str, None, list of str, ...
)

MODULES = (adv_mod, overlong_mod, rewards_mod, ratios_mod, losses_mod, packing_mod)


@dataclass
class Case:
    label: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    exc: type | None = None  # None: the call must succeed and ``check`` its result
    argument: str | None = None
    check: Callable[[Any], None] | None = None
    xfail: str | None = None


MATRIX: dict[str, dict[str, list[Case] | str]] = {}
_BAD_INPUT = {p.id: p for p in BAD_INPUT_CASES}


def _cell(func: str, cat: str) -> list[Case]:
    assert cat in CATEGORIES, cat
    row = MATRIX.setdefault(func, {})
    cell = row.setdefault(cat, [])
    assert isinstance(cell, list), f"{func}/{cat} is marked N/A and has cases"
    return cell


def raises(func, cat, label, fn, args, kwargs, exc, argument, xfail=None):
    _cell(func, cat).append(Case(label, fn, tuple(args), dict(kwargs), exc, argument, xfail=xfail))


def handles(func, cat, label, fn, args, kwargs, check, xfail=None):
    _cell(func, cat).append(Case(label, fn, tuple(args), dict(kwargs), None, None, check, xfail))


def reuse(func, cat, *ids):
    """Cases of tests/robustness/test_bad_input.py, by id."""
    for i in ids:
        fn, args, kwargs, exc, argument = _BAD_INPUT[i].values
        _cell(func, cat).append(Case(f"bad_input[{i}]", fn, tuple(args), dict(kwargs), exc, argument))


def na(func, cats, reason):
    row = MATRIX.setdefault(func, {})
    for cat in cats.split():
        assert cat in CATEGORIES and cat not in row, (func, cat)
        row[cat] = reason


# --------------------------------------------------------------------------------------------
# inputs (small; every case gets its own copy where it could be modified)

rng = np.random.default_rng(0)
R = rng.random((8, 2)).astype(np.float32)
R_T = torch.from_numpy(R.copy())
S = rng.random(8).astype(np.float32)
IDS = rng.integers(0, 5, size=(4, 6)).astype(np.int64)
LENS = np.array([3, 9, 12, 0, 5], dtype=np.int64)

g = torch.Generator().manual_seed(0)
B, L = 3, 5
LP = -torch.rand(B, L, generator=g, dtype=torch.float32)
OLD = -torch.rand(B, L, generator=g, dtype=torch.float32)
MASK = torch.rand(B, L, generator=g) > 0.3
MASK[0] = True
ADV = torch.randn(B, generator=g)
PLP = -torch.rand(7, generator=g)  # packed (N,) tokens
POLD = -torch.rand(7, generator=g)
PMASK = torch.ones(7, dtype=torch.bool)
CU = torch.tensor([0, 3, 3, 7], dtype=torch.int32)
C1, C2, C3, C4 = (-torch.rand(4, generator=g) for _ in range(4))


def _meta(x: torch.Tensor) -> torch.Tensor:
    return x.to(META)


def _with(x: torch.Tensor, index, value) -> torch.Tensor:
    y = x.clone()
    y[index] = value
    return y


def _assert_close(a, b, what=""):
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=what)


# --------------------------------------------------------------------------------------------
# fastalign.advantages


def _reference():
    """The plain-torch advantage reference (tests/reference, proven equal to TRL's trainers),
    imported on first use: it imports trl, which takes seconds."""
    from reference import advantages

    return advantages


def _trl_masked_mean(x, mask):  # the masked mean GRPOTrainer._compute_loss uses (count clamped to >= 1)
    from reference.policy_loss import sequence_mean

    return sequence_mean(x, mask)


def _trl_grpo(r: np.ndarray, g_: int):
    return _reference().grpo(torch.from_numpy(r.copy()), torch.ones(r.shape[1]), g_, metrics=False).advantages


def _trl_rloo(r: np.ndarray, g_: int):
    return _reference().rloo(torch.from_numpy(r.copy()), torch.ones(r.shape[1]), g_).advantages


R_NAN = R.copy()
R_NAN[0] = np.nan  # an unscorable completion (every reward function returned None)
R_NAN[3, 1] = np.nan  # one function returned None
R_INF = R.copy()
R_INF[5, 0] = np.inf

for name, fn in (("grpo_advantages", grpo_advantages), ("rloo_advantages", rloo_advantages),
                 ("zero_variance_groups", zero_variance_groups)):  # fmt: skip
    p = {"grpo_advantages": "grpo", "rloo_advantages": "rloo", "zero_variance_groups": "zvg"}[name]
    reuse(name, "dtype", f"{p}-int-dtype", f"{p}-f16-dtype", f"{p}-bf16-tensor", f"{p}-byteorder")
    raises(name, "dtype", "bool", fn, (np.ones(4, np.bool_), 2), {}, T, "rewards")
    raises(name, "device", "meta-int", fn, (torch.ones(4, 2, dtype=torch.int64, device=META), 2), {}, T, "rewards")
    raises(name, "device", "meta-noncontig", fn, (torch.ones(2, 4, device=META).t(), 2), {}, V, "rewards")
    raises(name, "device", "meta-not-dividing", fn, (torch.ones(6, 2, device=META), 4), {}, V, "num_generations")
    raises(name, "device", "meta-weights-len", fn, (torch.ones(8, 2, device=META), 2),
           {"reward_weights": [1.0, 2.0, 3.0]}, V, "reward_weights")  # fmt: skip
    reuse(name, "noncontig", f"{p}-noncontig-np", f"{p}-noncontig-torch", f"{p}-fortran")
    reuse(name, "rank", f"{p}-3d", f"{p}-0d")
    reuse(name, "empty", f"{p}-empty", f"{p}-empty-cols")
    reuse(name, "mismatch", f"{p}-weights-len")
    raises(name, "mismatch", "weights-2d", fn, (R, 2), {"reward_weights": [[1.0, 1.0]]}, V, "reward_weights")
    reuse(name, "nonfinite", f"{p}-weights-nan")
    raises(name, "nonfinite", "weights-inf", fn, (R, 2), {"reward_weights": [1.0, -math.inf]}, V, "reward_weights")
    reuse(name, "size", f"{p}-g0", f"{p}-g-negative", f"{p}-not-dividing")
    raises(name, "size", "g-above-n", fn, (R, 16), {}, V, "num_generations")
    raises(name, "size", "g-huge", fn, (R, 2**70), {}, V, "num_generations")
    reuse(name, "pytype", f"{p}-list", f"{p}-g-float", f"{p}-g-bool", f"{p}-weights-str")
    raises(name, "pytype", "rewards-none", fn, (None, 2), {}, T, "rewards")
    raises(name, "pytype", "rewards-str", fn, ("1.0", 2), {}, T, "rewards")
    raises(name, "pytype", "g-str", fn, (R, "2"), {}, T, "num_generations")
    raises(name, "pytype", "g-none", fn, (R, None), {}, T, "num_generations")

for name, ref in (("grpo_advantages", _trl_grpo), ("rloo_advantages", _trl_rloo)):
    fn = grpo_advantages if name == "grpo_advantages" else rloo_advantages
    for label, r in (("nan", R_NAN), ("inf", R_INF)):

        def check(out, r=r, ref=ref, label=label):
            _assert_close(out.advantages, ref(r, 2), f"{label} rewards vs TRL")

        handles(name, "nonfinite", f"{label}-rewards-as-trl", fn, (r, 2), {"metrics": False}, check)
    reuse(name, "nonfinite", f"{name[:4]}-eps-nan")
reuse("rloo_advantages", "dtype", "rloo-kl-dtype")
reuse("rloo_advantages", "device", "rloo-kl-device")
raises("rloo_advantages", "device", "meta-rewards-cpu-kl", rloo_advantages, (torch.ones(8, 2, device=META), 2),
       {"beta": 0.1, "kl": torch.ones(8)}, T, "kl")  # fmt: skip
reuse("rloo_advantages", "mismatch", "rloo-kl-len", "rloo-clip-order")
reuse("rloo_advantages", "size", "rloo-clip-shape")
reuse("rloo_advantages", "nonfinite", "rloo-beta-inf")
raises("rloo_advantages", "nonfinite", "clip-nan", rloo_advantages, (R, 2), {"reward_clip_range": (math.nan, 1.0)}, V,
       "reward_clip_range")  # fmt: skip
raises("rloo_advantages", "pytype", "kl-list", rloo_advantages, (R, 2), {"beta": 0.1, "kl": [0.0] * 8}, T, "kl")
reuse("rloo_advantages", "pytype", "rloo-normalize-type")
reuse("grpo_advantages", "pytype", "grpo-scale-type", "grpo-scale-unknown", "grpo-metrics-type")
reuse("zero_variance_groups", "nonfinite", "zvg-rtol-nan")
reuse("zero_variance_groups", "size", "zvg-atol-negative")
for label, r in (("nan", R_NAN), ("inf", R_INF)):

    def _zvg_check(out, r=r):
        expect = _torch_impl.zero_variance_groups(torch.from_numpy(r.copy()), np.ones(2, np.float32), 2, 1e-6, 1e-5)
        assert out.dtype == np.bool_ and out.tolist() == expect.tolist()

    handles("zero_variance_groups", "nonfinite", f"{label}-rewards", zero_variance_groups, (r, 2), {}, _zvg_check)

# top_k_per_group(scores (N,), num_generations, k, keep=...)
F = "top_k_per_group"
raises(F, "dtype", "int", top_k_per_group, (np.arange(8), 4, 2), {}, T, "scores")
raises(F, "dtype", "f16", top_k_per_group, (S.astype(np.float16), 4, 2), {}, T, "scores")
raises(F, "dtype", "bf16-tensor", top_k_per_group, (torch.ones(8, dtype=torch.bfloat16), 4, 2), {}, T, "scores")
raises(F, "device", "meta-int", top_k_per_group, (torch.ones(8, dtype=torch.int64, device=META), 4, 2), {}, T, "scores")
raises(F, "device", "meta-not-dividing", top_k_per_group, (torch.ones(6, device=META), 4, 2), {}, V, "num_generations")
raises(F, "noncontig", "np", top_k_per_group, (np.ones(16, np.float32)[::2], 4, 2), {}, V, "scores")
raises(F, "noncontig", "torch", top_k_per_group, (torch.ones(16)[::2], 4, 2), {}, V, "scores")
raises(F, "rank", "2d", top_k_per_group, (R, 4, 2), {}, V, "scores")
raises(F, "rank", "0d", top_k_per_group, (np.ones((), np.float32), 1, 1), {}, V, "scores")
raises(F, "empty", "empty", top_k_per_group, (np.ones(0, np.float32), 4, 2), {}, V, "scores")
raises(F, "mismatch", "not-dividing", top_k_per_group, (S, 3, 2), {}, V, "num_generations")
raises(F, "size", "k0", top_k_per_group, (S, 4, 0), {}, V, "k")
raises(F, "size", "k-above-g", top_k_per_group, (S, 4, 5), {}, V, "k")
raises(F, "size", "g-negative", top_k_per_group, (S, -4, 2), {}, V, "num_generations")
raises(F, "size", "k-huge", top_k_per_group, (S, 4, 2**70), {}, V, "k")
S_NAN = S.copy()
S_NAN[[1, 4, 5]] = [np.nan, np.inf, -np.inf]


def _topk_check(out):
    expect = _torch_impl.top_k_per_group(torch.from_numpy(S_NAN.copy()), 4, 2, "largest")
    assert out.tolist() == expect.tolist()


handles(F, "nonfinite", "nan-inf-scores", top_k_per_group, (S_NAN, 4, 2), {}, _topk_check)
raises(F, "pytype", "list", top_k_per_group, ([1.0] * 8, 4, 2), {}, T, "scores")
raises(F, "pytype", "k-float", top_k_per_group, (S, 4, 2.0), {}, T, "k")
raises(F, "pytype", "keep-unknown", top_k_per_group, (S, 4, 2), {"keep": "best"}, V, "keep")
raises(F, "pytype", "keep-none", top_k_per_group, (S, 4, 2), {"keep": None}, V, "keep")

# --------------------------------------------------------------------------------------------
# fastalign.overlong

F = "completion_mask"
reuse(F, "dtype", "mask-float", "mask-uint8", "mask-dtype")
raises(F, "device", "meta-float", completion_mask, (torch.ones(2, 3, device=META), 1, 0), {}, T, "completion_ids")
raises(F, "device", "meta-1d", completion_mask, (torch.ones(3, dtype=torch.int64, device=META), 1, 0), {}, V,
       "completion_ids")  # fmt: skip
raises(F, "device", "meta-eos-type", completion_mask, (torch.ones(2, 3, dtype=torch.int64, device=META), "eos", 0), {},
       T, "eos_token_id")  # fmt: skip
reuse(F, "noncontig", "mask-noncontig")
raises(F, "noncontig", "torch", completion_mask, (torch.from_numpy(IDS.copy()).t(), 1, 0), {}, V, "completion_ids")
reuse(F, "rank", "mask-1d")
raises(F, "rank", "3d", completion_mask, (IDS.reshape(2, 2, 6), 1, 0), {}, V, "completion_ids")
reuse(F, "empty", "mask-empty-rows", "mask-empty-cols")


def _empty_eos_check(out):  # no EOS id: nothing is an EOS, rows end in the pad or are truncated
    assert out.lengths.tolist() == [IDS.shape[1]] * IDS.shape[0]
    assert out.is_truncated.tolist() == (IDS[:, -1] != 0).tolist()


handles(F, "empty", "no-eos-ids", completion_mask, (IDS, [], 0), {}, _empty_eos_check)
na(F, "mismatch", "one array argument: nothing whose length could disagree with it")
raises(F, "nonfinite", "eos-nan", completion_mask, (IDS, math.nan, 0), {}, T, "eos_token_id")
raises(F, "nonfinite", "pad-inf", completion_mask, (IDS, 1, math.inf), {}, T, "pad_token_id")
raises(F, "size", "eos-huge", completion_mask, (IDS, 2**70, 0), {}, V, "eos_token_id")
raises(F, "size", "pad-huge", completion_mask, (IDS, 1, -(2**64)), {}, V, "pad_token_id")


def _negative_ids_check(out):  # ids are ids: a negative EOS id simply never matches
    assert out.lengths.tolist() == [IDS.shape[1]] * IDS.shape[0]


handles(F, "size", "eos-negative", completion_mask, (IDS, -1, 0), {}, _negative_ids_check)
reuse(F, "pytype", "mask-list", "mask-eos-float", "mask-eos-str", "mask-pad-none", "mask-flag-type", "mask-dtype-str")
raises(F, "pytype", "eos-list-of-str", completion_mask, (IDS, ["a", "b"], 0), {}, T, "eos_token_id")
raises(F, "pytype", "ids-none", completion_mask, (None, 1, 0), {}, T, "completion_ids")

# --------------------------------------------------------------------------------------------
# fastalign.rewards

F = "soft_overlong"
na(F, "dtype device noncontig rank empty", "takes two Python ints, no arrays")
reuse(F, "mismatch", "soft-cache-too-big")
raises(F, "nonfinite", "max-inf", soft_overlong, (math.inf, 2), {}, T, "max_completion_len")
reuse(F, "size", "soft-cache-negative", "soft-max-zero")
raises(F, "size", "max-above-2^53", soft_overlong, (2**60, 2), {}, V, "max_completion_len")
raises(F, "size", "max-huge", soft_overlong, (2**70, 2), {}, V, "max_completion_len")
reuse(F, "pytype", "soft-max-float")
raises(F, "pytype", "max-str", soft_overlong, ("10", 2), {}, T, "max_completion_len")
raises(F, "pytype", "cache-none", soft_overlong, (10, None), {}, T, "soft_punish_cache")

F = "SoftOverlongPunishment.__call__"
REWARD = soft_overlong(10, 4)
raises(F, "dtype", "lengths-float", REWARD, (), {"lengths": LENS.astype(np.float64)}, T, "lengths")
raises(F, "dtype", "mask-str", REWARD, (IDS,), {"completion_mask": IDS.astype(str)}, T, "completion_mask")
raises(F, "device", "meta-lengths-float", REWARD, (), {"lengths": torch.ones(3, device=META)}, T, "lengths")
raises(F, "device", "meta-lengths-2d", REWARD, (), {"lengths": torch.ones(3, 2, dtype=torch.int64, device=META)}, V,
       "lengths")  # fmt: skip
raises(F, "noncontig", "lengths", REWARD, (), {"lengths": LENS[::2]}, V, "lengths")
reuse(F, "rank", "soft-call-mask-1d")
raises(F, "rank", "lengths-2d", REWARD, (), {"lengths": IDS}, V, "lengths")
handles(F, "empty", "no-completions", REWARD, (), {"completion_ids": []}, lambda out: out == [])
handles(F, "empty", "no-lengths", REWARD, (), {"lengths": LENS[:0]},
        lambda out: out.dtype == np.float64 and out.shape == (0,))  # fmt: skip
raises(F, "mismatch", "mask-rows", REWARD, (IDS,), {"completion_mask": np.ones((3, 6), np.int64)}, V,
       "completion_mask")  # fmt: skip
raises(F, "mismatch", "mask-cols", REWARD, (IDS,), {"completion_mask": np.ones((4, 5), np.int64)}, V,
       "completion_mask")  # fmt: skip
raises(F, "nonfinite", "mask-nan", REWARD, (IDS.astype(np.float32),),
       {"completion_mask": np.full(IDS.shape, np.nan, np.float32)}, V, "completion_mask")  # fmt: skip
raises(F, "size", "lengths-negative", REWARD, (), {"lengths": np.array([1, -2])}, V, "lengths")
raises(F, "size", "mask-negative", REWARD, (IDS,), {"completion_mask": -np.ones(IDS.shape, np.int64)}, V,
       "completion_mask")  # fmt: skip


def _huge_ramp_check(out):  # a ramp of 2^53 lengths: computed per value, never tabulated
    assert out == [(2**53 - 2**52 - (2**52 + 1)) / 2**52, 0.0]


handles(F, "size", "ramp-2^52", soft_overlong(2**53, 2**52), (), {"completion_ids": [[1] * 2, [1]]},
        lambda out: out == [0.0, 0.0])  # fmt: skip
handles(F, "size", "ramp-2^52-in-ramp", soft_overlong(2**53, 2**52), (),
        {"completion_ids": [range(2**52 + 1), []]}, _huge_ramp_check)  # fmt: skip
reuse(F, "pytype", "soft-call-not-list", "soft-call-items", "soft-call-padded-no-mask", "soft-call-nothing")
raises(F, "pytype", "lengths-list", REWARD, (), {"lengths": [1, 2]}, T, "lengths")
raises(F, "pytype", "mask-list", REWARD, (IDS,), {"completion_mask": [[1]]}, T, "completion_mask")

F = "soft_overlong_penalty"
reuse(F, "dtype", "pen-float", "pen-dtype")
raises(F, "dtype", "uint8", soft_overlong_penalty, (LENS.astype(np.uint8), 10, 2), {}, T, "lengths")
raises(F, "device", "meta-float", soft_overlong_penalty, (torch.ones(3, device=META), 10, 2), {}, T, "lengths")
raises(F, "device", "meta-2d", soft_overlong_penalty, (torch.ones(3, 2, dtype=torch.int64, device=META), 10, 2), {},
       V, "lengths")  # fmt: skip
reuse(F, "noncontig", "pen-noncontig")
reuse(F, "rank", "pen-2d")
raises(F, "rank", "0d", soft_overlong_penalty, (np.array(3), 10, 2), {}, V, "lengths")
handles(F, "empty", "empty", soft_overlong_penalty, (LENS[:0], 10, 2), {}, lambda out: out.shape == (0,))
na(F, "mismatch", "one array argument: nothing whose length could disagree with it")
raises(F, "nonfinite", "max-nan", soft_overlong_penalty, (LENS, math.nan, 2), {}, T, "max_completion_len")
reuse(F, "size", "pen-negative", "pen-negative-torch", "pen-cache")
raises(F, "size", "max-huge", soft_overlong_penalty, (LENS, 2**64, 2), {}, V, "max_completion_len")
handles(F, "size", "lengths-int64-max", soft_overlong_penalty, (np.array([2**63 - 1], np.int64), 10, 2), {},
        lambda out: out.tolist() == [-1.0])  # fmt: skip
reuse(F, "pytype", "pen-list", "pen-max-list", "pen-max-float")
raises(F, "pytype", "lengths-none", soft_overlong_penalty, (None, 10, 2), {}, T, "lengths")

# --------------------------------------------------------------------------------------------
# fastalign.ratios


def _ratio_rows(name: str, fn: Callable[..., Any], kw: dict, pair: bool) -> None:
    """Cells shared by the masked reductions (``pair``: a second log-prob tensor, ``old``)."""
    first = "per_token_logps" if pair else "values"
    if name == "vllm_is_ratio":
        first = "old_per_token_logps"

    def call(x=LP, other=OLD, mask=MASK, **k):
        args = (x, other, mask) if pair else (x, mask)
        return args, {**kw, **k}

    a, k = call(x=LP.long())
    raises(name, "dtype", "values-int", fn, a, k, T, first)
    a, k = call(mask=MASK.to(torch.float16))
    raises(name, "dtype", "mask-f16", fn, a, k, T, "mask")
    a, k = call(x=PLP, other=POLD, mask=PMASK, cu_seqlens=CU.float())
    raises(name, "dtype", "cu-float", fn, a, k, T, "cu_seqlens")
    if pair:
        a, k = call(other=OLD.double())
        raises(name, "dtype", "pair-f64", fn, a, k, T, "sampling_per_token_logps" if name == "vllm_is_ratio"
               else "old_per_token_logps")  # fmt: skip
    a, k = call(x=_meta(LP), other=_meta(OLD))
    raises(name, "device", "meta-values-cpu-mask", fn, a, k, T, "mask")
    a, k = call(x=_meta(LP.long()), other=_meta(OLD), mask=_meta(MASK))
    raises(name, "device", "meta-int", fn, a, k, T, first)
    a, k = call(x=PLP, other=POLD, mask=PMASK, cu_seqlens=_meta(CU))
    raises(name, "device", "meta-cu", fn, a, k, T, "cu_seqlens")
    a, k = call(x=LP.t(), other=OLD.t(), mask=MASK.t())
    raises(name, "noncontig", "values", fn, a, k, V, first)
    a, k = call(mask=torch.ones(L, B, dtype=torch.bool).t())
    raises(name, "noncontig", "mask", fn, a, k, V, "mask")
    a, k = call(x=LP.unsqueeze(0), other=OLD.unsqueeze(0), mask=MASK.unsqueeze(0))
    raises(name, "rank", "values-3d", fn, a, k, V, first)
    a, k = call(cu_seqlens=CU)
    raises(name, "rank", "packed-2d", fn, a, k, V, first)
    a, k = call(x=PLP, other=POLD, mask=PMASK, cu_seqlens=CU.reshape(2, 2))
    raises(name, "rank", "cu-2d", fn, a, k, V, "cu_seqlens")
    a, k = call(x=PLP, other=POLD, mask=PMASK, cu_seqlens=CU[:0])
    raises(name, "empty", "cu-empty", fn, a, k, V, "cu_seqlens")
    a, k = call(x=PLP[:0], other=POLD[:0], mask=PMASK[:0], cu_seqlens=torch.zeros(1, dtype=torch.int64))

    def empty_check(out):
        out = out[0] if isinstance(out, tuple) else out
        assert out.numel() == 0

    handles(name, "empty", "no-sequences", fn, a, k, empty_check)
    a, k = call(mask=MASK[:, :-1].contiguous())
    raises(name, "mismatch", "mask-shape", fn, a, k, V, "mask")
    a, k = call(x=PLP, other=POLD, mask=PMASK, cu_seqlens=torch.tensor([0, 3, 6]))
    raises(name, "mismatch", "cu-end", fn, a, k, V, "cu_seqlens")
    if pair:
        a, k = call(other=OLD[:, :-1].contiguous())
        raises(name, "mismatch", "pair-shape", fn, a, k, V, "sampling_per_token_logps" if name == "vllm_is_ratio"
               else "old_per_token_logps")  # fmt: skip
    a, k = call(x=PLP, other=POLD, mask=PMASK, cu_seqlens=torch.tensor([0, 5, 3, 7]))
    raises(name, "size", "cu-decreasing", fn, a, k, V, "cu_seqlens")
    a, k = call(x=PLP, other=POLD, mask=PMASK, cu_seqlens=torch.tensor([-1, 3, 7]))
    raises(name, "size", "cu-negative", fn, a, k, V, "cu_seqlens")
    a, k = call(x=PLP, other=POLD, mask=PMASK, cu_seqlens=torch.tensor([0, 2**40, 7]))
    raises(name, "size", "cu-huge", fn, a, k, V, "cu_seqlens")
    a, k = call(x=LP.numpy())
    raises(name, "pytype", "values-numpy", fn, a, k, T, first)
    a, k = call(x=None)
    raises(name, "pytype", "values-none", fn, a, k, T, first)
    a, k = call(mask=MASK.tolist())
    raises(name, "pytype", "mask-list", fn, a, k, T, "mask")
    a, k = call(x=PLP, other=POLD, mask=PMASK, cu_seqlens=[0, 3, 7])
    raises(name, "pytype", "cu-list", fn, a, k, T, "cu_seqlens")


LP_NF = _with(_with(LP, (0, 1), math.nan), (1, 2), math.inf)
LP_NF[2, 0] = -math.inf
MASK_NF = MASK.clone()
MASK_NF[1, 2] = False  # inf under a masked-out position: TRL's ``x * mask`` still makes it NaN
for name, fn, red in (("masked_reduce", masked_reduce, "mean"), ("masked_sum", masked_sum, "sum"),
                      ("masked_mean", masked_mean, "mean"), ("masked_max", masked_max, "max")):  # fmt: skip
    _ratio_rows(name, fn, {"reduction": "mean"} if name == "masked_reduce" else {}, pair=False)

    def _check_nf(out, red=red):
        _assert_close(out, tl.masked_reduce(LP_NF, None, MASK_NF, None, red), "Rust vs the torch path")
        if red == "mean":
            _assert_close(out, _trl_masked_mean(LP_NF, MASK_NF), "vs TRL's masked mean")

    handles(name, "nonfinite", "nan-inf-values", fn, (LP_NF, MASK_NF), {}, _check_nf)
raises("masked_reduce", "pytype", "reduction-unknown", masked_reduce, (LP, MASK), {"reduction": "median"}, V,
       "reduction")  # fmt: skip
raises("masked_reduce", "pytype", "reduction-none", masked_reduce, (LP, MASK), {"reduction": None}, V, "reduction")

F = "sequence_log_ratio"
_ratio_rows(F, sequence_log_ratio, {}, pair=True)
handles(F, "nonfinite", "nan-inf-logps", sequence_log_ratio, (LP_NF, OLD, MASK_NF), {},
        lambda out: _assert_close(out, _trl_masked_mean(LP_NF - OLD, MASK_NF), "vs TRL"))  # fmt: skip
raises(F, "pytype", "reduction-max", sequence_log_ratio, (LP, OLD, MASK), {"reduction": "max"}, V, "reduction")

F = "importance_weights"
_ratio_rows(F, importance_weights, {"level": "sequence"}, pair=True)
handles(F, "nonfinite", "nan-inf-logps", importance_weights, (LP_NF, OLD, MASK_NF), {"level": "sequence"},
        lambda out: _assert_close(out, torch.exp(_trl_masked_mean(LP_NF - OLD, MASK_NF)).unsqueeze(-1),
                                  "vs TRL"))  # fmt: skip
raises(F, "pytype", "level-unknown", importance_weights, (LP, OLD, MASK), {"level": "batch"}, V, "level")

F = "vllm_is_ratio"
_ratio_rows(F, vllm_is_ratio, {}, pair=True)


def _vllm_check(out):
    ratio, stats = tl.vllm_is_ratio(LP_NF, OLD, MASK_NF, None, "sequence_mask", None, 3.0)
    _assert_close(out.ratio, ratio.unsqueeze(-1), "ratio vs the torch path")
    _assert_close(out.stats, stats, "stats vs the torch path")


handles(F, "nonfinite", "nan-inf-logps", vllm_is_ratio, (LP_NF, OLD, MASK_NF), {}, _vllm_check)
raises(F, "nonfinite", "clip-nan", vllm_is_ratio, (LP, OLD, MASK), {"clip_min": math.nan}, V, "clip_min")
raises(F, "size", "clip-order", vllm_is_ratio, (LP, OLD, MASK), {"clip_min": 4.0, "clip_max": 2.0}, V, "clip_min")
raises(F, "pytype", "mode-unknown", vllm_is_ratio, (LP, OLD, MASK), {"mode": "sequence"}, V, "mode")
raises(F, "pytype", "clip-str", vllm_is_ratio, (LP, OLD, MASK), {"clip_max": "3"}, T, "clip_max")

# --------------------------------------------------------------------------------------------
# fastalign.losses

F = "grpo_loss"
raises(F, "dtype", "logps-int", grpo_loss, (LP.long(), OLD, ADV, MASK), {}, T, "per_token_logps")
raises(F, "dtype", "adv-f64", grpo_loss, (LP, OLD, ADV.double(), MASK), {}, T, "advantages")
raises(F, "dtype", "entropy-mask-int", grpo_loss, (LP, OLD, ADV, MASK), {"entropy_mask": MASK.long()}, T,
       "entropy_mask")  # fmt: skip
raises(F, "device", "meta-logps-cpu-adv", grpo_loss, (_meta(LP), _meta(OLD), ADV, _meta(MASK)), {}, T, "advantages")
raises(F, "device", "meta-int", grpo_loss, (_meta(LP.long()), None, _meta(ADV), _meta(MASK)), {}, T, "per_token_logps")
raises(F, "device", "ref-cpu", grpo_loss, (_meta(LP), None, _meta(ADV), _meta(MASK)),
       {"beta": 0.1, "ref_per_token_logps": OLD}, T, "ref_per_token_logps")  # fmt: skip
raises(F, "noncontig", "logps", grpo_loss, (LP.t(), OLD.t(), torch.zeros(L), MASK.t()), {}, V,
       "per_token_logps")  # fmt: skip
raises(F, "noncontig", "adv", grpo_loss, (LP, OLD, torch.zeros(2 * B)[::2], MASK), {}, V, "advantages")
raises(F, "rank", "logps-1d-unpacked", grpo_loss, (PLP, POLD, ADV, PMASK), {}, V, "per_token_logps")
raises(F, "rank", "adv-3d", grpo_loss, (LP, OLD, ADV.reshape(B, 1, 1), MASK), {}, V, "advantages")
raises(F, "empty", "cu-empty", grpo_loss, (PLP, POLD, ADV, PMASK), {"cu_seqlens": CU[:0]}, V, "cu_seqlens")


def _empty_loss_check(out):  # an empty batch: TRL's normalisers clamp to 1, so the loss is 0
    assert out.loss.shape == () and float(out.loss) == 0.0


handles(F, "empty", "no-tokens", grpo_loss, (LP[:, :0], OLD[:, :0], ADV, MASK[:, :0]), {}, _empty_loss_check)
raises(F, "mismatch", "adv-len", grpo_loss, (LP, OLD, ADV[:2], MASK), {}, V, "advantages")
raises(F, "mismatch", "old-shape", grpo_loss, (LP, OLD[:, :-1], ADV, MASK), {}, V, "old_per_token_logps")
raises(F, "mismatch", "is-ratio-shape", grpo_loss, (LP, OLD, ADV, MASK), {"importance_sampling_ratio": LP[:, :2]}, V,
       "importance_sampling_ratio")  # fmt: skip
raises(F, "nonfinite", "logps-nan", grpo_loss, (_with(LP, (0, 0), math.nan), OLD, ADV, MASK), {}, V, "per_token_logps")
raises(F, "nonfinite", "old-nan", grpo_loss, (LP, _with(OLD, (0, 0), math.nan), ADV, MASK), {}, V,
       "old_per_token_logps")  # fmt: skip
raises(F, "nonfinite", "epsilon-nan", grpo_loss, (LP, OLD, ADV, MASK), {"epsilon": math.nan}, V, "epsilon")
raises(F, "nonfinite", "num-items-inf", grpo_loss, (LP, OLD, ADV, MASK), {"num_items_in_batch": math.inf}, V,
       "num_items_in_batch")  # fmt: skip
raises(F, "size", "ga-zero", grpo_loss, (LP, OLD, ADV, MASK), {"gradient_accumulation_steps": 0}, V,
       "gradient_accumulation_steps")  # fmt: skip
raises(F, "size", "num-items-negative", grpo_loss, (LP, OLD, ADV, MASK), {"num_items_in_batch": -1}, V,
       "num_items_in_batch")  # fmt: skip
raises(F, "size", "max-len-zero", grpo_loss, (LP, OLD, ADV, MASK), {"loss_type": "dr_grpo", "max_completion_length": 0},
       V, "max_completion_length")  # fmt: skip
raises(F, "size", "num-processes-huge", grpo_loss, (LP, OLD, ADV, MASK), {"num_processes": 2**70}, V,
       "num_processes")  # fmt: skip
raises(F, "pytype", "logps-numpy", grpo_loss, (LP.numpy(), OLD, ADV, MASK), {}, T, "per_token_logps")
raises(F, "pytype", "adv-list", grpo_loss, (LP, OLD, ADV.tolist(), MASK), {}, T, "advantages")
raises(F, "pytype", "loss-type-unknown", grpo_loss, (LP, OLD, ADV, MASK), {"loss_type": "ppo"}, V, "loss_type")
raises(F, "pytype", "training-str", grpo_loss, (LP, OLD, ADV, MASK), {"training": "yes"}, T, "training")
raises(F, "pytype", "level-none", grpo_loss, (LP, OLD, ADV, MASK), {"importance_sampling_level": None}, V,
       "importance_sampling_level")  # fmt: skip

F = "dpo_loss"
raises(F, "dtype", "int", dpo_loss, (C1.long(), C2, C3, C4), {}, T, "chosen_logps")
raises(F, "dtype", "mixed", dpo_loss, (C1, C2.double(), C3, C4), {}, T, "rejected_logps")
raises(F, "device", "mixed", dpo_loss, (C1, C2, _meta(C3), C4), {}, T, "ref_chosen_logps")
raises(F, "device", "meta-int", dpo_loss, (_meta(C1.long()), _meta(C2), _meta(C3), _meta(C4)), {}, T, "chosen_logps")


def _noncontig_ok(out):  # plain torch: any strides are read correctly
    _assert_close(out.losses, dpo_loss(C1, C2, C3, C4).losses, "strided vs contiguous")


handles(F, "noncontig", "strided-as-contiguous", dpo_loss,
        (torch.stack([C1, C1], 1)[:, 0], C2, C3, C4), {}, _noncontig_ok)  # fmt: skip
raises(F, "rank", "2d", dpo_loss, (C1[:, None], C2, C3, C4), {}, V, "chosen_logps")
raises(F, "empty", "empty", dpo_loss, (C1[:0], C2[:0], C3[:0], C4[:0]), {}, V, "chosen_logps")
raises(F, "mismatch", "rows", dpo_loss, (C1, C2[:3], C3, C4), {}, V, "rejected_logps")
raises(
    F,
    "mismatch",
    "weights-len",
    dpo_loss,
    (C1, C2, C3, C4),
    {"loss_type": ["sigmoid", "ipo"], "loss_weights": [1.0]},
    V,
    "loss_weights",
)
raises(F, "nonfinite", "nan", dpo_loss, (_with(C1, 0, math.nan), C2, C3, C4), {}, V, "chosen_logps")
raises(F, "nonfinite", "inf", dpo_loss, (C1, C2, C3, _with(C4, 1, -math.inf)), {}, V, "ref_rejected_logps")
raises(F, "nonfinite", "beta-nan", dpo_loss, (C1, C2, C3, C4), {"beta": math.nan}, V, "beta")
raises(F, "size", "beta-negative", dpo_loss, (C1, C2, C3, C4), {"beta": -0.1}, V, "beta")
raises(F, "pytype", "list", dpo_loss, (C1.tolist(), C2, C3, C4), {}, T, "chosen_logps")
raises(F, "pytype", "loss-type-unknown", dpo_loss, (C1, C2, C3, C4), {"loss_type": "bogus"}, V, "loss_type")
raises(F, "pytype", "loss-type-none", dpo_loss, (C1, C2, C3, C4), {"loss_type": None}, T, "loss_type")

F = "cpo_loss"
raises(F, "dtype", "int", cpo_loss, (C1.long(), C2), {}, T, "chosen_logps")
raises(F, "device", "mixed", cpo_loss, (C1, _meta(C2)), {}, T, "rejected_logps")
raises(F, "device", "meta-int", cpo_loss, (_meta(C1.long()), _meta(C2)), {}, T, "chosen_logps")
handles(
    F,
    "noncontig",
    "strided-as-contiguous",
    cpo_loss,
    (torch.stack([C1, C1], 1)[:, 0], C2),
    {"cpo_alpha": 0.0},
    lambda out: _assert_close(out.losses, cpo_loss(C1, C2, cpo_alpha=0.0).losses, "strided vs contiguous"),
)
raises(F, "rank", "2d", cpo_loss, (C1[:, None], C2), {}, V, "chosen_logps")
raises(F, "empty", "empty", cpo_loss, (C1[:0], C2[:0]), {}, V, "chosen_logps")
raises(F, "mismatch", "rows", cpo_loss, (C1, C2[:3]), {}, V, "rejected_logps")
raises(F, "mismatch", "nll-rows", cpo_loss, (C1, C2), {"chosen_nll": torch.ones(())[None].expand(2).contiguous()}, V,
       "chosen_nll")  # fmt: skip
raises(F, "nonfinite", "nan", cpo_loss, (_with(C1, 0, math.nan), C2), {"cpo_alpha": 0.0}, V, "chosen_logps")
raises(F, "nonfinite", "nll-inf", cpo_loss, (C1, C2), {"chosen_nll": torch.full((4,), math.inf)}, V, "chosen_nll")
raises(F, "nonfinite", "beta-inf", cpo_loss, (C1, C2), {"beta": math.inf}, V, "beta")
raises(F, "size", "beta-zero", cpo_loss, (C1, C2), {"beta": 0.0}, V, "beta")
raises(F, "pytype", "none", cpo_loss, (None, C2), {}, T, "chosen_logps")
raises(F, "pytype", "loss-type-unknown", cpo_loss, (C1, C2), {"loss_type": "dpo"}, V, "loss_type")

F = "dft_loss"
raises(F, "dtype", "int", dft_loss, (LP.long(), MASK), {}, T, "per_token_logps")
raises(F, "dtype", "mask-f16", dft_loss, (LP, MASK.half()), {}, T, "mask")
raises(F, "device", "mixed", dft_loss, (_meta(LP), MASK), {}, T, "mask")
raises(F, "device", "meta-int", dft_loss, (_meta(LP.long()), _meta(MASK)), {}, T, "per_token_logps")
handles(F, "noncontig", "strided-as-contiguous", dft_loss, (LP.t(), MASK.t()), {},
        lambda out: _assert_close(out, dft_loss(LP.t().contiguous(), MASK.t().contiguous()), "strided"))  # fmt: skip
raises(F, "rank", "logits-2d", dft_loss, (), {"logits": LP, "labels": IDS[:3]}, V, "logits")
raises(F, "rank", "0d", dft_loss, (LP[0, 0], MASK[0, 0]), {}, V, "per_token_logps")
handles(F, "empty", "empty-mask", dft_loss, (LP, torch.zeros_like(MASK)), {}, lambda out: float(out) == 0.0)
raises(F, "mismatch", "mask-shape", dft_loss, (LP, MASK[:, :-1]), {}, V, "mask")
raises(F, "mismatch", "both-forms", dft_loss, (LP, MASK), {"logits": LP[None], "labels": MASK.long()}, V,
       "per_token_logps")  # fmt: skip
raises(F, "nonfinite", "nan", dft_loss, (_with(LP, (0, 0), math.nan), MASK), {}, V, "per_token_logps")
raises(F, "size", "label-out-of-vocab", dft_loss, (), {"logits": torch.zeros(1, 3, 4),
       "labels": torch.tensor([[1, 2, 7]])}, V, "labels")  # fmt: skip
raises(F, "size", "num-processes-zero", dft_loss, (LP, MASK), {"num_items_in_batch": 4, "num_processes": 0}, V,
       "num_processes")  # fmt: skip
raises(F, "pytype", "mask-none", dft_loss, (LP, None), {}, V, "mask")
raises(F, "pytype", "logps-list", dft_loss, (LP.tolist(), MASK), {}, T, "per_token_logps")
raises(
    F,
    "pytype",
    "ignore-str",
    dft_loss,
    (),
    {"logits": torch.zeros(1, 3, 4), "labels": torch.zeros(1, 3, dtype=torch.long), "ignore_index": "x"},
    T,
    "ignore_index",
)

F = "wpo_weights"
LSS = -torch.rand(B, L, generator=g)
raises(F, "dtype", "int", wpo_weights, (LP.long(), LSS, MASK), {}, T, "per_token_logps")
raises(F, "dtype", "mask-f16", wpo_weights, (LP, LSS, MASK.half()), {}, T, "mask")
raises(F, "device", "mixed", wpo_weights, (LP, _meta(LSS), MASK), {}, T, "log_sum_sq_probs")
raises(F, "device", "meta-int", wpo_weights, (_meta(LP.long()), _meta(LSS), _meta(MASK)), {}, T, "per_token_logps")
handles(F, "noncontig", "strided-as-contiguous", wpo_weights, (LP.t(), LSS.t(), MASK.t()), {},
        lambda out: _assert_close(out, wpo_weights(LP.t().contiguous(), LSS.t().contiguous(), MASK.t().contiguous()),
                                  "strided"))  # fmt: skip
raises(F, "rank", "1d", wpo_weights, (LP[0], LSS[0], MASK[0]), {}, V, "per_token_logps")
handles(F, "empty", "no-rows", wpo_weights, (LP[:0], LSS[:0], MASK[:0]), {}, lambda out: out.shape == (0,))
raises(F, "mismatch", "lss-shape", wpo_weights, (LP, LSS[:, :-1], MASK), {}, V, "log_sum_sq_probs")
raises(F, "mismatch", "mask-shape", wpo_weights, (LP, LSS, MASK[:2]), {}, V, "mask")


def _wpo_nan_check(out):  # TRL's weights: exp(masked mean of (logp - log_sum_sq)), no check
    m = MASK_NF.to(LP_NF.dtype)
    expect = torch.exp(((LP_NF - LSS) * m).sum(-1) / m.sum(-1).clamp(min=1.0))
    _assert_close(out, expect, "vs TRL's formula")


handles(F, "nonfinite", "nan-inf-as-trl", wpo_weights, (LP_NF, LSS, MASK_NF), {}, _wpo_nan_check)
na(F, "size", "no size or count arguments")
raises(F, "pytype", "numpy", wpo_weights, (LP.numpy(), LSS, MASK), {}, T, "per_token_logps")
raises(F, "pytype", "mask-none", wpo_weights, (LP, LSS, None), {}, T, "mask")

# --------------------------------------------------------------------------------------------
# fastalign.packing (array API, and the dataset functions' arguments)

for F, fn in (("bfd", bfd), ("first_fit_decreasing", first_fit_decreasing)):
    raises(F, "dtype", "float", fn, (LENS.astype(np.float64), 8), {}, T, "lengths")
    raises(F, "dtype", "uint64", fn, (LENS.astype(np.uint64), 8), {}, T, "lengths")
    raises(F, "device", "meta", fn, (torch.from_numpy(LENS).to(META), 8), {}, T, "lengths")
    raises(F, "noncontig", "np", fn, (LENS[::2], 8), {}, V, "lengths")
    raises(F, "noncontig", "torch", fn, (torch.from_numpy(LENS)[::2], 8), {}, V, "lengths")
    raises(F, "rank", "2d", fn, (LENS[None], 8), {}, V, "lengths")
    handles(F, "empty", "no-sequences", fn, (LENS[:0], 8), {},
            lambda out: out.order.shape == (0,) and out.bin_offsets.tolist() == [0])  # fmt: skip
    na(F, "mismatch", "one array argument: nothing whose length could disagree with it")
    na(F, "nonfinite", "integer lengths and capacity: no NaN or inf can be passed as a valid dtype")
    raises(F, "size", "negative-length", fn, (np.array([3, -1]), 8), {}, V, "lengths")
    raises(F, "size", "seq-length-zero", fn, (LENS, 0), {}, V, "seq_length")
    raises(F, "size", "seq-length-huge", fn, (LENS, 2**64), {}, V, "seq_length")
    handles(F, "size", "lengths-int64-max", fn, (np.array([2**62, 3]), 8), {"split": False},
            lambda out: out.lengths.tolist() == [8, 3])  # fmt: skip
    raises(F, "pytype", "list", fn, ([3, 4], 8), {}, T, "lengths")
    raises(F, "pytype", "seq-length-str", fn, (LENS, "8"), {}, T, "seq_length")
    raises(F, "pytype", "split-str", fn, (LENS, 8), {"split": "yes"}, T, "split")

for F, fn in (("position_ids", position_ids), ("cu_seqlens", cu_seqlens)):
    raises(F, "dtype", "float", fn, (LENS.astype(np.float32),), {}, T, "seq_lengths")
    raises(F, "device", "meta", fn, (torch.from_numpy(LENS).to(META),), {}, T, "seq_lengths")
    raises(F, "noncontig", "np", fn, (LENS[::2],), {}, V, "seq_lengths")
    raises(F, "rank", "2d", fn, (LENS[None],), {}, V, "seq_lengths")
    handles(F, "empty", "no-sequences", fn, (LENS[:0],), {},
            lambda out, F=F: out.tolist() == ([0] if F == "cu_seqlens" else []))  # fmt: skip
    na(F, "mismatch", "one array argument: nothing whose length could disagree with it")
    na(F, "nonfinite", "integer lengths: no NaN or inf can be passed as a valid dtype")
    raises(F, "size", "negative", fn, (np.array([2, -3]),), {}, V, "seq_lengths")
    raises(F, "pytype", "list", fn, ([1, 2],), {}, T, "seq_lengths")
    raises(F, "pytype", "none", fn, (None,), {}, T, "seq_lengths")
raises("position_ids", "size", "total-too-large", position_ids, (np.array([2**62, 2**62]),), {}, V, "seq_lengths")
raises("cu_seqlens", "size", "int32-overflow", cu_seqlens, (np.array([2**31 - 1, 1]),), {}, V, "seq_lengths")

F = "balance_partitions"
raises(F, "dtype", "float", balance_partitions, (LENS.astype(np.float64), 2), {}, T, "lengths")
raises(F, "device", "meta", balance_partitions, (torch.from_numpy(LENS).to(META), 2), {}, T, "lengths")
raises(F, "noncontig", "np", balance_partitions, (np.arange(8)[::2], 2), {}, V, "lengths")
raises(F, "rank", "2d", balance_partitions, (np.arange(8).reshape(2, 4), 2), {}, V, "lengths")
raises(F, "empty", "no-items", balance_partitions, (LENS[:0], 1), {}, V, "k")
raises(F, "mismatch", "k-not-dividing", balance_partitions, (np.arange(5), 2), {"equal_size": True}, V, "k")
raises(F, "mismatch", "k-above-n", balance_partitions, (np.arange(3), 4), {"equal_size": False}, V, "k")
raises(F, "nonfinite", "list-with-nan", balance_partitions, ([1, math.nan], 1), {}, T, "lengths")
raises(F, "size", "negative", balance_partitions, (np.array([1, -1]), 1), {}, V, "lengths")
raises(F, "size", "k-zero", balance_partitions, (np.arange(4), 0), {}, V, "k")
raises(F, "size", "cap-too-small", balance_partitions, (np.arange(4), 2), {"max_tokens": 1}, V, "max_tokens")
raises(
    F,
    "size",
    "sum-overflow",
    balance_partitions,
    (np.array([2**62, 2**62, 2**62]), 1),
    {"equal_size": False, "max_tokens": 2**62},
    V,
    "lengths",
)  # part sums would wrap in int64
raises(F, "pytype", "list-of-str", balance_partitions, (["1", "2"], 1), {}, T, "lengths")
raises(F, "pytype", "k-float", balance_partitions, (np.arange(4), 2.0), {}, T, "k")
raises(F, "pytype", "equal-size-str", balance_partitions, (np.arange(4), 2), {"equal_size": "yes"}, T, "equal_size")

TABLE = pa.table({"input_ids": [[1, 2, 3], [4, 5], [6]], "labels": [[1, 2, 3], [4, 5], [6]]})
F = "pack_table"
na(F, "dtype", "any Arrow value type is packed (unsupported widths take the generic gather)")
na(F, "device", "Arrow tables live in host memory")
na(F, "noncontig", "Arrow columns are read through their offsets (any slice or chunking)")
raises(F, "rank", "not-a-list-column", pack_table, (pa.table({"input_ids": [1, 2, 3]}), 4), {}, T, "dataset")
raises(F, "empty", "no-columns", pack_table, (pa.table({}), 4), {}, V, "dataset")
raises(F, "mismatch", "row-lengths", pack_table, (pa.table({"a": [[1, 2], [3]], "b": [[1], [3]]}), 4), {}, V, "dataset")
raises(F, "nonfinite", "null-row", pack_table, (pa.table({"a": pa.array([[1.0, math.nan], None])}), 4), {}, V,
       "dataset")  # fmt: skip
raises(F, "size", "seq-length-zero", pack_table, (TABLE, 0), {}, V, "seq_length")
raises(F, "size", "seq-length-huge", pack_table, (TABLE, 2**64), {}, V, "seq_length")
raises(F, "pytype", "strategy-unknown", pack_table, (TABLE, 4, "ffd"), {}, V, "strategy")
raises(F, "pytype", "seq-length-str", pack_table, (TABLE, "4"), {}, T, "seq_length")

F = "pack_dataset"
na(F, "dtype device noncontig rank empty mismatch nonfinite",
   "the dataset's columns go through pack_table's checks (row pack_table)")  # fmt: skip
raises(F, "size", "seq-length-zero", pack_dataset, ([], 0), {}, V, "seq_length")
raises(F, "size", "window-zero", pack_dataset, ([], 4), {"window": 0}, V, "window")
raises(F, "pytype", "not-a-dataset", pack_dataset, ({"input_ids": [[1]]}, 4), {}, T, "dataset")
raises(F, "pytype", "strategy-none", pack_dataset, ([], 4, None), {}, V, "strategy")
raises(F, "pytype", "map-kwargs-list", pack_dataset, ([], 4), {"map_kwargs": ["batch_size"]}, T, "map_kwargs")
raises(F, "pytype", "report-str", pack_dataset, ([], 4), {"return_report": "yes"}, T, "return_report")

na(
    "patch_trl_sft",
    " ".join(CATEGORIES),
    "a context manager; its only argument (window) is checked when TRL calls pack_dataset (row pack_dataset)",
)

# --------------------------------------------------------------------------------------------
# the tests


def _public_functions() -> set[str]:
    names = set()
    for mod in MODULES:
        for n in mod.__all__:
            obj = getattr(mod, n)
            if callable(obj) and not isinstance(obj, type):
                names.add(n)
    names.add("SoftOverlongPunishment.__call__")
    return names


def _params():
    out = []
    for func, row in MATRIX.items():
        for cat in CATEGORIES:
            cell = row.get(cat)
            if isinstance(cell, str):
                out.append(pytest.param(None, id=f"{func}-{cat}-NA",
                                        marks=pytest.mark.skip(reason=f"N/A: {func} x {cat}: {cell}")))  # fmt: skip
            elif cell:
                for c in cell:
                    marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
                    out.append(pytest.param(c, id=f"{func}-{cat}-{c.label}", marks=marks))
    return out


PARAMS = _params()


def _counts() -> tuple[int, int, int, int]:
    cells = len(MATRIX) * len(CATEGORIES)
    na_cells = sum(isinstance(c, str) for row in MATRIX.values() for c in row.values())
    run = sum(isinstance(c, list) and len(c) > 0 for row in MATRIX.values() for c in row.values())
    cases = sum(len(c) for row in MATRIX.values() for c in row.values() if isinstance(c, list))
    return cells, run, na_cells, cases


def test_matrix_is_complete(capsys):
    missing_funcs = _public_functions() - set(MATRIX)
    assert not missing_funcs, f"public functions without a row: {sorted(missing_funcs)}"
    missing = [f"{f}/{c}" for f, row in MATRIX.items() for c in CATEGORIES if c not in row]
    assert not missing, f"cells with neither cases nor a reason: {missing}"
    cells, run, na_cells, cases = _counts()
    with capsys.disabled():
        print(f"\nbad-input matrix: {len(MATRIX)} functions x {len(CATEGORIES)} categories = {cells} cells; "
              f"{run} cells run ({cases} cases), {na_cells} cells N/A")  # fmt: skip
    assert run + na_cells == cells


def _snap(x):
    if isinstance(x, range):
        return x
    if isinstance(x, dict):
        return {k: _snap(v) for k, v in x.items()}
    if isinstance(x, pa.Table):
        return x
    return snapshot(x)


def _unchanged(before, after) -> bool:
    if isinstance(after, range) or isinstance(after, pa.Table):
        return True  # immutable
    if isinstance(after, dict):
        return before.keys() == after.keys() and all(_unchanged(before[k], after[k]) for k in after)
    if isinstance(after, list) and any(isinstance(a, torch.Tensor) for a in after):
        return all(_unchanged(b, a) for b, a in zip(before, after))
    if isinstance(after, torch.Tensor) and after.device.type != META:
        if before.dtype != after.dtype or before.shape != after.shape:
            return False
        if after.is_floating_point():  # NaN included (torch.equal says NaN != NaN)
            nan = after.isnan()
            return torch.equal(before.isnan(), nan) and torch.equal(before[~nan], after[~nan])
        return torch.equal(before, after)
    if isinstance(after, np.ndarray):
        return before.dtype == after.dtype and np.array_equal(before, after, equal_nan=after.dtype.kind in "fc")
    return same(before, after)


@pytest.mark.parametrize("case", PARAMS)
def test_cell(case: Case):
    inputs = list(case.args) + list(case.kwargs.values())
    before = [_snap(a) for a in inputs]
    if case.exc is None:
        out = case.fn(*case.args, **case.kwargs)
        case.check(out)
    else:
        with pytest.raises(FastalignError) as info:
            case.fn(*case.args, **case.kwargs)
        err = info.value
        assert isinstance(err, case.exc), f"{type(err).__name__} is not {case.exc.__name__}: {err}"
        assert isinstance(err, TypeError if case.exc is T else ValueError)
        assert err.argument == case.argument, f"names {err.argument!r}, expected {case.argument!r}: {err}"
        assert str(err).startswith(f"{case.argument}: ")
    assert all(_unchanged(b, a) for b, a in zip(before, inputs)), "the call modified its input"
