"""Paper presets: one function per paper of TRL's paper index, returning TRL 1.16 objects.

Each function returns the real TRL 1.16.0 configuration (``GRPOConfig``, ``DPOConfig``,
``trl.experimental.cpo.CPOConfig``, ``SFTConfig``, ``RLOOConfig``, ...) with the values the paper
(as cited by TRL's paper index) prescribes, corrected where the index's snippet fails or
silently changes meaning on TRL 1.16.0 / transformers 5.23 (each docstring says how)::

    from fastalign.trl import presets

    args = presets.gspo(output_dir="out", learning_rate=1e-6)     # a trl.GRPOConfig
    recipe = presets.dapo(output_dir="out", max_completion_length=4096, soft_punish_cache=512)
    trainer_cls = recipe.trainer_class()         # fastalign.trl.FastGRPOTrainer (dynamic sampling)
    trainer = trainer_cls(model=..., args=recipe.config,
                          reward_funcs=[my_reward, *recipe.reward_funcs], **recipe.trainer_kwargs)
    presets.available()                          # every preset, its paper, section, config class

**Bare config or Recipe (the one rule).** A preset returns the bare TRL config when the config
*alone* reproduces the paper with the trainer that TRL pairs with that config class
(``GRPOConfig`` → ``trl.GRPOTrainer``, ``DPOConfig`` → ``trl.DPOTrainer``, ``CPOConfig`` →
``trl.experimental.cpo.CPOTrainer``, ...). It returns a :class:`Recipe` when the paper needs
anything else: reward functions (DAPO's soft overlong punishment), callbacks (``BEMACallback``),
or a trainer TRL 1.16 does not have (GSPO-token, GFPO and DAPO's dynamic sampling need
``fastalign.trl.FastGRPOTrainer``, which is named as a string and imported only by
:meth:`Recipe.trainer_class`, so presets work before and without it). :func:`available` says
which presets return what.

**Overrides.** Every keyword argument other than a preset's own documented parameters is a field
of the config and passes through (``output_dir``, ``learning_rate``, ``per_device_train_batch_size``
...), overriding the paper's value. A name that is not a field of that config class raises
:class:`UnknownFieldError` (both a ``ValueError`` and a ``TypeError``) naming it, with close
matches and, for names the paper index uses but TRL 1.16 removed (``max_prompt_length``,
``warmup_ratio``, ``num_completions``), what to use instead.

**Contradictions and** ``strict``. Each preset pins the few fields that *define* its method (GSPO:
``importance_sampling_level="sequence"``; DAPO: ``loss_type="dapo"``; Dr. GRPO:
``scale_rewards="none"``; IPO: ``loss_type=["ipo"]``; ...). Overriding one with a value that
contradicts the method raises :class:`~fastalign.errors.InvalidArgumentError` naming the field.
Pass ``strict=False`` to deviate knowingly: the override is then applied as given, silently.

**CPU-safe construction.** TRL's configs default to ``bf16=True`` (unless ``fp16``), which
transformers 5.23 refuses at construction on a machine without a bf16 GPU. Presets therefore
default to ``bf16=False`` unless you pass ``bf16`` yourself: pass ``bf16=True`` on a GPU.
Nothing else is touched; construction needs no network and no GPU (presets with
``use_vllm=True`` construct fine without vLLM installed; the trainer checks for it).

Experimental TRL modules (``trl.experimental.cpo``, ``orpo``, ``tpo``, ``gmpo``, ``a2po``,
``gkd``, ``iw_opd``, ``sdpo``, ``sdft``) are imported only when such a preset is called; TRL
then emits its ``TRLExperimentalWarning`` unless ``TRL_EXPERIMENTAL_SILENCE=1``.

Not provided (no runnable TRL 1.16 configuration on the page): Nash-MD, XPO, PRM, MiniLLM, SSD and
PPO (their modules are absent from the 1.16 wheel), unpaired BCO (``trl.experimental.bco`` is
gone; :func:`bco` is the paired ``bco_pair``), Online DPO and sequence-level IS (no configuration
block), Llama 2 margins (a dataset column), LoRA/DoRA (a ``peft`` config), ZeRO (an accelerate
file) and the diffusion LOO denoiser (a script).
Sources: TRL's paper index (``docs/source/paper_index.md`` at huggingface/trl f2cd57710, and its
older copies of 2025-08 and 2025-09/10), every field and value checked against the TRL 1.16.0
and transformers 5.23.0 sources.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError, InvalidTypeError

if TYPE_CHECKING:  # the configs are imported lazily at call time; these names are for type checkers only
    from trl import DPOConfig, GRPOConfig, KTOConfig, RewardConfig, RLOOConfig, SFTConfig
    from trl.experimental.a2po import A2POConfig
    from trl.experimental.cpo import CPOConfig
    from trl.experimental.gkd import GKDConfig
    from trl.experimental.gmpo import GMPOConfig
    from trl.experimental.iw_opd import IWOPDConfig
    from trl.experimental.orpo import ORPOConfig
    from trl.experimental.sdft import SDFTConfig
    from trl.experimental.sdpo import SDPOConfig
    from trl.experimental.tpo import TPOConfig

__all__ = [
    "FAST_GRPO_TRAINER",
    "PresetInfo",
    "Recipe",
    "UnknownFieldError",
    "available",
    "get",
]  # ``list`` (the alias of ``available``) is left out so that ``import *`` cannot shadow the builtin

#: Dotted path of fastalign's GRPOTrainer subclass (DAPO dynamic sampling, GFPO, GSPO-token).
#: Presets name it as a string and import it only in :meth:`Recipe.trainer_class`, so building a
#: config never imports the trainer machinery.
FAST_GRPO_TRAINER = "fastalign.trl.FastGRPOTrainer"
FAST_DPO_TRAINER = "fastalign.trl.FastDPOTrainer"


class UnknownFieldError(InvalidArgumentError, TypeError):
    """A keyword passed to a preset is not a field of its TRL config class.

    Both a ``ValueError`` (like every fastalign argument error) and a ``TypeError`` (what the TRL
    config itself raises for an unexpected keyword). ``argument`` is the offending name.
    """


# ---------------------------------------------------------------------------------------------
# Public types


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A TRL config plus what the paper needs beyond it.

    Attributes
    ----------
    config : the TRL config object (e.g. ``trl.GRPOConfig``).
    reward_funcs : reward functions to append to your own (``reward_funcs=[mine, *recipe.reward_funcs]``).
    callbacks : trainer callbacks (``callbacks=[*recipe.callbacks]``).
    trainer_cls : dotted path of the trainer class to use; :meth:`trainer_class` imports it.
    trainer_kwargs : extra constructor keywords for that trainer (read-only mapping). For
        ``fastalign.trl.FastGRPOTrainer`` they are its constructor options (``dynamic_sampling``,
        ``max_num_gen_batches``, ``gfpo_num_remains_in_group``, ``gfpo_metric``).
    notes : what the preset corrected or what the user still has to provide.
    """

    config: Any
    reward_funcs: tuple = ()
    callbacks: tuple = ()
    trainer_cls: str = "trl.GRPOTrainer"
    trainer_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))
    notes: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "reward_funcs", tuple(self.reward_funcs))
        object.__setattr__(self, "callbacks", tuple(self.callbacks))
        object.__setattr__(self, "trainer_kwargs", types.MappingProxyType(dict(self.trainer_kwargs)))

    @property
    def needs_fast_trainer(self) -> bool:
        """Whether this recipe needs ``fastalign.trl.FastGRPOTrainer`` (TRL 1.16 cannot run it)."""
        return self.trainer_cls == FAST_GRPO_TRAINER

    def trainer_class(self) -> type:
        """Import and return the trainer class named by :attr:`trainer_cls`.

        Raises ``ImportError`` with an explanation if it cannot be imported (``FastGRPOTrainer``
        needs ``trl``).
        """
        return _resolve(self.trainer_cls)


@dataclasses.dataclass(frozen=True)
class PresetInfo:
    """One entry of :func:`available`."""

    name: str  #: the function's name in this module
    title: str  #: the paper's title
    url: str  #: arXiv (or blog) link
    section: str  #: where in the paper the values come from
    config_class: str  #: dotted path of the TRL config class returned (or held by the Recipe)
    returns: str  #: ``"config"`` or ``"recipe"``
    trainer: str  #: dotted path of the trainer to use
    needs_fast_trainer: bool  #: True if the default call needs ``fastalign.trl.FastGRPOTrainer``
    function: Callable[..., Any] = dataclasses.field(repr=False, compare=False)


# ---------------------------------------------------------------------------------------------
# Machinery

