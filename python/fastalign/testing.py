"""Build tiny TRL trainers offline, for parity checks and demos.

Everything is created locally: a word-level tokenizer from a fixed vocabulary and a small
randomly initialised Qwen2 causal LM, so nothing is downloaded. ``tiny_grpo_trainer`` returns a
real ``trl.GRPOTrainer`` (or a subclass) on the CPU; combined with a ``rollout_func`` that
returns fixed completions and a reward function that reads a dataset column, TRL's own
``_generate_and_score_completions`` can be driven with exact, chosen inputs.

Requires the ``trl`` extra (``pip install fastalign[trl]``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["WORDS", "tiny_tokenizer", "tiny_model", "tiny_grpo_trainer", "tiny_rloo_trainer", "fixed_rollout"]

# A small closed vocabulary: special tokens first, then digits and a few words.
WORDS: tuple[str, ...] = (
    "<pad>",
    "<eos>",
    "<unk>",
    "<end>",
    *[str(i) for i in range(10)],
    "+",
    "-",
    "=",
    "?",
    "the",
    "answer",
    "is",
    "what",
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "g",
    "h",
)


def _quiet_env() -> None:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def tiny_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` over :data:`WORDS` (whitespace split), built locally.

    ``<pad>`` is id 0, ``<eos>`` id 1 (the EOS token) and ``<end>`` id 3 (a second stop token).
    """
    _quiet_env()
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def tiny_model(tokenizer: Any, *, seed: int = 0, hidden_size: int = 32, layers: int = 2) -> Any:
    """A randomly initialised Qwen2 causal LM sized for CPU tests (tens of thousands of weights)."""
    _quiet_env()
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def fixed_rollout(completion_ids: Sequence[Sequence[int]], prompt_ids: Sequence[int] = (4, 5)) -> Callable:
    """A ``rollout_func`` that returns the given completions (in order) for every call.

    The number of completions must equal the per-process generation batch (prompts x
    ``num_generations``). Log-probs are returned as zeros.
    """
    completions = [list(map(int, c)) for c in completion_ids]

    def rollout(prompts: list, trainer: Any) -> dict:
        if len(prompts) != len(completions):
            raise ValueError(f"fixed_rollout has {len(completions)} completions for {len(prompts)} prompts")
        return {
            "prompt_ids": [list(prompt_ids) for _ in prompts],
            "completion_ids": [list(c) for c in completions],
            "logprobs": [[0.0] * len(c) for c in completions],
        }

    return rollout


def _config_kwargs(output_dir: str | None, batch: int, num_generations: int, overrides: dict) -> dict:
    kwargs = dict(
        output_dir=output_dir or tempfile.mkdtemp(prefix="fastalign-tiny-"),
        use_cpu=True,
        bf16=False,
        report_to=[],
        per_device_train_batch_size=batch,
        num_generations=num_generations,
        max_completion_length=32,
        logging_steps=1,
        save_strategy="no",
        seed=0,
        gradient_checkpointing=False,
        disable_tqdm=True,
    )
    kwargs.update(overrides)
    return kwargs


def _parts(model: Any, train_dataset: Any) -> tuple[Any, Any, Any]:
    """The tokenizer, and the model and dataset unless given (a one-column prompt dataset)."""
    _quiet_env()
    from datasets import Dataset

    tokenizer = tiny_tokenizer()
    if model is None:
        model = tiny_model(tokenizer)
    if train_dataset is None:
        train_dataset = Dataset.from_dict({"prompt": ["what is 1 + 1 ?"] * 64})
    return tokenizer, model, train_dataset


