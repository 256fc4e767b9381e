"""``FastGRPOTrainer``: TRL 1.16's ``GRPOTrainer`` with fastalign's kernels in the scoring step,
plus DAPO dynamic sampling and GFPO, which TRL 1.16 does not have.

What changes, and what does not
-------------------------------
``GRPOTrainer._generate_and_score_completions`` is one ~600-line method with no seam for the
advantage step, the masks or the importance-sampling ratio. This
subclass re-implements it for text batches (no tools, environments or images) from the same
building blocks TRL uses — ``_generate`` (generation and its metrics), ``_calculate_rewards``,
``_get_per_token_logps_and_entropies`` — and replaces the inline tensor code with fastalign:

* advantages and the reward metrics TRL logs: :func:`fastalign.advantages.grpo_advantages`;
* padding, masks and ``mask_truncated_completions``: one pass over the id lists;
* the vLLM importance-sampling ratio (TIS/MIS) and its metrics: :func:`fastalign.ratios.vllm_is_ratio`;
* the loss, its gradient and the metrics ``_compute_loss`` logs: :func:`fastalign.losses.grpo_loss`,
  on any number of processes, the metrics reduced across ranks as TRL reduces them
  (``trl/_metrics.py``: one all-reduce and one all-gather per step instead of TRL's seven).

Anything else (tool calling, environments, multimodal prompts, a PEFT reference model) goes to
TRL's own method unchanged, and so does the loss when the entropy bonus or the MoE aux loss is on
(terms TRL adds to the aggregated loss with schedules and metrics of their own; padding-free
runs TRL's loss code on the packed forward's results then). With the same seed and data, a
``FastGRPOTrainer`` trains exactly
like ``GRPOTrainer`` (``tests/parity/test_trl_fast_trainer.py`` checks losses and metrics over several
steps).

Additions
---------
* **DAPO dynamic sampling** (Yu et al., 2025, arXiv:2503.14476, §3.2): groups whose rewards
  carry no signal (:func:`fastalign.advantages.zero_variance_groups`, a tolerant test rather than
  ``std == 0``) are dropped and the batch is refilled with informative groups from further
  generations of the same prompts, up to ``max_num_gen_batches`` generations per step (as DAPO
  and verl do). If still short, ``replay_informative_groups`` reuses informative groups kept from
  earlier steps; otherwise the batch is completed with zero-variance groups (advantage 0: they
  keep the batch shape but move nothing). Metrics: ``dynamic_sampling/*``.
* **GFPO** (Shrivastava et al., 2025, arXiv:2508.09726, §2): sample ``num_generations``
  completions per prompt, keep the ``gfpo_num_remains_in_group`` best by a metric
  (:func:`fastalign.advantages.top_k_per_group`), and compute advantages over the kept group only;
  the rejected completions carry no gradient. Unlike TRL v1.7.1's removed ``GFPOTrainer``, groups
  stay aligned (v1.7.1 built overlapping windows, so only its first group was right) and the kept
  rows stay in their original order.

On several processes, dynamic sampling and GFPO decide on the whole generation batch: every
rank's rows are gathered (the rewards already are, in TRL), the same groups are kept and the
same refills generated on every rank (so collectives stay in step even when one rank's groups
all lack signal), and each rank takes its equal share of the kept rows in TRL's global layout
(whole groups per rank whenever a rank's share is a multiple of the group size).

Padding-free (``padding_free=True``)
------------------------------------
The generation batch stays ragged (:class:`fastalign.trl._packed.PackedGeneration`): every
forward takes packed rows of real tokens (:mod:`fastalign.padding_free`), per-token tensors live
in the ``(N,)`` layout of the trained tokens, and the loss is :func:`fastalign.losses.grpo_loss`
with ``cu_seqlens`` on any number of processes (the entropy bonus and the MoE aux loss run
TRL's own loss code on the packed forward's results, scattered to its padded layout, which is
also where the metrics' cross-process reductions come from). With ``max_tokens_per_microbatch``,
a micro-batch is forwarded (and back-propagated) in rows of at most that many tokens, each row's
loss scaled to its share of TRL's micro-batch loss.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from accelerate.utils import DistributedType, gather_object
from trl import GRPOConfig, GRPOTrainer

from .. import _validate as v
from ..advantages import grpo_advantages, top_k_per_group, zero_variance_groups
from ..errors import InvalidArgumentError, PaddingFreeError
from ..packing import balance_partitions, bfd
from ..padding_free import (
    PackedRows,
    attention_mode,
    check_budget,
    check_model,
    check_packed_forward,
    concat_lists,
    enable_segment_attention,
    forward_packed,
)
from ..ratios import vllm_is_ratio
from ._metrics import PendingMetrics, loss_metrics
from ._packed import PackedGeneration, padded_mask, scatter_padded, spans
from ._step import forward_rows, idle_call, most_over_ranks, no_gradient_checkpointing

__all__ = ["FastGRPOTrainer"]

_GFPO_METRICS = ("length", "reward_per_token")


_LISTS = ("inputs", "prompts", "prompt_ids", "completion_ids", "completions", "sampling_logps", "tool_mask")


def _pick(xs: list[Any] | None, rows: Iterable[int]) -> Any:
    """Rows ``rows`` of one of a rollout's lists (``None`` stays ``None``)."""
    return None if xs is None else [xs[i] for i in rows]


@dataclass
class _Rollout:
    """One generation batch of whole groups, before tensors are built (rows in group order)."""

    inputs: list[dict]
    prompts: list
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    completions: list
    sampling_logps: list | None
    tool_mask: list | None
    rewards_per_func: torch.Tensor  # (N, K), gathered

    def local(self, rows: np.ndarray | None) -> _Rollout:
        """``rows`` of a whole batch, for this rank's tensors (rewards stay whole: they are
        gathered, as TRL's); ``None``: the batch already is this rank's."""
        if rows is None:
            return self
        return _Rollout.of((_pick(getattr(self, f), rows) for f in _LISTS), self.rewards_per_func)

    def take(self, rows: list[int]) -> _Rollout:
        index = torch.as_tensor(rows, dtype=torch.long, device=self.rewards_per_func.device)
        return _Rollout(
            inputs=_pick(self.inputs, rows),
            prompts=_pick(self.prompts, rows),
            prompt_ids=_pick(self.prompt_ids, rows),
            completion_ids=_pick(self.completion_ids, rows),
            completions=_pick(self.completions, rows),
            sampling_logps=_pick(self.sampling_logps, rows),
            tool_mask=_pick(self.tool_mask, rows),
            rewards_per_func=self.rewards_per_func.index_select(0, index),
        )

    @staticmethod
    def of(lists: Iterable[Any], rewards_per_func: torch.Tensor) -> _Rollout:
        """A rollout from its lists in ``_LISTS`` order."""
        return _Rollout(**dict(zip(_LISTS, lists)), rewards_per_func=rewards_per_func)

    @staticmethod
    def concat(parts: list[_Rollout]) -> _Rollout:
        def cat(name: str) -> Any:
            values = [getattr(p, name) for p in parts]
            if any(x is None for x in values):
                return None
            return [row for x in values for row in x]

        return _Rollout(
            inputs=cat("inputs"),
            prompts=cat("prompts"),
            prompt_ids=cat("prompt_ids"),
            completion_ids=cat("completion_ids"),
            completions=cat("completions"),
            sampling_logps=cat("sampling_logps"),
            tool_mask=cat("tool_mask"),
            rewards_per_func=torch.cat([p.rewards_per_func for p in parts]),
        )


