"""Forward packed rows through a causal LM and read per-token log-probs where they are scored.

Each row goes through the model as ``(1, L)`` tokens with restarting ``position_ids``, no
``attention_mask`` and ``use_cache=False`` (either of the last two left out silently merges the
row's sequences in transformers 5). The attention is chosen per model:

* a flash-attention implementation gets the row's ``cu_seq_lens_q/k`` and ``max_length_q/k``
  (its varlen kernel, no host sync per layer);
* sdpa, eager and flex attention run the segment attention of
  :mod:`fastalign.padding_free.attention` (switched on for the call unless the model has it
  already: with gradient checkpointing, call ``enable_segment_attention(model)`` once first);
  ``attention="model"`` keeps the model's own, which transformers runs with a dense
  block-diagonal mask: correct, but slower;
* any other implementation is refused: nothing says it honours packed sequences.

The LM head is TRL's fused one when the model carries it (``trl``'s ``add_fused_lm_head``, which
GRPOTrainer and DPOTrainer install: temperature, chunked log-softmax, only scored positions on
CUDA); otherwise the logits are computed and read here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from ..errors import InvalidArgumentError, PaddingFreeError
from .attention import NAMES, packed_call, unwrap_config, unwrap_model, use_segment_attention
from .rows import PackedRows, pack_rows

__all__ = ["attention_mode", "check_model", "check_packed_forward", "forward_packed", "padded_logps"]

FIELDS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")
_MASKED = ("sdpa", "eager", "flex_attention")
_ATTENTION = ("auto", "segments", "model")
# layer types (config.layer_types) and module classes that mix tokens along the sequence without
# attention (linear attention, convolutions, state space, recurrences): they run across the
# sequences of a packed row unless given kernels that know its boundaries
_MIXING_LAYER_TYPES = ("linear", "mamba", "conv", "ssm", "recurrent", "rwkv", "retention", "deltanet")
_SEQUENCE_MIXERS = ("Mamba", "GatedDeltaNet", "ShortConv", "LinearAttention", "Lightning", "RWKV", "Retention")


def _is_flash(impl: str | None) -> bool:
    return impl is not None and "flash" in impl


def attention_mode(model: Any, attention: str = "auto") -> str:
    """``"flash"``, ``"segments"`` or ``"model"``: how :func:`forward_packed` runs ``model``'s attention."""
    if attention not in _ATTENTION:
        raise InvalidArgumentError(f"expected one of {_ATTENTION}, got {attention!r}", "attention")
    impl = unwrap_config(model)._attn_implementation
    if _is_flash(impl):
        return "flash"
    if impl not in (*_MASKED, *NAMES):
        raise PaddingFreeError(
            f"the model's attention implementation {impl!r} is not known to honour packed sequences "
            "(restarting position ids); load the model with attn_implementation='sdpa', 'eager' or a "
            "flash-attention variant",
            "attn_implementation",
        )
    if attention == "model":
        return "model"
    return "segments"


def _call_context(model: Any, mode: str) -> Any:
    if mode != "segments":
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    if unwrap_config(model)._attn_implementation not in NAMES:
        stack.enter_context(use_segment_attention(model))
    stack.enter_context(packed_call())
    return stack


def check_model(model: Any) -> None:
    """Raise :class:`~fastalign.errors.PaddingFreeError` for a model that cannot take packed rows
    exactly: vision-language models, 3-D (multimodal RoPE) position ids, layers other than
    attention that mix tokens along the sequence (linear attention, convolutions, state space),
    and attention sinks or logit soft-capping without a flash-attention implementation."""
    config = unwrap_config(model)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    if getattr(config, "vision_config", None) is not None or text is not config:
        raise PaddingFreeError(
            f"{type(config).__name__} is a multimodal model; packed rows support text-only causal LMs", "padding_free"
        )
    for rope in (getattr(text, "rope_scaling", None), getattr(text, "rope_parameters", None)):
        if isinstance(rope, dict) and ("mrope_section" in rope or rope.get("rope_type") == "mrope"):
            raise PaddingFreeError(
                "the model uses multimodal RoPE (3-D position ids), which packed rows do not carry", "padding_free"
            )
    layer_types = getattr(text, "layer_types", None) or ()
    mixing = sorted({t for t in layer_types if any(m in str(t).lower() for m in _MIXING_LAYER_TYPES)})
    if mixing:
        raise PaddingFreeError(
            f"the model has {', '.join(mixing)} layers, which mix the sequences of a packed row", "padding_free"
        )
    root = unwrap_model(model)
    sinks = False
    for module in root.modules():
        name = type(module).__name__
        if any(m in name for m in _SEQUENCE_MIXERS):
            raise PaddingFreeError(
                f"the model has {name} layers, which mix the sequences of a packed row", "padding_free"
            )
        sinks = sinks or isinstance(getattr(module, "sinks", None), torch.nn.Parameter)
    softcap = getattr(text, "attn_logit_softcapping", None) is not None
    if (sinks or softcap) and not _is_flash(config._attn_implementation):
        what = "attention sinks" if sinks else "attention logit soft-capping"
        raise PaddingFreeError(
            f"the model uses {what}, which the segment attention does not implement; load it with a "
            "flash-attention implementation that does (attn_implementation=...), or train padded",
            "padding_free",
        )


