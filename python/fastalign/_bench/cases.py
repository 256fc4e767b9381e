"""The benchmark cases: each op's sizes, the pairs (the reference beside fastalign on given
inputs, with the check of their answers), and :data:`CASES`, what ``fastalign bench`` times.

Sizes: ``fastalign bench`` sweeps each case over its ``sizes`` (a quick look on a user's
machine); the repository's ``benches/`` times the ``*_SUITE_*`` sizes with many rounds, one
pytest-benchmark group per size. Inputs come from :mod:`.inputs` on both sides. The ops that
TRL computes inline in a trainer method have nothing of TRL's to call on their own; ``benches/``
times them against plain-torch references in ``tests/reference/`` (not in the wheel), so only
their sizes are here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import inputs

__all__ = [
    "CASES",
    "INLINE_NOTE",
    "Case",
    "Pair",
    "Skip",
    "case",
    "kk_pair",
    "loss_method_pair",
    "overlong_lengths_pair",
    "overlong_lists_pair",
    "pack_pair",
    "scoring_step_pair",
]

# --- sizes ---------------------------------------------------------------------------------------

# GRPO's whole scoring step: N completions, groups of G, K reward functions
SCORING_SIZES = (1024, 8192)
SCORING_SUITE_N = 8192
SCORING_G, SCORING_K = 16, 3
# soft overlong reward: B completions, L_max and the soft-punishment cache
OVERLONG_SIZES = (1024, 8192, 65536)
OVERLONG_SUITE_B = 8192
OVERLONG_L_MAX, OVERLONG_CACHE = inputs.OVERLONG_L_MAX, 1024
# GRPO's loss, forward + backward: B rows of T tokens (the command: B at LOSS_T)
LOSS_T = 4096
LOSS_SIZES = (64, 512)
LOSS_SUITE_SIZES: tuple[tuple[int, int], ...] = ((64, 4096), (64, 8192), (512, 4096), (512, 8192))
# name -> (importance_sampling_level, loss_type): TRL's default, and GSPO
LOSS_CONFIGS = {"dapo": ("token", "dapo"), "gspo": ("sequence", "grpo")}
LOSS_EPSILON, LOSS_EPSILON_HIGH = 0.2, 0.28
# trl.pack_dataset: N sequences into rows of SEQ_LENGTH tokens (bfd)
PACK_SIZES = (10_000, 100_000)
PACK_SUITE_N = 100_000
PACK_SEQ_LENGTH = 4096
# Karmarkar-Karp: n lengths into k parts
KK_SIZES = (1024, 16_384)
KK_SUITE_N = 16_384
KK_K = 64

# benches/ only (references in tests/reference/, or other libraries)
ADVANTAGE_SUITE_SIZES: tuple[tuple[int, int, int], ...] = ((8192, 3, 16), (1 << 20, 3, 16))  # (N, K, G)
ADVANTAGE_RLOX_GROUPS, ADVANTAGE_RLOX_G = 64, 8  # beside rlox's published figure: 64 groups of 8, K=1
MASK_SUITE_B, MASK_SUITE_T = 512, 8192  # completion_mask: B rows of T generated ids
RATIO_SUITE_SIZES: tuple[tuple[int, int], ...] = ((512, 8192),)  # sequence_log_ratio, masked_mean: (B, T)
TOP_K_SUITE_N, TOP_K_G, TOP_K_K = 8192, 16, 8  # top_k_per_group: N scores, groups of G, keep k
DPO_SUITE_SIZES = (64, 1024)  # dpo_loss: B pairs
DPO_T = 512
ROWS_SUITE_SIZES = (512, 4096)  # token lists -> model inputs: N sequences
ROWS_MAX_TOKENS = 8192


# --- the registry --------------------------------------------------------------------------------


@dataclass
class Pair:
    """What one size of an op times: the reference and fastalign on the same inputs."""

    reference: Callable[[], Any]
    fastalign: Callable[[], Any]
    nbytes: int | None = None  # bytes fastalign reads + writes per call (None: not a streaming op)
    check: Callable[[Any, Any], None] | None = None  # raises if the outputs disagree


@dataclass
class Case:
    """An op: its reference's name, default sizes, and how to build a :class:`Pair` for a size."""

    name: str
    reference: str
    size_name: str
    sizes: tuple[int, ...]
    build: Callable[[int], Pair]
    note: str = ""


