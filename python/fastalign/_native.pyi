"""Type stubs for the compiled module ``fastalign._native`` (Rust, PyO3).

These are private building blocks: the public, validated API is in ``fastalign.advantages``,
``fastalign.overlong``, ``fastalign.rewards``, ``fastalign.ratios``, ``fastalign.losses`` (through
``fastalign.ops``) and ``fastalign.packing``, which wrap the plain tuples and arrays returned
here. Every array argument must already be a C-contiguous numpy array of the dtype in the
function's name.

Checked against the compiled module's signatures by ``python -m mypy.stubtest fastalign._native``.
"""

from collections.abc import Sequence
from typing import Any, Self, TypeAlias, TypedDict, TypeVar, final

import numpy as np
import numpy.typing as npt

from fastalign.ops import _LossConfig

__all__ = [
    "grpo_advantages_f32",
    "grpo_advantages_f64",
    "grpo_advantages_fast",
    "rloo_advantages_f32",
    "rloo_advantages_f64",
    "zero_variance_groups_f32",
    "zero_variance_groups_f64",
    "_borrowed_address",
    "_panic_for_tests",
    "grpo_loss_f32",
    "grpo_loss_f64",
    "masked_reduce_backward_f32",
    "masked_reduce_backward_f64",
    "masked_reduce_f32",
    "masked_reduce_f64",
    "vllm_is_ratio_f32",
    "vllm_is_ratio_f64",
    "completion_mask_i32",
    "completion_mask_i32_to_bool",
    "completion_mask_i32_to_i32",
    "completion_mask_i64",
    "completion_mask_i64_to_bool",
    "completion_mask_i64_to_i32",
    "balance_partitions",
    "cu_seqlens",
    "gather_u16",
    "gather_u32",
    "gather_u64",
    "gather_u8",
    "pack_plan",
    "position_ids",
    "SoftOverlong",
    "concat_lists",
    "pack_rows",
    "top_k_per_group_f32",
    "top_k_per_group_f64",
    "__version__",
    "build_profile",
]

__version__: str
build_profile: str

# The fields of fastalign.advantages.Advantages, in order: advantages, std_is_zero, rewards,
# frac_reward_zero_std, then reward_mean, reward_std, reward_func_means, reward_func_stds (None
# without metrics).
_AdvantageTuple = tuple[
    npt.NDArray[Any],
    npt.NDArray[np.bool_],
    npt.NDArray[Any],
    float,
    float | None,
    float | None,
    tuple[float, ...] | None,
    tuple[float, ...] | None,
]

def grpo_advantages_f32(
    rewards: npt.NDArray[np.float32],
    reward_weights: npt.NDArray[np.float32],
    num_generations: int,
    scale_rewards: str,
    multi_objective_aggregation: str,
    eps: float,
    metrics: bool,
) -> _AdvantageTuple: ...
def grpo_advantages_f64(
    rewards: npt.NDArray[np.float64],
    reward_weights: npt.NDArray[np.float64],
    num_generations: int,
    scale_rewards: str,
    multi_objective_aggregation: str,
    eps: float,
    metrics: bool,
) -> _AdvantageTuple: ...
def grpo_advantages_fast(
    rewards: Any,
    num_generations: Any,
    scale_rewards: Any,
    reward_weights: Any,
    multi_objective_aggregation: Any,
    eps: Any,
    metrics: Any,
) -> _AdvantageTuple | None: ...

# RlooParams of the Rust core, by name (functional syntax: a class here would read as a class
# of the compiled module, which tests/test_package.py compares with the stub's classes)
_RlooParams = TypedDict(  # noqa: UP013
    "_RlooParams",
    {
        "num_generations": int,
        "reward_clip_range": tuple[float, float] | None,
        "beta": float,
        "normalize_advantages": bool,
        "eps": float,
    },
)