_CONFIGS: dict[str, tuple[str, str]] = {
    # short name -> (module, class); trainer paired with it by TRL
    "GRPOConfig": ("trl", "GRPOConfig"),
    "DPOConfig": ("trl", "DPOConfig"),
    "SFTConfig": ("trl", "SFTConfig"),
    "RLOOConfig": ("trl", "RLOOConfig"),
    "KTOConfig": ("trl", "KTOConfig"),
    "RewardConfig": ("trl", "RewardConfig"),
    "CPOConfig": ("trl.experimental.cpo", "CPOConfig"),
    "ORPOConfig": ("trl.experimental.orpo", "ORPOConfig"),
    "TPOConfig": ("trl.experimental.tpo", "TPOConfig"),
    "GMPOConfig": ("trl.experimental.gmpo", "GMPOConfig"),
    "A2POConfig": ("trl.experimental.a2po", "A2POConfig"),
    "GKDConfig": ("trl.experimental.gkd", "GKDConfig"),
    "IWOPDConfig": ("trl.experimental.iw_opd", "IWOPDConfig"),
    "SDPOConfig": ("trl.experimental.sdpo", "SDPOConfig"),
    "SDFTConfig": ("trl.experimental.sdft", "SDFTConfig"),
}
_TRAINERS: dict[str, str] = {
    "GRPOConfig": "trl.GRPOTrainer",
    "DPOConfig": "trl.DPOTrainer",
    "SFTConfig": "trl.SFTTrainer",
    "RLOOConfig": "trl.RLOOTrainer",
    "KTOConfig": "trl.KTOTrainer",
    "RewardConfig": "trl.RewardTrainer",
    "CPOConfig": "trl.experimental.cpo.CPOTrainer",
    "ORPOConfig": "trl.experimental.orpo.ORPOTrainer",
    "TPOConfig": "trl.experimental.tpo.TPOTrainer",
    "GMPOConfig": "trl.experimental.gmpo.GMPOTrainer",
    "A2POConfig": "trl.experimental.a2po.A2POTrainer",
    "GKDConfig": "trl.experimental.gkd.GKDTrainer",
    "IWOPDConfig": "trl.experimental.iw_opd.IWOPDTrainer",
    "SDPOConfig": "trl.experimental.sdpo.SDPOTrainer",
    "SDFTConfig": "trl.experimental.sdft.SDFTTrainer",
}

# Names the paper index (old or current) passes that TRL 1.16 / transformers 5.23 do not have.
_REMOVED_HINTS: dict[str, str] = {
    "max_prompt_length": "TRL 1.16 removed it; truncate or filter prompts in the dataset",
    "max_completion_length": "this config has no separate completion limit",
    "warmup_ratio": "transformers 5.23 has no warmup_ratio; pass warmup_steps=<float in [0, 1)>, "
    "which is read as a ratio",
    "num_completions": "the field is num_generations",
}
_MAX_LENGTH_HINT = " (max_length bounds prompt + completion)"


def _resolve(dotted: str) -> type:
    module_name, _, attr = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        extra = (
            " It is fastalign's GRPOTrainer subclass; it needs trl==1.16.0 (pip install fastalign[trl])."
            if dotted == FAST_GRPO_TRAINER
            else ""
        )
        raise ImportError(f"cannot import the trainer {dotted!r} ({exc}).{extra}") from exc


def _config_class(short: str) -> type:
    module, cls = _CONFIGS[short]
    return getattr(importlib.import_module(module), cls)


def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init)


def _check_overrides(cls: type, overrides: Mapping[str, Any], preset: str) -> None:
    names = _field_names(cls)
    for key in overrides:
        if key in names:
            continue
        msg = f"is not a field of {cls.__name__} (TRL 1.16), so preset {preset}() cannot pass it through"
        if key in _REMOVED_HINTS:
            msg += f": {_REMOVED_HINTS[key]}"
            if key.startswith("max_") and "max_length" in names:
                msg += _MAX_LENGTH_HINT
        close = difflib.get_close_matches(key, sorted(names), n=3, cutoff=0.6)
        if close:
            msg += f"; did you mean {', '.join(close)}?"
        raise UnknownFieldError(msg, key)


# A pin: (field, test on the built config, what the paper requires).
Pin = tuple[str, Callable[[Any], bool], str]


def _eq(field: str, value: Any, why: str) -> Pin:
    return (field, lambda c: getattr(c, field) == value, f"must be {value!r} ({why})")


def _one_of(field: str, values: tuple, why: str) -> Pin:
    return (field, lambda c: getattr(c, field) in values, f"must be one of {values!r} ({why})")


def _check_strict(strict: object) -> bool:
    if not isinstance(strict, bool):
        raise InvalidTypeError(f"expected True or False, got {type(strict).__name__}", "strict")
    return strict


def _build(
    preset: str,
    short: str,
    paper: Mapping[str, Any],
    overrides: Mapping[str, Any],
    strict: bool,
    pins: tuple[Pin, ...] = (),
) -> Any:
    """Build ``short``'s config from the paper's values and the user's overrides, then check pins."""
    strict = _check_strict(strict)
    cls = _config_class(short)
    _check_overrides(cls, overrides, preset)
    kwargs: dict[str, Any] = {}
    if "bf16" not in overrides:
        kwargs["bf16"] = False  # CPU-safe default (module docstring); pass bf16=True on a GPU
    kwargs.update(paper)
    kwargs.update(overrides)
    config = cls(**kwargs)
    if strict:
        title = _INFO[preset].title if preset in _INFO else preset
        for field, ok, requirement in pins:
            if not ok(config):
                raise InvalidArgumentError(
                    f"{getattr(config, field)!r} contradicts {preset}() ({title}): {requirement}. "
                    "Pass strict=False to deviate from the paper knowingly.",
                    field,
                )
    return config


_INFO: dict[str, PresetInfo] = {}