class Skip(Exception):
    """Raised by a case's ``build`` when this machine cannot run it; the message says why."""


CASES: dict[str, Case] = {}


def case(
    name: str, reference: str, size_name: str, sizes: tuple[int, ...], note: str = ""
) -> Callable[[Callable[[int], Pair]], Callable[[int], Pair]]:
    """Register ``build`` (size -> :class:`Pair`) in :data:`CASES` under ``name``."""

    def register(build: Callable[[int], Pair]) -> Callable[[int], Pair]:
        CASES[name] = Case(name, reference, size_name, sizes, build, note)
        return build

    return register


# What TRL computes inline in a trainer method has nothing of TRL's to call on its own: the
# advantage step alone, the completion mask, GSPO's sequence ratio, the loss lines alone. The
# repository's benches/ time those against plain-torch references proven equal to the trainer
# methods by its tests; the command, shipped in the wheel, times only TRL's (and verl's) own code.
INLINE_NOTE = (
    "ops TRL computes inline (the advantage step alone, completion_mask, sequence_log_ratio, the loss "
    "lines alone) are timed in the repository's benches/, against plain-torch references proven equal "
    "to TRL's trainer methods by its tests"
)


# --- GRPO's scoring step -------------------------------------------------------------------------


def _rewards_column(name: str) -> Callable[..., list]:
    def reward(completions: Any, **columns: Any) -> list:
        return columns[name]

    reward.__name__ = name
    return reward


@case(
    "grpo scoring step",
    "TRL GRPOTrainer._generate_and_score_completions",
    "N",
    SCORING_SIZES,
    note="whole scoring step beside FastGRPOTrainer's: injected completions (1..512 tokens), decoding, "
    "K=3 reward functions (5% None), padding, advantages (G=16) and logged metrics; tiny model, no forward",
)
def scoring_step_pair(n: int) -> Pair:
    """``GRPOTrainer._generate_and_score_completions`` and ``FastGRPOTrainer``'s on the same ``n``
    injected completions (:func:`.inputs.scoring_inputs`, groups of 16) and reward columns."""
    import torch
    from datasets import Dataset

    from ..testing import fixed_rollout, tiny_grpo_trainer
    from ..trl import FastGRPOTrainer

    rows, completions = inputs.scoring_inputs(n)
    funcs = [_rewards_column(f"r{j}") for j in range(SCORING_K)]
    data = Dataset.from_dict({"prompt": ["p"] * n, **{f"r{j}": [0.0] * n for j in range(SCORING_K)}})
    trainers = [
        tiny_grpo_trainer(
            funcs,
            num_generations=SCORING_G,
            per_device_train_batch_size=n,
            train_dataset=data,
            rollout_func=fixed_rollout(completions),
            max_completion_length=512,
            trainer_cls=cls,
        )
        for cls in (None, FastGRPOTrainer)
    ]

    def score(trainer: Any) -> Callable[[], Any]:
        def step() -> Any:
            trainer._metrics["train"].clear()
            return trainer._generate_and_score_completions([dict(row) for row in rows])

        return step

    def check(ref: Any, got: Any) -> None:
        for key in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "num_items_in_batch"):
            assert torch.equal(got[key], ref[key]), key
        torch.testing.assert_close(got["advantages"], ref["advantages"], rtol=1e-5, atol=1e-5)

    return Pair(score(trainers[0]), score(trainers[1]), check=check)


# --- soft overlong reward ------------------------------------------------------------------------


def overlong_lists_pair(lists: list[list[int]]) -> Pair:
    """``trl.rewards.get_soft_overlong_punishment`` and ``fastalign.rewards.soft_overlong``, both
    called as GRPOTrainer calls a reward function: ``f(completion_ids=lists)``."""
    from trl.rewards import get_soft_overlong_punishment

    from ..rewards import soft_overlong

    ref = get_soft_overlong_punishment(OVERLONG_L_MAX, OVERLONG_CACHE)
    ours = soft_overlong(OVERLONG_L_MAX, OVERLONG_CACHE)

    def check(r: Any, g: Any) -> None:
        assert r == g

    return Pair(lambda: ref(completion_ids=lists), lambda: ours(completion_ids=lists), check=check)


