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

# every preset function, re-exported (presets.gspo(...), presets.get("gspo")); the families are
# imported in the paper index's order, which is the order available() lists them in
# ruff: noqa: I001
from ._registry import FAST_DPO_TRAINER, FAST_GRPO_TRAINER, PresetInfo, Recipe, UnknownFieldError, available, get  # noqa: F401
from .grpo import (  # noqa: F401
    deepseekmath_grpo,
    deepseek_r1,
    gspo,
    gspo_token,
    gmpo,
    dapo,
    long_cot_rewards,
    intellect2,
    skywork_or1,
    high_entropy_tokens,
    dr_grpo,
    lite_ppo,
    tis,
    mis,
    cispo,
    two_grpo,
    sapo,
    deepseek_v32_kl,
    deepseek_v32_off_policy_mask,
    gdpo,
    luspo,
    vespo,
    gfpo,
    a2po,
)
from .dpo import (  # noqa: F401
    dpo,
    slic_hf,
    rso,
    f_dpo,
    ipo,
    exo,
    nca,
    robust_dpo,
    bco,
    tr_dpo,
    iterative_rpo,
    sppo,
    rpo,
    aot,
    aot_unpaired,
    discopop,
    wpo,
    apo_zero,
    apo_down,
    ld_dpo,
    mpo,
    tulu3,
    kto,
)
from .sft import (  # noqa: F401
    bema,
    dft,
    fewer_truncations,
    t5_packing,
)
from .rloo import (  # noqa: F401
    rloo,
    reinforce_pp,
)
from .cpo import (  # noqa: F401
    orpo,
    cpo,
    simpo,
    alphapo,
    tpo,
    tpo_l,
)
from .reward import (  # noqa: F401
    reward_centering,
)
from .distillation import (  # noqa: F401
    gkd,
    on_policy_distillation,
    iw_opd,
    sdpo,
    sdft,
)

__all__ = [
    "FAST_GRPO_TRAINER",
    "PresetInfo",
    "Recipe",
    "UnknownFieldError",
    "available",
    "get",
]  # ``list`` (the alias of ``available``) is left out so that ``import *`` cannot shadow the builtin

# ``presets.list()`` as the issue names it. Defined last: inside this module the builtin ``list``
# is never called after this point.
list = available  # noqa: A001
