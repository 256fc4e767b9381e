"""Direct preference optimisation and its variants (``DPOConfig``), and KTO."""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any

from ._registry import FAST_DPO_TRAINER, Pin, Recipe, _arxiv, _build, _eq, _one_of, define, paper_preset

__all__ = [
    "dpo",
    "slic_hf",
    "rso",
    "f_dpo",
    "ipo",
    "exo",
    "nca",
    "robust_dpo",
    "bco",
    "tr_dpo",
    "iterative_rpo",
    "sppo",
    "rpo",
    "aot",
    "aot_unpaired",
    "discopop",
    "wpo",
    "apo_zero",
    "apo_down",
    "ld_dpo",
    "mpo",
    "tulu3",
    "kto",
]


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
    return Recipe(
        config,
        trainer_cls=FAST_DPO_TRAINER,
        notes="padding_free=True: fastalign.trl.FastDPOTrainer forwards packed real tokens.",
    )


def dpo_preset(
    *, name: str, title: str, url: str, section: str, values: Mapping[str, Any], doc: str, pins: tuple[Pin, ...] = ()
) -> Callable[..., Any]:
    """:func:`~._registry.paper_preset` for ``DPOConfig``, through :func:`_dpo` (the paper's loss
    pinned; a Recipe naming FastDPOTrainer with ``padding_free=True``)."""
    values = types.MappingProxyType(dict(values))

    def preset(*, strict: bool = True, **overrides: Any) -> Any:
        return _dpo(name, values, overrides, strict, *pins)

    return define(preset, name, doc, title=title, url=url, section=section, config="DPOConfig")


dpo = dpo_preset(
    name="dpo",
    title="Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
    url=_arxiv("2305.18290"),
    section="App. B (loss, batch 64, lr 1e-6, β=0.1)",
    values=dict(loss_type="sigmoid", per_device_train_batch_size=64, learning_rate=1e-6, beta=0.1),
    doc="""DPO (arXiv 2305.18290, App. B): ``loss_type="sigmoid"``, ``per_device_train_batch_size=64``,
    ``learning_rate=1e-6``, ``beta=0.1``. Pinned: ``loss_type=["sigmoid"]``.""",
)


slic_hf = dpo_preset(
    name="slic_hf",
    title="SLiC-HF: Sequence Likelihood Calibration with Human Feedback",
    url=_arxiv("2305.10425"),
    section="Sec. 2 (hinge loss); Sec. 3.2 (batch 512, lr 1e-4)",
    values=dict(loss_type="hinge", per_device_train_batch_size=512, learning_rate=1e-4),
    doc="""SLiC-HF (arXiv 2305.10425): ``loss_type="hinge"`` (Sec. 2), ``per_device_train_batch_size=512``,
    ``learning_rate=1e-4`` (Sec. 3.2); β stays TRL's 0.1. Pinned: ``loss_type=["hinge"]``.""",
)


rso = dpo_preset(
    name="rso",
    title="Statistical Rejection Sampling Improves Preference Optimization (RSO)",
    url=_arxiv("2309.06657"),
    section="hinge loss with γ=0.05 (after filtering the data with RSO)",
    values=dict(loss_type="hinge", beta=0.05),
    doc="""RSO (arXiv 2309.06657): ``loss_type="hinge"``, ``beta=0.05`` (γ). The rejection sampling of
    the dataset is yours to do. Pinned: ``loss_type=["hinge"]``.""",
)


f_dpo = dpo_preset(
    name="f_dpo",
    title="Beyond Reverse KL: Generalizing Direct Preference Optimization with Diverse Divergence Constraints",
    url=_arxiv("2309.16240"),
    section="f-DPO with Jensen-Shannon divergence",
    values=dict(loss_type="sigmoid", beta=0.1, f_divergence_type="js_divergence", f_alpha_divergence_coef=0.5),
    pins=(
        _one_of("f_divergence_type", ("forward_kl", "js_divergence", "alpha_divergence"), "reverse_kl is plain DPO"),
    ),
    doc="""f-DPO (arXiv 2309.16240): ``loss_type="sigmoid"``, ``beta=0.1``,
    ``f_divergence_type="js_divergence"`` (or forward_kl / alpha_divergence),
    ``f_alpha_divergence_coef=0.5``. Pinned: the sigmoid loss and a non-reverse-KL divergence
    (reverse KL is plain DPO).""",
)