def _has_fused_head(model: Any) -> bool:
    """Whether ``model``'s forward is TRL's fused-head forward, inside DDP/FSDP and under
    wrappers that keep ``__wrapped__`` (accelerate's mixed-precision output casting does)."""
    model = unwrap_model(model)
    if hasattr(model, "get_base_model"):  # PEFT: TRL patches the base model's forward
        model = model.get_base_model()
    f = getattr(model, "forward", None)
    f = getattr(f, "__func__", f)
    for _ in range(8):
        code = getattr(f, "__code__", None)
        if code is not None and "fused_lm_head" in code.co_varnames:
            return True
        f = getattr(f, "__wrapped__", None)
        f = getattr(f, "__func__", f)
        if f is None:
            return False
    return False


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _from_logits(logits: torch.Tensor, labels: torch.Tensor, temperature: float, fields: Iterable[str]) -> dict:
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    mask = labels != -100
    out = {"log_probs": logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1).masked_fill(~mask, 0.0)}
    if "entropy" in fields:
        out["entropy"] = (-(logp.exp() * logp).sum(-1)).masked_fill(~mask, 0.0)
    missing = set(fields) - set(out)
    if missing:
        raise InvalidArgumentError(f"{sorted(missing)} need TRL's fused LM head on the model", "fields")
    return out


def forward_packed(
    model: Any,
    rows: PackedRows,
    *,
    fields: tuple[str, ...] = ("log_probs",),
    attention: str = "auto",
    temperature: float = 1.0,
    model_kwargs: dict | None = None,
    aux_loss: bool = False,
    call_context: Callable[[int], Any] | None = None,
) -> dict[str, torch.Tensor]:
    """Run every row of ``rows`` through ``model``; return each field as an ``(N,)`` tensor of the
    scored tokens, in ``rows``' sequence order (``rows.cu_seqlens`` delimits the sequences).
    ``aux_loss``: also request the MoE router logits and return ``"aux_loss"``, the mean over
    rows of the model's load-balancing loss (needs TRL's fused head).

    ``fields``: among ``"log_probs"``, ``"entropy"`` (and, with TRL's fused head,
    ``"log_sum_sq_probs"``, ``"mean_logits"``, ``"is_top1"``). ``temperature`` applies only to a
    model without TRL's fused head (the head carries its own). ``model_kwargs`` go to every call.
    Gradients flow when enabled.
    """
    bad = [f for f in fields if f not in FIELDS]
    if bad or not fields:
        raise InvalidArgumentError(f"expected a non-empty subset of {FIELDS}, got {fields!r}", "fields")
    mode = attention_mode(model, attention)
    device = _device(model)
    fused = _has_fused_head(model)
    pieces: dict[str, list[torch.Tensor]] = {f: [] for f in fields}
    aux: list[torch.Tensor] = []
    if aux_loss and not fused:
        raise InvalidArgumentError("needs TRL's fused LM head on the model", "aux_loss")
    for r in range(rows.num_rows):
        a, b = rows.row_span(r)
        if a == b:
            continue
        labels = torch.from_numpy(rows.shift_labels[a:b]).to(device).unsqueeze(0)
        kwargs: dict[str, Any] = {
            "input_ids": torch.from_numpy(rows.input_ids[a:b]).to(device).unsqueeze(0),
            "position_ids": torch.from_numpy(rows.position_ids[a:b]).to(device).unsqueeze(0),
            "use_cache": False,
        }
        if mode != "model":
            cu = rows.row_cu_seqlens(r)
            longest = int(np.diff(cu).max())
            cu_t = torch.from_numpy(cu).to(device if mode == "flash" else "cpu")
            kwargs.update(cu_seq_lens_q=cu_t, cu_seq_lens_k=cu_t, max_length_q=longest, max_length_k=longest)
        if aux_loss:
            kwargs["output_router_logits"] = True
        kwargs.update(model_kwargs or {})
        with _call_context(model, mode), call_context(r) if call_context else contextlib.nullcontext():
            if fused:
                out = model(**kwargs, shift_labels=labels, fused_lm_head=True)
                got = {f: getattr(out, f) for f in fields}
                if aux_loss:
                    aux.append(out.aux_loss)
            else:
                got = _from_logits(model(**kwargs).logits, labels, temperature, fields)
        for f in fields:
            pieces[f].append(got[f][0])
    index = torch.from_numpy(rows.score_index).to(device)
    result = {}
    for f in fields:
        flat = torch.cat(pieces[f]) if pieces[f] else torch.zeros(0, device=device)
        result[f] = flat[index]
    if aux_loss:
        result["aux_loss"] = torch.stack(aux).mean() if aux else torch.zeros((), device=device)
    return result


