"""From generation's token lists to model inputs: fastalign's packed rows vs TRL's padded batch.

A GRPO generation batch arrives as Python lists of prompt and completion token ids (from
``model.generate`` or vLLM). TRL 1.16's ``_generate_and_score_completions`` turns them into
tensors with its public ``trl.trainer.utils.pad``: one tensor per sequence, prompts left-padded,
completions right-padded, plus the two masks. fastalign reads the lists once in Rust
(``concat_lists``) and lays the sequences out as packed rows (``pack_rows``: tokens, position ids,
next-token labels, where each trained token lands). Both sides start from the same lists.

Workload: N sequences (``FASTALIGN_BENCH_ROWS_N``, default 512 and 4,096:
``fastalign._bench.cases.ROWS_SUITE_SIZES``), 16-token prompts, completion lengths lognormal (median
200, sigma 0.9, clipped to [16, 2048], the longest 2,048), as ``fastalign.step_bench``'s long-tail
batch (``fastalign._bench.inputs.generation_lists``); fastalign packs them into rows of at most
8,192 tokens. Not a hot path of a step (both take milliseconds against seconds of forward and
backward), but it is where TRL builds its padding.
"""

from __future__ import annotations

import os

import pytest
import torch
from _common import run, tag
from trl.trainer.utils import pad

from fastalign._bench import cases, inputs
from fastalign.padding_free import concat_lists, pack_rows

_DEFAULT = ",".join(map(str, cases.ROWS_SUITE_SIZES))
SIZES = [int(n) for n in os.environ.get("FASTALIGN_BENCH_ROWS_N", _DEFAULT).split(",")]


def trl_padded(prompts, completions):
    p = [torch.tensor(ids) for ids in prompts]
    c = [torch.tensor(ids) for ids in completions]
    return (
        pad(p, padding_value=0, padding_side="left"),
        pad([torch.ones_like(x) for x in p], 0, "left"),
        pad(c, padding_value=0, padding_side="right"),
        pad([torch.ones_like(x) for x in c], 0, "right"),
    )


def fastalign_rows(prompts, completions):
    r = concat_lists(prompts, completions)
    return pack_rows(r.values, r.offsets, targets=r.part == 1, max_tokens=cases.ROWS_MAX_TOKENS)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("impl", ["trl", "fastalign"])
def test_lists_to_model_inputs(benchmark, n, impl):
    prompts, completions = inputs.generation_lists(n)
    benchmark.group = f"token lists -> model inputs, N={n:,}"
    rows = fastalign_rows(prompts, completions)
    real = sum(len(x) for x in prompts) + sum(len(x) for x in completions)
    assert rows.num_tokens == real and int(rows.cu_seqlens[-1]) == sum(len(c) for c in completions)
    if impl == "trl":
        tag(benchmark, op="lists -> model inputs", size=f"N={n:,}", impl="trl pad (padded batch)", role="reference")
        run(benchmark, trl_padded, prompts, completions, rounds=15)
    else:
        tag(benchmark, op="lists -> model inputs", size=f"N={n:,}", impl="fastalign concat_lists + pack_rows",
            role="fastalign", nbytes=real * 8 * 4)  # fmt: skip
        run(benchmark, fastalign_rows, prompts, completions, rounds=15)