ipo = dpo_preset(
    name="ipo",
    title="A General Theoretical Paradigm to Understand Learning from Human Preferences (IPO)",
    url=_arxiv("2310.12036"),
    section="Sec. 5.1 (IPO loss); Sec. C.1 of the PMLR version (batch 90, lr 1e-2)",
    values=dict(loss_type="ipo", per_device_train_batch_size=90, learning_rate=1e-2),
    doc="""IPO (arXiv 2310.12036): ``loss_type="ipo"`` (Sec. 5.1), ``per_device_train_batch_size=90``,
    ``learning_rate=1e-2`` (Sec. C.1, published version); β (τ) stays TRL's 0.1. Pinned:
    ``loss_type=["ipo"]``.""",
)


exo = dpo_preset(
    name="exo",
    title="Towards Efficient and Exact Optimization of Language Model Alignment (EXO)",
    url=_arxiv("2402.00856"),
    section="Sec. 3.2 (EXO loss); Sec. B (batch 64, lr 1e-6, β_r=0.1); ε=1e-3 (the paper's value, per TRL)",
    values=dict(
        loss_type="exo_pair", per_device_train_batch_size=64, learning_rate=1e-6, beta=0.1, label_smoothing=1e-3
    ),
    pins=(
        (
            "label_smoothing",
            lambda c: 0.0 < c.label_smoothing < 1.0,
            "must be in (0, 1): EXO's ε (1e-3 in the paper)",
        ),
    ),
    doc="""EXO (arXiv 2402.00856): ``loss_type="exo_pair"`` (Sec. 3.2), ``per_device_train_batch_size=64``,
    ``learning_rate=1e-6``, ``beta=0.1`` (Sec. B), ``label_smoothing=1e-3``.

    Correction: both index versions leave ``label_smoothing`` at 0.0, and ``DPOTrainer`` 1.16
    raises ``ValueError`` at init for ``exo_pair`` with ε=0 ("The EXO paper recommends a value of
    1e-3"); the preset sets 1e-3. (The older index also linked the SLiC-HF paper, 2305.10425, for
    EXO; the paper is 2402.00856.) Pinned: ``loss_type=["exo_pair"]``, ``0 < label_smoothing < 1``.
    """,
)


nca = dpo_preset(
    name="nca",
    title="Noise Contrastive Alignment of Language Models with Explicit Rewards (NCA)",
    url=_arxiv("2402.05369"),
    section="Sec. C (batch 32, lr 5e-6, α=β=0.01)",
    values=dict(loss_type="nca_pair", per_device_train_batch_size=32, learning_rate=5e-6, beta=0.01),
    doc="""NCA (arXiv 2402.05369): ``loss_type="nca_pair"``, ``per_device_train_batch_size=32``,
    ``learning_rate=5e-6``, ``beta=0.01`` (Sec. C). Pinned: ``loss_type=["nca_pair"]``.""",
)


robust_dpo = dpo_preset(
    name="robust_dpo",
    title="Provably Robust DPO: Aligning Language Models with Noisy Feedback",
    url=_arxiv("2403.00409"),
    section="Sec. B (batch 16, lr 1e-3, β=0.1, max length 512); Sec. 6 (ε=0.1)",
    values=dict(
        loss_type="robust",
        per_device_train_batch_size=16,
        learning_rate=1e-3,
        beta=0.1,
        max_length=512,
        label_smoothing=0.1,
    ),
    pins=(("label_smoothing", lambda c: 0.0 <= c.label_smoothing < 0.5, "must be in [0, 0.5): the noise rate ε"),),
    doc="""Robust DPO (arXiv 2403.00409): ``loss_type="robust"``, ``per_device_train_batch_size=16``,
    ``learning_rate=1e-3``, ``beta=0.1``, ``max_length=512`` (Sec. B), ``label_smoothing=0.1``
    (ε, Sec. 6).

    Correction: the older index passed ``max_prompt_length=128`` (``TypeError`` on 1.16: dropped;
    ``max_length=512`` still bounds prompt+completion) and ``beta=0.01``; the current page and the
    preset use 0.1. Pinned: ``loss_type=["robust"]`` and ``0 <= label_smoothing < 0.5`` (TRL only
    warns outside it; at 0.5 the loss divides by zero).
    """,
)