def rloo_advantages_f32(
    rewards: npt.NDArray[np.float32],
    reward_weights: npt.NDArray[np.float32],
    kl: npt.NDArray[np.float32] | None,
    params: _RlooParams,
    metrics: bool,
) -> _AdvantageTuple: ...
def rloo_advantages_f64(
    rewards: npt.NDArray[np.float64],
    reward_weights: npt.NDArray[np.float64],
    kl: npt.NDArray[np.float64] | None,
    params: _RlooParams,
    metrics: bool,
) -> _AdvantageTuple: ...
def zero_variance_groups_f32(
    rewards: npt.NDArray[np.float32],
    reward_weights: npt.NDArray[np.float32],
    num_generations: int,
    atol: float,
    rtol: float,
) -> npt.NDArray[np.bool_]: ...
def zero_variance_groups_f64(
    rewards: npt.NDArray[np.float64],
    reward_weights: npt.NDArray[np.float64],
    num_generations: int,
    atol: float,
    rtol: float,
) -> npt.NDArray[np.bool_]: ...
def completion_mask_i32(
    completion_ids: npt.NDArray[np.int32], eos_token_ids: list[int], pad_token_id: int, mask_truncated_completions: bool
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int64], int]: ...
def completion_mask_i64(
    completion_ids: npt.NDArray[np.int64], eos_token_ids: list[int], pad_token_id: int, mask_truncated_completions: bool
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.int64], int]: ...
def completion_mask_i32_to_i32(
    completion_ids: npt.NDArray[np.int32], eos_token_ids: list[int], pad_token_id: int, mask_truncated_completions: bool
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_], npt.NDArray[np.int64], int]: ...
def completion_mask_i64_to_i32(
    completion_ids: npt.NDArray[np.int64], eos_token_ids: list[int], pad_token_id: int, mask_truncated_completions: bool
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_], npt.NDArray[np.int64], int]: ...
def completion_mask_i32_to_bool(
    completion_ids: npt.NDArray[np.int32], eos_token_ids: list[int], pad_token_id: int, mask_truncated_completions: bool
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.int64], int]: ...
def completion_mask_i64_to_bool(
    completion_ids: npt.NDArray[np.int64], eos_token_ids: list[int], pad_token_id: int, mask_truncated_completions: bool
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.int64], int]: ...
def top_k_per_group_f32(
    scores: npt.NDArray[np.float32], num_generations: int, k: int, keep: str
) -> npt.NDArray[np.int64]: ...
def top_k_per_group_f64(
    scores: npt.NDArray[np.float64], num_generations: int, k: int, keep: str
) -> npt.NDArray[np.int64]: ...
def _borrowed_address(array: npt.NDArray[Any]) -> int: ...
def _panic_for_tests() -> None: ...
@final
class SoftOverlong:
    def __new__(cls, max_completion_len: int, soft_punish_cache: int) -> Self: ...
    @property
    def max_completion_len(self) -> int: ...
    @property
    def soft_punish_cache(self) -> int: ...
    def penalties_of(self, completion_ids: Any) -> list[float]: ...
    def penalties_i32(self, lengths: npt.NDArray[np.int32], float64: bool) -> npt.NDArray[Any]: ...
    def penalties_i64(self, lengths: npt.NDArray[np.int64], float64: bool) -> npt.NDArray[Any]: ...
    def penalties_fast(self, lengths: Any) -> npt.NDArray[np.float64] | None: ...
    def __getnewargs__(self) -> tuple[int, int]: ...

# Ratios and losses (fastalign.ratios, fastalign.losses, fastalign.ops). Arrays are 1-D views;
# the layout is `rows` padded rows, or packed sequences given by int64 `cu_seqlens`. Masks may be
# bool, int32, int64, float32 or float64.

_IsStats = tuple[float, float, float, float, float, float, float, float]
_LossMetrics = tuple[float, float, float, float, float, float, float, float]
_F = TypeVar("_F", bound=np.generic)
# (per_token_logps, old_per_token_logps, advantages, mask, ref_per_token_logps,
#  importance_sampling_ratio, sampling_per_token_logps, entropy_mask)
_LossArrays: TypeAlias = tuple[
    npt.NDArray[_F],
    npt.NDArray[_F] | None,
    npt.NDArray[_F],
    npt.NDArray[Any],
    npt.NDArray[_F] | None,
    npt.NDArray[_F] | None,
    npt.NDArray[_F] | None,
    npt.NDArray[np.bool_] | None,
]

