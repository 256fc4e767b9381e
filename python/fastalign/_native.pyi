"""Type stubs for the compiled module ``fastalign._native`` (Rust, PyO3).

These are private building blocks: the public, validated API is in ``fastalign.advantages``,
``fastalign.overlong`` and ``fastalign.rewards``. Every array argument must already be a
C-contiguous numpy array of the dtype in the function's name.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str
build_profile: str

_Metrics = tuple[tuple[float, float], list[tuple[float, float]]]
_AdvantageTuple = tuple[npt.NDArray[Any], npt.NDArray[np.bool_], npt.NDArray[Any], float, _Metrics | None]

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
def rloo_advantages_f32(
    rewards: npt.NDArray[np.float32],
    reward_weights: npt.NDArray[np.float32],
    num_generations: int,
    kl: npt.NDArray[np.float32] | None,
    beta: float,
    reward_clip_range: tuple[float, float] | None,
    normalize_advantages: bool,
    eps: float,
    metrics: bool,
) -> _AdvantageTuple: ...
def rloo_advantages_f64(
    rewards: npt.NDArray[np.float64],
    reward_weights: npt.NDArray[np.float64],
    num_generations: int,
    kl: npt.NDArray[np.float64] | None,
    beta: float,
    reward_clip_range: tuple[float, float] | None,
    normalize_advantages: bool,
    eps: float,
    metrics: bool,
) -> _AdvantageTuple: ...
def zero_variance_groups_f32(
    rewards: npt.NDArray[np.float32], reward_weights: npt.NDArray[np.float32], num_generations: int, atol: float, rtol: float
) -> npt.NDArray[np.bool_]: ...
def zero_variance_groups_f64(
    rewards: npt.NDArray[np.float64], reward_weights: npt.NDArray[np.float64], num_generations: int, atol: float, rtol: float
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
def _borrowed_address(array: npt.NDArray[Any]) -> int: ...
def _panic_for_tests() -> None: ...

class SoftOverlong:
    def __init__(self, max_completion_len: int, soft_punish_cache: int) -> None: ...
    @property
    def max_completion_len(self) -> int: ...
    @property
    def soft_punish_cache(self) -> int: ...
    def penalties_of(self, completion_ids: Any) -> list[float]: ...
    def penalties_i32(self, lengths: npt.NDArray[np.int32], float64: bool) -> npt.NDArray[Any]: ...
    def penalties_i64(self, lengths: npt.NDArray[np.int64], float64: bool) -> npt.NDArray[Any]: ...
    def __getnewargs__(self) -> tuple[int, int]: ...

# packing (fastalign.packing)
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
    """Plan: (piece_row, piece_skip, piece_len, out_offsets, bin_bounds | None, tokens_truncated, rows_split, rows_empty)."""

def gather_u8(
    chunks: list[npt.NDArray[np.uint8]],
    chunk_bases: npt.NDArray[np.int64],
    row_starts: npt.NDArray[np.int64],
    piece_row: npt.NDArray[np.int64],
    piece_skip: npt.NDArray[np.int64],
    piece_len: npt.NDArray[np.int64],
    total: int,
) -> npt.NDArray[np.uint8]: ...
def gather_u16(
    chunks: list[npt.NDArray[np.uint16]],
    chunk_bases: npt.NDArray[np.int64],
    row_starts: npt.NDArray[np.int64],
    piece_row: npt.NDArray[np.int64],
    piece_skip: npt.NDArray[np.int64],
    piece_len: npt.NDArray[np.int64],
    total: int,
) -> npt.NDArray[np.uint16]: ...
def gather_u32(
    chunks: list[npt.NDArray[np.uint32]],
    chunk_bases: npt.NDArray[np.int64],
    row_starts: npt.NDArray[np.int64],
    piece_row: npt.NDArray[np.int64],
    piece_skip: npt.NDArray[np.int64],
    piece_len: npt.NDArray[np.int64],
    total: int,
) -> npt.NDArray[np.uint32]: ...
def gather_u64(
    chunks: list[npt.NDArray[np.uint64]],
    chunk_bases: npt.NDArray[np.int64],
    row_starts: npt.NDArray[np.int64],
    piece_row: npt.NDArray[np.int64],
    piece_skip: npt.NDArray[np.int64],
    piece_len: npt.NDArray[np.int64],
    total: int,
) -> npt.NDArray[np.uint64]: ...
def position_ids(seq_lengths: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]: ...
def cu_seqlens(seq_lengths: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]: ...
def balance_partitions(
    lengths: npt.NDArray[np.int64], k: int, equal_size: bool, max_tokens: int | None
) -> npt.NDArray[np.uint32]: ...