bco = dpo_preset(
    name="bco",
    title="Binary Classifier Optimization for Large Language Model Alignment (paired BCO)",
    url=_arxiv("2404.04656"),
    section="Sec. 4 (loss); Sec. C (batch 128, lr 5e-7, β=0.01)",
    values=dict(loss_type="bco_pair", per_device_train_batch_size=128, learning_rate=5e-7, beta=0.01),
    doc="""Paired BCO (arXiv 2404.04656): ``loss_type="bco_pair"``, ``per_device_train_batch_size=128``,
    ``learning_rate=5e-7``, ``beta=0.01`` (Sec. C).

    Corrections: the older index passed ``max_prompt_length=1536, max_completion_length=512``,
    neither a ``DPOConfig`` 1.16 field (``TypeError``): dropped. Note TRL 1.16's ``bco_pair`` has
    no running-mean reward shift, and the unpaired ``BCOTrainer`` the page points to does not
    exist in 1.16. Pinned: ``loss_type=["bco_pair"]``.
    """,
)


tr_dpo = dpo_preset(
    name="tr_dpo",
    title="Learn Your Reference Model for Real Good Alignment (TR-DPO)",
    url=_arxiv("2404.09656"),
    section="Sec. 3 (reference syncing); Table 1 (α=0.6, τ=512, β=0.05); Table 2 (training)",
    values=dict(
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
    ),
    pins=(_eq("sync_ref_model", True, "reference updates are the method"),),
    doc="""TR-DPO (arXiv 2404.09656): ``sync_ref_model=True``, ``ref_model_mixup_alpha=0.6``,
    ``ref_model_sync_steps=512``, ``beta=0.05`` (Table 1), ``learning_rate=1e-6``,
    ``num_train_epochs=1``, ``max_length=1024``, ``max_grad_norm=2``, ``warmup_steps=100``
    (Table 2); sigmoid loss. Not with PEFT or precomputed reference log-probs (TRL raises).
    Pinned: ``sync_ref_model=True``, ``loss_type=["sigmoid"]``.""",
)


iterative_rpo = dpo_preset(
    name="iterative_rpo",
    title="Iterative Reasoning Preference Optimization",
    url=_arxiv("2404.19733"),
    section="DPO + NLL on the chosen answer, weight α=1",
    values=dict(loss_type=["sigmoid", "sft"], loss_weights=[1.0, 1.0]),
    doc="""Iterative RPO (arXiv 2404.19733): ``loss_type=["sigmoid", "sft"]``, ``loss_weights=[1.0, 1.0]``
    (α=1). The iterate-regenerate loop is yours. Pinned: the two losses.""",
)


sppo = dpo_preset(
    name="sppo",
    title="Self-Play Preference Optimization for Language Model Alignment (SPPO)",
    url=_arxiv("2405.00675"),
    section="Sec. 5 (β=η^-1=0.001, batch 64, lr 5e-7)",
    values=dict(loss_type="sppo_hard", beta=0.001, per_device_train_batch_size=64, learning_rate=5e-7),
    doc="""SPPO (arXiv 2405.00675): ``loss_type="sppo_hard"``, ``beta=0.001`` (β = η⁻¹),
    ``per_device_train_batch_size=64``, ``learning_rate=5e-7`` (Sec. 5).

    Correction: the older index left β at TRL's default 0.1; the current page (and the preset) use
    0.001. Pinned: ``loss_type=["sppo_hard"]``.
    """,
)