def _loadable(model: Any, output_dir: str) -> Any:
    """``model``, saved under ``output_dir`` and reloaded if it has no path: TRL builds the
    reference model (``beta != 0``) with ``from_pretrained`` from the policy's ``_name_or_path``."""
    if os.path.isdir(getattr(model.config, "_name_or_path", "") or ""):
        return model
    from safetensors.torch import save_model

    path = os.path.join(output_dir, "initial-policy")
    # written by hand: under torch.distributed, save_pretrained writes on rank 0 only, and every
    # rank has its own output_dir here
    model.config.architectures = [type(model).__name__]  # as save_pretrained records it
    model.config.save_pretrained(path)
    save_model(model, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    return type(model).from_pretrained(path)


def tiny_grpo_trainer(
    reward_funcs: Any,
    *,
    num_generations: int = 4,
    per_device_train_batch_size: int = 8,
    rollout_func: Callable | None = None,
    train_dataset: Any = None,
    trainer_cls: type | None = None,
    output_dir: str | None = None,
    model: Any = None,
    trainer_kwargs: dict | None = None,
    **config: Any,
) -> Any:
    """A real ``trl.GRPOTrainer`` (or ``trainer_cls``) on a tiny local model, on the CPU.

    ``config`` goes to ``GRPOConfig``; ``trainer_kwargs`` to the trainer's constructor (e.g. the
    options of :class:`fastalign.trl.FastGRPOTrainer`). The default dataset has one ``prompt``
    column of plain-text prompts; pass ``train_dataset`` to add columns for reward functions.
    """
    from trl import GRPOConfig, GRPOTrainer

    tokenizer, model, train_dataset = _parts(model, train_dataset)
    kwargs = _config_kwargs(output_dir, per_device_train_batch_size, num_generations, config)
    model = _loadable(model, kwargs["output_dir"]) if config.get("beta", 0.0) != 0.0 else model
    args = GRPOConfig(**kwargs)
    cls = trainer_cls or GRPOTrainer
    trainer = cls(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        rollout_func=rollout_func,
        **(trainer_kwargs or {}),
    )
    trainer.model.train()
    return trainer


def tiny_rloo_trainer(
    reward_funcs: Any,
    *,
    num_generations: int = 4,
    per_device_train_batch_size: int = 8,
    completion_ids: Sequence[Sequence[int]] | None = None,
    train_dataset: Any = None,
    output_dir: str | None = None,
    model: Any = None,
    **config: Any,
) -> Any:
    """A real ``trl.RLOOTrainer`` on a tiny local model (see :func:`tiny_grpo_trainer`).

    ``config`` goes to ``RLOOConfig``; ``beta`` defaults to 0 here (TRL's default is 0.05).

    ``completion_ids``: fixed completions (in order) that every generation returns.
    ``RLOOTrainer`` has no ``rollout_func``, so they are injected by replacing the instance's
    ``_generate_single_turn`` (the ``model.generate`` step, which returns the completion ids);
    tokenisation, decoding, the length metrics and the rest of
    ``_generate_and_score_completions`` (including its forward pass for the old log-probs) are
    TRL's own code. The number of completions must equal the number of prompts passed in.

    With ``beta != 0``, RLOOTrainer builds its reference model with ``from_pretrained`` from the
    policy's ``config._name_or_path``; a policy created from a config has none, so it is first
    saved under ``output_dir`` and reloaded from there (no network). The reference then starts
    with the policy's weights.
    """
    from trl import RLOOConfig, RLOOTrainer

    tokenizer, model, train_dataset = _parts(model, train_dataset)
    config.setdefault("beta", 0.0)
    kwargs = _config_kwargs(output_dir, per_device_train_batch_size, num_generations, config)
    if config["beta"] != 0.0:
        model = _loadable(model, kwargs["output_dir"])
    args = RLOOConfig(**kwargs)
    trainer = RLOOTrainer(
        model=model, reward_funcs=reward_funcs, args=args, train_dataset=train_dataset, processing_class=tokenizer
    )
    if completion_ids is not None:
        # replaces the method of this instance only (an attribute in its __dict__)
        vars(trainer)["_generate_single_turn"] = _fixed_generation(completion_ids)
    assert trainer.model is not None  # RLOOTrainer requires a model
    trainer.model.train()
    return trainer


def _fixed_generation(completion_ids: Sequence[Sequence[int]]) -> Callable:
    """A replacement for ``RLOOTrainer._generate_single_turn`` returning fixed completions."""
    completions = [list(map(int, c)) for c in completion_ids]

    def generate_single_turn(prompt_ids: list, images: Any, multimodal_fields: Any) -> list[list[int]]:
        if len(prompt_ids) != len(completions):
            raise ValueError(f"completion_ids has {len(completions)} completions for {len(prompt_ids)} prompts")
        return [list(c) for c in completions]

    return generate_single_turn


def injected_logps_grpo_trainer(*, base: type | None = None, **config: Any) -> Any:
    """A tiny ``GRPOTrainer`` (or subclass ``base``, e.g. ``FastGRPOTrainer``) whose
    ``_compute_loss`` reads log-probs you choose.

    Set ``trainer.injected = (per_token_logps, entropies)`` before calling
    ``trainer._compute_loss(trainer.model, inputs)``: the model forward
    (``_get_per_token_logps_and_entropies``) is replaced by returning those tensors, so the
    trainer's own loss code runs on exact inputs and ``per_token_logps.grad`` is its gradient.
    ``config`` goes to ``GRPOConfig``; the trainer's loss attributes (``loss_type``, ``beta``, ...)
    may be changed afterwards to drive other configurations with the same instance.
    """
    from trl import GRPOTrainer

    # a base class chosen at run time, which mypy cannot check (it takes static base classes only)
    class _Injected(base or GRPOTrainer):  # type: ignore[misc]
        injected: Any = None

        def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any) -> Any:
            logps, entropies = self.injected
            return logps, entropies, None

    def _zero_reward(completions: Any, **kwargs: Any) -> list[float]:
        return [0.0] * len(completions)

    return tiny_grpo_trainer([_zero_reward], trainer_cls=_Injected, **config)


__all__ += ["injected_logps_grpo_trainer"]
