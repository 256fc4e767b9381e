"""Packed forwards inside one training step, on any number of processes.

Token-budget rows make the number of model calls data-dependent, and a DDP-wrapped model takes
part in collectives at every call (buffer broadcasts before the forward, the gradient
all-reduce after the backward). So every rank makes the same number of calls (the most any
rank needs: a one-token call where it has fewer rows, kept in the graph with weight 0), and
when several calls feed one backward, DDP prepares its gradient sync on the last call only.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from trl.models.utils import disable_gradient_checkpointing

from ..padding_free import PackedRows, forward_packed, pack_rows

if TYPE_CHECKING:
    from transformers import PreTrainedModel, TrainingArguments

__all__ = ["forward_rows", "idle_call", "most_over_ranks", "no_gradient_checkpointing"]

_ONE_TOKEN = pack_rows(np.zeros(2, dtype=np.int64), np.array([0, 2]))  # any valid id


def no_gradient_checkpointing(
    model: torch.nn.Module, args: TrainingArguments
) -> contextlib.AbstractContextManager[Any]:
    """TRL's ``disable_gradient_checkpointing(model, args.gradient_checkpointing_kwargs)``.

    TRL annotates ``model`` as a ``PreTrainedModel``; a PEFT model wrapping one works too (it
    forwards the checkpointing methods TRL calls). The kwargs are a dict or ``None`` once
    ``TrainingArguments.__post_init__`` has parsed a JSON string."""
    kwargs = cast("dict[str, Any] | None", args.gradient_checkpointing_kwargs)
    return disable_gradient_checkpointing(cast("PreTrainedModel", model), kwargs)


def most_over_ranks(accelerator: Any, count: int) -> int:
    """The largest ``count`` over the processes (every rank calls this at the same point)."""
    if accelerator.num_processes == 1:
        return count
    local = torch.tensor([count], device=accelerator.device)
    return int(accelerator.gather(local).max().item())


def idle_call(accelerator: Any, model: Any, call_context: Any = None) -> torch.Tensor:
    """A one-token call for a rank with fewer rows than another: ``0 * log-prob``, a 0-d tensor
    in ``model``'s graph (so a backward through it reaches every DDP hook)."""
    with accelerator.autocast():
        got = forward_packed(model, _ONE_TOKEN, fields=("log_probs",), call_context=call_context)
    return 0.0 * got["log_probs"].sum()


def forward_rows(
    accelerator: Any,
    model: Any,
    rows: list[PackedRows],
    fields: tuple[str, ...],
    *,
    aux_loss: bool = False,
    equalize: bool = True,
    calls: int | None = None,
) -> list[dict]:
    """Each ``PackedRows`` through ``model`` under autocast (see :func:`forward_packed`); with
    ``equalize``, this rank makes as many model calls as the busiest rank: ``calls`` when the
    caller already knows that number (no collective here), else asked of the ranks."""
    mine = sum(r.num_rows for r in rows)
    if calls is not None:
        if calls < mine:
            raise RuntimeError(f"internal error: {calls} model calls planned for {mine} rows")
        total = calls
    else:
        total = most_over_ranks(accelerator, mine) if equalize else mine
    done = 0
    grad = torch.is_grad_enabled() and accelerator.num_processes > 1

    def call_context(r: int) -> Any:
        # several calls, one backward: DDP prepares its gradient sync on the last call only
        return accelerator.no_sync(model) if grad and done + r != total - 1 else contextlib.nullcontext()

    outs = []
    with accelerator.autocast():
        for r in rows:
            outs.append(forward_packed(model, r, fields=fields, aux_loss=aux_loss, call_context=call_context))
            done += r.num_rows
        while done < total:
            idle = idle_call(accelerator, model, call_context)
            done += 1
            if outs and torch.is_grad_enabled():  # keep the extra call in the graph
                outs[-1]["log_probs"] = outs[-1]["log_probs"] + idle
    return outs
