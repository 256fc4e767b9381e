"""``FastDPOTrainer``: TRL 1.16's ``DPOTrainer`` with padding-free forwards.

TRL 1.16 turns ``DPOConfig(padding_free=True)`` back off ("temporarily unavailable"); here it
works. The collator keeps each batch ragged (prompt + chosen and prompt + rejected for every
pair, after TRL's ``max_length`` truncation), the policy and reference forwards take packed rows
of real tokens (:mod:`fastalign.padding_free`), per-sequence log-prob sums come from
:func:`fastalign.ratios.masked_sum` over ``cu_seqlens``, and the loss from
:func:`fastalign.losses.dpo_loss`, for every loss type TRL has (weighted mixtures, LD-DPO's
``ld_alpha``, WPO weighting, the MoE aux loss). The logged metrics are TRL's, reduced across
processes as TRL reduces them.

With ``padding_free=False`` (the config's default) it is ``DPOTrainer`` unchanged.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from accelerate.utils import is_peft_model
from trl import DPOConfig, DPOTrainer
from trl.trainer.utils import use_adapter

from .. import _validate as v
from ..errors import InvalidArgumentError, PaddingFreeError
from ..losses import dpo_loss
from ..padding_free import (
    PackedRows,
    attention_mode,
    check_budget,
    check_model,
    concat_lists,
    enable_segment_attention,
    pack_rows,
)
from ..ratios import masked_sum
from ._packed import scatter_padded
from ._step import forward_rows, no_gradient_checkpointing

if TYPE_CHECKING:
    from transformers.trainer_pt_utils import AcceleratorConfig

__all__ = ["DataCollatorForPackedPreference", "FastDPOTrainer", "PackedPairs"]


@dataclass
class PackedPairs:
    """A preference batch kept ragged: sequences ``0..B-1`` are prompt + chosen, ``B..2B-1``
    prompt + rejected (TRL's ``[chosen, rejected]`` order), truncated as TRL's collator does."""

    values: np.ndarray  # (T,) int64
    offsets: np.ndarray  # (2B + 1,) int64
    targets: np.ndarray  # (T,) uint8: completion tokens (after truncation)
    completion_lengths: np.ndarray  # (2B,) completion tokens per sequence (TRL's unshifted mask sum)

    @property
    def num_pairs(self) -> int:
        return (len(self.offsets) - 1) // 2

    def rows(self, max_tokens: int | None) -> PackedRows:
        return pack_rows(self.values, self.offsets, targets=self.targets, max_tokens=max_tokens)


@dataclass
class DataCollatorForPackedPreference:
    """Collate tokenized preference examples (``prompt_ids``, ``chosen_ids``, ``rejected_ids``,
    optionally ``ref_chosen_logps``/``ref_rejected_logps``) into :class:`PackedPairs`, with TRL's
    ``max_length`` truncation (``keep_start`` or ``keep_end``, per sequence) and no padding."""

    max_length: int | None = None
    truncation_mode: str = "keep_start"

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        prompts = [e["prompt_ids"] for e in examples]
        seqs = concat_lists(
            prompts + prompts, [e["chosen_ids"] for e in examples] + [e["rejected_ids"] for e in examples]
        )
        values, offsets, part = seqs.values, seqs.offsets, seqs.part
        if self.max_length is not None:
            lengths = np.diff(offsets)
            pos = np.arange(values.size) - np.repeat(offsets[:-1], lengths)
            if self.truncation_mode == "keep_start":
                keep = pos < self.max_length
            elif self.truncation_mode == "keep_end":
                keep = pos >= np.repeat(lengths, lengths) - self.max_length
            else:
                raise InvalidArgumentError(
                    f"expected 'keep_start' or 'keep_end', got {self.truncation_mode!r}", "truncation_mode"
                )
            values, part = values[keep], part[keep]
            owner = np.repeat(np.arange(lengths.size), lengths)[keep]
            offsets = np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=lengths.size)))).astype(np.int64)
        owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        completion = part == 1
        batch: dict[str, Any] = {
            "packed": PackedPairs(
                values,
                offsets,
                completion.astype(np.uint8),
                np.bincount(owner[completion], minlength=len(offsets) - 1).astype(np.int64),
            )
        }
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            if key in examples[0]:
                batch[key] = torch.tensor([e[key] for e in examples])
        return batch


class FastDPOTrainer(DPOTrainer):
    """``trl.DPOTrainer`` (1.16.0) whose ``DPOConfig(padding_free=True)`` forwards only real tokens.

    Takes every argument of ``DPOTrainer``, plus ``max_tokens_per_microbatch`` (keyword-only):
    the most tokens per packed row (``None``: a micro-batch's ``2 * per_device_train_batch_size``
    sequences in one row). A budget splits the micro-batch into several rows forwarded one after
    another; the loss (a function of whole pairs) is computed once over all of them.
    """

    # DPOTrainer's attributes once its __init__ has run (Trainer annotates them as it accepts them)
    args: DPOConfig
    model: torch.nn.Module  # a PreTrainedModel, or a PEFT model wrapping one

    def __init__(self, *args: Any, max_tokens_per_microbatch: int | None = None, **kwargs: Any) -> None:
        params = inspect.signature(DPOTrainer.__init__).bind(self, *args, **kwargs).arguments
        params.pop("self")
        config: DPOConfig | None = params.get("args")
        padding_free = bool(getattr(config, "padding_free", False))
        budget = None
        if max_tokens_per_microbatch is not None:
            if not padding_free:
                raise InvalidArgumentError("needs DPOConfig(padding_free=True)", "max_tokens_per_microbatch")
            budget = v.integer(max_tokens_per_microbatch, "max_tokens_per_microbatch", minimum=1)
        # read by compute_ref_log_probs, which DPOTrainer.__init__ may already call (precomputing)
        self.max_tokens_per_microbatch = budget
        if padding_free:
            assert config is not None  # padding_free was read from it
            if params.get("compute_metrics") is not None:
                raise PaddingFreeError(
                    "compute_metrics needs the logits, which padding-free forwards do not build (TRL computes "
                    "them with an extra padded forward, deprecated); evaluate with padding_free=False",
                    "compute_metrics",
                )
            # TrainingArguments.__post_init__ made the dict, JSON string or None an AcceleratorConfig
            accelerator_config = cast("AcceleratorConfig", config.accelerator_config)
            if accelerator_config.dispatch_batches is True:
                raise PaddingFreeError(
                    "dispatch_batches=True splits collated batches across processes along their first "
                    "dimension, which a ragged batch does not have; leave dispatch_batches unset",
                    "accelerator_config",
                )
            accelerator_config.dispatch_batches = False  # e.g. for an iterable eval dataset
            if params.get("data_collator") is None:
                params["data_collator"] = DataCollatorForPackedPreference(config.max_length, config.truncation_mode)
            config.padding_free = False  # DPOTrainer would switch it off with a warning
        try:
            super().__init__(**params)
        finally:
            if config is not None and padding_free:
                config.padding_free = True
        self.padding_free = padding_free
        if budget is not None and self.aux_loss_enabled:
            raise PaddingFreeError(
                "the MoE load-balancing loss is defined over TRL's whole micro-batch; leave it None",
                "max_tokens_per_microbatch",
            )
        if padding_free:
            if self._is_vision_dataset or self._is_vlm:
                raise PaddingFreeError("is not supported for vision-language models; train padded", "padding_free")
            for model in (self.model, self.ref_model):
                if model is not None:
                    check_model(model)
                    if attention_mode(model) == "segments":
                        enable_segment_attention(model)  # for good: gradient checkpointing recomputes forwards

    # -- forwards ------------------------------------------------------------------------------

    def _rows(self, batch: PackedPairs) -> PackedRows:
        if self.max_tokens_per_microbatch is not None:
            check_budget(np.diff(batch.offsets), self.max_tokens_per_microbatch, "max_tokens_per_microbatch")
        return batch.rows(self.max_tokens_per_microbatch)

    def _sequence_logps(self, per_token: torch.Tensor, rows: PackedRows) -> torch.Tensor:
        """(2B,) sums of the scored tokens' log-probs; with ``ld_alpha``, LD-DPO's
        ``shared + ld_alpha * tail`` (tokens past the shorter completion of the pair weighed down)."""
        cu = torch.from_numpy(rows.cu_seqlens).to(per_token.device)
        if self.ld_alpha is None:
            return masked_sum(per_token, torch.ones_like(per_token, dtype=torch.bool), cu_seqlens=cu)
        counts = np.diff(rows.cu_seqlens)
        b = counts.size // 2
        shared = np.minimum(counts[:b], counts[b:])
        rank = np.arange(int(rows.cu_seqlens[-1])) - np.repeat(rows.cu_seqlens[:-1], counts)
        weight = np.where(rank < np.repeat(np.concatenate([shared, shared]), counts), 1.0, self.ld_alpha)
        w = torch.from_numpy(weight).to(per_token.device, per_token.dtype)
        return masked_sum(per_token * w, torch.ones_like(per_token, dtype=torch.bool), cu_seqlens=cu)

    def _reference_logps(self, batch: PackedPairs, rows: PackedRows, model: Any = None) -> torch.Tensor:
        """(2B,) reference sequence log-probs: the reference model, or the policy with its PEFT
        adapter disabled, without gradients."""
        adapter: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if model is None:
            model = self.ref_model
            if model is None:
                model = self.model
                if is_peft_model(self.model):
                    unwrapped = self.accelerator.unwrap_model(self.model)
                    name = "ref" if "ref" in unwrapped.peft_config else None
                    adapter = use_adapter(unwrapped, adapter_name=name)
        with torch.no_grad(), no_gradient_checkpointing(self.model, self.args):
            with adapter:  # the policy (PEFT) is DDP-wrapped: same number of calls on every rank
                per_token = forward_rows(self.accelerator, model, [rows], ("log_probs",))[0]["log_probs"]
        return self._sequence_logps(per_token, rows)

    def compute_ref_log_probs(self, model: Any, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if "packed" not in inputs:
            return super().compute_ref_log_probs(model, inputs)
        batch = inputs["packed"]
        with self.accelerator.autocast():
            chosen, rejected = self._reference_logps(batch, self._rows(batch), model).chunk(2)
        return chosen, rejected

    # -- the loss ------------------------------------------------------------------------------

    def _compute_loss(self, model: Any, inputs: dict, return_outputs: bool) -> Any:
        if "packed" not in inputs:
            return super()._compute_loss(model, inputs, return_outputs)
        if return_outputs:
            raise PaddingFreeError(
                "evaluation returns losses and metrics, not logits, in padding-free mode", "return_outputs"
            )
        mode = "train" if self.model.training else "eval"
        batch: PackedPairs = inputs["packed"]
        rows = self._rows(batch)
        fields = ("log_probs", "entropy", "mean_logits", "is_top1") + (
            ("log_sum_sq_probs",) if self.use_weighting else ()
        )
        out = forward_rows(self.accelerator, model, [rows], fields, aux_loss=self.aux_loss_enabled)[0]
        per_token = out["log_probs"]
        logps = self._sequence_logps(per_token, rows)
        chosen_logps, rejected_logps = logps.chunk(2)
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_chosen, ref_rejected = self._reference_logps(batch, rows).chunk(2)
        b = batch.num_pairs
        counts = np.diff(rows.cu_seqlens)
        lengths = torch.from_numpy(batch.completion_lengths).to(per_token.device)
        kwargs: dict[str, Any] = {}
        if "sft" in self.loss_types:
            chosen_cu = rows.cu_seqlens[: b + 1]
            kwargs["chosen_token_logps"] = scatter_padded(per_token[: int(chosen_cu[-1])], chosen_cu)
            width = kwargs["chosen_token_logps"].shape[1]
            kwargs["chosen_token_mask"] = torch.from_numpy(np.arange(width)[None, :] < counts[:b, None]).to(
                per_token.device
            )
        if self.use_weighting:
            cu = torch.from_numpy(rows.cu_seqlens).to(per_token.device)
            with torch.no_grad():
                gap = per_token - out["log_sum_sq_probs"]
                n = torch.from_numpy(counts).to(per_token.device).clamp(min=1)
                weights = torch.exp(masked_sum(gap, torch.ones_like(gap, dtype=torch.bool), cu_seqlens=cu) / n)
            kwargs["chosen_weights"], kwargs["rejected_weights"] = weights.chunk(2)
        result = dpo_loss(
            chosen_logps,
            rejected_logps,
            ref_chosen.to(chosen_logps.dtype),
            ref_rejected.to(chosen_logps.dtype),
            loss_type=self.loss_types,
            loss_weights=self.loss_weights,
            beta=self.beta,
            label_smoothing=self.label_smoothing,
            discopop_tau=self.args.discopop_tau,
            f_divergence_type=self.f_divergence_type,
            f_alpha_divergence_coef=self.f_alpha_divergence_coef,
            chosen_lengths=lengths[:b],
            rejected_lengths=lengths[b:],
            check_finite=False,  # a diverging run goes on as in TRL (the Trainer filters NaN losses)
            **kwargs,
        )
        loss = result.loss
        metrics = self._metrics[mode]
        if self.aux_loss_enabled:
            aux = out["aux_loss"]
            loss = loss + self.router_aux_loss_coef * aux
            metrics["aux_loss"].append(self.accelerator.gather_for_metrics(aux).mean().item())
        self._log_packed_metrics(mode, batch, counts, out, result)
        return loss

    def _log_packed_metrics(self, mode: str, batch: PackedPairs, counts: np.ndarray, out: dict, result: Any) -> None:
        """TRL's DPO metrics from the packed outputs, reduced across processes as TRL does."""
        gather_sum = lambda x: self.accelerator.gather_for_metrics(x).sum()  # noqa: E731
        device = out["log_probs"].device
        b = batch.num_pairs
        n_chosen = int(counts[:b].sum())
        metrics = self._metrics[mode]
        entropy_sum = gather_sum(out["entropy"].detach().sum())
        tokens = gather_sum(torch.tensor(int(counts.sum()), device=device))
        metrics["entropy"].append((entropy_sum / tokens).item() if tokens > 0 else 0.0)
        if mode == "train":
            attended = gather_sum(torch.tensor(int(batch.values.size), device=device)).item()
            self._total_train_tokens += attended // self._tp_size
        metrics["num_tokens"] = [self._total_train_tokens]
        mean_logits = out["mean_logits"].detach()
        chosen_tokens = gather_sum(torch.tensor(n_chosen, device=device)).item()
        rejected_tokens = gather_sum(torch.tensor(int(counts[b:].sum()), device=device)).item()
        chosen_logits = gather_sum(mean_logits[:n_chosen].sum()).item()
        rejected_logits = gather_sum(mean_logits[n_chosen:].sum()).item()
        metrics["logits/chosen"].append(chosen_logits / chosen_tokens if chosen_tokens > 0 else 0.0)
        metrics["logits/rejected"].append(rejected_logits / rejected_tokens if rejected_tokens > 0 else 0.0)
        correct = gather_sum(out["is_top1"][:n_chosen].sum()).item()
        metrics["mean_token_accuracy"].append(correct / chosen_tokens if chosen_tokens > 0 else 0.0)
        gather = self.accelerator.gather
        chosen_r, rejected_r = result.chosen_rewards, result.rejected_rewards
        metrics["rewards/chosen"].append(gather(chosen_r).mean().item())
        metrics["rewards/rejected"].append(gather(rejected_r).mean().item())
        metrics["rewards/accuracies"].append(gather((chosen_r > rejected_r).float()).mean().item())
        metrics["rewards/margins"].append(gather(chosen_r - rejected_r).mean().item())
        metrics["logps/chosen"].append(gather(result.chosen_logps).mean().item())
        metrics["logps/rejected"].append(gather(result.rejected_logps).mean().item())

    def prediction_step(self, model: Any, inputs: dict, prediction_loss_only: bool, ignore_keys: Any = None) -> Any:
        if "packed" not in inputs:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs, return_outputs=False)
        return loss.detach(), None, None
