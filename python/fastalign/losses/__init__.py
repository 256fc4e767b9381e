"""Post-training losses, identical to TRL 1.16.0's.

* :func:`grpo_loss` (:mod:`.grpo`) — ``GRPOTrainer._compute_loss`` for every ``loss_type`` (grpo,
  bnpo, dr_grpo, dapo, cispo, sapo, luspo, vespo), ``importance_sampling_level`` "token" /
  "sequence" (GSPO) and "sequence_token" (GSPO-token, from the GSPO paper: TRL 1.16 removed it),
  ``epsilon`` / ``epsilon_high``, two-sided ``delta``, the k3 KL with ``beta`` and
  ``use_bias_correction_kl``, the vLLM IS ratio, the off-policy sequence mask, an entropy mask,
  and TRL's normalisers including ``num_items_in_batch`` and gradient accumulation. Returns the
  loss and the metrics TRL logs. A fused torch custom op (:mod:`fastalign.ops`): one Rust pass
  per sequence on CPU, the same formulas in torch elsewhere.
* :func:`dpo_loss` (:mod:`.dpo`; every TRL 1.16 DPO ``loss_type``, several with weights) and
  :func:`wpo_weights`, :func:`cpo_loss` (:mod:`.cpo`; CPO, SimPO, AlphaPO) and :func:`dft_loss`
  (:mod:`.dft`; SFT ``loss_type="dft"``): plain torch on any device (elementwise over the batch),
  differentiable with respect to the policy log-probs.

Everything upstream of the log-probs (the forward passes, the fused LM head, LD-DPO's
``ld_alpha`` weighting, the reference model or precomputed reference log-probs) stays in the
caller's hands: pass the values TRL would have computed. Inputs are never modified.
"""

from .cpo import CPO_LOSS_TYPES, CPOLoss, cpo_loss
from .dft import dft_loss
from .dpo import DPO_LOSS_TYPES, F_DIVERGENCE_TYPES, DPOLoss, dpo_loss, wpo_weights
from .grpo import LOSS_TYPES, GrpoLoss, grpo_loss

__all__ = [
    "CPO_LOSS_TYPES",
    "CPOLoss",
    "DPO_LOSS_TYPES",
    "DPOLoss",
    "F_DIVERGENCE_TYPES",
    "GrpoLoss",
    "LOSS_TYPES",
    "cpo_loss",
    "dft_loss",
    "dpo_loss",
    "grpo_loss",
    "wpo_weights",
]
