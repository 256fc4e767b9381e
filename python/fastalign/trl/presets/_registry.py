"""What every preset shares: the result types, building a TRL config from a paper's values and
the user's overrides (unknown fields refused, the paper's defining fields pinned), and the
registry :func:`available` and :func:`get` read.

A preset that takes nothing but ``strict`` and config fields is data: :func:`paper_preset` turns
its paper's values, pins and docstring into the function users call. Presets with parameters of
their own are ordinary functions registered with :func:`_preset`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import types
from collections.abc import Callable, Mapping
from typing import Any

from ...errors import InvalidArgumentError, InvalidTypeError

PUBLIC_MODULE = "fastalign.trl.presets"

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
        fn.__module__ = PUBLIC_MODULE  # documented, pickled and listed under fastalign.trl.presets
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
    from ...rewards import soft_overlong

    return soft_overlong(max_completion_length, soft_punish_cache)


def define(
    fn: Callable[..., Any], name: str, doc: str, *, title: str, url: str, section: str, config: str
) -> Callable[..., Any]:
    """Name, document and register a preset made from data (see :func:`paper_preset`)."""
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    fn.__annotations__ = {"strict": "bool", "overrides": "Any", "return": config}
    return _preset(title=title, url=url, section=section, config=config)(fn)


def paper_preset(
    *,
    name: str,
    title: str,
    url: str,
    section: str,
    config: str,
    values: Mapping[str, Any],
    doc: str,
    pins: tuple[Pin, ...] = (),
) -> Callable[..., Any]:
    """The preset ``name(*, strict=True, **overrides)``: ``config`` built from the paper's
    ``values`` and the overrides, with ``pins`` checked unless ``strict=False``."""
    values = types.MappingProxyType(dict(values))

    def preset(*, strict: bool = True, **overrides: Any) -> Any:
        return _build(name, config, values, overrides, strict, pins)

    return define(preset, name, doc, title=title, url=url, section=section, config=config)


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
