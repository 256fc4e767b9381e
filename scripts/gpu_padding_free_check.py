"""Padding-free on a CUDA device: packed vs padded log-probs, and forward+backward times.

Run where a GPU is available (``python scripts/gpu_padding_free_check.py``; about a minute). For a
random Qwen2 (hidden 512, 8 layers, vocabulary 32,000) on the long-tail batch of
``fastalign.step_bench`` (32 sequences, the longest 2,048 tokens) it prints, per dtype and
attention implementation (sdpa, and flash_attention_2 when flash-attn is installed):

* max and mean |packed - padded| of the scored log-probs (float32 should be ~1e-5, half
  precision ~1e-2: kernel noise, while a leak between sequences shows as ~0.5);
* median seconds of forward+backward for TRL's layout (every row padded to 2,048) and for packed
  rows (fastalign.padding_free, one row of all 32 sequences), after a warm-up, 5 interleaved runs.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from trl.trainer.utils import add_fused_lm_head

from fastalign.padding_free import concat_lists, enable_segment_attention, forward_packed, pack_rows, padded_logps
from fastalign.step_bench import long_tail_lengths


def model(impl: str, dtype: torch.dtype) -> torch.nn.Module:
    cfg = Qwen2Config(
        vocab_size=32000,
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=8192,
    )
    torch.manual_seed(0)
    m = Qwen2ForCausalLM(cfg).to("cuda", dtype)
    m.config._attn_implementation = impl
    add_fused_lm_head(m, outputs=("log_probs", "entropy"))
    if impl == "sdpa":
        enable_segment_attention(m)
    return m


def timed(fn) -> float:
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    rng = np.random.default_rng(0)
    lengths = long_tail_lengths()
    prompts = [rng.integers(10, 32000, 16).tolist() for _ in lengths]
    completions = [rng.integers(10, 32000, int(n)).tolist() for n in lengths]
    r = concat_lists(prompts, completions)
    targets = r.part == 1
    rows = pack_rows(r.values, r.offsets, targets=targets)
    seqs = np.arange(len(lengths))
    impls = ["sdpa"]
    try:
        import flash_attn  # noqa: F401

        impls.append("flash_attention_2")
    except ImportError:
        print("flash-attn not installed: flash_attention_2 skipped")
    print(torch.cuda.get_device_name(), "| tokens: packed", rows.num_tokens, "padded", len(lengths) * (16 + 2048))
    for dtype in (torch.float32, torch.bfloat16):
        for impl in impls:
            if impl != "sdpa" and dtype == torch.float32:
                continue
            m = model(impl, dtype)
            with torch.no_grad():
                packed = forward_packed(m, rows)["log_probs"].float()
                padded = padded_logps(m, r.values, r.offsets, targets, seqs).float()
            diff = (packed - padded).abs()

            def run_packed(m: torch.nn.Module = m) -> None:
                forward_packed(m, rows)["log_probs"].sum().backward()

            def run_padded(m: torch.nn.Module = m) -> None:
                padded_logps(m, r.values, r.offsets, targets, seqs).sum().backward()

            run_packed()  # warm-up
            run_padded()
            t_packed, t_padded = [], []
            for _ in range(5):
                t_padded.append(timed(run_padded))
                t_packed.append(timed(run_packed))
            a, b = statistics.median(t_padded), statistics.median(t_packed)
            print(
                f"{str(dtype):15} {impl:18} |diff| max {diff.max():.2e} mean {diff.mean():.2e} | "
                f"fwd+bwd padded {a * 1e3:.1f} ms, packed {b * 1e3:.1f} ms ({a / b:.1f}x)"
            )


if __name__ == "__main__":
    main()