rpo = dpo_preset(
    name="rpo",
    title="Provably Mitigating Overoptimization in RLHF: Your SFT Loss is Implicitly an Adversarial Regularizer (RPO)",
    url=_arxiv("2405.16436"),
    section="Sec. 5 (DPO + SFT); App. E.1 (η=0.005, β=0.01, lr 5e-7, 1 epoch)",
    values=dict(
        loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.005], beta=0.01, learning_rate=5e-7, num_train_epochs=1
    ),
    doc="""RPO (arXiv 2405.16436): ``loss_type=["sigmoid", "sft"]`` (Sec. 5), ``loss_weights=[1.0, 0.005]``
    (η), ``beta=0.01``, ``learning_rate=5e-7``, ``num_train_epochs=1`` (App. E.1). Pinned: the
    two losses.""",
)


aot = dpo_preset(
    name="aot",
    title="Distributional Preference Alignment of LLMs via Optimal Transport (AOT, paired)",
    url=_arxiv("2406.05882"),
    section="Sec. 3 (AOT); β=0.01 from the caption of Figure 2",
    values=dict(loss_type="aot", beta=0.01),
    doc="""Paired AOT (arXiv 2406.05882): ``loss_type="aot"``, ``beta=0.01`` (Fig. 2 caption; the older
    index left TRL's 0.1). Pinned: ``loss_type=["aot"]``.""",
)


aot_unpaired = dpo_preset(
    name="aot_unpaired",
    title="Distributional Preference Alignment of LLMs via Optimal Transport (AOT, unpaired)",
    url=_arxiv("2406.05882"),
    section="Sec. 3 (unpaired AOT); β=0.01 from the caption of Figure 2",
    values=dict(loss_type="aot_unpaired", beta=0.01),
    doc="""Unpaired AOT (arXiv 2406.05882): ``loss_type="aot_unpaired"``, ``beta=0.01``.

    Correction: the older index named this loss ``"aot_pair"``, which TRL 1.16 does not know (the
    config accepts it and ``DPOTrainer`` raises ``ValueError`` at the first step); it is
    ``"aot_unpaired"``. Pinned: ``loss_type=["aot_unpaired"]``.
    """,
)


discopop = dpo_preset(
    name="discopop",
    title="Discovering Preference Optimization Algorithms with and for Large Language Models (DiscoPOP)",
    url=_arxiv("2406.08414"),
    section="Sec. B.1 (batch 64, lr 5e-7, β=0.05); Sec. E (τ=0.05)",
    values=dict(loss_type="discopop", per_device_train_batch_size=64, learning_rate=5e-7, beta=0.05, discopop_tau=0.05),
    doc="""DiscoPOP (arXiv 2406.08414): ``loss_type="discopop"``, ``per_device_train_batch_size=64``,
    ``learning_rate=5e-7``, ``beta=0.05`` (Sec. B.1), ``discopop_tau=0.05`` (Sec. E). Pinned:
    ``loss_type=["discopop"]``.""",
)


wpo = dpo_preset(
    name="wpo",
    title="WPO: Enhancing RLHF with Weighted Preference Optimization",
    url=_arxiv("2406.11827"),
    section="Sec. 4 (β=0.01), eq. 2 weighting",
    values=dict(loss_type="sigmoid", beta=0.01, use_weighting=True),
    pins=(_eq("use_weighting", True, "the weighting is the method"),),
    doc="""WPO (arXiv 2406.11827): ``loss_type="sigmoid"``, ``beta=0.01`` (Sec. 4), ``use_weighting=True``.
    Pinned: ``use_weighting=True``, ``loss_type=["sigmoid"]``.""",
)


_APO = dict(per_device_train_batch_size=64, learning_rate=2e-7, beta=0.1)


