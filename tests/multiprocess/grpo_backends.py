"""Run under ``torchrun --nproc_per_node 2`` on a CPU machine (``DS_ACCELERATOR=cpu``, no
``ACCELERATE_USE_CPU``): GRPOTrainer, FastGRPOTrainer (padded) and FastGRPOTrainer(padding_free=True)
train the same steps under DeepSpeed ZeRO-2, ZeRO-3 and FSDP2 on the gloo backend; rank 0 writes
every run's log history to ``<out>/<backend>-<run>.json`` (tests/robustness/test_distributed_backends.py
compares them).

``python grpo_backends.py OUT [BACKEND ...]`` with BACKEND among zero2, zero3, fsdp2 (default: all;
a DeepSpeed backend is left out when deepspeed is not installed). ``FASTALIGN_BACKENDS_DEVICE=cuda``
runs on GPUs (NCCL) with accelerate as it is, no shims (scripts/distributed_check.sh).

accelerate 1.15 runs neither DeepSpeed nor FSDP on a CPU-only machine, and says nothing about it:
  * DeepSpeed: with ``use_cpu``/``ACCELERATE_USE_CPU`` the DeepSpeed plugin is ignored (the
    ``not cpu`` gates in ``accelerate.state``) and training is plain DDP; without them,
    ``PartialState._prepare_backend`` finds no accelerator, returns no backend and every rank
    believes it is the only process (DeepSpeed then stops: "train_batch_size is not equal to
    micro_batch_per_gpu * gradient_acc_step * world_size 8 != 8 * 1 * 2").
  * FSDP: ``AcceleratorState`` installs the FSDP plugin only for GPU-like distributed types, so
    on MULTI_CPU the model is wrapped in DDP instead.
DeepSpeed's CPU accelerator (gloo when oneCCL is absent) and torch's ``fully_shard`` (gloo has
reduce_scatter in torch 2.15) both run on CPU, so :func:`cpu_shims` opens these two gates, and
nothing else: the engines, the sharding and TRL's and fastalign's code are the real ones. Each run
records the distributed type, the wrapped model's class and how its parameters are sharded, so a
silent fallback to DDP fails the test.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import traceback

BACKENDS = ("zero2", "zero3", "fsdp2")
DEVICE = os.environ.get("FASTALIGN_BACKENDS_DEVICE", "cpu")


def deepspeed_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("deepspeed") is not None


def cpu_shims() -> None:
    """Let accelerate run DeepSpeed and FSDP2 on a CPU-only machine with gloo (see the module doc)."""
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    prepare_backend = PartialState._prepare_backend

    def _prepare_backend(self, cpu=False, sagemaker_dp=False, backend=None):
        found, kind = prepare_backend(self, cpu, sagemaker_dp, backend)
        deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
        if found is None and deepspeed and int(os.environ.get("LOCAL_RANK", -1)) != -1:
            return "gloo", DistributedType.MULTI_CPU  # the state turns DEEPSPEED once DeepSpeed is up
        return found, kind

    PartialState._prepare_backend = _prepare_backend

    state_init = AcceleratorState.__init__

    def _state_init(self, *args, fsdp_plugin=None, **kwargs):
        state_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    AcceleratorState.__init__ = _state_init

    if deepspeed_installed():
        import deepspeed.ops

        # DeepSpeed's shared-memory all-reduce (inference_all_reduce, AutoTP) is JIT-compiled with
        # ninja and g++ on first use, a minute on 2 cores; training's collectives are torch's
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def backend_config(backend: str) -> dict:
    if backend in ("zero2", "zero3"):
        zero = {"stage": int(backend[-1])}
        if backend == "zero3":  # shard every parameter of the tiny model (the default keeps those under 1e5 whole)
            zero["stage3_param_persistence_threshold"] = 0
        ds = {
            "zero_optimization": zero,
            "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto",
            "train_batch_size": "auto",
            "gradient_clipping": "auto",
        }
        return {"deepspeed": ds, "use_cpu": False}
    if backend == "fsdp2":
        fsdp = {"version": 2, "reshard_after_forward": True}
        return {"fsdp": "full_shard", "fsdp_config": fsdp, "use_cpu": DEVICE == "cpu"}
    raise ValueError(f"unknown backend {backend!r}")


def ends_with_eos(completion_ids, **kwargs):
    return [1.0 if ids and ids[-1] == 1 else 0.0 for ids in completion_ids]


def short(completion_ids, **kwargs):
    return [-len(c) / 16 for c in completion_ids]


def sharding(trainer) -> dict:
    """What the backend did to the model: its class, and how its parameters are held."""
    wrapped = trainer.model_wrapped
    info = {"distributed_type": str(trainer.accelerator.distributed_type).split(".")[-1],
            "wrapped": type(wrapped).__name__}  # fmt: skip
    params = list(trainer.model.parameters())
    if hasattr(wrapped, "zero_optimization_stage"):
        info["zero_stage"] = int(wrapped.zero_optimization_stage())
        # ZeRO-3 keeps a shard of each parameter on each rank (the local tensor is emptied)
        info["partitioned"] = all(hasattr(p, "ds_numel") and p.numel() < p.ds_numel for p in params)
    try:
        from torch.distributed.tensor import DTensor

        info["dtensor"] = bool(params) and all(isinstance(p, DTensor) for p in params)
    except ImportError:  # pragma: no cover
        info["dtensor"] = False
    info["local_numel"] = int(sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in params))
    info["numel"] = int(sum(getattr(p, "ds_numel", None) or p.numel() for p in params))
    return info


def reset_accelerate() -> None:
    """Between runs: forget the previous backend's plugins (accelerate keeps them in env vars and
    shared state, transformers keeps a weak reference to the DeepSpeed config)."""
    from accelerate.state import AcceleratorState

    for name in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"):
        os.environ.pop(name, None)
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()
    except ImportError:  # pragma: no cover
        pass
    gc.collect()


RUNS = {
    "trl": (None, {}),
    "fast-padded": ({}, {}),
    # token-budget rows: several packed forwards per micro-batch (streamed under FSDP2; under
    # DeepSpeed one backward for the micro-batch, as the engine requires)
    "fast-padding-free": ({"padding_free": True, "max_tokens_per_microbatch": 24}, {}),
}


def train(backend: str, run: str) -> dict:
    from datasets import Dataset
    from trl import GRPOTrainer

    from fastalign.testing import tiny_grpo_trainer
    from fastalign.trl import FastGRPOTrainer

    kwargs, config = RUNS[run]
    cls = GRPOTrainer if kwargs is None else FastGRPOTrainer
    prompts = ["what is 1 + 1 ?", "what is 2 + 3 ?", "a b c d e f g h", "1"] * 8
    reset_accelerate()
    t = tiny_grpo_trainer([ends_with_eos, short], trainer_cls=cls, train_dataset=Dataset.from_dict({"prompt": prompts}),
                          max_completion_length=12, trainer_kwargs=kwargs,
                          **{"max_steps": 2, "learning_rate": 1e-3, "temperature": 0.7, **backend_config(backend),
                             **config})  # fmt: skip
    t.train()
    result = {
        "logs": [row for row in t.state.log_history if "loss" in row],
        "sharding": sharding(t),
        "num_processes": t.accelerator.num_processes,
        "device": str(t.accelerator.device),
    }
    if hasattr(t, "fastalign_times"):
        result["grpo_loss_calls"] = t.fastalign_times.calls("grpo_loss")
    return result


def main(out: str, backends: list[str]) -> None:
    if DEVICE == "cpu":
        cpu_shims()
    elif DEVICE != "cuda":
        raise ValueError(f"FASTALIGN_BACKENDS_DEVICE must be cpu or cuda, got {DEVICE!r}")
    import torch.distributed as dist

    for backend in backends:
        if backend.startswith("zero") and not deepspeed_installed():
            continue
        for run in RUNS:
            try:
                result = train(backend, run)
            except Exception as e:  # recorded for the test; every rank fails alike in a step
                result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
                print(f"[{backend} {run}] {result['traceback']}", file=sys.stderr, flush=True)
            if int(os.environ.get("RANK", 0)) == 0:
                with open(f"{out}/{backend}-{run}.json", "w") as f:
                    json.dump(result, f)
            if dist.is_initialized():
                dist.barrier()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or list(BACKENDS))
