"""The metrics ``GRPOTrainer._compute_loss`` logs, reduced across processes as TRL reduces them.

TRL logs each "global masked mean" as ``Σ_ranks sum / Σ_ranks count`` (a token count, or the
sequence count for one-value-per-sequence tensors), and the clip extremes as the ``nanmin`` /
``nanmax`` over every rank's per-sequence values. :func:`fastalign.losses.grpo_loss` returns this
process's means; here each mean is turned back into its local ``(sum, count)`` (float64, so the
round trip is exact to ~1e-16), every pair is summed across ranks in **one** all-reduce, and the
two extremes are combined in one all-gather. Which collectives run depends only on the
configuration, so every rank makes the same calls whatever its data (an empty batch included).

On several processes the trainer defers the reduction to the end of the optimizer step
(:class:`PendingMetrics`): the micro-batches' pairs are reduced together, so the ranks meet once
per step (at the gradient all-reduce) instead of at every micro-batch, where a rank with fewer
tokens would wait for the busiest one each time. The logged values are the same.
"""

from __future__ import annotations

from typing import Any

import torch

from ..losses import GrpoLoss

_PPO = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")


def _nan_extreme(x: torch.Tensor, largest: bool) -> float:
    """``nanmax``/``nanmin`` of a 1-d tensor; NaN when every value is NaN (as TRL's helpers)."""
    finite = x[~torch.isnan(x)]
    if finite.numel() == 0:
        return float("nan")
    return float(finite.max() if largest else finite.min())


class _Local:
    """One micro-batch's metrics before the cross-rank reduction: ``(sum, count)`` pairs under
    ``names`` and, for the PPO losses, the two clip extremes."""

    def __init__(self, names: list[str], pairs: torch.Tensor, extremes: torch.Tensor | None) -> None:
        self.names, self.pairs, self.extremes = names, pairs, extremes


def _local(
    accelerator: Any,
    out: GrpoLoss,
    entropies: torch.Tensor,
    mask: torch.Tensor,
    *,
    rows: int,
    level: str,
    packed: bool,
) -> _Local:
    device = accelerator.device
    f64 = torch.float64
    single = not packed and mask.dim() == 2 and mask.shape[1] == 1
    n_rows = float(rows)
    m = mask.to(f64)
    tokens = n_rows if single else m.sum()
    ent = entropies.detach().to(f64)
    ent_sum = ent.sum() if single else (ent * m).sum()
    low, high, region, low_min, high_max, cispo, kl, phi = out.raw_metrics.to(device=device, dtype=f64)
    per_sequence = single or level == "sequence"
    clip_count = n_rows if per_sequence else tokens

    def pair(mean: torch.Tensor, count: Any) -> tuple[torch.Tensor, torch.Tensor]:
        count = torch.as_tensor(count, dtype=f64, device=device)
        return mean * count.clamp(min=1.0), count  # kernels divide by count.clamp(min=1)

    names: list[str] = []
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    if out.beta != 0.0:
        names.append("kl")
        pairs.append(pair(kl, tokens))
    names.append("entropy")
    pairs.append((ent_sum.to(device), torch.as_tensor(tokens, dtype=f64, device=device)))
    if out.loss_type in _PPO:
        names += ["clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"]
        pairs += [pair(low, clip_count), pair(high, clip_count), pair(region, clip_count)]
    elif out.loss_type == "cispo":
        names.append("cispo_clip_ratio")
        pairs.append(pair(cispo, clip_count))
    elif out.loss_type == "vespo":
        names.append("vespo/phi_seq_mean")
        pairs.append(pair(phi, n_rows))
    flat = torch.stack([x for p in pairs for x in p])
    extremes = torch.stack([low_min, high_max]) if out.loss_type in _PPO else None
    return _Local(names, flat, extremes)


def _reduce(accelerator: Any, batch: list[_Local]) -> list[dict[str, float]]:
    """Every micro-batch's metrics, global: one all-reduce of all pairs and, for the PPO losses,
    one all-gather of all extremes, whatever the number of micro-batches."""
    if not batch:
        return []
    procs = accelerator.num_processes
    flat = torch.cat([b.pairs for b in batch])
    if procs > 1:
        flat = accelerator.reduce(flat, reduction="sum")
    totals = flat.tolist()
    with_extremes = [b.extremes for b in batch if b.extremes is not None]
    gathered = torch.zeros(0, 0, 2)
    if with_extremes:
        gathered = torch.stack(with_extremes).reshape(1, -1)
        if procs > 1:
            gathered = accelerator.gather(gathered)
        gathered = gathered.view(gathered.shape[0], -1, 2)  # (ranks, micro-batches, 2)
    results: list[dict[str, float]] = []
    at = e = 0
    for b in batch:
        result: dict[str, float] = {}
        for name in b.names:
            s, c = totals[at], totals[at + 1]
            result[name] = s / max(c, 1.0)
            at += 2
        if b.extremes is not None:
            result["clip_ratio/low_min"] = _nan_extreme(gathered[:, e, 0], largest=False)
            result["clip_ratio/high_max"] = _nan_extreme(gathered[:, e, 1], largest=True)
            e += 1
        results.append(result)
    return results


def loss_metrics(
    accelerator: Any,
    out: GrpoLoss,
    entropies: torch.Tensor,
    mask: torch.Tensor,
    *,
    rows: int,
    level: str,
    packed: bool,
) -> dict[str, float]:
    """TRL's loss metrics under TRL's keys, global over ``accelerator``'s processes.

    ``entropies`` and ``mask`` have the log-probs' layout (``(B, T)``, or ``(N,)`` when
    ``packed``); ``rows`` is ``B``; ``level`` is ``importance_sampling_level``; advantages are
    one per sequence (as in the trainer). Counts follow TRL: a padded width of 1 makes every
    tensor one value per sequence (TRL's ``x.shape[1] == 1`` case), and sequence-level ratios
    make the clip indicators one per sequence.
    """
    local = _local(accelerator, out, entropies, mask, rows=rows, level=level, packed=packed)
    return _reduce(accelerator, [local])[0]


class PendingMetrics:
    """Loss metrics of the micro-batches of one optimizer step, reduced across ranks together
    by :meth:`flush`. Every rank adds the same number of entries of the same shapes (the
    configuration decides them), so every rank's flush makes the same collective calls."""

    def __init__(self) -> None:
        self._pending: list[tuple[str, _Local]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self,
        mode: str,
        accelerator: Any,
        out: GrpoLoss,
        entropies: torch.Tensor,
        mask: torch.Tensor,
        *,
        rows: int,
        level: str,
        packed: bool,
    ) -> None:
        self._pending.append((mode, _local(accelerator, out, entropies, mask, rows=rows, level=level, packed=packed)))

    def flush(self, accelerator: Any, metrics: dict[str, Any]) -> None:
        """Append every pending micro-batch's global values to ``metrics[mode][key]``, in order."""
        pending, self._pending = self._pending, []
        for (mode, _), result in zip(pending, _reduce(accelerator, [local for _, local in pending])):
            for key, value in result.items():
                metrics[mode][key].append(value)
