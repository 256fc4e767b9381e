"""On-policy distillation: GKD, IW-OPD, SDPO, SDFT."""

from __future__ import annotations

from ._registry import _arxiv, _eq, paper_preset

__all__ = ["gkd", "on_policy_distillation", "iw_opd", "sdpo", "sdft"]


gkd = paper_preset(
    name="gkd",
    title="On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes (GKD)",
    url=_arxiv("2306.13649"),
    section="Sec. 3 (λ=0.5, β=0.5); App. A (T=1); Table A.1 (40k steps, lr 3e-4, batch 32, 2000 warm-up, 64 tokens)",
    config="GKDConfig",
    values=dict(
        lmbda=0.5,
        beta=0.5,
        temperature=1.0,
        max_steps=40000,
        learning_rate=3e-4,
        per_device_train_batch_size=32,
        warmup_steps=2000,
        max_new_tokens=64,
    ),
    doc="""GKD (arXiv 2306.13649) with ``trl.experimental.gkd.GKDConfig``: ``lmbda=0.5``, ``beta=0.5``,
    ``temperature=1.0``, ``max_steps=40000``, ``learning_rate=3e-4``, ``per_device_train_batch_size=32``,
    ``warmup_steps=2000``, ``max_new_tokens=64``. Pass ``teacher_model_name_or_path`` (or a teacher
    model to the trainer). No pinned fields.""",
)


on_policy_distillation = paper_preset(
    name="on_policy_distillation",
    title="On-Policy Distillation (Thinking Machines blog)",
    url="https://thinkingmachines.ai/blog/on-policy-distillation/",
    section="student rollouts only, reverse KL",
    config="GKDConfig",
    values=dict(lmbda=1.0, beta=1.0),
    pins=(
        _eq("lmbda", 1.0, "fully on-policy: the student generates every batch"),
        _eq("beta", 1.0, "reverse KL"),
    ),
    doc="""On-policy distillation (https://thinkingmachines.ai/blog/on-policy-distillation/) with
    ``GKDConfig``: ``lmbda=1.0`` (student rollouts for every batch),
    ``beta=1.0`` (reverse KL). Pass ``teacher_model_name_or_path``.

    Correction: the page's first variant uses ``trl.experimental.distillation.DistillationConfig``,
    which in 1.16 is a deprecated shim over ``trl.DistillationConfig`` without ``lmbda``
    (``TypeError``); the page's ``GKDConfig`` variant is used. Pinned: ``lmbda=1.0``, ``beta=1.0``.
    """,
)


iw_opd = paper_preset(
    name="iw_opd",
    title="On the Position Bias of On-Policy Distillation (IW-OPD)",
    url=_arxiv("2606.22600"),
    section="Algorithm 1 and App. C.3 (γ=0.5); Table 6 (training and rollout settings)",
    config="IWOPDConfig",
    values=dict(
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
    ),
    pins=(_eq("distillation_objective", "iw_opd", "the importance-weighted objective"),),
    doc="""IW-OPD (arXiv 2606.22600) with ``trl.experimental.iw_opd.IWOPDConfig``:
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
    """,
)


sdpo = paper_preset(
    name="sdpo",
    title="Reinforcement Learning via Self-Distillation (SDPO)",
    url=_arxiv("2601.20802"),
    section="top-K logit distillation from successful rollouts with an EMA teacher, as in TRL's paper index",
    config="SDPOConfig",
    values=dict(
        distillation_alpha=0.5,
        distillation_mode="topk_logits",
        distillation_topk=100,
        distillation_is_clip=2.0,
        distillation_weight=1.0,
        use_successful_as_teacher=True,
        teacher_model_kind="ema",
        teacher_update_rate=0.05,
        include_environment_feedback=True,
    ),
    doc="""SDPO (arXiv 2601.20802) with ``trl.experimental.sdpo.SDPOConfig``: ``distillation_alpha=0.5``
    (Jensen-Shannon), ``distillation_mode="topk_logits"``, ``distillation_topk=100``,
    ``distillation_is_clip=2.0``, ``distillation_weight=1.0`` (pure distillation),
    ``use_successful_as_teacher=True``, ``teacher_model_kind="ema"``, ``teacher_update_rate=0.05``,
    ``include_environment_feedback=True`` (needs the dataset's ``privileged_context``). No pins.""",
)


sdft = paper_preset(
    name="sdft",
    title="Self-Distillation Enables Continual Learning (SDFT)",
    url=_arxiv("2601.19897"),
    section="top-K logit self-distillation, as in TRL's paper index",
    config="SDFTConfig",
    values=dict(distillation_alpha=0.5, distillation_mode="topk_logits", distillation_topk=5, max_completion_length=64),
    doc="""SDFT (arXiv 2601.19897) with ``trl.experimental.sdft.SDFTConfig``: ``distillation_alpha=0.5``,
    ``distillation_mode="topk_logits"``, ``distillation_topk=5``, ``max_completion_length=64``.
    No pins.""",
)
