"""REINFORCE leave-one-out and REINFORCE++ (``RLOOConfig``)."""

from __future__ import annotations

from ._registry import _arxiv, _eq, paper_preset

__all__ = ["rloo", "reinforce_pp"]


rloo = paper_preset(
    name="rloo",
    title="Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human Feedback in LLMs (RLOO)",
    url=_arxiv("2402.14740"),
    section="Sec. C, Training Detail (batch 512, 2 steps per generation, β=0.03, lr 1e-6; k in {2, 4})",
    config="RLOOConfig",
    values=dict(
        per_device_train_batch_size=512, steps_per_generation=2, beta=0.03, num_generations=2, learning_rate=1e-6
    ),
    pins=(("num_generations", lambda c: c.num_generations >= 2, "must be >= 2 for a leave-one-out baseline"),),
    doc="""RLOO (arXiv 2402.14740, Sec. C): ``per_device_train_batch_size=512``, ``steps_per_generation=2``,
    ``beta=0.03``, ``num_generations=2``, ``learning_rate=1e-6``. (The 2025-09 copy of the page
    misses commas and is a SyntaxError as written.) Pinned: ``num_generations >= 2`` (leave-one-out
    needs two samples).""",
)


reinforce_pp = paper_preset(
    name="reinforce_pp",
    title="REINFORCE++: A Simple and Efficient Approach for Aligning Large Language Models",
    url=_arxiv("2501.03262"),
    section="global advantage normalisation",
    config="RLOOConfig",
    values=dict(normalize_advantages=True),
    pins=(_eq("normalize_advantages", True, "global advantage normalisation is the method"),),
    doc="""REINFORCE++ (arXiv 2501.03262): ``RLOOConfig(normalize_advantages=True)``. Pinned: that.""",
)