@dataclass
class _HotPathTimes:
    """Wall-clock seconds of each call into the parts fastalign replaces (``fastalign_times``)."""

    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, name: str, seconds: float) -> None:
        self.samples[name].append(seconds)

    def total(self, name: str) -> float:
        return sum(self.samples[name])

    def median(self, name: str) -> float:
        xs = sorted(self.samples[name])
        return xs[len(xs) // 2] if xs else math.nan

    def calls(self, name: str) -> int:
        return len(self.samples[name])


class FastGRPOTrainer(GRPOTrainer):
    """``trl.GRPOTrainer`` (1.16.0) scoring through fastalign, with DAPO dynamic sampling and GFPO.

    Takes every argument of ``GRPOTrainer``, plus (keyword-only):

    dynamic_sampling : bool
        DAPO's dynamic sampling (train mode): drop zero-variance groups, refill from more
        generations of the same prompts.
    max_num_gen_batches : int
        Generations per step at most, the first included (DAPO/verl ``max_num_gen_batches``).
    replay_informative_groups : int
        Keep up to this many informative groups from earlier steps and reuse them when the
        generations run out (0: off). Replayed groups are off-policy by at least one step.
    zero_variance_atol, zero_variance_rtol : float
        Tolerances of :func:`fastalign.advantages.zero_variance_groups`.
    gfpo_num_remains_in_group : int or None
        GFPO's ``k``: completions kept per group (2 <= k < num_generations).
    gfpo_metric : "length", "reward_per_token" or a callable
        Which completions GFPO keeps: the shortest, the highest reward per token, or the highest
        value of ``metric(completion_ids=list[list[int]], rewards=(N,) tensor) -> (N,) floats``.
    padding_free : bool
        Forward only real tokens: every forward (old and reference log-probs, the training pass)
        takes packed rows of whole sequences with restarting position ids, and attention runs per
        sequence (see :mod:`fastalign.padding_free`). Trains exactly like the padded trainer.
    max_tokens_per_microbatch : int or None
        With ``padding_free``: the most tokens in one packed row. ``None`` packs each of TRL's
        micro-batches (``per_device_train_batch_size`` sequences) into one row. A budget splits a
        micro-batch into rows of at most this many tokens, each forwarded (and, in training,
        back-propagated) on its own, normalised so the accumulated gradient equals the padded one.
    balance_ranks : bool
        With ``padding_free`` on several processes: deal the generation batch's sequences to the
        ranks by tokens (:func:`fastalign.packing.balance_partitions`, equal counts) instead of
        TRL's contiguous slices, so no rank waits for a busier one at the gradient all-reduce
        (the loss itself makes no collective; measured 7-10% faster steps on two processes,
        ``benches/step_two_ranks.py``). Off by default because it changes which sequences share
        a micro-batch: the global batch, the advantages and the loss are unchanged, except for
        what TRL takes per micro-batch (bnpo's token normaliser, the entropy bonus,
        ``top_entropy_quantile``), which then depends on the split as TRL's does on its shuffle.
    """

    # GRPOTrainer's attributes as they are once its __init__ has run: GRPOConfig and Trainer
    # annotate them with the values they accept before resolving them (no model, a
    # num_generations or max_completion_length left to the config, pad_to_multiple_of="auto")
    args: GRPOConfig
    model: torch.nn.Module  # a PreTrainedModel, or a PEFT model wrapping one
    num_generations: int
    num_generations_eval: int
    max_completion_length: int
    pad_to_multiple_of: int | None
    _logs: dict[str, Any]

    def __init__(
        self,
        *args: Any,
        dynamic_sampling: bool = False,
        max_num_gen_batches: int = 3,
        replay_informative_groups: int = 0,
        zero_variance_atol: float = 1e-6,
        zero_variance_rtol: float = 1e-5,
        gfpo_num_remains_in_group: int | None = None,
        gfpo_metric: str | Callable = "length",
        padding_free: bool = False,
        max_tokens_per_microbatch: int | None = None,
        balance_ranks: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._setup_padding_free(padding_free, max_tokens_per_microbatch)
        if not isinstance(balance_ranks, bool):
            raise v.InvalidTypeError(f"expected a bool, got {type(balance_ranks).__name__}", "balance_ranks")
        if balance_ranks and not padding_free:
            raise InvalidArgumentError("needs padding_free=True", "balance_ranks")
        self.balance_ranks = balance_ranks
        self._pending_loss_metrics = PendingMetrics()
        if not isinstance(dynamic_sampling, bool):
            raise v.InvalidTypeError(f"expected a bool, got {type(dynamic_sampling).__name__}", "dynamic_sampling")
        self.dynamic_sampling = dynamic_sampling
        self.max_num_gen_batches = v.integer(max_num_gen_batches, "max_num_gen_batches", minimum=1)
        self.replay_informative_groups = v.integer(replay_informative_groups, "replay_informative_groups", minimum=0)
        self.zero_variance_atol = v.real(zero_variance_atol, "zero_variance_atol", minimum=0.0)
        self.zero_variance_rtol = v.real(zero_variance_rtol, "zero_variance_rtol", minimum=0.0)
        self.gfpo_num_remains_in_group: int | None = None
        if gfpo_num_remains_in_group is not None:
            k = v.integer(gfpo_num_remains_in_group, "gfpo_num_remains_in_group", minimum=2)
            if k >= self.num_generations:
                raise InvalidArgumentError(
                    f"must be below num_generations ({self.num_generations}) to filter anything, got {k}",
                    "gfpo_num_remains_in_group",
                )
            spg, procs = self._steps_per_generation, self.accelerator.num_processes
            rows = self.args.per_device_train_batch_size * spg * procs
            kept_rows = rows // self.num_generations * k
            if rows % self.num_generations or kept_rows % (spg * procs):
                raise InvalidArgumentError(
                    f"keeps {kept_rows} of {rows} rows per generation batch, which must split into "
                    f"steps_per_generation={spg} equal batches of whole groups on each of {procs} process(es)",
                    "gfpo_num_remains_in_group",
                )
            self.gfpo_num_remains_in_group = k
        if not callable(gfpo_metric):
            gfpo_metric = v.choice(gfpo_metric, "gfpo_metric", _GFPO_METRICS)
        self.gfpo_metric: str | Callable[..., Any] = gfpo_metric
        self._replay: list[_Rollout] = []
        self.fastalign_times = _HotPathTimes()

    def _setup_padding_free(self, padding_free: object, max_tokens: object) -> None:
        if not isinstance(padding_free, bool):
            raise v.InvalidTypeError(f"expected a bool, got {type(padding_free).__name__}", "padding_free")
        self.padding_free = padding_free
        self.max_tokens_per_microbatch = None
        self._injected_forward: tuple | None = None
        self._checked_models: set[int] = set()
        if padding_free:  # what padding-free cannot run at all comes first
            reason = None
            if self._is_vlm:
                reason = "vision-language models"
            elif self.tools or self.environment_factories is not None:
                reason = "tool calling and environments"
            elif self.beta != 0.0 and self.ref_model is None:
                reason = "a PEFT reference model (beta != 0 without ref_model)"
            if reason:
                raise PaddingFreeError(f"is not supported with {reason}; train padded", "padding_free")
            for model in (self.model, self.ref_model):
                if model is not None:
                    check_model(model)
        if max_tokens is not None:
            if not padding_free:
                raise InvalidArgumentError("needs padding_free=True", "max_tokens_per_microbatch")
            budget = v.integer(max_tokens, "max_tokens_per_microbatch", minimum=1)
            if budget < self.max_completion_length + 1:
                raise InvalidArgumentError(
                    f"is {budget} tokens, below one prompt token plus max_completion_length "
                    f"({self.max_completion_length}): a sequence must fit in a row whole",
                    "max_tokens_per_microbatch",
                )
            if self.aux_loss_enabled:
                raise PaddingFreeError(
                    "the MoE load-balancing loss is defined over TRL's whole micro-batch; leave it None",
                    "max_tokens_per_microbatch",
                )
            self.max_tokens_per_microbatch = budget
        if padding_free:
            for model in (self.model, self.ref_model):
                if model is not None and attention_mode(model) == "segments":
                    enable_segment_attention(model)  # for good: gradient checkpointing recomputes forwards

    # -- dispatch ------------------------------------------------------------------------------

    def _fast_path_ok(self, inputs: list[dict]) -> bool:
        return (
            self.environment_factories is None
            and not self.tools
            and not self._is_vlm
            and "images" not in inputs[0]
            and "image" not in inputs[0]
            and not (self.beta != 0.0 and self.ref_model is None)  # PEFT reference: TRL's own path
        )

    def _generate_and_score_completions(self, inputs: list[dict]) -> dict[str, Any]:
        mode = "train" if self.model.training else "eval"
        filtering = mode == "train" and (self.dynamic_sampling or self.gfpo_num_remains_in_group is not None)
        if not self._fast_path_ok(inputs):
            if self.padding_free:
                raise PaddingFreeError("supports text batches without tools, environments or images", "padding_free")
            if filtering:
                raise NotImplementedError(
                    "FastGRPOTrainer's dynamic sampling and GFPO support text batches without tools, "
                    "environments, images or a PEFT reference model"
                )
            return super()._generate_and_score_completions(inputs)
        g = self.num_generations if mode == "train" else self.num_generations_eval
        # filtering and balancing decide on the whole generation batch, identically on every rank
        whole = self.accelerator.num_processes > 1 and (filtering or self.balance_ranks)
        batch = self._rollout(inputs, whole)
        if mode == "train" and self.dynamic_sampling:
            batch = self._dynamic_sampling(inputs, batch, g, whole)
        if mode == "train" and self.gfpo_num_remains_in_group is not None:
            batch, g = self._gfpo_filter(batch, g), self.gfpo_num_remains_in_group
        mine = self._rank_rows(batch) if whole else None
        if self.padding_free:
            return self._score_packed(batch, g, mode, mine)
        return self._score(batch, g, mode, mine)

    def _prepare_inputs(self, generation_batch: Any) -> dict[str, Any]:
        """TRL's buffering (generate every ``steps_per_generation * num_iterations`` steps, shuffle,
        split into ``steps_per_generation`` micro-batches, same RNG draws); a padding-free batch
        is shuffled and split as sequence indices."""
        if not self.padding_free:
            return super()._prepare_inputs(generation_batch)
        if not self.model.training:
            return self._generate_and_score_completions(generation_batch)
        spg = self._steps_per_generation
        if self._step % (spg * self.num_iterations) == 0 or self._buffered_inputs is None:
            scored = self._generate_and_score_completions(generation_batch)
            n = scored["packed"].num_sequences
            order = torch.randperm(n).numpy()  # TRL's shuffle_sequence_dict draw
            size = n // spg
            parts = [order[i * size : (i + 1) * size] for i in range(spg)]
            calls = self._calls_per_micro_batch(scored["packed"], parts)
            buffered = [{**scored, "sequences": part, "calls": c} for part, c in zip(parts, calls, strict=True)]
            # mypy infers None from GRPOTrainer.__init__'s `self._buffered_inputs = None` (unannotated)
            self._buffered_inputs = buffered  # type: ignore[assignment]
        return cast(list[dict[str, Any]], self._buffered_inputs)[self._step % spg]

    @property
    def _steps_per_generation(self) -> int:
        """``args.steps_per_generation``, which ``GRPOConfig.__post_init__`` always sets."""
        return cast(int, self.args.steps_per_generation)

    def _calls_per_micro_batch(self, gen: PackedGeneration, parts: list[np.ndarray]) -> list[int]:
        """The model calls each training micro-batch needs on the busiest rank (one row each, or
        its token-budget rows), asked of the ranks once per generation batch rather than at
        every micro-batch, so the loss's forwards never wait for another rank."""
        budget = self.max_tokens_per_microbatch
        mine = [1 if budget is None else bfd(gen.lengths(p), budget).bin_offsets.size - 1 for p in parts]
        if self.accelerator.num_processes == 1:
            return mine
        local = torch.tensor(mine, device=self.accelerator.device)
        return self.accelerator.gather(local).view(-1, len(parts)).amax(dim=0).tolist()

    # -- generation and rewards ----------------------------------------------------------------

    def _rollout(self, inputs: list[dict], whole: bool = False) -> _Rollout:
        """Generate and score this rank's prompts; with ``whole``, every rank's rows (gathered
        in rank order: TRL's global layout), so decisions on them are the same on every rank."""
        prompts = [x["prompt"] for x in inputs]
        (prompt_ids, completion_ids, tool_mask, completions, sampling_logps, extra_fields, _, _) = self._generate(
            prompts
        )
        if extra_fields:  # rollout_func extras go to the reward functions, as in TRL
            for i, row in enumerate(inputs):
                for key, values in extra_fields.items():
                    if isinstance(values, list):
                        if i < len(values):
                            row[key] = values[i]
                    else:
                        row[key] = values
        rewards_per_func = self._calculate_rewards(inputs, prompts, completions, completion_ids)  # gathered
        lists: list[Any] = [inputs, prompts, prompt_ids, completion_ids, completions, sampling_logps, tool_mask]
        if whole:
            lists = [None if x is None else gather_object(list(x)) for x in lists]
        return _Rollout.of(lists, rewards_per_func)

    def _rank_rows(self, batch: _Rollout) -> np.ndarray:
        """This rank's rows of a whole generation batch: TRL's contiguous slice, or with
        ``balance_ranks`` an equal-count Karmarkar-Karp share by tokens."""
        n, procs, rank = len(batch.prompt_ids), self.accelerator.num_processes, self.accelerator.process_index
        if self.balance_ranks:
            tokens = np.array([len(p) + len(c) for p, c in zip(batch.prompt_ids, batch.completion_ids)], np.int64)
            t = time.perf_counter()
            parts = balance_partitions(tokens, procs, equal_size=True, refine=True)
            self.fastalign_times.add("balance_partitions", time.perf_counter() - t)
            return np.asarray(parts[rank], dtype=np.int64)
        size = n // procs
        return np.arange(rank * size, (rank + 1) * size)

    def _informative(self, batch: _Rollout, g: int) -> np.ndarray:
        t = time.perf_counter()
        flat = zero_variance_groups(
            batch.rewards_per_func,
            g,
            reward_weights=self.reward_weights,
            atol=self.zero_variance_atol,
            rtol=self.zero_variance_rtol,
        )
        self.fastalign_times.add("zero_variance_groups", time.perf_counter() - t)
        return ~np.asarray(flat.cpu() if isinstance(flat, torch.Tensor) else flat)

    def _dynamic_sampling(self, inputs: list[dict], first: _Rollout, g: int, whole: bool) -> _Rollout:
        """On a whole generation batch (every rank's rows with several processes): the same groups
        are kept and the same refills generated on every rank, so collectives stay in step."""
        groups_needed = len(first.prompt_ids) // g
        kept: list[_Rollout] = []
        spare: list[_Rollout] = []  # zero-variance groups, used only to complete a short batch
        filtered = 0
        generations = 0
        batch: _Rollout | None = first
        while batch is not None:
            generations += 1
            informative = self._informative(batch, g)
            filtered += int((~informative).sum())
            for j, ok in enumerate(informative):
                part = batch.take(list(range(j * g, (j + 1) * g)))
                (kept if ok else spare).append(part)
            if len(kept) >= groups_needed or generations >= self.max_num_gen_batches:
                break
            fresh = [dict(row) for row in inputs]  # same prompts; rows copied (extras are written into them)
            batch = self._rollout(fresh, whole)
        surplus = kept[groups_needed:]
        kept = kept[:groups_needed]
        replayed = 0
        while len(kept) < groups_needed and self._replay:
            kept.append(self._replay.pop())
            replayed += 1
        padded = groups_needed - len(kept)
        kept.extend(spare[:padded])
        if self.replay_informative_groups:
            self._replay = (self._replay + surplus)[-self.replay_informative_groups :]
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/filtered_groups"].append(float(filtered))
        metrics["dynamic_sampling/generation_batches"].append(float(generations))
        metrics["dynamic_sampling/replayed_groups"].append(float(replayed))
        metrics["dynamic_sampling/zero_variance_groups_kept"].append(float(padded))
        return _Rollout.concat(kept)

    def _gfpo_filter(self, batch: _Rollout, g: int) -> _Rollout:
        k = self.gfpo_num_remains_in_group
        assert k is not None  # called with GFPO on only
        lengths = torch.tensor([len(c) for c in batch.completion_ids], dtype=torch.float64)
        if self.gfpo_metric == "length":
            scores, keep = lengths, "smallest"
        else:
            rewards = (batch.rewards_per_func.cpu() * self.reward_weights.unsqueeze(0)).nansum(dim=1).double()
            if self.gfpo_metric == "reward_per_token":
                scores = rewards / lengths.clamp(min=1.0)
            else:
                metric = cast(Callable[..., Any], self.gfpo_metric)  # neither of _GFPO_METRICS: the callable
                raw = metric(completion_ids=batch.completion_ids, rewards=rewards)
                scores = torch.as_tensor(raw, dtype=torch.float64).reshape(-1)
                if scores.shape[0] != len(batch.completion_ids):
                    raise InvalidArgumentError(
                        f"returned {scores.shape[0]} scores for {len(batch.completion_ids)} completions", "gfpo_metric"
                    )
            keep = "largest"
        t = time.perf_counter()
        rows = top_k_per_group(scores.contiguous(), g, k, keep=keep)
        self.fastalign_times.add("top_k_per_group", time.perf_counter() - t)
        self._metrics["train"]["gfpo/kept_fraction"].append(k / g)
        self._metrics["train"]["gfpo/kept_mean_length"].append(lengths[rows].mean().item())
        return batch.take(rows.tolist())

    # -- scoring -------------------------------------------------------------------------------

    def _pad(self, rows: list[list], value: float, left: bool, dtype: torch.dtype) -> torch.Tensor:
        """Rows padded to one length (rounded up to ``pad_to_multiple_of``), built in one array."""
        width = max((len(r) for r in rows), default=0)
        m = self.pad_to_multiple_of
        if m:
            width = -(-width // m) * m
        np_dtype = {torch.long: np.int64, torch.float32: np.float32}[dtype]
        out = np.full((len(rows), width), value, dtype=np_dtype)
        for i, r in enumerate(rows):
            if r:
                if left:
                    out[i, width - len(r) :] = r
                else:
                    out[i, : len(r)] = r
        return torch.from_numpy(out)

    def _score(self, whole: _Rollout, g: int, mode: str, mine: np.ndarray | None) -> dict[str, Any]:
        device = self.accelerator.device
        batch = whole.local(mine)
        t = time.perf_counter()
        pad_id = self._tokenizer.pad_token_id
        prompt_lengths = [len(p) for p in batch.prompt_ids]
        completion_lengths = [len(c) for c in batch.completion_ids]
        prompt_ids = self._pad(batch.prompt_ids, pad_id, True, torch.long).to(device)
        prompt_mask = self._pad([[1] * n for n in prompt_lengths], 0, True, torch.long).to(device)
        completion_ids = self._pad(batch.completion_ids, pad_id, False, torch.long).to(device)
        completion_mask = self._pad([[1] * n for n in completion_lengths], 0, False, torch.long).to(device)
        sampling_logps = None
        if batch.sampling_logps is not None:
            rows = [[math.nan if x is None else x for x in r] for r in batch.sampling_logps]
            sampling_logps = self._pad(rows, 0.0, False, torch.float32).to(device)
        tool_mask = None
        if batch.tool_mask is not None:
            tool_mask = self._pad(batch.tool_mask, 1, False, torch.long).to(device)
        if self.mask_truncated_completions:
            stops = {*self.eos_token_ids, pad_id}
            keep = torch.tensor([bool(c) and c[-1] in stops for c in batch.completion_ids], device=device)
            completion_mask = completion_mask * keep.unsqueeze(1).int()
            if tool_mask is not None:
                tool_mask = tool_mask * keep.unsqueeze(1).int()
        self.fastalign_times.add("pad_and_mask", time.perf_counter() - t)

        loss_mask = completion_mask if tool_mask is None else completion_mask * tool_mask
        num_items_in_batch = self.accelerator.gather(loss_mask.sum()).sum()
        prompt_completion_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        logits_to_keep = completion_ids.size(1)
        batch_size = self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
        use_is = self.use_vllm and self.vllm_importance_sampling_correction

        old_logps = ref_logps = is_ratio = is_out = None
        with torch.no_grad(), no_gradient_checkpointing(self.model, self.args):
            generate_every = self._steps_per_generation * self.num_iterations
            if self.args.gradient_accumulation_steps % generate_every != 0 or use_is:
                old_logps, _, _ = self._get_per_token_logps_and_entropies(
                    self.model, prompt_completion_ids, attention_mask, logits_to_keep, batch_size=batch_size
                )
            if use_is:
                t = time.perf_counter()
                is_out = vllm_is_ratio(
                    old_logps,
                    sampling_logps,
                    loss_mask,
                    mode=self.vllm_importance_sampling_mode,
                    clip_min=self.vllm_importance_sampling_clip_min,
                    clip_max=self.vllm_importance_sampling_clip_max,
                )
                is_ratio = is_out.ratio
                self.fastalign_times.add("vllm_is_ratio", time.perf_counter() - t)
            if self.beta != 0.0:
                ref_logps, _, _ = self._get_per_token_logps_and_entropies(
                    self.ref_model, prompt_completion_ids, attention_mask, logits_to_keep, batch_size=batch_size
                )

        advantages = self._advantages_and_logs(whole, g, mode, mine)
        if use_is:
            self._log_is(is_out, old_logps, sampling_logps, loss_mask, mode)

        out: dict[str, Any] = {
            "prompt_ids": prompt_ids,
            "prompt_mask": prompt_mask,
            "completion_ids": completion_ids,
            "completion_mask": completion_mask,
            "advantages": advantages,
            "num_items_in_batch": num_items_in_batch,
        }
        if old_logps is not None:
            out["old_per_token_logps"] = old_logps
        if use_is:
            out["importance_sampling_ratio"] = is_ratio
        if sampling_logps is not None:
            out["sampling_per_token_logps"] = sampling_logps
        if ref_logps is not None:
            out["ref_per_token_logps"] = ref_logps
        if tool_mask is not None:
            out["tool_mask"] = tool_mask
        return out

    def _advantages_and_logs(self, batch: _Rollout, g: int, mode: str, mine: np.ndarray | None) -> torch.Tensor:
        """This process's advantages (its contiguous slice, or rows ``mine`` of a whole batch); the
        reward metrics, completion logs and reward-function logs."""
        t = time.perf_counter()
        adv = grpo_advantages(
            batch.rewards_per_func,
            g,
            scale_rewards=self.scale_rewards,
            reward_weights=self.reward_weights,
            multi_objective_aggregation=self.multi_objective_aggregation,
            metrics=True,
        )
        self.fastalign_times.add("grpo_advantages", time.perf_counter() - t)
        all_advantages = adv.advantages
        if mine is None:
            n_local = len(batch.prompt_ids)
            start = self.accelerator.process_index * n_local
            local = all_advantages[start : start + n_local]
            prompts, completions = gather_object(batch.prompts), gather_object(batch.completions)
        else:
            n_local = len(mine)
            local = all_advantages[torch.from_numpy(mine).to(all_advantages.device)]
            prompts, completions = batch.prompts, batch.completions
        metrics = self._metrics[mode]
        for name, value in adv.metrics(self.reward_func_names).items():
            metrics[name].append(value)
        self._logs["prompt"].extend(prompts)
        self._logs["completion"].extend(completions)
        for i, name in enumerate(self.reward_func_names):
            self._logs["rewards"][name].extend(batch.rewards_per_func[:, i].tolist())
        self._logs["advantages"].extend(all_advantages.tolist())
        self._flush_pending_logs(n_local, self.accelerator.device, mode)
        return local

    def _log_is(self, is_out: Any, old: Any, sampling: Any, loss_mask: Any, mode: str) -> None:
        if self.accelerator.num_processes == 1:
            for key, value in is_out.metrics().items():  # computed with the ratio, in the same pass
                if "/raw_" not in key:  # TRL logs the clipped ratio's statistics only
                    self._metrics[mode][key].append(value)
        else:
            self._log_is_metrics(old, sampling, loss_mask, is_out.ratio, mode)

    # -- padding-free scoring ------------------------------------------------------------------

    def _check_packed(self, model: Any, gen: PackedGeneration) -> None:
        """Once per model: packed and padded log-probs of a few short sequences must agree."""
        if id(model) in self._checked_models:
            return
        trained = np.flatnonzero(np.diff(gen.cu) > 0)
        if trained.size == 0:
            return
        pick = trained[np.argsort(gen.lengths(trained), kind="stable")[:4]]
        with self.accelerator.autocast():
            check_packed_forward(model, gen.values, gen.offsets, targets=gen.targets, sequences=np.sort(pick))
        self._checked_models.add(id(model))

    def _forward_rows(
        self,
        model: Any,
        rows: list[PackedRows],
        fields: tuple[str, ...],
        *,
        equalize: bool = True,
        calls: int | None = None,
    ) -> list[dict]:
        return forward_rows(self.accelerator, model, rows, fields, equalize=equalize, calls=calls)

    def _packed_logps(self, model: Any, gen: PackedGeneration, batch_size: int) -> torch.Tensor:
        """No-grad log-probs of every trained token of the generation batch, ``(N,)``: TRL's
        chunks of ``batch_size`` sequences one row each, or rows within the token budget."""
        self._check_packed(model, gen)
        n = gen.num_sequences
        if self.max_tokens_per_microbatch is None:
            chunks = [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
            rows = [gen.rows(c, None) for c in chunks]
        else:
            rows = [gen.rows(np.arange(n), self.max_tokens_per_microbatch)]
        outs = self._forward_rows(model, rows, ("log_probs",))
        if not outs:
            return torch.zeros(0, device=self.accelerator.device)
        return torch.cat([o["log_probs"] for o in outs])

    def _score_packed(self, whole: _Rollout, g: int, mode: str, mine: np.ndarray | None) -> dict[str, Any]:
        device = self.accelerator.device
        batch = whole.local(mine)
        t = time.perf_counter()
        keep = np.ones(len(batch.completion_ids), dtype=bool)
        if self.mask_truncated_completions:
            stops = {*self.eos_token_ids, self._tokenizer.pad_token_id}
            keep = np.array([bool(c) and c[-1] in stops for c in batch.completion_ids], dtype=bool)
        gen = PackedGeneration.build(batch.prompt_ids, batch.completion_ids, keep, batch.tool_mask)
        if self.max_tokens_per_microbatch is not None:
            check_budget(np.diff(gen.offsets), self.max_tokens_per_microbatch, "max_tokens_per_microbatch")
        sampling_logps = None
        if batch.sampling_logps is not None:
            completion = np.concatenate(
                [np.asarray(r, dtype=np.float32) for r in batch.sampling_logps] or [np.zeros(0, dtype=np.float32)]
            )
            comp_targets = self._completion_targets(batch, keep)
            sampling_logps = torch.from_numpy(completion[comp_targets].astype(np.float32)).to(device)
        self.fastalign_times.add("pack", time.perf_counter() - t)

        n_trained = gen.num_trained
        num_items_in_batch = self.accelerator.gather(torch.tensor(n_trained, device=device)).sum()
        cu = torch.from_numpy(gen.cu).to(device)
        batch_size = self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
        use_is = self.use_vllm and self.vllm_importance_sampling_correction
        old_logps = ref_logps = is_out = None
        ones = torch.ones(n_trained, dtype=torch.bool, device=device)
        with torch.no_grad(), no_gradient_checkpointing(self.model, self.args):
            generate_every = self._steps_per_generation * self.num_iterations
            if self.args.gradient_accumulation_steps % generate_every != 0 or use_is:
                old_logps = self._packed_logps(self.model, gen, batch_size)
            if use_is:
                t = time.perf_counter()
                is_out = vllm_is_ratio(
                    old_logps,
                    sampling_logps,
                    ones,
                    mode=self.vllm_importance_sampling_mode,
                    clip_min=self.vllm_importance_sampling_clip_min,
                    clip_max=self.vllm_importance_sampling_clip_max,
                    cu_seqlens=cu,
                )
                self.fastalign_times.add("vllm_is_ratio", time.perf_counter() - t)
            if self.beta != 0.0:
                ref_logps = self._packed_logps(self.ref_model, gen, batch_size)
        advantages = self._advantages_and_logs(whole, g, mode, mine)
        if use_is:
            self._log_is(is_out, old_logps, sampling_logps, ones, mode)
        out: dict[str, Any] = {
            "packed": gen,
            "sequences": np.arange(gen.num_sequences),
            "advantages": advantages,
            "num_items_in_batch": num_items_in_batch,
        }
        for key, value in (
            ("old_per_token_logps", old_logps),
            ("ref_per_token_logps", ref_logps),
            ("sampling_per_token_logps", sampling_logps),
            ("importance_sampling_ratio", None if is_out is None else is_out.ratio),
        ):
            if value is not None:
                out[key] = value
        return out

    @staticmethod
    def _completion_targets(batch: _Rollout, keep: np.ndarray) -> np.ndarray:
        """Which completion tokens (all completions' tokens, in order) are trained."""
        lengths = np.array([len(c) for c in batch.completion_ids], dtype=np.int64)
        flags = np.repeat(keep, lengths)
        if batch.tool_mask is not None:
            flags &= concat_lists(batch.tool_mask).values != 0
        return flags

    # -- the loss ------------------------------------------------------------------------------

    def _fast_loss_ok(self, inputs: dict) -> bool:
        # fastalign's grpo_loss covers the policy term, the KL, the IS corrections and the masks,
        # on any number of processes (metrics reduced as TRL reduces them, trl/_metrics.py); the
        # entropy bonus and the MoE aux loss (terms TRL adds to the aggregated loss, with their own
        # schedules and metrics) and multimodal inputs take TRL's own loss code
        return not self._entropy_bonus_enabled and not self.aux_loss_enabled and "pixel_values" not in inputs

    def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any) -> Any:
        # a padding-free loss that runs TRL's own _compute_loss hands it the packed forward's
        # results, scattered to TRL's padded layout, instead of a second (padded) forward
        injected, self._injected_forward = self._injected_forward, None
        if injected is None:
            return super()._get_per_token_logps_and_entropies(*args, **kwargs)
        logps, entropies, aux_loss = injected
        return logps, entropies if kwargs.get("compute_entropy") else None, aux_loss

    def _compute_loss(self, model: Any, inputs: dict) -> torch.Tensor:
        if "packed" in inputs:
            return self._packed_loss(model, inputs)
        if not self._fast_loss_ok(inputs):
            if self.importance_sampling_level == "sequence_token":
                raise NotImplementedError(
                    "GSPO-token runs through fastalign's grpo_loss, which FastGRPOTrainer uses "
                    "without the entropy bonus or the MoE aux loss"
                )
            return super()._compute_loss(model, inputs)
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        per_token_logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True
        )
        entropy_mask = None
        if self.top_entropy_quantile < 1.0:
            entropy_mask = self.get_high_entropy_mask(entropies, mask, 1 - self.top_entropy_quantile)
        out = self._grpo_loss(per_token_logps, mask, inputs, entropy_mask=entropy_mask)
        self._log_loss_metrics(out, entropies, mask, rows=mask.shape[0], packed=False)
        return out.loss

    def _grpo_loss(
        self, per_token_logps: Any, mask: Any, inputs: dict, *, cu_seqlens: Any = None, entropy_mask: Any = None
    ) -> Any:
        """:func:`fastalign.losses.grpo_loss` with this trainer's configuration (either layout)."""
        from ..losses import grpo_loss

        training = self.model.training
        use_is = self.use_vllm and self.vllm_importance_sampling_correction
        t = time.perf_counter()
        out = grpo_loss(
            per_token_logps,
            inputs.get("old_per_token_logps"),
            inputs["advantages"],
            mask,
            loss_type=self.loss_type,
            importance_sampling_level=self.importance_sampling_level,
            epsilon=self.epsilon_low,
            epsilon_high=self.epsilon_high,
            delta=self.args.delta,
            beta=self.beta,
            ref_per_token_logps=inputs.get("ref_per_token_logps"),
            use_bias_correction_kl=self.args.use_bias_correction_kl,
            importance_sampling_ratio=inputs["importance_sampling_ratio"] if use_is else None,
            sampling_per_token_logps=inputs.get("sampling_per_token_logps"),
            off_policy_mask_threshold=self.off_policy_mask_threshold,
            entropy_mask=entropy_mask,
            sapo_temperature_pos=self.args.sapo_temperature_pos,
            sapo_temperature_neg=self.args.sapo_temperature_neg,
            vespo_k_pos=self.args.vespo_k_pos,
            vespo_lambda_pos=self.args.vespo_lambda_pos,
            vespo_k_neg=self.args.vespo_k_neg,
            vespo_lambda_neg=self.args.vespo_lambda_neg,
            num_items_in_batch=inputs["num_items_in_batch"],
            num_processes=self.accelerator.num_processes,
            # the attribute exists inside the training loop only (evaluation may come first)
            gradient_accumulation_steps=self.current_gradient_accumulation_steps if training else 1,
            steps_per_generation=self._steps_per_generation if training else 1,
            max_completion_length=self.max_completion_length,
            training=training,
            cu_seqlens=cu_seqlens,
        )
        self.fastalign_times.add("grpo_loss", time.perf_counter() - t)
        return out

    def _log_loss_metrics(self, out: Any, entropies: Any, mask: Any, *, rows: int, packed: bool) -> None:
        """TRL's loss metrics, global over the processes. In training on several processes they
        wait for the end of the optimizer step (:meth:`training_step`) and are reduced with the
        other micro-batches' (one all-reduce and one all-gather per step), so the ranks do not
        meet at every micro-batch; alone, or in evaluation, they are reduced at once."""
        mode = "train" if self.model.training else "eval"
        level = self.importance_sampling_level
        if mode == "train" and self.accelerator.num_processes > 1:
            self._pending_loss_metrics.add(
                mode, self.accelerator, out, entropies, mask, rows=rows, level=level, packed=packed
            )
            return
        logged = loss_metrics(self.accelerator, out, entropies, mask, rows=rows, level=level, packed=packed)
        for key, value in logged.items():
            self._metrics[mode][key].append(value)

    def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> torch.Tensor:
        output = super().training_step(model, inputs, num_items_in_batch)
        if self._step % self.current_gradient_accumulation_steps == 0:  # TRL's step boundary
            self._pending_loss_metrics.flush(self.accelerator, self._metrics)
        return output

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # micro-batches of an unfinished accumulation (a partial one at an epoch's end): reduced
        # here, before TRL averages them; every rank logs at the same step
        if len(self._pending_loss_metrics):
            self._pending_loss_metrics.flush(self.accelerator, self._metrics)
        super().log(logs, start_time)

    # -- the padding-free loss -----------------------------------------------------------------

    def _micro_batch(self, inputs: dict, sequences: np.ndarray) -> dict[str, Any]:
        """The loss inputs of ``sequences`` gathered from the generation batch: per-token tensors
        in their ``(n,)`` layout, advantages per sequence, ``cu`` (numpy) and ``cu_seqlens``."""
        gen: PackedGeneration = inputs["packed"]
        device = self.accelerator.device
        index = torch.from_numpy(gen.token_index(sequences)).to(device)
        seq = torch.from_numpy(np.ascontiguousarray(sequences)).to(device)
        cu = gen.cu_of(sequences)
        mb: dict[str, Any] = {
            "cu": cu,
            "cu_seqlens": torch.from_numpy(cu).to(device),
            "advantages": inputs["advantages"][seq],
            "num_items_in_batch": inputs["num_items_in_batch"],
        }
        for key in ("old_per_token_logps", "ref_per_token_logps", "sampling_per_token_logps"):
            if key in inputs:
                mb[key] = inputs[key][index]
        if "importance_sampling_ratio" in inputs:
            per_sequence = self.vllm_importance_sampling_mode.startswith("sequence")
            mb["importance_sampling_ratio"] = inputs["importance_sampling_ratio"][seq if per_sequence else index]
        return mb

    def _streams(self, inputs: dict) -> bool:
        """Whether a training micro-batch goes row by row (a backward per row, the least memory):
        only where each row's share of TRL's loss is exact on its own."""
        return (
            self.model.training
            and torch.is_grad_enabled()
            and self.max_tokens_per_microbatch is not None
            and not self._entropy_bonus_enabled
            and not self.aux_loss_enabled
            and self.top_entropy_quantile == 1.0
            and self.accelerator.distributed_type != DistributedType.DEEPSPEED
        )

    def _packed_loss(self, model: Any, inputs: dict) -> torch.Tensor:
        gen: PackedGeneration = inputs["packed"]
        sequences = inputs["sequences"]
        budget = self.max_tokens_per_microbatch
        if budget is not None and self._streams(inputs):
            plan = bfd(gen.lengths(sequences), budget)
            bins = [sequences[plan.order[a:b]] for a, b in zip(plan.bin_offsets[:-1], plan.bin_offsets[1:])]
            if len(bins) > 1:
                return self._streamed_loss(model, inputs, bins)
        mb = self._micro_batch(inputs, sequences)
        fields = ("log_probs", "entropy")
        rows = gen.rows(sequences, self.max_tokens_per_microbatch)
        if self.aux_loss_enabled:
            out = self._forward_with_aux(model, rows)
        else:
            out = self._forward_rows(model, [rows], fields, calls=inputs.get("calls"))[0]
        logps, entropies = out["log_probs"], out["entropy"]
        if self._entropy_bonus_enabled or self.aux_loss_enabled:  # terms TRL adds after the policy loss
            return self._trl_loss_on_packed(model, mb, logps, entropies, out.get("aux_loss"))
        mask = torch.ones_like(logps, dtype=torch.bool)
        entropy_mask = None
        if self.top_entropy_quantile < 1.0:
            entropy_mask = self.get_high_entropy_mask(entropies, mask, 1 - self.top_entropy_quantile)
        loss = self._grpo_loss(logps, mask, mb, cu_seqlens=mb["cu_seqlens"], entropy_mask=entropy_mask)
        self._log_loss_metrics(loss, entropies, mask, rows=len(mb["cu"]) - 1, packed=True)
        return loss.loss

    def _forward_with_aux(self, model: Any, rows: PackedRows) -> dict:
        """One packed row (TRL's micro-batch) with the MoE router logits requested."""
        with self.accelerator.autocast():
            return forward_packed(model, rows, fields=("log_probs", "entropy"), aux_loss=True)

    def _trl_loss_on_packed(self, model: Any, mb: dict, logps: Any, entropies: Any, aux_loss: Any) -> torch.Tensor:
        """TRL's own ``_compute_loss`` on the packed forward's results, scattered to its padded
        layout: the entropy bonus, the MoE aux loss and TRL's cross-process metric reductions
        exactly as TRL computes them, without a padded forward."""
        cu, device = mb["cu"], self.accelerator.device
        b = len(cu) - 1
        mask = padded_mask(cu, device)
        padded = {
            "prompt_ids": torch.zeros(b, 0, dtype=torch.long, device=device),
            "prompt_mask": torch.zeros(b, 0, dtype=torch.long, device=device),
            "completion_ids": torch.zeros_like(mask),
            "completion_mask": mask,
            "advantages": mb["advantages"],
            "num_items_in_batch": mb["num_items_in_batch"],
        }
        for key in ("old_per_token_logps", "ref_per_token_logps", "sampling_per_token_logps"):
            if key in mb:
                padded[key] = scatter_padded(mb[key], cu)
        if "importance_sampling_ratio" in mb:
            ratio = mb["importance_sampling_ratio"]
            # TRL's ratio is exp(0) = 1 where nothing is trained
            padded["importance_sampling_ratio"] = (
                ratio.unsqueeze(1)
                if ratio.shape[0] == b and ratio.shape[0] != logps.shape[0]
                else scatter_padded(ratio, cu, 1.0)
            )
        self._injected_forward = (scatter_padded(logps, cu), scatter_padded(entropies, cu), aux_loss)
        try:
            return super()._compute_loss(model, padded)
        finally:
            self._injected_forward = None

    def _streamed_loss(self, model: Any, inputs: dict, bins: list[np.ndarray]) -> torch.Tensor:
        """A training micro-batch split into token-budget rows, each forwarded and back-propagated
        on its own (DDP syncs on the last). Row ``r``'s loss is scaled to its share of TRL's
        micro-batch loss, so the accumulated gradient is TRL's; the logged loss and metrics come
        from one no-grad evaluation of the whole micro-batch's detached log-probs."""
        gen: PackedGeneration = inputs["packed"]
        sequences = inputs["sequences"]
        mb = self._micro_batch(inputs, sequences)
        cu, device = mb["cu"], self.accelerator.device
        where = np.empty(gen.num_sequences, dtype=np.int64)
        where[sequences] = np.arange(len(sequences))
        counts = np.diff(cu)
        n_total, b_total = int(cu[-1]), len(sequences)
        logps_all: torch.Tensor | None = None  # the rows' detached outputs, in the micro-batch's layout
        entropies_all: torch.Tensor | None = None
        calls = inputs.get("calls") or most_over_ranks(self.accelerator, len(bins))
        last: torch.Tensor | None = None
        for r in range(calls):
            final = r == calls - 1
            sync = contextlib.nullcontext() if final else self.accelerator.no_sync(model)
            with sync:
                if r < len(bins):
                    pos = where[bins[r]]
                    index = torch.from_numpy(spans(cu, pos)).to(device)
                    sub = {key: value[index] for key, value in mb.items() if key.endswith("_logps")}
                    pos_t = torch.from_numpy(pos).to(device)
                    sub["advantages"] = mb["advantages"][pos_t]
                    sub["num_items_in_batch"] = mb["num_items_in_batch"]
                    if "importance_sampling_ratio" in mb:
                        ratio = mb["importance_sampling_ratio"]
                        sub["importance_sampling_ratio"] = (
                            ratio[pos_t] if ratio.shape[0] == b_total != n_total else ratio[index]
                        )
                    out = self._forward_rows(
                        model, [gen.rows(bins[r], None)], ("log_probs", "entropy"), equalize=False
                    )[0]
                    logps, entropies = out["log_probs"], out["entropy"]
                    cu_r = torch.from_numpy(np.concatenate(([0], np.cumsum(counts[pos])))).to(device)
                    row = self._grpo_loss(logps, torch.ones_like(logps, dtype=torch.bool), sub, cu_seqlens=cu_r)
                    loss = row.loss * self._row_share(len(pos), b_total, int(counts[pos].sum()), n_total)
                    if logps_all is None or entropies_all is None:
                        logps_all = logps.new_zeros(n_total)
                        entropies_all = entropies.new_zeros(n_total)
                    logps_all[index] = logps.detach()
                    entropies_all[index] = entropies.detach()
                else:  # another rank has more rows: a one-token call keeps the collectives in step
                    loss = idle_call(self.accelerator, model)
                if final:
                    last = loss
                else:
                    self.accelerator.backward(loss)
        mask = torch.ones(n_total, dtype=torch.bool, device=device)
        with torch.no_grad():
            whole = self._grpo_loss(logps_all, mask, mb, cu_seqlens=mb["cu_seqlens"])
        self._log_loss_metrics(whole, entropies_all, mask, rows=len(mb["cu"]) - 1, packed=True)
        assert last is not None  # calls >= len(bins) >= 2: the final call set it
        return last + (whole.loss.to(last.dtype) - last.detach())

    def _row_share(self, b_row: int, b_total: int, n_row: int, n_total: int) -> float:
        """Factor turning fastalign's loss over one row's sequences into that row's share of the
        micro-batch loss: the per-sequence means (grpo, sapo, dr_grpo, luspo) divide by the
        row's sequence count, bnpo by its token count; dapo, cispo and vespo already divide by a
        constant of the generation batch."""
        if self.loss_type in ("grpo", "sapo", "dr_grpo", "luspo"):
            return b_row / b_total
        if self.loss_type == "bnpo":
            return max(n_row, 1) / max(n_total, 1)
        return 1.0

    def _flush_pending_logs(self, n_local: int, device: Any, mode: str) -> None:
        """Extra columns and metrics logged by reward functions, gathered in a rank-stable order."""
        for column in sorted(set(gather_object(list(self._pending_extra_logs)))):
            values = self._pending_extra_logs.get(column, [None] * n_local)
            self._logs["extra"][column].extend(gather_object(values))
        self._pending_extra_logs.clear()
        for name in sorted(set(gather_object(list(self._pending_metrics)))):
            values = self._pending_metrics.get(name, [])
            local = torch.tensor([sum(values), len(values)], dtype=torch.float32, device=device)
            total, count = self.accelerator.gather(local).view(-1, 2).sum(dim=0).tolist()
            self._metrics[mode][name].append(total / count)
        self._pending_metrics.clear()

    def _log_is_metrics(self, old: Any, sampling: Any, loss_mask: Any, ratio: Any, mode: str) -> None:
        """TRL's importance-sampling metrics gathered across processes (several processes only)."""
        device = old.device
        mask = loss_mask.bool()
        delta = torch.abs(old - sampling)
        delta = delta[mask & ~torch.isnan(delta)]
        zero = torch.tensor(0.0, device=device)
        mean_delta = delta.mean() if delta.numel() else zero
        max_delta = delta.max() if delta.numel() else zero
        gather = self.accelerator.gather
        m = self._metrics[mode]
        m["sampling/sampling_logp_difference/mean"].append(gather(mean_delta).mean().item())
        m["sampling/sampling_logp_difference/max"].append(gather(max_delta).max().item())
        flat = ratio.flatten() if self.vllm_importance_sampling_mode.startswith("sequence") else ratio[mask]
        lo = flat.min() if flat.numel() else zero
        mean = flat.mean() if flat.numel() else zero
        hi = flat.max() if flat.numel() else zero
        lo_all, hi_all = gather(lo), gather(hi)
        m["sampling/importance_sampling_ratio/min"].append(
            lo_all[~torch.isnan(lo_all)].min().item() if (~torch.isnan(lo_all)).any() else math.nan
        )
        m["sampling/importance_sampling_ratio/mean"].append(gather(mean).nanmean().item())
        m["sampling/importance_sampling_ratio/max"].append(
            hi_all[~torch.isnan(hi_all)].max().item() if (~torch.isnan(hi_all)).any() else math.nan
        )