def padded_logps(
    model: Any, values: np.ndarray, offsets: np.ndarray, targets: Any, sequences: Any, *, temperature: float = 1.0
) -> torch.Tensor:
    """The reference: the same scored log-probs from right-padded rows with an attention mask
    (the model's own attention), as an ``(N,)`` tensor in ``sequences`` order."""
    seq = np.asarray(sequences, dtype=np.int64)
    lengths = offsets[1:][seq] - offsets[:-1][seq]
    width = int(lengths.max()) if seq.size else 0
    device = _device(model)
    ids = np.zeros((seq.size, width), dtype=np.int64)
    labels = np.full((seq.size, width), -100, dtype=np.int64)
    for i, s in enumerate(seq.tolist()):  # a few sequences: the check's slice
        a, b = int(offsets[s]), int(offsets[s + 1])
        ids[i, : b - a] = values[a:b]
        scored = np.ones(b - a, bool) if targets is None else np.asarray(targets[a:b], bool)
        scored[0] = False
        labels[i, : b - a] = np.where(scored, values[a:b], -100)
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    ids_t, mask_t, labels_t = (torch.from_numpy(x).to(device) for x in (ids, mask, labels))
    if _has_fused_head(model):
        out = model(input_ids=ids_t, attention_mask=mask_t, labels=labels_t, fused_lm_head=True, use_cache=False)
        logps = out.log_probs
    else:
        logits = model(input_ids=ids_t, attention_mask=mask_t, use_cache=False).logits[:, :-1]
        logps = _from_logits(logits, labels_t[:, 1:], temperature, ("log_probs",))["log_probs"]
    keep = torch.from_numpy(labels[:, 1:] != -100).to(device)
    return logps[keep]


def _tolerances(model: Any) -> tuple[float, float]:
    """(max, mean) |Δ log-prob| allowed between packed and padded: float32 rounding, or the
    kernel noise of half precision. A leak between sequences moves log-probs by ~0.5."""
    device = _device(model)
    half = any(p.dtype in (torch.float16, torch.bfloat16) for p in model.parameters())
    if device.type in ("cuda", "cpu", "xpu") and torch.is_autocast_enabled(device.type):
        half = half or torch.get_autocast_dtype(device.type) in (torch.float16, torch.bfloat16)
    return (2.0, 0.05) if half else (1e-3, 1e-4)


def check_packed_forward(
    model: Any,
    values: np.ndarray,
    offsets: np.ndarray,
    *,
    targets: Any = None,
    sequences: Any = None,
    attention: str = "auto",
    model_kwargs: dict | None = None,
) -> float:
    """Compare packed and padded log-probs of ``sequences`` (a few: this runs both forwards) and
    raise :class:`~fastalign.errors.PaddingFreeError` if they disagree beyond rounding; return the
    largest difference. The model runs in eval mode, without gradients, for the check."""
    seq = np.arange(len(offsets) - 1) if sequences is None else np.asarray(sequences, dtype=np.int64)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            rows = pack_rows(values, offsets, targets=targets, sequences=seq)
            packed = forward_packed(model, rows, attention=attention, model_kwargs=model_kwargs)["log_probs"]
            padded = padded_logps(model, values, offsets, targets, seq)
    finally:
        model.train(was_training)
    if packed.numel() == 0:
        return 0.0
    diff = (packed.float() - padded.float()).abs()
    worst, mean = float(diff.max()), float(diff.mean())
    max_tol, mean_tol = _tolerances(model)
    if not (worst <= max_tol and mean <= mean_tol):
        raise PaddingFreeError(
            f"packed and padded log-probs disagree (max |diff| {worst:.3g}, mean {mean:.3g}; allowed {max_tol:g}, "
            f"{mean_tol:g}): the packed rows' sequences are not kept apart by this model "
            f"({type(model).__name__}, attention {unwrap_config(model)._attn_implementation!r})",
            "padding_free",
        )
    return worst
