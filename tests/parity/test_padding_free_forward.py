"""Packed forwards give the padded model's per-token log-probs (and gradients) for sdpa, eager and
the segment attention; the traps that merge a row's sequences are caught; unsupported models are
refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from trl.trainer.utils import add_fused_lm_head

from fastalign.errors import InvalidArgumentError, PaddingFreeError
from fastalign.padding_free import (
    SEGMENT_ATTENTION,
    check_model,
    check_packed_forward,
    concat_lists,
    enable_segment_attention,
    forward_packed,
    pack_rows,
    padded_logps,
)
from fastalign.testing import tiny_model, tiny_tokenizer

TOK = tiny_tokenizer()


def _model(impl="sdpa", fused=True, **config):
    model = tiny_model(TOK, hidden_size=64) if not config else _configured(**config)
    model.config._attn_implementation = impl
    if fused:
        add_fused_lm_head(model, temperature=0.7, outputs=("log_probs", "entropy"))
    return model.eval()


def _configured(**config):
    cfg = Qwen2Config(
        vocab_size=len(TOK),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        **config,
    )
    torch.manual_seed(0)
    return Qwen2ForCausalLM(cfg)


def _batch(seed=0, n=5):
    """Prompts + completions of mixed lengths (one long), completions scored."""
    rng = np.random.default_rng(seed)
    prompts = [rng.integers(4, 30, int(rng.integers(1, 6))).tolist() for _ in range(n)]
    completions = [rng.integers(4, 30, int(rng.integers(1, 12))).tolist() for _ in range(n)]
    completions[-1] = rng.integers(4, 30, 90).tolist()
    r = concat_lists(prompts, completions)
    return r.values, r.offsets, r.part == 1


@pytest.mark.parametrize("fused", [True, False], ids=["trl-fused-head", "logits"])
@pytest.mark.parametrize(
    "impl, attention", [("sdpa", "model"), ("eager", "model"), ("sdpa", "segments"), ("eager", "segments")]
)
def test_packed_logps_equal_padded(impl, attention, fused):
    model = _model(impl, fused)
    values, offsets, targets = _batch()
    order = [4, 0, 3, 1, 2]
    with torch.no_grad():
        ref = padded_logps(model, values, offsets, targets, order, temperature=0.7)
        for budget in (None, 100):  # one row, or several
            rows = pack_rows(values, offsets, targets=targets, sequences=order, max_tokens=budget)
            got = forward_packed(model, rows, attention=attention, temperature=0.7)["log_probs"]
            assert got.shape == ref.shape == (int(targets.sum() - 0),)
            torch.testing.assert_close(got, ref, rtol=0, atol=2e-6)


def test_packed_gradients_equal_padded():
    values, offsets, targets = _batch(1)
    grads = []
    for packed in (False, True):
        model = _model("sdpa")
        model.train()
        if packed:
            out = forward_packed(model, pack_rows(values, offsets, targets=targets))["log_probs"]
        else:
            out = padded_logps(model, values, offsets, targets, np.arange(len(offsets) - 1))
        (out * torch.linspace(-1, 1, out.numel())).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_entropies_and_sliding_windows_equal_the_masked_path():
    # a window shorter than the long sequence: the segment attention applies it per sequence
    model = _model(
        "sdpa",
        use_sliding_window=True,
        sliding_window=8,
        max_window_layers=0,
        layer_types=["sliding_attention", "sliding_attention"],
    )
    values, offsets, targets = _batch(2)
    rows = pack_rows(values, offsets, targets=targets)
    with torch.no_grad():
        a = forward_packed(model, rows, fields=("log_probs", "entropy"), attention="model")
        b = forward_packed(model, rows, fields=("log_probs", "entropy"), attention="segments")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=2e-6)


@pytest.mark.parametrize("trap", ["use_cache", "all_ones_mask"])
def test_the_traps_that_merge_sequences_are_caught(trap):
    """transformers keeps a row's sequences apart only without a cache and without a 2-D mask;
    either mistake leaks across sequences, and the packed/padded check refuses to go on."""
    model = _model("sdpa", fused=False)
    values, offsets, targets = _batch(3)
    check_packed_forward(model, values, offsets, targets=targets, attention="model")  # the honest forward passes
    extra = (
        {"use_cache": True}
        if trap == "use_cache"
        else {"attention_mask": torch.ones(1, int(offsets[-1]), dtype=torch.long)}
    )
    with pytest.raises(PaddingFreeError, match="disagree"):
        check_packed_forward(model, values, offsets, targets=targets, attention="model", model_kwargs=extra)


def test_segment_attention_survives_gradient_checkpointing():
    model = _model("sdpa")
    model.gradient_checkpointing_enable()
    model.train()
    enable_segment_attention(model)
    assert model.config._attn_implementation == SEGMENT_ATTENTION
    values, offsets, targets = _batch(4)
    out = forward_packed(model, pack_rows(values, offsets, targets=targets))["log_probs"]
    out.sum().backward()  # recomputes the layers with the same attention
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    # padded calls on the switched model still use transformers' masks (e.g. generation)
    with torch.no_grad():
        ref = padded_logps(model, values, offsets, targets, np.arange(len(offsets) - 1))
        torch.testing.assert_close(out.detach(), ref, rtol=0, atol=2e-6)


@pytest.mark.parametrize(
    "config, reason",
    [
        (dict(layer_types=["full_attention", "linear_attention"]), r"has linear_attention layers"),
        (dict(layer_types=["full_attention", "mamba", "moe"]), r"has mamba layers, which"),  # moe is not named
        (dict(rope_scaling={"rope_type": "default", "mrope_section": [4, 2, 2]}), "multimodal RoPE"),
        (dict(attn_logit_softcapping=50.0), "soft-capping"),
    ],
)
def test_models_that_cannot_take_packed_rows_are_refused(config, reason):
    model = _configured()
    for key, value in config.items():
        setattr(model.config, key, value)
    with pytest.raises(PaddingFreeError, match=reason):
        check_model(model)


def test_attention_sinks_are_refused_unless_flash_attention_runs_them():
    model = _configured()
    model.model.layers[0].self_attn.sinks = torch.nn.Parameter(torch.zeros(4))  # as gpt-oss's attention
    with pytest.raises(PaddingFreeError, match="attention sinks"):
        check_model(model)
    model.config._attn_implementation = "flash_attention_2"
    check_model(model)  # flash kernels with sinks take them
    check_model(
        _configured(layer_types=["full_attention", "sliding_attention"], use_sliding_window=True, sliding_window=8)
    )  # attention-only layer types pass


def test_unknown_attention_implementations_are_refused():
    model = _model("sdpa")
    model.config._attn_implementation = "my_custom_attention"
    values, offsets, targets = _batch()
    with pytest.raises(PaddingFreeError, match="my_custom_attention"):
        forward_packed(model, pack_rows(values, offsets, targets=targets))


def test_bad_fields_and_attention_are_refused():
    model = _model("sdpa", fused=False)
    rows = pack_rows(*_batch()[:2])
    with pytest.raises(InvalidArgumentError, match="fields"):
        forward_packed(model, rows, fields=("logits",))
    with pytest.raises(InvalidArgumentError, match="fields"):
        forward_packed(model, rows, fields=("is_top1",))  # needs TRL's fused head
    with pytest.raises(InvalidArgumentError, match="attention"):
        forward_packed(model, rows, attention="flash")


def test_wrappers_with_a_config_of_their_own_are_unwrapped():
    """DeepSpeed's engine keeps its settings dict in ``.config``: the model inside it (through any
    depth of ``.module``) is what the packed forward reads, not the wrapper's config."""

    class Wrapper(torch.nn.Module):  # DDP's shape: .module, no config
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, *args, **kwargs):
            return self.module(*args, **kwargs)

    class Engine(Wrapper):  # DeepSpeedEngine's shape: .module and a dict .config
        def __init__(self, module):
            super().__init__(module)
            self.config = {"zero_optimization": {"stage": 3}}

    model = _model()
    check_model(Engine(Wrapper(model)))  # reads the Qwen2 config through both wrappers
    values, offsets, targets = _batch()
    rows = pack_rows(values, offsets, targets=targets)
    got = forward_packed(Engine(Wrapper(model)), rows, fields=("log_probs",))["log_probs"]
    want = forward_packed(model, rows, fields=("log_probs",))["log_probs"]
    torch.testing.assert_close(got, want, rtol=0, atol=0)