def overlong_lengths_pair(lists: list[list[int]], lengths: Any) -> Pair:
    """TRL's reward on the token lists (it takes no tensor) beside fastalign's on an int64 lengths
    tensor of the same lengths (a float64 tensor comes back)."""
    import torch
    from trl.rewards import get_soft_overlong_punishment

    from ..rewards import soft_overlong

    ref = get_soft_overlong_punishment(OVERLONG_L_MAX, OVERLONG_CACHE)
    ours = soft_overlong(OVERLONG_L_MAX, OVERLONG_CACHE)

    def check(r: Any, g: Any) -> None:
        assert torch.equal(g, torch.tensor(r, dtype=torch.float64))

    # read: int64 lengths; written: float64 penalties
    return Pair(
        lambda: ref(completion_ids=lists), lambda: ours(lengths=lengths), nbytes=lengths.numel() * 16, check=check
    )


@case(
    "soft_overlong (lists)",
    "trl.rewards.get_soft_overlong_punishment",
    "B",
    OVERLONG_SIZES,
    note="lengths uniform in 0..4096, L_max=4096, L_cache=1024; token-id lists as TRL passes them",
)
def _overlong_lists(b: int) -> Pair:
    lists, _ = inputs.overlong_completions(b)
    return overlong_lists_pair(lists)


@case(
    "soft_overlong (lengths)",
    "trl.rewards.get_soft_overlong_punishment (lists)",
    "B",
    OVERLONG_SIZES,
    note="TRL takes no tensor: its time is on the token lists; fastalign's on an int64 lengths tensor",
)
def _overlong_lengths(b: int) -> Pair:
    return overlong_lengths_pair(*inputs.overlong_completions(b))


# --- GRPO's loss method --------------------------------------------------------------------------


def loss_method_pair(level: str, loss_type: str, b: int, t: int) -> Pair:
    """``GRPOTrainer._compute_loss`` and ``FastGRPOTrainer``'s, then the gradient, on the same
    injected (b, t) log-probs (:func:`.inputs.logps`, :func:`.inputs.entropies`)."""
    import torch

    from ..testing import injected_logps_grpo_trainer
    from ..trl import FastGRPOTrainer

    lp0, old, mask, adv = inputs.logps(b, t)
    entropies = inputs.entropies(b, t)
    batch = {
        "prompt_ids": torch.zeros(b, 2, dtype=torch.long),
        "prompt_mask": torch.ones(b, 2, dtype=torch.long),
        "completion_ids": torch.zeros(b, t, dtype=torch.long),
        "completion_mask": mask,
        "advantages": adv,
        "num_items_in_batch": mask.sum(),
        "old_per_token_logps": old,
    }

    def step(base: type | None) -> Callable[[], Any]:
        trainer = injected_logps_grpo_trainer(
            base=base,
            num_generations=2,
            per_device_train_batch_size=2,
            loss_type=loss_type,
            importance_sampling_level=level,
            epsilon=LOSS_EPSILON,
            epsilon_high=LOSS_EPSILON_HIGH,
            max_completion_length=t,
        )
        trainer.current_gradient_accumulation_steps = 1

        def run() -> Any:
            trainer._metrics["train"].clear()
            lp = lp0.clone().requires_grad_(True)
            trainer.injected = (lp, entropies)
            loss = trainer._compute_loss(trainer.model, batch)
            return loss.detach(), torch.autograd.grad(loss, lp)[0]

        return run

    def check(r: Any, g: Any) -> None:
        torch.testing.assert_close(g[0], r[0], rtol=2e-5, atol=1e-6)
        torch.testing.assert_close(g[1], r[1], rtol=2e-5, atol=1e-8)

    return Pair(step(None), step(FastGRPOTrainer), check=check)


def _loss_case(config: str) -> Callable[[int], Pair]:
    level, loss_type = LOSS_CONFIGS[config]
    return lambda b: loss_method_pair(level, loss_type, b, LOSS_T)