def _preset(
    *, title: str, url: str, section: str, config: str, returns: str = "config", trainer: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        module, cls = _CONFIGS[config]
        chosen = trainer or _TRAINERS[config]
        _INFO[fn.__name__] = PresetInfo(
            name=fn.__name__,
            title=title,
            url=url,
            section=section,
            config_class=f"{module}.{cls}",
            returns=returns,
            trainer=chosen,
            needs_fast_trainer=chosen == FAST_GRPO_TRAINER,
            function=fn,
        )
        return fn

    return register


def _arxiv(paper_id: str) -> str:
    return f"https://arxiv.org/abs/{paper_id}"


def _soft_overlong(max_completion_length: int, soft_punish_cache: int) -> Any:
    from ..rewards import soft_overlong

    return soft_overlong(max_completion_length, soft_punish_cache)


# ---------------------------------------------------------------------------------------------
# Group Relative Policy Optimization (GRPOConfig)


@_preset(
    title="DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models",
    url=_arxiv("2402.03300"),
    section="RL training setup, quoted by TRL's paper index (the page gives no section number)",
    config="GRPOConfig",
)
def deepseekmath_grpo(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """GRPO as in DeepSeekMath (arXiv 2402.03300).

    ``loss_type="grpo"``; ``beta=0.001`` ("the KL coefficient to 0.001"); ``epsilon=10.0`` (the
    page quotes "the GRPO clip ratio ε to 10"); ``num_generations=16``;
    ``max_completion_length=32768``; ``steps_per_generation=16`` (8,192 outputs split into 16
    mini-batches); ``per_device_train_batch_size=4`` with ``gradient_accumulation_steps=128`` (one
    way to get the batch of 512 on one device). Pinned: ``loss_type="grpo"``.
    """
    paper = dict(
        loss_type="grpo",
        beta=0.001,
        epsilon=10.0,
        num_generations=16,
        max_completion_length=32_768,
        steps_per_generation=16,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=128,
    )
    pins = (_eq("loss_type", "grpo", "the GRPO objective"),)
    return _build("deepseekmath_grpo", "GRPOConfig", paper, overrides, strict, pins)


@_preset(
    title="DeepSeek-R1: Incentivizing Reasoning Capability in LLMs via Reinforcement Learning",
    url=_arxiv("2501.12948"),
    section="training details of DeepSeek-R1-Zero, as quoted by TRL's paper index",
    config="GRPOConfig",
)
def deepseek_r1(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """GRPO settings of DeepSeek-R1 (arXiv 2501.12948), as TRL's paper index gives them.

    ``learning_rate=4e-5``, ``max_completion_length=32768``, ``num_generations=16``,
    ``beta=0.001``, ``use_vllm=True``. Like the page, this leaves ``loss_type`` at TRL's default
    (``"dapo"`` in 1.16).

    Correction: the page's snippet raises ``ValueError`` on 1.16: the generation batch
    (``per_device_train_batch_size`` 8 by default × processes × ``steps_per_generation``) must be
    divisible by ``num_generations=16``. The preset sets ``per_device_train_batch_size=16`` (one
    full group per device step, still on-policy). Pinned: ``beta > 0`` (R1 keeps a KL term).
    """
    paper = dict(
        learning_rate=4.0e-5,
        max_completion_length=32768,
        num_generations=16,
        beta=0.001,
        use_vllm=True,
        per_device_train_batch_size=16,  # 1.16 fix, see docstring
    )
    pins = (("beta", lambda c: c.beta > 0, "must be > 0 (the paper keeps a KL penalty)"),)
    return _build("deepseek_r1", "GRPOConfig", paper, overrides, strict, pins)


_GSPO_VALUES = dict(
    importance_sampling_level="sequence",
    loss_type="grpo",
    beta=0.0,
    epsilon=3e-4,
    epsilon_high=4e-4,
    gradient_accumulation_steps=1,
    steps_per_generation=4,
)


@_preset(
    title="Group Sequence Policy Optimization",
    url=_arxiv("2507.18071"),
    section="Sec. 5.1 (v2): clipping range 3e-4/4e-4, rollout batch split into 4 mini-batches",
    config="GRPOConfig",
)
def gspo(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """GSPO (arXiv 2507.18071): sequence-level importance ratio.

    ``importance_sampling_level="sequence"``, ``loss_type="grpo"``, ``beta=0.0`` (KL off, per
    verl PR 2775), ``epsilon=3e-4`` and ``epsilon_high=4e-4`` (Sec. 5.1 of v2),
    ``gradient_accumulation_steps=1`` and ``steps_per_generation=4`` (4 mini-batches per rollout,
    Sec. 5.1). The snippet is valid on 1.16 as written.

    Pinned: ``importance_sampling_level="sequence"`` (token-level ratios are GRPO, not GSPO) and
    ``loss_type="grpo"`` (TRL 1.16 warns that the token-summing losses weight each sequence by its
    length, which is not GSPO's per-sequence objective).
    """
    pins = (
        _eq("importance_sampling_level", "sequence", "GSPO's ratio is the sequence-level geometric mean"),
        _eq("loss_type", "grpo", "GSPO's objective averages per sequence"),
    )
    return _build("gspo", "GRPOConfig", _GSPO_VALUES, overrides, strict, pins)


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


@_preset(
    title="Geometric-Mean Policy Optimization",
    url=_arxiv("2507.20673"),
    section="Sec. 4 (log-space clip range 0.4)",
    config="GMPOConfig",
)
def gmpo(*, strict: bool = True, **overrides: Any) -> GMPOConfig:
    """GMPO (arXiv 2507.20673) with ``trl.experimental.gmpo.GMPOConfig``.

    ``epsilon=0.4`` (log-space: ratios clipped to (e^-0.4, e^0.4), Sec. 4) and ``beta=0.0``. Use
    ``trl.experimental.gmpo.GMPOTrainer``. No pinned fields.
    """
    return _build("gmpo", "GMPOConfig", dict(epsilon=0.4, beta=0.0), overrides, strict)


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


@_preset(
    title="INTELLECT-2: A Reasoning Model Trained Through Globally Decentralized Reinforcement Learning",
    url=_arxiv("2505.07291"),
    section="Sec. 4.1 (two-sided clipping δ=4, ε=0.2, KL 0.001, 16 responses, lr 3e-7)",
    config="GRPOConfig",
)
def intellect2(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """INTELLECT-2 (arXiv 2505.07291): two-sided ratio cap.

    ``delta=4``, ``epsilon=0.2``, ``beta=0.001``, ``num_generations=16``, ``learning_rate=3e-7``
    (all Sec. 4.1).

    Correction: as written the snippet raises ``ValueError`` on 1.16 (generation batch of 8 not
    divisible by ``num_generations=16``); the preset sets ``per_device_train_batch_size=16``.
    Pinned: ``delta`` set (the method's upper cap on the ratio).
    """
    paper = dict(
        delta=4,
        epsilon=0.2,
        beta=0.001,
        num_generations=16,
        learning_rate=3e-7,
        per_device_train_batch_size=16,  # 1.16 fix, see docstring
    )
    pins = (("delta", lambda c: c.delta is not None, "must be set: the two-sided clip is the method"),)
    return _build("intellect2", "GRPOConfig", paper, overrides, strict, pins)


@_preset(
    title="Skywork-OR1: Open Reasoning Models",
    url=_arxiv("2505.22312"),
    section="Sec. 3.3 (adaptive entropy control)",
    config="GRPOConfig",
)
def skywork_or1(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """Skywork-OR1 adaptive entropy control (arXiv 2505.22312, Sec. 3.3).

    ``use_adaptive_entropy=True``, ``entropy_coef=0.01`` (initial), ``entropy_target=5.0`` (nats;
    the page says to tune it for your model), ``entropy_coef_delta=0.005``. Pinned:
    ``use_adaptive_entropy=True``.
    """
    paper = dict(use_adaptive_entropy=True, entropy_coef=0.01, entropy_target=5.0, entropy_coef_delta=0.005)
    pins = (_eq("use_adaptive_entropy", True, "adaptive entropy control is the method"),)
    return _build("skywork_or1", "GRPOConfig", paper, overrides, strict, pins)


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


@_preset(
    title="Understanding R1-Zero-Like Training: A Critical Perspective (Dr. GRPO)",
    url=_arxiv("2503.20783"),
    section="Sec. 3 (Dr. GRPO removes the length and std normalisations); values from the repository's "
    "Training section",
    config="GRPOConfig",
)
def dr_grpo(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """Dr. GRPO (arXiv 2503.20783).

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
    """
    paper = dict(
        loss_type="dr_grpo",
        per_device_train_batch_size=1,
        num_generations=8,
        max_completion_length=3000,
        beta=0.0,
        scale_rewards="none",
        gradient_accumulation_steps=8,  # 1.16 fix, see docstring
    )
    pins = (
        _eq("loss_type", "dr_grpo", "the constant-normaliser loss"),
        _eq("scale_rewards", "none", "Dr. GRPO drops the std normalisation of advantages"),
    )
    return _build("dr_grpo", "GRPOConfig", paper, overrides, strict, pins)


@_preset(
    title="Part I: Tricks or Traps? A Deep Dive into RL for LLM Reasoning (Lite PPO)",
    url=_arxiv("2508.08221"),
    section="Lite PPO: batch-level reward std + token-level loss aggregation; values as in TRL's index",
    config="GRPOConfig",
)
def lite_ppo(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """Lite PPO (arXiv 2508.08221).

    ``scale_rewards="batch"``, ``loss_type="dapo"``, ``beta=0.0``, ``top_p=0.99``, ``top_k=100``,
    ``temperature=0.99``, ``num_generations=8``, ``num_iterations=1``,
    ``per_device_train_batch_size=4``, ``gradient_accumulation_steps=32``,
    ``steps_per_generation=8``.

    Correction: the older index used ``num_completions=8``, not a field (``TypeError``); it is
    ``num_generations``. Pinned: ``scale_rewards="batch"``, ``loss_type="dapo"``.
    """
    paper = dict(
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
    )
    pins = (
        _eq("scale_rewards", "batch", "batch-level std normalisation is half of Lite PPO"),
        _eq("loss_type", "dapo", "token-level aggregation is the other half"),
    )
    return _build("lite_ppo", "GRPOConfig", paper, overrides, strict, pins)


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


@_preset(
    title="The Art of Scaling Reinforcement Learning (ScaleRL, CISPO loss)",
    url=_arxiv("2510.13786"),
    section="ScaleRL recipe: CISPO loss, batch-level advantage normalisation, FP32 LM head",
    config="GRPOConfig",
)
def cispo(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """The ScaleRL recipe with the CISPO loss (arXiv 2510.13786).

    ``loss_type="cispo"``, ``epsilon_high=5.0`` (CISPO's absolute cap on the ratio),
    ``num_generations=16``, ``scale_rewards="batch"``, ``cast_lm_head_to_fp32=True``.

    Correction: as written the snippet raises ``ValueError`` on 1.16 (generation batch of 8 not
    divisible by ``num_generations=16``); the preset sets ``per_device_train_batch_size=16``.
    Pinned: ``loss_type="cispo"``.
    """
    paper = dict(
        loss_type="cispo",
        epsilon_high=5.0,
        num_generations=16,
        scale_rewards="batch",
        cast_lm_head_to_fp32=True,
        per_device_train_batch_size=16,  # 1.16 fix, see docstring
    )
    pins = (_eq("loss_type", "cispo", "the clipped-IS-weight loss"),)
    return _build("cispo", "GRPOConfig", paper, overrides, strict, pins)


@_preset(
    title="It Takes Two: Your GRPO Is Secretly DPO",
    url=_arxiv("2510.00977"),
    section="2-GRPO, the minimal two-rollout case",
    config="GRPOConfig",
)
def two_grpo(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """2-GRPO (arXiv 2510.00977): ``num_generations=2``, ``loss_type="grpo"``. Pinned: both."""
    pins = (
        _eq("num_generations", 2, "two rollouts per prompt is the method"),
        _eq("loss_type", "grpo", "the GRPO objective"),
    )
    return _build("two_grpo", "GRPOConfig", dict(num_generations=2, loss_type="grpo"), overrides, strict, pins)


@_preset(
    title="Soft Adaptive Policy Optimization",
    url=_arxiv("2511.20347"),
    section="SAPO's soft gate with τ_pos=1.0, τ_neg=1.05 (TRL's defaults)",
    config="GRPOConfig",
)
def sapo(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """SAPO (arXiv 2511.20347): ``loss_type="sapo"``, ``sapo_temperature_pos=1.0``,
    ``sapo_temperature_neg=1.05``, ``scale_rewards="group"``. Pinned: ``loss_type="sapo"``."""
    paper = dict(loss_type="sapo", sapo_temperature_pos=1.0, sapo_temperature_neg=1.05, scale_rewards="group")
    pins = (_eq("loss_type", "sapo", "the soft-gated loss"),)
    return _build("sapo", "GRPOConfig", paper, overrides, strict, pins)


@_preset(
    title="DeepSeek-V3.2: Pushing the Frontier of Open Large Language Models (unbiased KL estimate)",
    url=_arxiv("2512.02556"),
    section="unbiased KL estimate (importance-weighted k3); β from DeepSeek-R1 since V3.2 gives none",
    config="GRPOConfig",
)
def deepseek_v32_kl(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """DeepSeek-V3.2's bias-corrected KL (arXiv 2512.02556).

    ``beta=0.001`` (the paper gives no value; the page takes R1's) and
    ``use_bias_correction_kl=True``. Pinned: ``use_bias_correction_kl=True`` and ``beta > 0``
    (with ``beta=0`` there is no KL term to correct).
    """
    pins = (
        _eq("use_bias_correction_kl", True, "the importance-weighted KL is the method"),
        ("beta", lambda c: c.beta > 0, "must be > 0: with beta=0 there is no KL term"),
    )
    paper = dict(beta=0.001, use_bias_correction_kl=True)
    return _build("deepseek_v32_kl", "GRPOConfig", paper, overrides, strict, pins)


@_preset(
    title="DeepSeek-V3.2: Pushing the Frontier of Open Large Language Models (off-policy sequence masking)",
    url=_arxiv("2512.02556"),
    section="off-policy sequence masking (eq. 9)",
    config="GRPOConfig",
)
def deepseek_v32_off_policy_mask(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """DeepSeek-V3.2's off-policy sequence mask (arXiv 2512.02556, eq. 9).

    ``off_policy_mask_threshold=0.5``. Pinned: the threshold set.
    """
    pins = (
        ("off_policy_mask_threshold", lambda c: c.off_policy_mask_threshold is not None, "must be set"),
    )
    return _build(
        "deepseek_v32_off_policy_mask", "GRPOConfig", dict(off_policy_mask_threshold=0.5), overrides, strict, pins
    )


@_preset(
    title="GDPO: Group reward-Decoupled Normalization Policy Optimization for Multi-reward RL Optimization",
    url=_arxiv("2601.05242"),
    section="decoupled per-reward group normalisation",
    config="GRPOConfig",
)
def gdpo(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """GDPO (arXiv 2601.05242): ``multi_objective_aggregation="normalize_then_sum"``. Pinned: that."""
    pins = (_eq("multi_objective_aggregation", "normalize_then_sum", "per-reward normalisation is the method"),)
    paper = dict(multi_objective_aggregation="normalize_then_sum")
    return _build("gdpo", "GRPOConfig", paper, overrides, strict, pins)


@_preset(
    title="Length-Unbiased Sequence Policy Optimization: Revealing and Controlling Response Length Variation in RLVR",
    url=_arxiv("2602.05261"),
    section="Sec. 5.1 (clip range 2e-3/2.5e-3)",
    config="GRPOConfig",
)
def luspo(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """LUSPO (arXiv 2602.05261): ``loss_type="luspo"``, ``importance_sampling_level="sequence"``,
    ``epsilon=2e-3``, ``epsilon_high=2.5e-3`` (Sec. 5.1). Pinned: the loss and the sequence level
    (TRL 1.16 warns without it)."""
    paper = dict(loss_type="luspo", importance_sampling_level="sequence", epsilon=2e-3, epsilon_high=2.5e-3)
    pins = (
        _eq("loss_type", "luspo", "the length-unbiased loss"),
        _eq("importance_sampling_level", "sequence", "LUSPO builds on sequence-level ratios"),
    )
    return _build("luspo", "GRPOConfig", paper, overrides, strict, pins)


@_preset(
    title="VESPO: Variational Sequence-Level Soft Policy Optimization for Stable Off-Policy LLM Training",
    url=_arxiv("2602.10693"),
    section="Sec. 3.4 (c1, c2 for positive and negative advantages)",
    config="GRPOConfig",
)
def vespo(*, strict: bool = True, **overrides: Any) -> GRPOConfig:
    """VESPO (arXiv 2602.10693).

    ``loss_type="vespo"``, ``use_vllm=True``, ``vllm_importance_sampling_mode="token_truncate"``,
    ``vespo_k_pos=2.0``, ``vespo_lambda_pos=3.0``, ``vespo_k_neg=3.0``, ``vespo_lambda_neg=2.0``
    (c1/c2, Sec. 3.4). Pass ``use_vllm=False`` without vLLM. Pinned: ``loss_type="vespo"``,
    ``importance_sampling_level="token"`` (VESPO forms the sequence weight itself; TRL warns
    otherwise), and a ``token_*`` IS mode when the vLLM correction is on (TRL's trainer raises
    otherwise).
    """
    paper = dict(
        loss_type="vespo",
        use_vllm=True,
        vllm_importance_sampling_mode="token_truncate",
        vespo_k_pos=2.0,
        vespo_lambda_pos=3.0,
        vespo_k_neg=3.0,
        vespo_lambda_neg=2.0,
    )
    pins = (
        _eq("loss_type", "vespo", "the variational sequence-level loss"),
        _eq("importance_sampling_level", "token", "VESPO computes its sequence weights internally"),
        (
            "vllm_importance_sampling_mode",
            lambda c: not (c.use_vllm and c.vllm_importance_sampling_correction)
            or c.vllm_importance_sampling_mode in ("token_truncate", "token_mask"),
            "must be 'token_truncate' or 'token_mask' with the vLLM correction on",
        ),
    )
    return _build("vespo", "GRPOConfig", paper, overrides, strict, pins)


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


@_preset(
    title="Accelerating RL for LLM Reasoning with Optimal Advantage Regression (A*-PO; TRL's A2PO)",
    url=_arxiv("2505.20686"),
    section="offline V* estimation (β1, N) and on-policy regression (β2)",
    config="A2POConfig",
)
def a2po(*, strict: bool = True, **overrides: Any) -> A2POConfig:
    """A*-PO (arXiv 2505.20686) with ``trl.experimental.a2po.A2POConfig``: ``beta1=0.5``,
    ``beta2=1e-3``, ``num_value_samples=8``. No pinned fields."""
    paper = dict(beta1=0.5, beta2=1e-3, num_value_samples=8)
    return _build("a2po", "A2POConfig", paper, overrides, strict)


# ---------------------------------------------------------------------------------------------
# Direct preference optimisation (DPOConfig)


def _dpo_loss_pin(*names: str) -> Pin:
    value = [*names]
    return ("loss_type", lambda c: c.loss_type == value, f"must be {value!r} (the paper's loss)")


def _dpo(preset: str, paper: Mapping[str, Any], overrides: Mapping[str, Any], strict: bool, *extra: Pin) -> Any:
    """The DPOConfig; with ``padding_free=True`` a :class:`Recipe` naming ``FastDPOTrainer``, the
    trainer that honours it (TRL 1.16's DPOTrainer switches it off)."""
    loss = paper["loss_type"]
    loss = [loss] if isinstance(loss, str) else [*loss]
    config = _build(preset, "DPOConfig", paper, overrides, strict, (_dpo_loss_pin(*loss), *extra))
    if not config.padding_free:
        return config
    return Recipe(config, trainer_cls=FAST_DPO_TRAINER,
                  notes="padding_free=True: fastalign.trl.FastDPOTrainer forwards packed real tokens.")


@_preset(
    title="Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
    url=_arxiv("2305.18290"),
    section="App. B (loss, batch 64, lr 1e-6, β=0.1)",
    config="DPOConfig",
)
def dpo(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """DPO (arXiv 2305.18290, App. B): ``loss_type="sigmoid"``, ``per_device_train_batch_size=64``,
    ``learning_rate=1e-6``, ``beta=0.1``. Pinned: ``loss_type=["sigmoid"]``."""
    paper = dict(loss_type="sigmoid", per_device_train_batch_size=64, learning_rate=1e-6, beta=0.1)
    return _dpo("dpo", paper, overrides, strict)


@_preset(
    title="SLiC-HF: Sequence Likelihood Calibration with Human Feedback",
    url=_arxiv("2305.10425"),
    section="Sec. 2 (hinge loss); Sec. 3.2 (batch 512, lr 1e-4)",
    config="DPOConfig",
)
def slic_hf(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """SLiC-HF (arXiv 2305.10425): ``loss_type="hinge"`` (Sec. 2), ``per_device_train_batch_size=512``,
    ``learning_rate=1e-4`` (Sec. 3.2); β stays TRL's 0.1. Pinned: ``loss_type=["hinge"]``."""
    paper = dict(loss_type="hinge", per_device_train_batch_size=512, learning_rate=1e-4)
    return _dpo("slic_hf", paper, overrides, strict)


@_preset(
    title="Statistical Rejection Sampling Improves Preference Optimization (RSO)",
    url=_arxiv("2309.06657"),
    section="hinge loss with γ=0.05 (after filtering the data with RSO)",
    config="DPOConfig",
)
def rso(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """RSO (arXiv 2309.06657): ``loss_type="hinge"``, ``beta=0.05`` (γ). The rejection sampling of
    the dataset is yours to do. Pinned: ``loss_type=["hinge"]``."""
    return _dpo("rso", dict(loss_type="hinge", beta=0.05), overrides, strict)


@_preset(
    title="Beyond Reverse KL: Generalizing Direct Preference Optimization with Diverse Divergence Constraints",
    url=_arxiv("2309.16240"),
    section="f-DPO with Jensen-Shannon divergence",
    config="DPOConfig",
)
def f_dpo(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """f-DPO (arXiv 2309.16240): ``loss_type="sigmoid"``, ``beta=0.1``,
    ``f_divergence_type="js_divergence"`` (or forward_kl / alpha_divergence),
    ``f_alpha_divergence_coef=0.5``. Pinned: the sigmoid loss and a non-reverse-KL divergence
    (reverse KL is plain DPO)."""
    paper = dict(loss_type="sigmoid", beta=0.1, f_divergence_type="js_divergence", f_alpha_divergence_coef=0.5)
    pin = _one_of(
        "f_divergence_type", ("forward_kl", "js_divergence", "alpha_divergence"), "reverse_kl is plain DPO"
    )
    return _dpo("f_dpo", paper, overrides, strict, pin)


@_preset(
    title="A General Theoretical Paradigm to Understand Learning from Human Preferences (IPO)",
    url=_arxiv("2310.12036"),
    section="Sec. 5.1 (IPO loss); Sec. C.1 of the PMLR version (batch 90, lr 1e-2)",
    config="DPOConfig",
)
def ipo(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """IPO (arXiv 2310.12036): ``loss_type="ipo"`` (Sec. 5.1), ``per_device_train_batch_size=90``,
    ``learning_rate=1e-2`` (Sec. C.1, published version); β (τ) stays TRL's 0.1. Pinned:
    ``loss_type=["ipo"]``."""
    paper = dict(loss_type="ipo", per_device_train_batch_size=90, learning_rate=1e-2)
    return _dpo("ipo", paper, overrides, strict)


@_preset(
    title="Towards Efficient and Exact Optimization of Language Model Alignment (EXO)",
    url=_arxiv("2402.00856"),
    section="Sec. 3.2 (EXO loss); Sec. B (batch 64, lr 1e-6, β_r=0.1); ε=1e-3 (the paper's value, per TRL)",
    config="DPOConfig",
)
def exo(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """EXO (arXiv 2402.00856): ``loss_type="exo_pair"`` (Sec. 3.2), ``per_device_train_batch_size=64``,
    ``learning_rate=1e-6``, ``beta=0.1`` (Sec. B), ``label_smoothing=1e-3``.

    Correction: both index versions leave ``label_smoothing`` at 0.0, and ``DPOTrainer`` 1.16
    raises ``ValueError`` at init for ``exo_pair`` with ε=0 ("The EXO paper recommends a value of
    1e-3"); the preset sets 1e-3. (The older index also linked the SLiC-HF paper, 2305.10425, for
    EXO; the paper is 2402.00856.) Pinned: ``loss_type=["exo_pair"]``, ``0 < label_smoothing < 1``.
    """
    paper = dict(
        loss_type="exo_pair", per_device_train_batch_size=64, learning_rate=1e-6, beta=0.1, label_smoothing=1e-3
    )
    pin = (
        "label_smoothing",
        lambda c: 0.0 < c.label_smoothing < 1.0,
        "must be in (0, 1): EXO's ε (1e-3 in the paper)",
    )
    return _dpo("exo", paper, overrides, strict, pin)


@_preset(
    title="Noise Contrastive Alignment of Language Models with Explicit Rewards (NCA)",
    url=_arxiv("2402.05369"),
    section="Sec. C (batch 32, lr 5e-6, α=β=0.01)",
    config="DPOConfig",
)
def nca(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """NCA (arXiv 2402.05369): ``loss_type="nca_pair"``, ``per_device_train_batch_size=32``,
    ``learning_rate=5e-6``, ``beta=0.01`` (Sec. C). Pinned: ``loss_type=["nca_pair"]``."""
    paper = dict(loss_type="nca_pair", per_device_train_batch_size=32, learning_rate=5e-6, beta=0.01)
    return _dpo("nca", paper, overrides, strict)


@_preset(
    title="Provably Robust DPO: Aligning Language Models with Noisy Feedback",
    url=_arxiv("2403.00409"),
    section="Sec. B (batch 16, lr 1e-3, β=0.1, max length 512); Sec. 6 (ε=0.1)",
    config="DPOConfig",
)
def robust_dpo(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """Robust DPO (arXiv 2403.00409): ``loss_type="robust"``, ``per_device_train_batch_size=16``,
    ``learning_rate=1e-3``, ``beta=0.1``, ``max_length=512`` (Sec. B), ``label_smoothing=0.1``
    (ε, Sec. 6).

    Correction: the older index passed ``max_prompt_length=128`` (``TypeError`` on 1.16: dropped;
    ``max_length=512`` still bounds prompt+completion) and ``beta=0.01``; the current page and the
    preset use 0.1. Pinned: ``loss_type=["robust"]`` and ``0 <= label_smoothing < 0.5`` (TRL only
    warns outside it; at 0.5 the loss divides by zero).
    """
    paper = dict(
        loss_type="robust",
        per_device_train_batch_size=16,
        learning_rate=1e-3,
        beta=0.1,
        max_length=512,
        label_smoothing=0.1,
    )
    pin = ("label_smoothing", lambda c: 0.0 <= c.label_smoothing < 0.5, "must be in [0, 0.5): the noise rate ε")
    return _dpo("robust_dpo", paper, overrides, strict, pin)


@_preset(
    title="Binary Classifier Optimization for Large Language Model Alignment (paired BCO)",
    url=_arxiv("2404.04656"),
    section="Sec. 4 (loss); Sec. C (batch 128, lr 5e-7, β=0.01)",
    config="DPOConfig",
)
def bco(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """Paired BCO (arXiv 2404.04656): ``loss_type="bco_pair"``, ``per_device_train_batch_size=128``,
    ``learning_rate=5e-7``, ``beta=0.01`` (Sec. C).

    Corrections: the older index passed ``max_prompt_length=1536, max_completion_length=512``,
    neither a ``DPOConfig`` 1.16 field (``TypeError``): dropped. Note TRL 1.16's ``bco_pair`` has
    no running-mean reward shift, and the unpaired ``BCOTrainer`` the page points to does not
    exist in 1.16. Pinned: ``loss_type=["bco_pair"]``.
    """
    paper = dict(loss_type="bco_pair", per_device_train_batch_size=128, learning_rate=5e-7, beta=0.01)
    return _dpo("bco", paper, overrides, strict)


@_preset(
    title="Learn Your Reference Model for Real Good Alignment (TR-DPO)",
    url=_arxiv("2404.09656"),
    section="Sec. 3 (reference syncing); Table 1 (α=0.6, τ=512, β=0.05); Table 2 (training)",
    config="DPOConfig",
)
def tr_dpo(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """TR-DPO (arXiv 2404.09656): ``sync_ref_model=True``, ``ref_model_mixup_alpha=0.6``,
    ``ref_model_sync_steps=512``, ``beta=0.05`` (Table 1), ``learning_rate=1e-6``,
    ``num_train_epochs=1``, ``max_length=1024``, ``max_grad_norm=2``, ``warmup_steps=100``
    (Table 2); sigmoid loss. Not with PEFT or precomputed reference log-probs (TRL raises).
    Pinned: ``sync_ref_model=True``, ``loss_type=["sigmoid"]``."""
    paper = dict(
        loss_type="sigmoid",
        sync_ref_model=True,
        ref_model_mixup_alpha=0.6,
        ref_model_sync_steps=512,
        beta=0.05,
        learning_rate=1e-6,
        num_train_epochs=1,
        max_length=1024,
        max_grad_norm=2,
        warmup_steps=100,
    )
    return _dpo("tr_dpo", paper, overrides, strict, _eq("sync_ref_model", True, "reference updates are the method"))


@_preset(
    title="Iterative Reasoning Preference Optimization",
    url=_arxiv("2404.19733"),
    section="DPO + NLL on the chosen answer, weight α=1",
    config="DPOConfig",
)
def iterative_rpo(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """Iterative RPO (arXiv 2404.19733): ``loss_type=["sigmoid", "sft"]``, ``loss_weights=[1.0, 1.0]``
    (α=1). The iterate-regenerate loop is yours. Pinned: the two losses."""
    paper = dict(loss_type=["sigmoid", "sft"], loss_weights=[1.0, 1.0])
    return _dpo("iterative_rpo", paper, overrides, strict)


@_preset(
    title="Self-Play Preference Optimization for Language Model Alignment (SPPO)",
    url=_arxiv("2405.00675"),
    section="Sec. 5 (β=η^-1=0.001, batch 64, lr 5e-7)",
    config="DPOConfig",
)
def sppo(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """SPPO (arXiv 2405.00675): ``loss_type="sppo_hard"``, ``beta=0.001`` (β = η⁻¹),
    ``per_device_train_batch_size=64``, ``learning_rate=5e-7`` (Sec. 5).

    Correction: the older index left β at TRL's default 0.1; the current page (and the preset) use
    0.001. Pinned: ``loss_type=["sppo_hard"]``.
    """
    paper = dict(loss_type="sppo_hard", beta=0.001, per_device_train_batch_size=64, learning_rate=5e-7)
    return _dpo("sppo", paper, overrides, strict)


@_preset(
    title="Provably Mitigating Overoptimization in RLHF: Your SFT Loss is Implicitly an Adversarial Regularizer (RPO)",
    url=_arxiv("2405.16436"),
    section="Sec. 5 (DPO + SFT); App. E.1 (η=0.005, β=0.01, lr 5e-7, 1 epoch)",
    config="DPOConfig",
)
def rpo(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """RPO (arXiv 2405.16436): ``loss_type=["sigmoid", "sft"]`` (Sec. 5), ``loss_weights=[1.0, 0.005]``
    (η), ``beta=0.01``, ``learning_rate=5e-7``, ``num_train_epochs=1`` (App. E.1). Pinned: the
    two losses."""
    paper = dict(
        loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.005], beta=0.01, learning_rate=5e-7, num_train_epochs=1
    )
    return _dpo("rpo", paper, overrides, strict)


@_preset(
    title="Distributional Preference Alignment of LLMs via Optimal Transport (AOT, paired)",
    url=_arxiv("2406.05882"),
    section="Sec. 3 (AOT); β=0.01 from the caption of Figure 2",
    config="DPOConfig",
)
def aot(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """Paired AOT (arXiv 2406.05882): ``loss_type="aot"``, ``beta=0.01`` (Fig. 2 caption; the older
    index left TRL's 0.1). Pinned: ``loss_type=["aot"]``."""
    return _dpo("aot", dict(loss_type="aot", beta=0.01), overrides, strict)


@_preset(
    title="Distributional Preference Alignment of LLMs via Optimal Transport (AOT, unpaired)",
    url=_arxiv("2406.05882"),
    section="Sec. 3 (unpaired AOT); β=0.01 from the caption of Figure 2",
    config="DPOConfig",
)
def aot_unpaired(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """Unpaired AOT (arXiv 2406.05882): ``loss_type="aot_unpaired"``, ``beta=0.01``.

    Correction: the older index named this loss ``"aot_pair"``, which TRL 1.16 does not know (the
    config accepts it and ``DPOTrainer`` raises ``ValueError`` at the first step); it is
    ``"aot_unpaired"``. Pinned: ``loss_type=["aot_unpaired"]``.
    """
    return _dpo("aot_unpaired", dict(loss_type="aot_unpaired", beta=0.01), overrides, strict)


@_preset(
    title="Discovering Preference Optimization Algorithms with and for Large Language Models (DiscoPOP)",
    url=_arxiv("2406.08414"),
    section="Sec. B.1 (batch 64, lr 5e-7, β=0.05); Sec. E (τ=0.05)",
    config="DPOConfig",
)
def discopop(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """DiscoPOP (arXiv 2406.08414): ``loss_type="discopop"``, ``per_device_train_batch_size=64``,
    ``learning_rate=5e-7``, ``beta=0.05`` (Sec. B.1), ``discopop_tau=0.05`` (Sec. E). Pinned:
    ``loss_type=["discopop"]``."""
    paper = dict(loss_type="discopop", per_device_train_batch_size=64, learning_rate=5e-7, beta=0.05, discopop_tau=0.05)
    return _dpo("discopop", paper, overrides, strict)


@_preset(
    title="WPO: Enhancing RLHF with Weighted Preference Optimization",
    url=_arxiv("2406.11827"),
    section="Sec. 4 (β=0.01), eq. 2 weighting",
    config="DPOConfig",
)
def wpo(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """WPO (arXiv 2406.11827): ``loss_type="sigmoid"``, ``beta=0.01`` (Sec. 4), ``use_weighting=True``.
    Pinned: ``use_weighting=True``, ``loss_type=["sigmoid"]``."""
    paper = dict(loss_type="sigmoid", beta=0.01, use_weighting=True)
    return _dpo("wpo", paper, overrides, strict, _eq("use_weighting", True, "the weighting is the method"))


_APO = dict(per_device_train_batch_size=64, learning_rate=2e-7, beta=0.1)


@_preset(
    title="Anchored Preference Optimization and Contrastive Revisions (APO-zero)",
    url=_arxiv("2408.06266"),
    section="Sec. 4 (APO-zero); Sec. B.1 (batch 64); Sec. 5.2 (lr 2e-7, β=0.1), TACL version",
    config="DPOConfig",
)
def apo_zero(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """APO-zero (arXiv 2408.06266): ``loss_type="apo_zero"``, ``per_device_train_batch_size=64``,
    ``learning_rate=2e-7``, ``beta=0.1``.

    Correction: the older index passed ``max_prompt_length=512, max_completion_length=512``,
    neither a ``DPOConfig`` 1.16 field (``TypeError``): dropped (bound the sequence with
    ``max_length`` if needed). Pinned: ``loss_type=["apo_zero"]``.
    """
    return _dpo("apo_zero", dict(loss_type="apo_zero", **_APO), overrides, strict)


@_preset(
    title="Anchored Preference Optimization and Contrastive Revisions (APO-down)",
    url=_arxiv("2408.06266"),
    section="Sec. 4 (APO-down); Sec. B.1 (batch 64); Sec. 5.2 (lr 2e-7, β=0.1), TACL version",
    config="DPOConfig",
)
def apo_down(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """APO-down (arXiv 2408.06266): ``loss_type="apo_down"``, otherwise as :func:`apo_zero` (same
    correction: ``max_prompt_length``/``max_completion_length`` dropped). Pinned:
    ``loss_type=["apo_down"]``."""
    return _dpo("apo_down", dict(loss_type="apo_down", **_APO), overrides, strict)


@_preset(
    title="Length Desensitization in Direct Preference Optimization (LD-DPO)",
    url=_arxiv("2409.06411"),
    section="α=0.5, the suggested value",
    config="DPOConfig",
)
def ld_dpo(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """LD-DPO (arXiv 2409.06411): ``ld_alpha=0.5``, sigmoid loss. Pinned: ``0 <= ld_alpha <= 1``
    (TRL accepts any value silently) and ``loss_type=["sigmoid"]``."""
    pin = ("ld_alpha", lambda c: c.ld_alpha is not None and 0.0 <= c.ld_alpha <= 1.0, "must be in [0, 1]")
    return _dpo("ld_dpo", dict(loss_type="sigmoid", ld_alpha=0.5), overrides, strict, pin)


@_preset(
    title="Enhancing the Reasoning Ability of Multimodal Large Language Models via Mixed Preference Optimization",
    url=_arxiv("2411.10442"),
    section="Sec. 3.2 (L = w_p L_p + w_q L_q + w_g L_g); Sec. 7 (weights 0.8/0.2/1.0, lr 5e-6)",
    config="DPOConfig",
)
def mpo(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """MPO (arXiv 2411.10442): ``loss_type=["sigmoid", "bco_pair", "sft"]`` (Sec. 3.2),
    ``loss_weights=[0.8, 0.2, 1.0]``, ``learning_rate=5e-6`` (Sec. 7). Pinned: the three losses."""
    paper = dict(loss_type=["sigmoid", "bco_pair", "sft"], loss_weights=[0.8, 0.2, 1.0], learning_rate=5e-6)
    return _dpo("mpo", paper, overrides, strict)


@_preset(
    title="TÜLU 3: Pushing Frontiers in Open Language Model Post-Training (length-normalised DPO)",
    url=_arxiv("2411.15124"),
    section="length-normalised DPO",
    config="DPOConfig",
)
def tulu3(*, strict: bool = True, **overrides: Any) -> DPOConfig:
    """Tülu 3's length-normalised DPO (arXiv 2411.15124): ``loss_type="sigmoid_norm"``. Pinned: that."""
    return _dpo("tulu3", dict(loss_type="sigmoid_norm"), overrides, strict)


@_preset(
    title="KTO: Model Alignment as Prospect Theoretic Optimization",
    url=_arxiv("2402.01306"),
    section="TRL's KTOConfig defaults (the page passes KTOConfig())",
    config="KTOConfig",
)
def kto(*, strict: bool = True, **overrides: Any) -> KTOConfig:
    """KTO (arXiv 2402.01306): ``KTOConfig()`` with its defaults (``loss_type="kto"``, ``beta=0.1``).
    Pinned: ``loss_type="kto"``."""
    return _build("kto", "KTOConfig", {}, overrides, strict, (_eq("loss_type", "kto", "the KTO loss"),))


# ---------------------------------------------------------------------------------------------
# Supervised fine-tuning (SFTConfig)

_BEMA_PARAMS = frozenset(
    ("update_freq", "ema_power", "bias_power", "lag", "update_after", "multiplier", "min_ema_multiplier", "device")
)


@_preset(
    title="EMA Without the Lag: Bias-Corrected Iterate Averaging Schemes (BEMA)",
    url=_arxiv("2508.00180"),
    section="BEMA with TRL's BEMACallback defaults (φ=400, κ=0.5, η=0.2, ρ=10)",
    config="SFTConfig",
    returns="recipe",
    trainer="trl.SFTTrainer",
)
def bema(*, bema_kwargs: Mapping[str, Any] | None = None, strict: bool = True, **overrides: Any) -> Recipe:
    """BEMA for SFT (arXiv 2508.00180): ``SFTConfig`` (TRL defaults + overrides) and
    ``callbacks=(trl.BEMACallback(**bema_kwargs),)``, all callback defaults as on the page.

    ``bema_kwargs`` must name ``BEMACallback`` parameters (``update_freq``, ``ema_power``,
    ``bias_power``, ``lag``, ``update_after``, ``multiplier``, ``min_ema_multiplier``, ``device``).
    The callback saves the averaged model to ``{output_dir}/bema`` at the end of training. No pins.
    """
    from trl import BEMACallback

    kwargs = dict(bema_kwargs or {})
    params = frozenset(inspect.signature(BEMACallback.__init__).parameters) - {"self"}
    for key in kwargs:
        if key not in params:
            close = difflib.get_close_matches(key, sorted(params), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownFieldError(f"is not a BEMACallback parameter{hint}", key)
    config = _build("bema", "SFTConfig", {}, overrides, strict)
    return Recipe(config, callbacks=(BEMACallback(**kwargs),), trainer_cls="trl.SFTTrainer")


@_preset(
    title="On the Generalization of SFT: A Reinforcement Learning Perspective with Reward Rectification (DFT)",
    url=_arxiv("2508.05629"),
    section="Sec. 4.1 (lr 5e-5, max length 2048, batch 256 = 8 x 32)",
    config="SFTConfig",
)
def dft(*, strict: bool = True, **overrides: Any) -> SFTConfig:
    """Dynamic Fine-Tuning (arXiv 2508.05629): ``loss_type="dft"``, ``learning_rate=5e-5``,
    ``max_length=2048``, ``per_device_train_batch_size=8``, ``gradient_accumulation_steps=32``
    (batch 256, Sec. 4.1). Pinned: ``loss_type="dft"``."""
    paper = dict(
        loss_type="dft",
        learning_rate=5e-5,
        max_length=2048,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=32,
    )
    return _build("dft", "SFTConfig", paper, overrides, strict, (_eq("loss_type", "dft", "the DFT loss"),))


@_preset(
    title="Fewer Truncations Improve Language Modeling",
    url=_arxiv("2404.10830"),
    section="best-fit packing of documents split only when longer than the context",
    config="SFTConfig",
)
def fewer_truncations(*, strict: bool = True, **overrides: Any) -> SFTConfig:
    """Best-fit packing (arXiv 2404.10830): ``packing=True``, ``packing_strategy="bfd_split"``,
    ``max_length=4096``. Pinned: packing on with ``"bfd_split"``."""
    paper = dict(packing=True, packing_strategy="bfd_split", max_length=4096)
    pins = (
        _eq("packing", True, "packing is the method"),
        _eq("packing_strategy", "bfd_split", "best-fit decreasing with splitting of over-long documents"),
    )
    return _build("fewer_truncations", "SFTConfig", paper, overrides, strict, pins)


@_preset(
    title="Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer (T5 packing)",
    url=_arxiv("1910.10683"),
    section="Sec. 3.5.2 (packed sequences of 512 tokens)",
    config="SFTConfig",
)
def t5_packing(*, strict: bool = True, **overrides: Any) -> SFTConfig:
    """T5's packing (arXiv 1910.10683, Sec. 3.5.2): ``packing=True``, ``max_length=512``. Pinned:
    ``packing=True``."""
    pins = (_eq("packing", True, "packing is the method"),)
    return _build("t5_packing", "SFTConfig", dict(packing=True, max_length=512), overrides, strict, pins)


# ---------------------------------------------------------------------------------------------
# RLOO, ORPO, CPO family, TPO, reward modelling, distillation


@_preset(
    title="Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human Feedback in LLMs (RLOO)",
    url=_arxiv("2402.14740"),
    section="Sec. C, Training Detail (batch 512, 2 steps per generation, β=0.03, lr 1e-6; k in {2, 4})",
    config="RLOOConfig",
)
def rloo(*, strict: bool = True, **overrides: Any) -> RLOOConfig:
    """RLOO (arXiv 2402.14740, Sec. C): ``per_device_train_batch_size=512``, ``steps_per_generation=2``,
    ``beta=0.03``, ``num_generations=2``, ``learning_rate=1e-6``. (The 2025-09 copy of the page
    misses commas and is a SyntaxError as written.) Pinned: ``num_generations >= 2`` (leave-one-out
    needs two samples)."""
    paper = dict(
        per_device_train_batch_size=512, steps_per_generation=2, beta=0.03, num_generations=2, learning_rate=1e-6
    )
    pins = (("num_generations", lambda c: c.num_generations >= 2, "must be >= 2 for a leave-one-out baseline"),)
    return _build("rloo", "RLOOConfig", paper, overrides, strict, pins)


@_preset(
    title="REINFORCE++: A Simple and Efficient Approach for Aligning Large Language Models",
    url=_arxiv("2501.03262"),
    section="global advantage normalisation",
    config="RLOOConfig",
)
def reinforce_pp(*, strict: bool = True, **overrides: Any) -> RLOOConfig:
    """REINFORCE++ (arXiv 2501.03262): ``RLOOConfig(normalize_advantages=True)``. Pinned: that."""
    pins = (_eq("normalize_advantages", True, "global advantage normalisation is the method"),)
    return _build("reinforce_pp", "RLOOConfig", dict(normalize_advantages=True), overrides, strict, pins)


@_preset(
    title="ORPO: Monolithic Preference Optimization without Reference Model",
    url=_arxiv("2403.07691"),
    section="Table 7 (λ=0.1, Mistral-ORPO-β); App. C (lr 5e-6, inverse sqrt, 5 epochs, 200 warm-up, batch 8)",
    config="ORPOConfig",
)
def orpo(*, strict: bool = True, **overrides: Any) -> ORPOConfig:
    """ORPO (arXiv 2403.07691) with ``trl.experimental.orpo.ORPOConfig``: ``beta=0.1`` (λ),
    ``learning_rate=5e-6``, ``lr_scheduler_type="inverse_sqrt"``, ``num_train_epochs=5``,
    ``warmup_steps=200``, ``per_device_train_batch_size=8``. No pinned fields."""
    paper = dict(
        beta=0.1,
        learning_rate=5e-6,
        lr_scheduler_type="inverse_sqrt",
        num_train_epochs=5,
        warmup_steps=200,
        per_device_train_batch_size=8,
    )
    return _build("orpo", "ORPOConfig", paper, overrides, strict)


@_preset(
    title="Contrastive Preference Optimization: Pushing the Boundaries of LLM Performance in Machine Translation",
    url=_arxiv("2401.08417"),
    section="Sec. 3 (loss, NLL weight 1); Sec. 4.2 (β=0.1, 1 epoch, warm-up 0.01, length 512); official code "
    "(lr 1e-4, inverse sqrt)",
    config="CPOConfig",
)
def cpo(*, strict: bool = True, **overrides: Any) -> CPOConfig:
    """CPO (arXiv 2401.08417) with ``trl.experimental.cpo.CPOConfig``: ``loss_type="sigmoid"``,
    ``cpo_alpha=1.0``, ``beta=0.1``, ``learning_rate=1e-4``, ``lr_scheduler_type="inverse_sqrt"``,
    ``num_train_epochs=1``, ``warmup_steps=0.01``, ``max_length=512``.

    Correction: the page passes ``warmup_ratio=0.01``; transformers 5.23 has no ``warmup_ratio``
    (``TypeError``) and reads a float ``warmup_steps`` in [0, 1) as a ratio, so the preset passes
    ``warmup_steps=0.01``. Pinned: ``loss_type="sigmoid"`` and ``cpo_alpha > 0`` (the NLL term is
    what makes it CPO rather than reference-free DPO).
    """
    paper = dict(
        loss_type="sigmoid",
        cpo_alpha=1.0,
        beta=0.1,
        learning_rate=1e-4,
        lr_scheduler_type="inverse_sqrt",
        num_train_epochs=1,
        warmup_steps=0.01,
        max_length=512,
    )
    pins = (
        _eq("loss_type", "sigmoid", "CPO's preference term"),
        ("cpo_alpha", lambda c: c.cpo_alpha > 0, "must be > 0: the NLL regulariser is part of CPO"),
    )
    return _build("cpo", "CPOConfig", paper, overrides, strict, pins)


@_preset(
    title="SimPO: Simple Preference Optimization with a Reference-Free Reward",
    url=_arxiv("2405.14734"),
    section="App. B (β=2.5, γ/β=0.55, lr 1e-6, 1 epoch)",
    config="CPOConfig",
)
def simpo(*, strict: bool = True, **overrides: Any) -> CPOConfig:
    """SimPO (arXiv 2405.14734) with ``CPOConfig``: ``loss_type="simpo"``, ``cpo_alpha=0.0``,
    ``beta=2.5``, ``simpo_gamma=1.375`` (γ/β = 0.55), ``learning_rate=1e-6``, ``num_train_epochs=1``
    (App. B). Pinned: ``loss_type="simpo"``, ``alpha=0`` (non-zero alpha is AlphaPO)."""
    paper = dict(loss_type="simpo", cpo_alpha=0.0, beta=2.5, simpo_gamma=1.375, learning_rate=1e-6, num_train_epochs=1)
    pins = (_eq("loss_type", "simpo", "the SimPO loss"), _eq("alpha", 0.0, "alpha != 0 is AlphaPO"))
    return _build("simpo", "CPOConfig", paper, overrides, strict, pins)


@_preset(
    title="AlphaPO -- Reward shape matters for LLM alignment",
    url=_arxiv("2501.03884"),
    section="Table 3 (Mistral-Instruct: α=0.25, β=2.5, γ=0.1, lr 7e-7)",
    config="CPOConfig",
)
def alphapo(*, strict: bool = True, **overrides: Any) -> CPOConfig:
    """AlphaPO (arXiv 2501.03884) with ``trl.experimental.cpo.CPOConfig``: ``loss_type="alphapo"``,
    ``alpha=0.25``, ``beta=2.5``, ``simpo_gamma=0.1``, ``learning_rate=7e-7`` (Table 3,
    Mistral-Instruct).

    Corrections: the older index imports ``from trl import CPOConfig``, which fails on 1.16 (it is
    ``trl.experimental.cpo``), and its snippet misses a closing parenthesis. On 1.16 ``CPOConfig``
    turns ``loss_type="alphapo"`` into ``"simpo"`` and forces ``cpo_alpha=0.0``, so the returned
    config reads ``loss_type="simpo"``. Pinned: ``loss_type="simpo"`` after that rewrite, and
    ``alpha != 0`` (alpha=0 is plain SimPO).
    """
    paper = dict(loss_type="alphapo", alpha=0.25, beta=2.5, simpo_gamma=0.1, learning_rate=7e-7)
    pins = (
        _eq("loss_type", "simpo", "AlphaPO is TRL's simpo loss with alpha != 0"),
        ("alpha", lambda c: c.alpha != 0, "must be non-zero: alpha shapes the reward"),
    )
    return _build("alphapo", "CPOConfig", paper, overrides, strict, pins)


@_preset(
    title="Triple Preference Optimization: Achieving Better Alignment using a Single Step Optimization (TPO)",
    url=_arxiv("2405.16681"),
    section="Sec. 3 (loss, NLL on the gold response); Table 6 (β=0.01, lr 5e-7)",
    config="TPOConfig",
)
def tpo(*, strict: bool = True, **overrides: Any) -> TPOConfig:
    """TPO (arXiv 2405.16681) with ``trl.experimental.tpo.TPOConfig``: ``loss_type="sigmoid"``,
    ``tpo_alpha=1.0``, ``beta=0.01``, ``learning_rate=5e-7``, ``num_train_epochs=1``,
    ``max_length=1024``. Pinned: ``loss_type="sigmoid"``."""
    paper = dict(loss_type="sigmoid", tpo_alpha=1.0, beta=0.01, learning_rate=5e-7, num_train_epochs=1, max_length=1024)
    return _build("tpo", "TPOConfig", paper, overrides, strict, (_eq("loss_type", "sigmoid", "the TPO loss"),))


@_preset(
    title="Triple Preference Optimization (TPO-L, length-normalised)",
    url=_arxiv("2405.16681"),
    section="Sec. 3 (TPO-L); Table 6 (Llama-3-Base 5K: γ=0.5, β=0.01, lr 5e-7)",
    config="TPOConfig",
)
def tpo_l(*, strict: bool = True, **overrides: Any) -> TPOConfig:
    """TPO-L (arXiv 2405.16681): ``loss_type="tpo-l"``, ``tpo_alpha=1.0``, ``beta=0.01``,
    ``tpo_l_gamma=0.5``, ``learning_rate=5e-7``, ``num_train_epochs=1``. Pinned: ``loss_type="tpo-l"``."""
    paper = dict(loss_type="tpo-l", tpo_alpha=1.0, beta=0.01, tpo_l_gamma=0.5, learning_rate=5e-7, num_train_epochs=1)
    return _build("tpo_l", "TPOConfig", paper, overrides, strict, (_eq("loss_type", "tpo-l", "the TPO-L loss"),))


@_preset(
    title="Helping or Herding? Reward Model Ensembles Mitigate but do not Eliminate Reward Hacking",
    url=_arxiv("2312.09244"),
    section="reward centring auxiliary loss, η=0.01",
    config="RewardConfig",
)
def reward_centering(*, strict: bool = True, **overrides: Any) -> RewardConfig:
    """Reward centring (arXiv 2312.09244): ``RewardConfig(center_rewards_coefficient=0.01)`` (η).
    Pinned: the coefficient set."""
    pins = (("center_rewards_coefficient", lambda c: c.center_rewards_coefficient is not None, "must be set"),)
    return _build("reward_centering", "RewardConfig", dict(center_rewards_coefficient=0.01), overrides, strict, pins)


@_preset(
    title="On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes (GKD)",
    url=_arxiv("2306.13649"),
    section="Sec. 3 (λ=0.5, β=0.5); App. A (T=1); Table A.1 (40k steps, lr 3e-4, batch 32, 2000 warm-up, 64 tokens)",
    config="GKDConfig",
)
def gkd(*, strict: bool = True, **overrides: Any) -> GKDConfig:
    """GKD (arXiv 2306.13649) with ``trl.experimental.gkd.GKDConfig``: ``lmbda=0.5``, ``beta=0.5``,
    ``temperature=1.0``, ``max_steps=40000``, ``learning_rate=3e-4``, ``per_device_train_batch_size=32``,
    ``warmup_steps=2000``, ``max_new_tokens=64``. Pass ``teacher_model_name_or_path`` (or a teacher
    model to the trainer). No pinned fields."""
    paper = dict(
        lmbda=0.5,
        beta=0.5,
        temperature=1.0,
        max_steps=40000,
        learning_rate=3e-4,
        per_device_train_batch_size=32,
        warmup_steps=2000,
        max_new_tokens=64,
    )
    return _build("gkd", "GKDConfig", paper, overrides, strict)


@_preset(
    title="On-Policy Distillation (Thinking Machines blog)",
    url="https://thinkingmachines.ai/blog/on-policy-distillation/",
    section="student rollouts only, reverse KL",
    config="GKDConfig",
)
def on_policy_distillation(*, strict: bool = True, **overrides: Any) -> GKDConfig:
    """On-policy distillation (https://thinkingmachines.ai/blog/on-policy-distillation/) with
    ``GKDConfig``: ``lmbda=1.0`` (student rollouts for every batch),
    ``beta=1.0`` (reverse KL). Pass ``teacher_model_name_or_path``.

    Correction: the page's first variant uses ``trl.experimental.distillation.DistillationConfig``,
    which in 1.16 is a deprecated shim over ``trl.DistillationConfig`` without ``lmbda``
    (``TypeError``); the page's ``GKDConfig`` variant is used. Pinned: ``lmbda=1.0``, ``beta=1.0``.
    """
    pins = (
        _eq("lmbda", 1.0, "fully on-policy: the student generates every batch"),
        _eq("beta", 1.0, "reverse KL"),
    )
    return _build("on_policy_distillation", "GKDConfig", dict(lmbda=1.0, beta=1.0), overrides, strict, pins)


@_preset(
    title="On the Position Bias of On-Policy Distillation (IW-OPD)",
    url=_arxiv("2606.22600"),
    section="Algorithm 1 and App. C.3 (γ=0.5); Table 6 (training and rollout settings)",
    config="IWOPDConfig",
)
def iw_opd(*, strict: bool = True, **overrides: Any) -> IWOPDConfig:
    """IW-OPD (arXiv 2606.22600) with ``trl.experimental.iw_opd.IWOPDConfig``:
    ``distillation_objective="iw_opd"``, ``iw_opd_gamma=0.5`` (Algorithm 1, App. C.3),
    ``lmbda=1.0``; from Table 6: ``learning_rate=1e-5``, ``per_device_train_batch_size=1``,
    ``gradient_accumulation_steps=32``, ``num_generations=1``, ``temperature=1.0``, ``top_p=1.0``,
    ``max_prompt_length=2048``, ``max_completion_length=16384``, warm-up 0, ``use_vllm=True``,
    ``vllm_sync_frequency=1``, ``save_steps=10``, ``eval_steps=10``.

    Corrections: the page passes ``warmup_ratio=0.0``, which transformers 5.23 does not have
    (``TypeError``): ``warmup_steps=0`` is the same thing. And as written the config raises
    ``ValueError`` on 1.16: ``max_completion_length`` (16384) must be below ``max_length``
    (default 1024); the preset sets ``max_length=18432`` (2048 prompt + 16384 completion tokens,
    both from Table 6). Pinned: ``distillation_objective="iw_opd"``.
    """
    paper = dict(
        distillation_objective="iw_opd",
        iw_opd_gamma=0.5,
        lmbda=1.0,
        learning_rate=1e-5,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=32,
        num_generations=1,
        temperature=1.0,
        top_p=1.0,
        max_prompt_length=2048,
        max_completion_length=16384,
        max_length=2048 + 16384,  # 1.16 fix, see docstring
        warmup_steps=0,
        use_vllm=True,
        vllm_sync_frequency=1,
        save_steps=10,
        eval_steps=10,
    )
    pins = (_eq("distillation_objective", "iw_opd", "the importance-weighted objective"),)
    return _build("iw_opd", "IWOPDConfig", paper, overrides, strict, pins)


@_preset(
    title="Reinforcement Learning via Self-Distillation (SDPO)",
    url=_arxiv("2601.20802"),
    section="top-K logit distillation from successful rollouts with an EMA teacher, as in TRL's paper index",
    config="SDPOConfig",
)
def sdpo(*, strict: bool = True, **overrides: Any) -> SDPOConfig:
    """SDPO (arXiv 2601.20802) with ``trl.experimental.sdpo.SDPOConfig``: ``distillation_alpha=0.5``
    (Jensen-Shannon), ``distillation_mode="topk_logits"``, ``distillation_topk=100``,
    ``distillation_is_clip=2.0``, ``distillation_weight=1.0`` (pure distillation),
    ``use_successful_as_teacher=True``, ``teacher_model_kind="ema"``, ``teacher_update_rate=0.05``,
    ``include_environment_feedback=True`` (needs the dataset's ``privileged_context``). No pins."""
    paper = dict(
        distillation_alpha=0.5,
        distillation_mode="topk_logits",
        distillation_topk=100,
        distillation_is_clip=2.0,
        distillation_weight=1.0,
        use_successful_as_teacher=True,
        teacher_model_kind="ema",
        teacher_update_rate=0.05,
        include_environment_feedback=True,
    )
    return _build("sdpo", "SDPOConfig", paper, overrides, strict)


@_preset(
    title="Self-Distillation Enables Continual Learning (SDFT)",
    url=_arxiv("2601.19897"),
    section="top-K logit self-distillation, as in TRL's paper index",
    config="SDFTConfig",
)
def sdft(*, strict: bool = True, **overrides: Any) -> SDFTConfig:
    """SDFT (arXiv 2601.19897) with ``trl.experimental.sdft.SDFTConfig``: ``distillation_alpha=0.5``,
    ``distillation_mode="topk_logits"``, ``distillation_topk=5``, ``max_completion_length=64``.
    No pins."""
    paper = dict(distillation_alpha=0.5, distillation_mode="topk_logits", distillation_topk=5, max_completion_length=64)
    return _build("sdft", "SDFTConfig", paper, overrides, strict)


# ---------------------------------------------------------------------------------------------
# Discovery


def available() -> tuple[PresetInfo, ...]:
    """Every preset, in the paper index's order: name, paper title, link, section, TRL config class,
    whether it returns a config or a :class:`Recipe`, the trainer to use, and whether it needs
    ``fastalign.trl.FastGRPOTrainer``.

    >>> from fastalign.trl import presets
    >>> [p.name for p in presets.available() if p.needs_fast_trainer]
    ['gspo_token', 'dapo', 'gfpo']
    """
    return tuple(_INFO.values())


def get(name: str) -> Callable[..., Any]:
    """The preset function called ``name`` (see :func:`available`)."""
    if name not in _INFO:
        close = difflib.get_close_matches(str(name), sorted(_INFO), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InvalidArgumentError(f"no preset called {name!r}{hint}", "name")
    return _INFO[name].function


# ``presets.list()`` as the issue names it. Defined last: inside this module the builtin ``list``
# is never called after this point.
list = available  # noqa: A001
