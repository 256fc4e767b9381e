"""Supervised fine-tuning (``SFTConfig``): BEMA, DFT, packing."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from ._registry import Recipe, UnknownFieldError, _arxiv, _build, _eq, _preset, paper_preset

__all__ = ["bema", "dft", "fewer_truncations", "t5_packing"]


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


dft = paper_preset(
    name="dft",
    title="On the Generalization of SFT: A Reinforcement Learning Perspective with Reward Rectification (DFT)",
    url=_arxiv("2508.05629"),
    section="Sec. 4.1 (lr 5e-5, max length 2048, batch 256 = 8 x 32)",
    config="SFTConfig",
    values=dict(
        loss_type="dft",
        learning_rate=5e-5,
        max_length=2048,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=32,
    ),
    pins=(_eq("loss_type", "dft", "the DFT loss"),),
    doc="""Dynamic Fine-Tuning (arXiv 2508.05629): ``loss_type="dft"``, ``learning_rate=5e-5``,
    ``max_length=2048``, ``per_device_train_batch_size=8``, ``gradient_accumulation_steps=32``
    (batch 256, Sec. 4.1). Pinned: ``loss_type="dft"``.""",
)


fewer_truncations = paper_preset(
    name="fewer_truncations",
    title="Fewer Truncations Improve Language Modeling",
    url=_arxiv("2404.10830"),
    section="best-fit packing of documents split only when longer than the context",
    config="SFTConfig",
    values=dict(packing=True, packing_strategy="bfd_split", max_length=4096),
    pins=(
        _eq("packing", True, "packing is the method"),
        _eq("packing_strategy", "bfd_split", "best-fit decreasing with splitting of over-long documents"),
    ),
    doc="""Best-fit packing (arXiv 2404.10830): ``packing=True``, ``packing_strategy="bfd_split"``,
    ``max_length=4096``. Pinned: packing on with ``"bfd_split"``.""",
)


t5_packing = paper_preset(
    name="t5_packing",
    title="Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer (T5 packing)",
    url=_arxiv("1910.10683"),
    section="Sec. 3.5.2 (packed sequences of 512 tokens)",
    config="SFTConfig",
    values=dict(packing=True, max_length=512),
    pins=(_eq("packing", True, "packing is the method"),),
    doc="""T5's packing (arXiv 1910.10683, Sec. 3.5.2): ``packing=True``, ``max_length=512``. Pinned:
    ``packing=True``.""",
)