case(
    "grpo _compute_loss fwd+bwd (dapo)",
    "TRL GRPOTrainer._compute_loss + autograd",
    "B",
    LOSS_SIZES,
    note="T=4096; the trainers' loss methods on injected log-probs (loss, gradient and logged metrics) beside "
    "FastGRPOTrainer's; TRL's default loss: token ratio, clip 0.2/0.28, / num_items_in_batch",
)(_loss_case("dapo"))
case(
    "grpo _compute_loss fwd+bwd (GSPO)",
    "TRL GRPOTrainer._compute_loss + autograd",
    "B",
    LOSS_SIZES,
    note="T=4096; importance_sampling_level='sequence', loss_type='grpo'",
)(_loss_case("gspo"))


# --- packing -------------------------------------------------------------------------------------


def pack_pair(dataset: Any, seq_length: int = PACK_SEQ_LENGTH, *, global_window: bool = False) -> Pair:
    """``trl.pack_dataset`` and ``fastalign.packing.pack_dataset`` (bfd) on the same dataset: with
    TRL's windows (its ``map`` batches of 1,000 rows), or with one window over every row
    (``map_kwargs={"batch_size": N}`` for TRL, ``window=None`` for fastalign)."""
    from datasets import disable_progress_bars
    from trl import pack_dataset as trl_pack

    from ..packing import pack_dataset

    disable_progress_bars()
    map_kwargs = {"batch_size": len(dataset)} if global_window else None
    window = None if global_window else "trl"
    tokens = len(dataset.data.table.column(0).chunk(0).values)

    def check(r: Any, g: Any) -> None:
        assert r.data.table.equals(g.data.table)

    return Pair(
        lambda: trl_pack(dataset, seq_length, "bfd", map_kwargs),
        lambda: pack_dataset(dataset, seq_length, "bfd", window=window),
        nbytes=tokens * 16,  # int64 tokens read and written (the gather)
        check=check,
    )


@case(
    "pack_dataset (bfd, TRL windows)",
    "trl.pack_dataset",
    "N",
    PACK_SIZES,
    note="lognormal lengths (mean ~400 tokens), one int64 column, seq_length 4096, 1,000-row windows",
)
def _pack(n: int) -> Pair:
    return pack_pair(inputs.pack_dataset_input(n))


# --- Karmarkar-Karp ------------------------------------------------------------------------------


def kk_pair(lengths: np.ndarray, k: int, equal_size: bool) -> Pair:
    """verl's ``get_seqlen_balanced_partitions`` and ``fastalign.packing.balance_partitions`` on
    the same lengths; the check: fastalign's spread is at most verl's. Raises :class:`Skip`
    when verl is not installed."""
    try:
        from verl.utils.seqlen_balancing import get_seqlen_balanced_partitions
    except ImportError:
        raise Skip(
            "verl is not installed (pip install verl); benches/bench_packing.py in the repository "
            "times a pure-Python Karmarkar-Karp instead"
        ) from None

    from ..packing import balance_partitions

    def spread(parts: list[list[int]]) -> int:
        sums = [int(lengths[list(p)].sum()) for p in parts]
        return max(sums) - min(sums)

    def check(r: Any, g: Any) -> None:
        assert spread(g) <= spread(r), "fastalign's partition is less balanced than verl's"

    return Pair(
        lambda: get_seqlen_balanced_partitions(lengths.tolist(), k, equal_size),
        lambda: balance_partitions(lengths, k, equal_size=equal_size),
        check=check,
    )


def _kk_case(equal_size: bool) -> Callable[[int], Pair]:
    return lambda n: kk_pair(inputs.kk_lengths(n), KK_K, equal_size)


case(
    "balance_partitions (k=64)",
    "verl get_seqlen_balanced_partitions",
    "n",
    KK_SIZES,
    note="lengths uniform in 64..8191; fastalign's spread must be at most verl's (needs verl)",
)(_kk_case(False))
case(
    "balance_partitions (k=64, equal size)",
    "verl get_seqlen_balanced_partitions",
    "n",
    KK_SIZES,
    note="equal_size=True",
)(_kk_case(True))
