"""Group Relative Policy Optimization and its variants (``GRPOConfig``, ``GMPOConfig``, ``A2POConfig``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import InvalidArgumentError, InvalidTypeError
from ._registry import (
    FAST_GRPO_TRAINER,
    Pin,
    Recipe,
    _arxiv,
    _build,
    _eq,
    _one_of,
    _preset,
    _soft_overlong,
    paper_preset,
)

if TYPE_CHECKING:  # the configs are imported lazily at call time
    from trl import GRPOConfig

__all__ = [
    "deepseekmath_grpo",
    "deepseek_r1",
    "gspo",
    "gspo_token",
    "gmpo",
    "dapo",
    "long_cot_rewards",
    "intellect2",
    "skywork_or1",
    "high_entropy_tokens",
    "dr_grpo",
    "lite_ppo",
    "tis",
    "mis",
    "cispo",
    "two_grpo",
    "sapo",
    "deepseek_v32_kl",
    "deepseek_v32_off_policy_mask",
    "gdpo",
    "luspo",
    "vespo",
    "gfpo",
    "a2po",
]


deepseekmath_grpo = paper_preset(
    name="deepseekmath_grpo",
    title="DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models",
    url=_arxiv("2402.03300"),
    section="RL training setup, quoted by TRL's paper index (the page gives no section number)",
    config="GRPOConfig",
    values=dict(
        loss_type="grpo",
        beta=0.001,
        epsilon=10.0,
        num_generations=16,
        max_completion_length=32_768,
        steps_per_generation=16,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=128,
    ),
    pins=(_eq("loss_type", "grpo", "the GRPO objective"),),
    doc="""GRPO as in DeepSeekMath (arXiv 2402.03300).

    ``loss_type="grpo"``; ``beta=0.001`` ("the KL coefficient to 0.001"); ``epsilon=10.0`` (the
    page quotes "the GRPO clip ratio ε to 10"); ``num_generations=16``;
    ``max_completion_length=32768``; ``steps_per_generation=16`` (8,192 outputs split into 16
    mini-batches); ``per_device_train_batch_size=4`` with ``gradient_accumulation_steps=128`` (one
    way to get the batch of 512 on one device). Pinned: ``loss_type="grpo"``.
    """,
)


deepseek_r1 = paper_preset(
    name="deepseek_r1",
    title="DeepSeek-R1: Incentivizing Reasoning Capability in LLMs via Reinforcement Learning",
    url=_arxiv("2501.12948"),
    section="training details of DeepSeek-R1-Zero, as quoted by TRL's paper index",
    config="GRPOConfig",
    values=dict(
        learning_rate=4.0e-5,
        max_completion_length=32768,
        num_generations=16,
        beta=0.001,
        use_vllm=True,
        per_device_train_batch_size=16,  # 1.16 fix, see docstring
    ),
    pins=(("beta", lambda c: c.beta > 0, "must be > 0 (the paper keeps a KL penalty)"),),
    doc="""GRPO settings of DeepSeek-R1 (arXiv 2501.12948), as TRL's paper index gives them.

    ``learning_rate=4e-5``, ``max_completion_length=32768``, ``num_generations=16``,
    ``beta=0.001``, ``use_vllm=True``. Like the page, this leaves ``loss_type`` at TRL's default
    (``"dapo"`` in 1.16).

    Correction: the page's snippet raises ``ValueError`` on 1.16: the generation batch
    (``per_device_train_batch_size`` 8 by default × processes × ``steps_per_generation``) must be
    divisible by ``num_generations=16``. The preset sets ``per_device_train_batch_size=16`` (one
    full group per device step, still on-policy). Pinned: ``beta > 0`` (R1 keeps a KL term).
    """,
)


_GSPO_VALUES = dict(
    importance_sampling_level="sequence",
    loss_type="grpo",
    beta=0.0,
    epsilon=3e-4,
    epsilon_high=4e-4,
    gradient_accumulation_steps=1,
    steps_per_generation=4,
)


gspo = paper_preset(
    name="gspo",
    title="Group Sequence Policy Optimization",
    url=_arxiv("2507.18071"),
    section="Sec. 5.1 (v2): clipping range 3e-4/4e-4, rollout batch split into 4 mini-batches",
    config="GRPOConfig",
    values=_GSPO_VALUES,
    pins=(
        _eq("importance_sampling_level", "sequence", "GSPO's ratio is the sequence-level geometric mean"),
        _eq("loss_type", "grpo", "GSPO's objective averages per sequence"),
    ),
    doc="""GSPO (arXiv 2507.18071): sequence-level importance ratio.

    ``importance_sampling_level="sequence"``, ``loss_type="grpo"``, ``beta=0.0`` (KL off, per
    verl PR 2775), ``epsilon=3e-4`` and ``epsilon_high=4e-4`` (Sec. 5.1 of v2),
    ``gradient_accumulation_steps=1`` and ``steps_per_generation=4`` (4 mini-batches per rollout,
    Sec. 5.1). The snippet is valid on 1.16 as written.

    Pinned: ``importance_sampling_level="sequence"`` (token-level ratios are GRPO, not GSPO) and
    ``loss_type="grpo"`` (TRL 1.16 warns that the token-summing losses weight each sequence by its
    length, which is not GSPO's per-sequence objective).
    """,
)


@_preset(
    title="Group Sequence Policy Optimization (GSPO-token variant)",
    url=_arxiv("2507.18071"),
    section="GSPO-token, the token-level variant of Sec. 4; hyper-parameters of Sec. 5.1 (v2)",
    config="GRPOConfig",
    returns="recipe",
    trainer=FAST_GRPO_TRAINER,
)
def gspo_token(*, strict: bool = True, **overrides: Any) -> Recipe:
    """GSPO-token (arXiv 2507.18071): the sequence ratio's value with per-token gradients.

    A :class:`Recipe`: the config is :func:`gspo`'s values with
    ``importance_sampling_level="sequence_token"`` (the value TRL's removed
    ``trl.experimental.gspo_token`` trainer read), and the trainer is
    ``fastalign.trl.FastGRPOTrainer``. TRL 1.16 removed GSPO-token (huggingface/trl#7331): the stock
    ``GRPOTrainer`` raises "Unknown importance sampling level" at the first loss. With one
    advantage per sequence its gradient equals GSPO's; it differs only with per-token advantages.

    Pinned: ``importance_sampling_level="sequence_token"``.
    """
    paper = {**_GSPO_VALUES, "importance_sampling_level": "sequence_token"}
    pins = (_eq("importance_sampling_level", "sequence_token", "the GSPO-token ratio"),)
    config = _build("gspo_token", "GRPOConfig", paper, overrides, strict, pins)
    return Recipe(
        config,
        trainer_cls=FAST_GRPO_TRAINER,
        notes="GSPO-token is not in TRL 1.16 (removed); FastGRPOTrainer computes it.",
    )


gmpo = paper_preset(
    name="gmpo",
    title="Geometric-Mean Policy Optimization",
    url=_arxiv("2507.20673"),
    section="Sec. 4 (log-space clip range 0.4)",
    config="GMPOConfig",
    values=dict(epsilon=0.4, beta=0.0),
    doc="""GMPO (arXiv 2507.20673) with ``trl.experimental.gmpo.GMPOConfig``.

    ``epsilon=0.4`` (log-space: ratios clipped to (e^-0.4, e^0.4), Sec. 4) and ``beta=0.0``. Use
    ``trl.experimental.gmpo.GMPOTrainer``. No pinned fields.
    """,
)


_DAPO_VALUES = dict(
    mask_truncated_completions=True,
    loss_type="dapo",
    epsilon_high=0.28,
    epsilon=0.2,
    per_device_train_batch_size=512,
    num_generations=16,
    max_completion_length=20480,
    beta=0.0,
)


_DAPO_PINS: tuple[Pin, ...] = (
    _eq("loss_type", "dapo", "DAPO's token-level policy-gradient loss"),
    _eq("mask_truncated_completions", True, "DAPO's overlong filtering"),
)


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"expected an int, got {type(value).__name__}", name)
    if value < minimum:
        raise InvalidArgumentError(f"must be >= {minimum}, got {value}", name)
    return value


@_preset(
    title="DAPO: An Open-Source LLM Reinforcement Learning System at Scale",
    url=_arxiv("2503.14476"),
    section="Sec. 4.1 (hyper-parameters); Sec. 3 (clip-higher, dynamic sampling, token-level loss, overlong "
    "shaping, eq. 13); Sec. 2.3 (no KL)",
    config="GRPOConfig",
    returns="recipe",
    trainer=FAST_GRPO_TRAINER,
)
def dapo(
    *,
    soft_punish_cache: int = 4096,
    dynamic_sampling: bool = True,
    max_num_gen_batches: int = 10,
    strict: bool = True,
    **overrides: Any,
) -> Recipe:
    """DAPO (arXiv 2503.14476): all five components.

    Config (TRL's index, valid on 1.16 as written): ``mask_truncated_completions=True`` (overlong
    filtering), ``loss_type="dapo"`` (token-level loss), ``epsilon=0.2`` and
    ``epsilon_high=0.28`` (clip-higher, Sec. 4.1), ``per_device_train_batch_size=512``,
    ``num_generations=16``, ``max_completion_length=20480`` (Sec. 4.1) and ``beta=0.0``
    (Sec. 2.3).

    Recipe extras:

    * ``reward_funcs``: the soft overlong punishment (eq. 13) as
      ``fastalign.rewards.soft_overlong(config.max_completion_length, soft_punish_cache)``, a
      drop-in for ``trl.rewards.get_soft_overlong_punishment`` (same values and ``__name__``),
      built from the *final* ``max_completion_length`` so an override keeps the two consistent.
      ``soft_punish_cache=4096`` is the paper's L_cache (Sec. 4.1).
    * dynamic sampling (Sec. 3.2), which TRL 1.16 does not support: with
      ``dynamic_sampling=True`` (default) the trainer is ``fastalign.trl.FastGRPOTrainer`` and
      ``trainer_kwargs`` is ``{"dynamic_sampling": True, "max_num_gen_batches": 10}`` (10 is
      the limit in verl's DAPO recipe scripts). ``dynamic_sampling=False`` gives the stock
      ``trl.GRPOTrainer`` and drops this component.

    Pinned: ``loss_type="dapo"``, ``mask_truncated_completions=True``.
    """
    if not isinstance(dynamic_sampling, bool):
        raise InvalidTypeError(f"expected True or False, got {type(dynamic_sampling).__name__}", "dynamic_sampling")
    _check_int(max_num_gen_batches, "max_num_gen_batches", 1)
    config = _build("dapo", "GRPOConfig", _DAPO_VALUES, overrides, strict, _DAPO_PINS)
    reward = _soft_overlong(config.max_completion_length, soft_punish_cache)
    if dynamic_sampling:
        return Recipe(
            config,
            reward_funcs=(reward,),
            trainer_cls=FAST_GRPO_TRAINER,
            trainer_kwargs={"dynamic_sampling": True, "max_num_gen_batches": max_num_gen_batches},
            notes="Dynamic sampling needs FastGRPOTrainer; pass dynamic_sampling=False for stock TRL without it.",
        )
    return Recipe(config, reward_funcs=(reward,), trainer_cls="trl.GRPOTrainer", notes="Dynamic sampling off.")


@_preset(
    title="Demystifying Long Chain-of-Thought Reasoning in LLMs",
    url=_arxiv("2502.03373"),
    section="cosine length-scaled reward and n-gram repetition penalty, as in TRL's paper index",
    config="GRPOConfig",
    returns="recipe",
)
def long_cot_rewards(*, cosine_max_len: int = 4096, strict: bool = True, **overrides: Any) -> Recipe:
    """The reward shaping of arXiv 2502.03373 with TRL's own reward functions.

    ``reward_funcs``: ``trl.rewards.get_cosine_scaled_reward(max_len=4096)`` and
    ``get_repetition_penalty_reward(ngram_size=3, max_penalty=-1.0)``; the config is TRL's
    ``GRPOConfig`` defaults plus your overrides (the page gives no config values). No pins.
    """
    from trl.rewards import get_cosine_scaled_reward, get_repetition_penalty_reward

    _check_int(cosine_max_len, "cosine_max_len", 1)
    config = _build("long_cot_rewards", "GRPOConfig", {}, overrides, strict)
    rewards = (
        get_cosine_scaled_reward(max_len=cosine_max_len),
        get_repetition_penalty_reward(ngram_size=3, max_penalty=-1.0),
    )
    return Recipe(config, reward_funcs=rewards, trainer_cls="trl.GRPOTrainer")


intellect2 = paper_preset(
    name="intellect2",
    title="INTELLECT-2: A Reasoning Model Trained Through Globally Decentralized Reinforcement Learning",
    url=_arxiv("2505.07291"),
    section="Sec. 4.1 (two-sided clipping δ=4, ε=0.2, KL 0.001, 16 responses, lr 3e-7)",
    config="GRPOConfig",
    values=dict(
        delta=4,
        epsilon=0.2,
        beta=0.001,
        num_generations=16,
        learning_rate=3e-7,
        per_device_train_batch_size=16,  # 1.16 fix, see docstring
    ),
    pins=(("delta", lambda c: c.delta is not None, "must be set: the two-sided clip is the method"),),
    doc="""INTELLECT-2 (arXiv 2505.07291): two-sided ratio cap.

    ``delta=4``, ``epsilon=0.2``, ``beta=0.001``, ``num_generations=16``, ``learning_rate=3e-7``
    (all Sec. 4.1).

    Correction: as written the snippet raises ``ValueError`` on 1.16 (generation batch of 8 not
    divisible by ``num_generations=16``); the preset sets ``per_device_train_batch_size=16``.
    Pinned: ``delta`` set (the method's upper cap on the ratio).
    """,
)


skywork_or1 = paper_preset(
    name="skywork_or1",
    title="Skywork-OR1: Open Reasoning Models",
    url=_arxiv("2505.22312"),
    section="Sec. 3.3 (adaptive entropy control)",
    config="GRPOConfig",
    values=dict(use_adaptive_entropy=True, entropy_coef=0.01, entropy_target=5.0, entropy_coef_delta=0.005),
    pins=(_eq("use_adaptive_entropy", True, "adaptive entropy control is the method"),),
    doc="""Skywork-OR1 adaptive entropy control (arXiv 2505.22312, Sec. 3.3).

    ``use_adaptive_entropy=True``, ``entropy_coef=0.01`` (initial), ``entropy_target=5.0`` (nats;
    the page says to tune it for your model), ``entropy_coef_delta=0.005``. Pinned:
    ``use_adaptive_entropy=True``.
    """,
)


@_preset(
    title="Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive Effective Reinforcement Learning for LLM "
    "Reasoning",
    url=_arxiv("2506.01939"),
    section="Sec. 5.2 (vanilla DAPO + gradients on the top-20% entropy tokens)",
    config="GRPOConfig",
    returns="recipe",
)
def high_entropy_tokens(*, soft_punish_cache: int = 4096, strict: bool = True, **overrides: Any) -> Recipe:
    """The 80/20 rule (arXiv 2506.01939): DAPO with policy gradients on the top 20% entropy tokens.

    :func:`dapo`'s config values plus ``top_entropy_quantile=0.2`` (Sec. 5.2), and the soft
    overlong reward built from the final ``max_completion_length`` (``soft_punish_cache=4096``),
    with the stock ``trl.GRPOTrainer`` (the page's snippet has no dynamic sampling). Pinned:
    ``loss_type="dapo"``, ``mask_truncated_completions=True``, ``top_entropy_quantile < 1``.
    """
    paper = {**_DAPO_VALUES, "top_entropy_quantile": 0.2}
    pins = _DAPO_PINS + (
        ("top_entropy_quantile", lambda c: c.top_entropy_quantile < 1.0, "must be < 1 (1.0 trains on all tokens)"),
    )
    config = _build("high_entropy_tokens", "GRPOConfig", paper, overrides, strict, pins)
    reward = _soft_overlong(config.max_completion_length, soft_punish_cache)
    return Recipe(config, reward_funcs=(reward,), trainer_cls="trl.GRPOTrainer")


dr_grpo = paper_preset(
    name="dr_grpo",
    title="Understanding R1-Zero-Like Training: A Critical Perspective (Dr. GRPO)",
    url=_arxiv("2503.20783"),
    section="Sec. 3 (Dr. GRPO removes the length and std normalisations); values from the repository's "
    "Training section",
    config="GRPOConfig",
    values=dict(
        loss_type="dr_grpo",
        per_device_train_batch_size=1,
        num_generations=8,
        max_completion_length=3000,
        beta=0.0,
        scale_rewards="none",
        gradient_accumulation_steps=8,  # 1.16 fix, see docstring
    ),
    pins=(
        _eq("loss_type", "dr_grpo", "the constant-normaliser loss"),
        _eq("scale_rewards", "none", "Dr. GRPO drops the std normalisation of advantages"),
    ),
    doc="""Dr. GRPO (arXiv 2503.20783).

    ``loss_type="dr_grpo"``, ``per_device_train_batch_size=1``, ``num_generations=8``,
    ``max_completion_length=3000``, ``beta=0.0`` (the repository's Training section), and
    ``scale_rewards="none"``.

    Corrections: the older index (``shared/seeds``) also passed ``max_prompt_length=1024``, which
    ``GRPOConfig`` 1.16 does not have (``TypeError``): dropped. Both index versions leave
    ``scale_rewards`` at TRL's default ``"group"``, i.e. advantages divided by the group std, which
    is one of the two biases Dr. GRPO removes; the preset sets ``"none"``. And with
    ``per_device_train_batch_size=1`` the generation batch (1 × processes × steps per generation)
    is not divisible by ``num_generations=8``, so the snippet raises ``ValueError`` on 1.16; the
    preset sets ``gradient_accumulation_steps=8`` (micro-batch stays 1, one group of 8 per
    optimizer step, still on-policy).

    Pinned: ``loss_type="dr_grpo"``, ``scale_rewards="none"``.
    """,
)


lite_ppo = paper_preset(
    name="lite_ppo",
    title="Part I: Tricks or Traps? A Deep Dive into RL for LLM Reasoning (Lite PPO)",
    url=_arxiv("2508.08221"),
    section="Lite PPO: batch-level reward std + token-level loss aggregation; values as in TRL's index",
    config="GRPOConfig",
    values=dict(
        scale_rewards="batch",
        loss_type="dapo",
        beta=0.0,
        top_p=0.99,
        top_k=100,
        temperature=0.99,
        num_generations=8,
        num_iterations=1,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=32,
        steps_per_generation=8,
    ),
    pins=(
        _eq("scale_rewards", "batch", "batch-level std normalisation is half of Lite PPO"),
        _eq("loss_type", "dapo", "token-level aggregation is the other half"),
    ),
    doc="""Lite PPO (arXiv 2508.08221).

    ``scale_rewards="batch"``, ``loss_type="dapo"``, ``beta=0.0``, ``top_p=0.99``, ``top_k=100``,
    ``temperature=0.99``, ``num_generations=8``, ``num_iterations=1``,
    ``per_device_train_batch_size=4``, ``gradient_accumulation_steps=32``,
    ``steps_per_generation=8``.

    Correction: the older index used ``num_completions=8``, not a field (``TypeError``); it is
    ``num_generations``. Pinned: ``scale_rewards="batch"``, ``loss_type="dapo"``.
    """,
)


_LEVELS = ("token", "sequence")


def _check_level(level: object) -> str:
    if level not in _LEVELS:
        raise InvalidArgumentError(f"must be 'token' or 'sequence', got {level!r}", "level")
    return level  # type: ignore[return-value]


@_preset(
    title="Truncated Importance Sampling (Your Efficient RL Framework Secretly Brings You Off-Policy RL Training)",
    url="https://fengyao.notion.site/off-policy-rl",
    section="the blog's truncated IS ratio min(π_train/π_vllm, C) with C=2; TIS also cites arXiv 1606.02647",
    config="GRPOConfig",
)
def tis(*, level: str = "token", strict: bool = True, **overrides: Any) -> GRPOConfig:
    """Truncated importance sampling for the vLLM/trainer mismatch
    (https://fengyao.notion.site/off-policy-rl; also arXiv 1606.02647).

    ``use_vllm=True``, ``vllm_importance_sampling_correction=True``,
    ``vllm_importance_sampling_mode="token_truncate"`` (``level="sequence"`` gives
    ``"sequence_truncate"``, the current page's choice), ``vllm_importance_sampling_clip_max=2.0``
    (C).

    Correction: the older index set only ``vllm_importance_sampling_cap=2.0``. On 1.16 that field
    is deprecated (FutureWarning, mapped to ``clip_max``) and, worse, the default mode is now
    ``"sequence_mask"``, so the old snippet silently runs *masked* IS instead of TIS; the preset
    names the truncate mode explicitly. Pinned: ``use_vllm=True``, the correction on, and a
    ``*_truncate`` mode.
    """
    mode = f"{_check_level(level)}_truncate"
    paper = dict(
        use_vllm=True,
        vllm_importance_sampling_correction=True,
        vllm_importance_sampling_mode=mode,
        vllm_importance_sampling_clip_max=2.0,
    )
    pins = (
        _eq("use_vllm", True, "the correction only exists for vLLM rollouts"),
        _eq("vllm_importance_sampling_correction", True, "it is the method"),
        _one_of("vllm_importance_sampling_mode", ("token_truncate", "sequence_truncate"), "TIS truncates the ratio"),
    )
    return _build("tis", "GRPOConfig", paper, overrides, strict, pins)


@_preset(
    title="Masked Importance Sampling (IcePop; When Speed Kills Stability)",
    url=_arxiv("2510.18855"),
    section="IcePop's masked ratio outside [C_min, C_max] = [0.5, 2]; also https://ringtech.notion.site/icepop",
    config="GRPOConfig",
)
def mis(*, level: str = "sequence", strict: bool = True, **overrides: Any) -> GRPOConfig:
    """Masked importance sampling (IcePop, arXiv 2510.18855; https://ringtech.notion.site/icepop):
    tokens/sequences whose ratio leaves [0.5, 2] get no gradient.

    ``use_vllm=True``, ``vllm_importance_sampling_correction=True``,
    ``vllm_importance_sampling_mode="sequence_mask"`` (``level="token"`` gives ``"token_mask"``),
    ``vllm_importance_sampling_clip_max=2.0``, ``vllm_importance_sampling_clip_min=0.5``. Valid on
    1.16 as written. Pinned: ``use_vllm=True``, the correction on, and a ``*_mask`` mode.
    """
    mode = f"{_check_level(level)}_mask"
    paper = dict(
        use_vllm=True,
        vllm_importance_sampling_correction=True,
        vllm_importance_sampling_mode=mode,
        vllm_importance_sampling_clip_max=2.0,
        vllm_importance_sampling_clip_min=0.5,
    )
    pins = (
        _eq("use_vllm", True, "the correction only exists for vLLM rollouts"),
        _eq("vllm_importance_sampling_correction", True, "it is the method"),
        _one_of("vllm_importance_sampling_mode", ("token_mask", "sequence_mask"), "MIS masks, it does not truncate"),
    )
    return _build("mis", "GRPOConfig", paper, overrides, strict, pins)


cispo = paper_preset(
    name="cispo",
    title="The Art of Scaling Reinforcement Learning (ScaleRL, CISPO loss)",
    url=_arxiv("2510.13786"),
    section="ScaleRL recipe: CISPO loss, batch-level advantage normalisation, FP32 LM head",
    config="GRPOConfig",
    values=dict(
        loss_type="cispo",
        epsilon_high=5.0,
        num_generations=16,
        scale_rewards="batch",
        cast_lm_head_to_fp32=True,
        per_device_train_batch_size=16,  # 1.16 fix, see docstring
    ),
    pins=(_eq("loss_type", "cispo", "the clipped-IS-weight loss"),),
    doc="""The ScaleRL recipe with the CISPO loss (arXiv 2510.13786).

    ``loss_type="cispo"``, ``epsilon_high=5.0`` (CISPO's absolute cap on the ratio),
    ``num_generations=16``, ``scale_rewards="batch"``, ``cast_lm_head_to_fp32=True``.

    Correction: as written the snippet raises ``ValueError`` on 1.16 (generation batch of 8 not
    divisible by ``num_generations=16``); the preset sets ``per_device_train_batch_size=16``.
    Pinned: ``loss_type="cispo"``.
    """,
)


two_grpo = paper_preset(
    name="two_grpo",
    title="It Takes Two: Your GRPO Is Secretly DPO",
    url=_arxiv("2510.00977"),
    section="2-GRPO, the minimal two-rollout case",
    config="GRPOConfig",
    values=dict(num_generations=2, loss_type="grpo"),
    pins=(
        _eq("num_generations", 2, "two rollouts per prompt is the method"),
        _eq("loss_type", "grpo", "the GRPO objective"),
    ),
    doc="""2-GRPO (arXiv 2510.00977): ``num_generations=2``, ``loss_type="grpo"``. Pinned: both.""",
)


sapo = paper_preset(
    name="sapo",
    title="Soft Adaptive Policy Optimization",
    url=_arxiv("2511.20347"),
    section="SAPO's soft gate with τ_pos=1.0, τ_neg=1.05 (TRL's defaults)",
    config="GRPOConfig",
    values=dict(loss_type="sapo", sapo_temperature_pos=1.0, sapo_temperature_neg=1.05, scale_rewards="group"),
    pins=(_eq("loss_type", "sapo", "the soft-gated loss"),),
    doc="""SAPO (arXiv 2511.20347): ``loss_type="sapo"``, ``sapo_temperature_pos=1.0``,
    ``sapo_temperature_neg=1.05``, ``scale_rewards="group"``. Pinned: ``loss_type="sapo"``.""",
)


deepseek_v32_kl = paper_preset(
    name="deepseek_v32_kl",
    title="DeepSeek-V3.2: Pushing the Frontier of Open Large Language Models (unbiased KL estimate)",
    url=_arxiv("2512.02556"),
    section="unbiased KL estimate (importance-weighted k3); β from DeepSeek-R1 since V3.2 gives none",
    config="GRPOConfig",
    values=dict(beta=0.001, use_bias_correction_kl=True),
    pins=(
        _eq("use_bias_correction_kl", True, "the importance-weighted KL is the method"),
        ("beta", lambda c: c.beta > 0, "must be > 0: with beta=0 there is no KL term"),
    ),
    doc="""DeepSeek-V3.2's bias-corrected KL (arXiv 2512.02556).

    ``beta=0.001`` (the paper gives no value; the page takes R1's) and
    ``use_bias_correction_kl=True``. Pinned: ``use_bias_correction_kl=True`` and ``beta > 0``
    (with ``beta=0`` there is no KL term to correct).
    """,
)


deepseek_v32_off_policy_mask = paper_preset(
    name="deepseek_v32_off_policy_mask",
    title="DeepSeek-V3.2: Pushing the Frontier of Open Large Language Models (off-policy sequence masking)",
    url=_arxiv("2512.02556"),
    section="off-policy sequence masking (eq. 9)",
    config="GRPOConfig",
    values=dict(off_policy_mask_threshold=0.5),
    pins=(("off_policy_mask_threshold", lambda c: c.off_policy_mask_threshold is not None, "must be set"),),
    doc="""DeepSeek-V3.2's off-policy sequence mask (arXiv 2512.02556, eq. 9).

    ``off_policy_mask_threshold=0.5``. Pinned: the threshold set.
    """,
)


gdpo = paper_preset(
    name="gdpo",
    title="GDPO: Group reward-Decoupled Normalization Policy Optimization for Multi-reward RL Optimization",
    url=_arxiv("2601.05242"),
    section="decoupled per-reward group normalisation",
    config="GRPOConfig",
    values=dict(multi_objective_aggregation="normalize_then_sum"),
    pins=(_eq("multi_objective_aggregation", "normalize_then_sum", "per-reward normalisation is the method"),),
    doc="""GDPO (arXiv 2601.05242): ``multi_objective_aggregation="normalize_then_sum"``. Pinned: that.""",
)


luspo = paper_preset(
    name="luspo",
    title="Length-Unbiased Sequence Policy Optimization: Revealing and Controlling Response Length Variation in RLVR",
    url=_arxiv("2602.05261"),
    section="Sec. 5.1 (clip range 2e-3/2.5e-3)",
    config="GRPOConfig",
    values=dict(loss_type="luspo", importance_sampling_level="sequence", epsilon=2e-3, epsilon_high=2.5e-3),
    pins=(
        _eq("loss_type", "luspo", "the length-unbiased loss"),
        _eq("importance_sampling_level", "sequence", "LUSPO builds on sequence-level ratios"),
    ),
    doc="""LUSPO (arXiv 2602.05261): ``loss_type="luspo"``, ``importance_sampling_level="sequence"``,
    ``epsilon=2e-3``, ``epsilon_high=2.5e-3`` (Sec. 5.1). Pinned: the loss and the sequence level
    (TRL 1.16 warns without it).""",
)


vespo = paper_preset(
    name="vespo",
    title="VESPO: Variational Sequence-Level Soft Policy Optimization for Stable Off-Policy LLM Training",
    url=_arxiv("2602.10693"),
    section="Sec. 3.4 (c1, c2 for positive and negative advantages)",
    config="GRPOConfig",
    values=dict(
        loss_type="vespo",
        use_vllm=True,
        vllm_importance_sampling_mode="token_truncate",
        vespo_k_pos=2.0,
        vespo_lambda_pos=3.0,
        vespo_k_neg=3.0,
        vespo_lambda_neg=2.0,
    ),
    pins=(
        _eq("loss_type", "vespo", "the variational sequence-level loss"),
        _eq("importance_sampling_level", "token", "VESPO computes its sequence weights internally"),
        (
            "vllm_importance_sampling_mode",
            lambda c: not (c.use_vllm and c.vllm_importance_sampling_correction)
            or c.vllm_importance_sampling_mode in ("token_truncate", "token_mask"),
            "must be 'token_truncate' or 'token_mask' with the vLLM correction on",
        ),
    ),
    doc="""VESPO (arXiv 2602.10693).

    ``loss_type="vespo"``, ``use_vllm=True``, ``vllm_importance_sampling_mode="token_truncate"``,
    ``vespo_k_pos=2.0``, ``vespo_lambda_pos=3.0``, ``vespo_k_neg=3.0``, ``vespo_lambda_neg=2.0``
    (c1/c2, Sec. 3.4). Pass ``use_vllm=False`` without vLLM. Pinned: ``loss_type="vespo"``,
    ``importance_sampling_level="token"`` (VESPO forms the sequence weight itself; TRL warns
    otherwise), and a ``token_*`` IS mode when the vLLM correction is on (TRL's trainer raises
    otherwise).
    """,
)


_GFPO_METRICS = ("length", "reward_per_token")


@_preset(
    title="Sample More to Think Less: Group Filtered Policy Optimization for Concise Reasoning",
    url=_arxiv("2508.09726"),
    section="GFPO: sample G, keep the k best by length or reward/length, advantages over the kept k",
    config="GRPOConfig",
    returns="recipe",
    trainer=FAST_GRPO_TRAINER,
)
def gfpo(
    *,
    num_remains_in_group: int = 8,
    group_filter: str = "length",
    strict: bool = True,
    **overrides: Any,
) -> Recipe:
    """GFPO (arXiv 2508.09726): sample more, train on the shortest (or most token-efficient) k.

    A :class:`Recipe` for ``fastalign.trl.FastGRPOTrainer``: TRL removed its GFPO trainer in 1.8
    (huggingface/trl#6309), and 1.16 has no ``num_remains_in_group``. The config sets
    ``num_generations=16`` (G) and ``per_device_train_batch_size=16`` (so the generation batch
    holds whole groups, which 1.16 requires); ``trainer_kwargs`` carries ``num_remains_in_group=8`` (k) and
    ``group_filter="length"`` (or ``"reward_per_token"``, GFPO's token efficiency), passed to the
    trainer as ``gfpo_num_remains_in_group`` and ``gfpo_metric``. Neither TRL's paper
    index nor its removed GFPO docs give values: k=8 of G=16 is this preset's default, not a
    number cited from the paper, so set both for your budget. Raises if
    ``num_remains_in_group`` is not in [2, num_generations). No pinned config fields.
    """
    _check_int(num_remains_in_group, "num_remains_in_group", 2)
    if group_filter not in _GFPO_METRICS:
        raise InvalidArgumentError(f"must be one of {_GFPO_METRICS!r}, got {group_filter!r}", "group_filter")
    paper = dict(num_generations=16, per_device_train_batch_size=16)
    config = _build("gfpo", "GRPOConfig", paper, overrides, strict)
    if num_remains_in_group >= config.num_generations:
        raise InvalidArgumentError(
            f"({num_remains_in_group}) must be smaller than num_generations ({config.num_generations}): "
            "GFPO keeps k of the G sampled completions",
            "num_remains_in_group",
        )
    return Recipe(
        config,
        trainer_cls=FAST_GRPO_TRAINER,
        trainer_kwargs={"gfpo_num_remains_in_group": num_remains_in_group, "gfpo_metric": group_filter},
        notes="GFPO is not in TRL 1.16 (removed in 1.8); FastGRPOTrainer runs it.",
    )


a2po = paper_preset(
    name="a2po",
    title="Accelerating RL for LLM Reasoning with Optimal Advantage Regression (A*-PO; TRL's A2PO)",
    url=_arxiv("2505.20686"),
    section="offline V* estimation (β1, N) and on-policy regression (β2)",
    config="A2POConfig",
    values=dict(beta1=0.5, beta2=1e-3, num_value_samples=8),
    doc="""A*-PO (arXiv 2505.20686) with ``trl.experimental.a2po.A2POConfig``: ``beta1=0.5``,
    ``beta2=1e-3``, ``num_value_samples=8``. No pinned fields.""",
)
