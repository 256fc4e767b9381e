"""Reference-free preference optimisation: ORPO, CPO, SimPO, AlphaPO, TPO."""

from __future__ import annotations

from ._registry import _arxiv, _eq, paper_preset

__all__ = ["orpo", "cpo", "simpo", "alphapo", "tpo", "tpo_l"]


orpo = paper_preset(
    name="orpo",
    title="ORPO: Monolithic Preference Optimization without Reference Model",
    url=_arxiv("2403.07691"),
    section="Table 7 (λ=0.1, Mistral-ORPO-β); App. C (lr 5e-6, inverse sqrt, 5 epochs, 200 warm-up, batch 8)",
    config="ORPOConfig",
    values=dict(
        beta=0.1,
        learning_rate=5e-6,
        lr_scheduler_type="inverse_sqrt",
        num_train_epochs=5,
        warmup_steps=200,
        per_device_train_batch_size=8,
    ),
    doc="""ORPO (arXiv 2403.07691) with ``trl.experimental.orpo.ORPOConfig``: ``beta=0.1`` (λ),
    ``learning_rate=5e-6``, ``lr_scheduler_type="inverse_sqrt"``, ``num_train_epochs=5``,
    ``warmup_steps=200``, ``per_device_train_batch_size=8``. No pinned fields.""",
)


cpo = paper_preset(
    name="cpo",
    title="Contrastive Preference Optimization: Pushing the Boundaries of LLM Performance in Machine Translation",
    url=_arxiv("2401.08417"),
    section="Sec. 3 (loss, NLL weight 1); Sec. 4.2 (β=0.1, 1 epoch, warm-up 0.01, length 512); official code "
    "(lr 1e-4, inverse sqrt)",
    config="CPOConfig",
    values=dict(
        loss_type="sigmoid",
        cpo_alpha=1.0,
        beta=0.1,
        learning_rate=1e-4,
        lr_scheduler_type="inverse_sqrt",
        num_train_epochs=1,
        warmup_steps=0.01,
        max_length=512,
    ),
    pins=(
        _eq("loss_type", "sigmoid", "CPO's preference term"),
        ("cpo_alpha", lambda c: c.cpo_alpha > 0, "must be > 0: the NLL regulariser is part of CPO"),
    ),
    doc="""CPO (arXiv 2401.08417) with ``trl.experimental.cpo.CPOConfig``: ``loss_type="sigmoid"``,
    ``cpo_alpha=1.0``, ``beta=0.1``, ``learning_rate=1e-4``, ``lr_scheduler_type="inverse_sqrt"``,
    ``num_train_epochs=1``, ``warmup_steps=0.01``, ``max_length=512``.

    Correction: the page passes ``warmup_ratio=0.01``; transformers 5.23 has no ``warmup_ratio``
    (``TypeError``) and reads a float ``warmup_steps`` in [0, 1) as a ratio, so the preset passes
    ``warmup_steps=0.01``. Pinned: ``loss_type="sigmoid"`` and ``cpo_alpha > 0`` (the NLL term is
    what makes it CPO rather than reference-free DPO).
    """,
)


simpo = paper_preset(
    name="simpo",
    title="SimPO: Simple Preference Optimization with a Reference-Free Reward",
    url=_arxiv("2405.14734"),
    section="App. B (β=2.5, γ/β=0.55, lr 1e-6, 1 epoch)",
    config="CPOConfig",
    values=dict(loss_type="simpo", cpo_alpha=0.0, beta=2.5, simpo_gamma=1.375, learning_rate=1e-6, num_train_epochs=1),
    pins=(_eq("loss_type", "simpo", "the SimPO loss"), _eq("alpha", 0.0, "alpha != 0 is AlphaPO")),
    doc="""SimPO (arXiv 2405.14734) with ``CPOConfig``: ``loss_type="simpo"``, ``cpo_alpha=0.0``,
    ``beta=2.5``, ``simpo_gamma=1.375`` (γ/β = 0.55), ``learning_rate=1e-6``, ``num_train_epochs=1``
    (App. B). Pinned: ``loss_type="simpo"``, ``alpha=0`` (non-zero alpha is AlphaPO).""",
)


alphapo = paper_preset(
    name="alphapo",
    title="AlphaPO -- Reward shape matters for LLM alignment",
    url=_arxiv("2501.03884"),
    section="Table 3 (Mistral-Instruct: α=0.25, β=2.5, γ=0.1, lr 7e-7)",
    config="CPOConfig",
    values=dict(loss_type="alphapo", alpha=0.25, beta=2.5, simpo_gamma=0.1, learning_rate=7e-7),
    pins=(
        _eq("loss_type", "simpo", "AlphaPO is TRL's simpo loss with alpha != 0"),
        ("alpha", lambda c: c.alpha != 0, "must be non-zero: alpha shapes the reward"),
    ),
    doc="""AlphaPO (arXiv 2501.03884) with ``trl.experimental.cpo.CPOConfig``: ``loss_type="alphapo"``,
    ``alpha=0.25``, ``beta=2.5``, ``simpo_gamma=0.1``, ``learning_rate=7e-7`` (Table 3,
    Mistral-Instruct).

    Corrections: the older index imports ``from trl import CPOConfig``, which fails on 1.16 (it is
    ``trl.experimental.cpo``), and its snippet misses a closing parenthesis. On 1.16 ``CPOConfig``
    turns ``loss_type="alphapo"`` into ``"simpo"`` and forces ``cpo_alpha=0.0``, so the returned
    config reads ``loss_type="simpo"``. Pinned: ``loss_type="simpo"`` after that rewrite, and
    ``alpha != 0`` (alpha=0 is plain SimPO).
    """,
)


tpo = paper_preset(
    name="tpo",
    title="Triple Preference Optimization: Achieving Better Alignment using a Single Step Optimization (TPO)",
    url=_arxiv("2405.16681"),
    section="Sec. 3 (loss, NLL on the gold response); Table 6 (β=0.01, lr 5e-7)",
    config="TPOConfig",
    values=dict(loss_type="sigmoid", tpo_alpha=1.0, beta=0.01, learning_rate=5e-7, num_train_epochs=1, max_length=1024),
    pins=(_eq("loss_type", "sigmoid", "the TPO loss"),),
    doc="""TPO (arXiv 2405.16681) with ``trl.experimental.tpo.TPOConfig``: ``loss_type="sigmoid"``,
    ``tpo_alpha=1.0``, ``beta=0.01``, ``learning_rate=5e-7``, ``num_train_epochs=1``,
    ``max_length=1024``. Pinned: ``loss_type="sigmoid"``.""",
)


tpo_l = paper_preset(
    name="tpo_l",
    title="Triple Preference Optimization (TPO-L, length-normalised)",
    url=_arxiv("2405.16681"),
    section="Sec. 3 (TPO-L); Table 6 (Llama-3-Base 5K: γ=0.5, β=0.01, lr 5e-7)",
    config="TPOConfig",
    values=dict(loss_type="tpo-l", tpo_alpha=1.0, beta=0.01, tpo_l_gamma=0.5, learning_rate=5e-7, num_train_epochs=1),
    pins=(_eq("loss_type", "tpo-l", "the TPO-L loss"),),
    doc="""TPO-L (arXiv 2405.16681): ``loss_type="tpo-l"``, ``tpo_alpha=1.0``, ``beta=0.01``,
    ``tpo_l_gamma=0.5``, ``learning_rate=5e-7``, ``num_train_epochs=1``. Pinned: ``loss_type="tpo-l"``.""",
)