apo_zero = dpo_preset(
    name="apo_zero",
    title="Anchored Preference Optimization and Contrastive Revisions (APO-zero)",
    url=_arxiv("2408.06266"),
    section="Sec. 4 (APO-zero); Sec. B.1 (batch 64); Sec. 5.2 (lr 2e-7, β=0.1), TACL version",
    values=dict(loss_type="apo_zero", **_APO),
    doc="""APO-zero (arXiv 2408.06266): ``loss_type="apo_zero"``, ``per_device_train_batch_size=64``,
    ``learning_rate=2e-7``, ``beta=0.1``.

    Correction: the older index passed ``max_prompt_length=512, max_completion_length=512``,
    neither a ``DPOConfig`` 1.16 field (``TypeError``): dropped (bound the sequence with
    ``max_length`` if needed). Pinned: ``loss_type=["apo_zero"]``.
    """,
)


apo_down = dpo_preset(
    name="apo_down",
    title="Anchored Preference Optimization and Contrastive Revisions (APO-down)",
    url=_arxiv("2408.06266"),
    section="Sec. 4 (APO-down); Sec. B.1 (batch 64); Sec. 5.2 (lr 2e-7, β=0.1), TACL version",
    values=dict(loss_type="apo_down", **_APO),
    doc="""APO-down (arXiv 2408.06266): ``loss_type="apo_down"``, otherwise as :func:`apo_zero` (same
    correction: ``max_prompt_length``/``max_completion_length`` dropped). Pinned:
    ``loss_type=["apo_down"]``.""",
)


ld_dpo = dpo_preset(
    name="ld_dpo",
    title="Length Desensitization in Direct Preference Optimization (LD-DPO)",
    url=_arxiv("2409.06411"),
    section="α=0.5, the suggested value",
    values=dict(loss_type="sigmoid", ld_alpha=0.5),
    pins=(("ld_alpha", lambda c: c.ld_alpha is not None and 0.0 <= c.ld_alpha <= 1.0, "must be in [0, 1]"),),
    doc="""LD-DPO (arXiv 2409.06411): ``ld_alpha=0.5``, sigmoid loss. Pinned: ``0 <= ld_alpha <= 1``
    (TRL accepts any value silently) and ``loss_type=["sigmoid"]``.""",
)


mpo = dpo_preset(
    name="mpo",
    title="Enhancing the Reasoning Ability of Multimodal Large Language Models via Mixed Preference Optimization",
    url=_arxiv("2411.10442"),
    section="Sec. 3.2 (L = w_p L_p + w_q L_q + w_g L_g); Sec. 7 (weights 0.8/0.2/1.0, lr 5e-6)",
    values=dict(loss_type=["sigmoid", "bco_pair", "sft"], loss_weights=[0.8, 0.2, 1.0], learning_rate=5e-6),
    doc="""MPO (arXiv 2411.10442): ``loss_type=["sigmoid", "bco_pair", "sft"]`` (Sec. 3.2),
    ``loss_weights=[0.8, 0.2, 1.0]``, ``learning_rate=5e-6`` (Sec. 7). Pinned: the three losses.""",
)


tulu3 = dpo_preset(
    name="tulu3",
    title="TÜLU 3: Pushing Frontiers in Open Language Model Post-Training (length-normalised DPO)",
    url=_arxiv("2411.15124"),
    section="length-normalised DPO",
    values=dict(loss_type="sigmoid_norm"),
    doc="""Tülu 3's length-normalised DPO (arXiv 2411.15124): ``loss_type="sigmoid_norm"``. Pinned: that.""",
)


kto = paper_preset(
    name="kto",
    title="KTO: Model Alignment as Prospect Theoretic Optimization",
    url=_arxiv("2402.01306"),
    section="TRL's KTOConfig defaults (the page passes KTOConfig())",
    config="KTOConfig",
    values={},
    pins=(_eq("loss_type", "kto", "the KTO loss"),),
    doc="""KTO (arXiv 2402.01306): ``KTOConfig()`` with its defaults (``loss_type="kto"``, ``beta=0.1``).
    Pinned: ``loss_type="kto"``.""",
)
