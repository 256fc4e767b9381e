"""Reward modelling (``RewardConfig``)."""

from __future__ import annotations

from ._registry import _arxiv, paper_preset

__all__ = ["reward_centering"]


reward_centering = paper_preset(
    name="reward_centering",
    title="Helping or Herding? Reward Model Ensembles Mitigate but do not Eliminate Reward Hacking",
    url=_arxiv("2312.09244"),
    section="reward centring auxiliary loss, η=0.01",
    config="RewardConfig",
    values=dict(center_rewards_coefficient=0.01),
    pins=(("center_rewards_coefficient", lambda c: c.center_rewards_coefficient is not None, "must be set"),),
    doc="""Reward centring (arXiv 2312.09244): ``RewardConfig(center_rewards_coefficient=0.01)`` (η).
    Pinned: the coefficient set.""",
)
