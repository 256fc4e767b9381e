"""``FastGRPOTrainer``: TRL 1.16's ``GRPOTrainer`` with fastalign's kernels in the scoring step,
plus DAPO dynamic sampling and GFPO, which TRL 1.16 does not have.

What changes, and what does not
-------------------------------
``GRPOTrainer._generate_and_score_completions`` is one ~600-line method with no seam for the
advantage step, the masks or the importance-sampling ratio (spec: trl-grpo-spec.md §10.2). This
subclass re-implements it for text batches (no tools, environments or images) from the same
building blocks TRL uses — ``_generate`` (generation and its metrics), ``_calculate_rewards``,
``_get_per_token_logps_and_entropies`` — and replaces the inline tensor code with fastalign:

* advantages and the reward metrics TRL logs: :func:`fastalign.advantages.grpo_advantages`;
* padding, masks and ``mask_truncated_completions``: one pass over the id lists;
* the vLLM importance-sampling ratio (TIS/MIS) and its metrics: :func:`fastalign.ratios.vllm_is_ratio`;
* the loss, its gradient and the metrics ``_compute_loss`` logs: :func:`fastalign.losses.grpo_loss`.

Anything else (tool calling, environments, multimodal prompts, a PEFT reference model) goes to
TRL's own method unchanged. With the same seed and data, a ``FastGRPOTrainer`` trains exactly
like ``GRPOTrainer`` (``tests/test_trl_fast_trainer.py`` checks losses and metrics over several
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

Dynamic sampling and GFPO re-index rows, so they run on one process (the common CPU/single-GPU
case); on several processes they raise instead of silently mixing ranks' groups.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer
from trl.models.utils import disable_gradient_checkpointing

from .. import _validate as v
from ..advantages import grpo_advantages, top_k_per_group, zero_variance_groups
from ..errors import InvalidArgumentError
from ..ratios import vllm_is_ratio

__all__ = ["FastGRPOTrainer"]

_GFPO_METRICS = ("length", "reward_per_token")


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

    def take(self, rows: list[int]) -> _Rollout:
        pick = lambda xs: None if xs is None else [xs[i] for i in rows]  # noqa: E731
        index = torch.as_tensor(rows, dtype=torch.long, device=self.rewards_per_func.device)
        return _Rollout(
            inputs=pick(self.inputs),
            prompts=pick(self.prompts),
            prompt_ids=pick(self.prompt_ids),
            completion_ids=pick(self.completion_ids),
            completions=pick(self.completions),
            sampling_logps=pick(self.sampling_logps),
            tool_mask=pick(self.tool_mask),
            rewards_per_func=self.rewards_per_func.index_select(0, index),
        )

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
    """

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
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(dynamic_sampling, bool):
            raise v.InvalidTypeError(f"expected a bool, got {type(dynamic_sampling).__name__}", "dynamic_sampling")
        self.dynamic_sampling = dynamic_sampling
        self.max_num_gen_batches = v.integer(max_num_gen_batches, "max_num_gen_batches", minimum=1)
        self.replay_informative_groups = v.integer(replay_informative_groups, "replay_informative_groups", minimum=0)
        self.zero_variance_atol = v.real(zero_variance_atol, "zero_variance_atol", minimum=0.0)
        self.zero_variance_rtol = v.real(zero_variance_rtol, "zero_variance_rtol", minimum=0.0)
        self.gfpo_num_remains_in_group = None
        if gfpo_num_remains_in_group is not None:
            k = v.integer(gfpo_num_remains_in_group, "gfpo_num_remains_in_group", minimum=2)
            if k >= self.num_generations:
                raise InvalidArgumentError(
                    f"must be below num_generations ({self.num_generations}) to filter anything, got {k}",
                    "gfpo_num_remains_in_group",
                )
            local_rows = self.args.per_device_train_batch_size * self.args.steps_per_generation
            kept_rows = local_rows // self.num_generations * k
            if local_rows % self.num_generations or kept_rows % self.args.steps_per_generation:
                raise InvalidArgumentError(
                    f"keeps {kept_rows} of {local_rows} rows per generation batch, which must split into "
                    f"steps_per_generation={self.args.steps_per_generation} equal batches of whole groups",
                    "gfpo_num_remains_in_group",
                )
            self.gfpo_num_remains_in_group = k
        if not callable(gfpo_metric):
            gfpo_metric = v.choice(gfpo_metric, "gfpo_metric", _GFPO_METRICS)
        self.gfpo_metric = gfpo_metric
        if (self.dynamic_sampling or self.gfpo_num_remains_in_group) and self.accelerator.num_processes > 1:
            raise InvalidArgumentError(
                "dynamic sampling and GFPO re-index rows and run on a single process; "
                f"this run has {self.accelerator.num_processes}",
                "dynamic_sampling" if self.dynamic_sampling else "gfpo_num_remains_in_group",
            )
        self._replay: list[_Rollout] = []
        self.fastalign_times = _HotPathTimes()

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
        filtering = mode == "train" and (self.dynamic_sampling or self.gfpo_num_remains_in_group)
        if not self._fast_path_ok(inputs):
            if filtering:
                raise NotImplementedError(
                    "FastGRPOTrainer's dynamic sampling and GFPO support text batches without tools, "
                    "environments, images or a PEFT reference model"
                )
            return super()._generate_and_score_completions(inputs)
        g = self.num_generations if mode == "train" else self.num_generations_eval
        batch = self._rollout(inputs)
        if mode == "train" and self.dynamic_sampling:
            batch = self._dynamic_sampling(inputs, batch, g)
        if mode == "train" and self.gfpo_num_remains_in_group:
            batch, g = self._gfpo_filter(batch, g), self.gfpo_num_remains_in_group
        return self._score(batch, g, mode)

    # -- generation and rewards ----------------------------------------------------------------

    def _rollout(self, inputs: list[dict]) -> _Rollout:
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
        rewards_per_func = self._calculate_rewards(inputs, prompts, completions, completion_ids)
        return _Rollout(
            inputs, prompts, prompt_ids, completion_ids, completions, sampling_logps, tool_mask, rewards_per_func
        )

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

    def _dynamic_sampling(self, inputs: list[dict], first: _Rollout, g: int) -> _Rollout:
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
            batch = self._rollout(fresh)
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
        lengths = torch.tensor([len(c) for c in batch.completion_ids], dtype=torch.float64)
        if self.gfpo_metric == "length":
            scores, keep = lengths, "smallest"
        else:
            rewards = (batch.rewards_per_func.cpu() * self.reward_weights.unsqueeze(0)).nansum(dim=1).double()
            if self.gfpo_metric == "reward_per_token":
                scores = rewards / lengths.clamp(min=1.0)
            else:
                raw = self.gfpo_metric(completion_ids=batch.completion_ids, rewards=rewards)
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

    def _score(self, batch: _Rollout, g: int, mode: str) -> dict[str, Any]:
        device = self.accelerator.device
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
        with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
            generate_every = self.args.steps_per_generation * self.num_iterations
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
        n_local = len(batch.prompt_ids)
        start = self.accelerator.process_index * n_local
        all_advantages = adv.advantages
        advantages = all_advantages[start : start + n_local]

        metrics = self._metrics[mode]
        for name, value in adv.metrics(self.reward_func_names).items():
            metrics[name].append(value)
        self._logs["prompt"].extend(gather_object(batch.prompts))
        self._logs["completion"].extend(gather_object(batch.completions))
        for i, name in enumerate(self.reward_func_names):
            self._logs["rewards"][name].extend(batch.rewards_per_func[:, i].tolist())
        self._logs["advantages"].extend(all_advantages.tolist())
        self._flush_pending_logs(len(batch.prompts), device, mode)
        if use_is and self.accelerator.num_processes == 1:
            for key, value in is_out.metrics().items():  # computed with the ratio, in the same pass
                if "/raw_" not in key:  # TRL logs the clipped ratio's statistics only
                    metrics[key].append(value)
        elif use_is:
            self._log_is_metrics(old_logps, sampling_logps, loss_mask, is_ratio, mode)

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

    # -- the loss ------------------------------------------------------------------------------

    def _fast_loss_ok(self, inputs: dict) -> bool:
        # fastalign's grpo_loss covers the policy term, the KL, the IS corrections and the masks;
        # the entropy bonus, the MoE aux loss, multimodal inputs and several processes (TRL gathers
        # the loss metrics across ranks) take TRL's own method
        return (
            not self._entropy_bonus_enabled
            and not self.aux_loss_enabled
            and self.accelerator.num_processes == 1
            and "pixel_values" not in inputs
        )

    def _compute_loss(self, model: Any, inputs: dict) -> torch.Tensor:
        if not self._fast_loss_ok(inputs):
            if self.importance_sampling_level == "sequence_token":
                raise NotImplementedError(
                    "GSPO-token runs through fastalign's grpo_loss, which FastGRPOTrainer uses on one process "
                    "without the entropy bonus or the MoE aux loss"
                )
            return super()._compute_loss(model, inputs)
        from ..losses import grpo_loss

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
        mode = "train" if self.model.training else "eval"
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
            gradient_accumulation_steps=self.current_gradient_accumulation_steps,
            steps_per_generation=self.args.steps_per_generation,
            max_completion_length=self.max_completion_length,
            training=mode == "train",
        )
        self.fastalign_times.add("grpo_loss", time.perf_counter() - t)
        metrics = self._metrics[mode]
        logged = out.metrics()
        if "kl" in logged:
            metrics["kl"].append(logged.pop("kl"))
        # entropy over the loss mask, as TRL's global_masked_mean (one process)
        metrics["entropy"].append(((entropies * mask).sum() / mask.sum().float().clamp(min=1.0)).item())
        for key, value in logged.items():
            metrics[key].append(value)
        return out.loss

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
        m["sampling/importance_sampling_ratio/min"].append(lo_all[~torch.isnan(lo_all)].min().item()
                                                            if (~torch.isnan(lo_all)).any() else math.nan)
        m["sampling/importance_sampling_ratio/mean"].append(gather(mean).nanmean().item())
        m["sampling/importance_sampling_ratio/max"].append(hi_all[~torch.isnan(hi_all)].max().item()
                                                            if (~torch.isnan(hi_all)).any() else math.nan)
