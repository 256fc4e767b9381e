"""fastalign inside Hugging Face TRL 1.16: ``FastGRPOTrainer`` (requires ``trl``)."""

from .trainer import FastGRPOTrainer, vllm_is_ratio

__all__ = ["FastGRPOTrainer", "vllm_is_ratio"]