def masked_reduce_f32(
    values: npt.NDArray[np.float32],
    minus: npt.NDArray[np.float32] | None,
    mask: npt.NDArray[Any] | None,
    rows: int,
    cu_seqlens: npt.NDArray[np.int64] | None,
    reduction: str,
) -> npt.NDArray[np.float32]: ...
def masked_reduce_f64(
    values: npt.NDArray[np.float64],
    minus: npt.NDArray[np.float64] | None,
    mask: npt.NDArray[Any] | None,
    rows: int,
    cu_seqlens: npt.NDArray[np.int64] | None,
    reduction: str,
) -> npt.NDArray[np.float64]: ...
def masked_reduce_backward_f32(
    grad: npt.NDArray[np.float32],
    mask: npt.NDArray[Any] | None,
    tokens: int,
    cu_seqlens: npt.NDArray[np.int64] | None,
    reduction: str,
) -> npt.NDArray[np.float32]: ...
def masked_reduce_backward_f64(
    grad: npt.NDArray[np.float64],
    mask: npt.NDArray[Any] | None,
    tokens: int,
    cu_seqlens: npt.NDArray[np.int64] | None,
    reduction: str,
) -> npt.NDArray[np.float64]: ...
def vllm_is_ratio_f32(
    old: npt.NDArray[np.float32],
    sampling: npt.NDArray[np.float32],
    mask: npt.NDArray[Any],
    rows: int,
    cu_seqlens: npt.NDArray[np.int64] | None,
    mode: str,
    clip_range: tuple[float | None, float | None],
) -> tuple[npt.NDArray[np.float32], _IsStats]: ...
def vllm_is_ratio_f64(
    old: npt.NDArray[np.float64],
    sampling: npt.NDArray[np.float64],
    mask: npt.NDArray[Any],
    rows: int,
    cu_seqlens: npt.NDArray[np.int64] | None,
    mode: str,
    clip_range: tuple[float | None, float | None],
) -> tuple[npt.NDArray[np.float64], _IsStats]: ...
def grpo_loss_f32(
    arrays: _LossArrays[np.float32],
    rows: int,
    cu_seqlens: npt.NDArray[np.int64] | None,
    config: _LossConfig,
    grad: npt.NDArray[np.float32] | None,
) -> tuple[float, _LossMetrics]: ...
def grpo_loss_f64(
    arrays: _LossArrays[np.float64],
    rows: int,
    cu_seqlens: npt.NDArray[np.int64] | None,
    config: _LossConfig,
    grad: npt.NDArray[np.float64] | None,
) -> tuple[float, _LossMetrics]: ...

# packing (fastalign.packing)
# (chunks, chunk_bases, row_starts): one list column's value chunks, where each chunk starts in
# the column, where each row starts
_Column: TypeAlias = tuple[list[npt.NDArray[_F]], npt.NDArray[np.int64], npt.NDArray[np.int64]]
# (piece_row, piece_skip, piece_len), as pack_plan returns them
_Pieces = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]

def pack_plan(
    lengths: npt.NDArray[np.int64],
    window_starts: npt.NDArray[np.int64],
    window_ends: npt.NDArray[np.int64],
    seq_length: int,
    strategy: str,
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64] | None,
    int,
    int,
    int,
]:
    """Plan: (piece_row, piece_skip, piece_len, out_offsets, bin_bounds | None,
    tokens_truncated, rows_split, rows_empty)."""

def gather_u8(
    column: _Column[np.uint8],
    pieces: _Pieces,
    total: int,
    out: npt.NDArray[np.uint8] | None = None,
) -> npt.NDArray[np.uint8]: ...
def gather_u16(
    column: _Column[np.uint16],
    pieces: _Pieces,
    total: int,
    out: npt.NDArray[np.uint16] | None = None,
) -> npt.NDArray[np.uint16]: ...
def gather_u32(
    column: _Column[np.uint32],
    pieces: _Pieces,
    total: int,
    out: npt.NDArray[np.uint32] | None = None,
) -> npt.NDArray[np.uint32]: ...
def gather_u64(
    column: _Column[np.uint64],
    pieces: _Pieces,
    total: int,
    out: npt.NDArray[np.uint64] | None = None,
) -> npt.NDArray[np.uint64]: ...
def position_ids(seq_lengths: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]: ...
def cu_seqlens(seq_lengths: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]: ...
def balance_partitions(
    lengths: npt.NDArray[np.int64],
    k: int,
    equal_size: bool,
    max_tokens: int | None,
    ints: list[int],
    refine: bool = False,
) -> list[list[int]]: ...

# rows.rs: padding-free packed rows
def concat_lists(
    parts: list[Sequence[Sequence[int]]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.uint8]]: ...
def pack_rows(
    values: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    targets: npt.NDArray[np.uint8] | None,
    order: npt.NDArray[np.int64],
    bin_offsets: npt.NDArray[np.int64],
    loss_order: npt.NDArray[np.int64],
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
]: ...
