"""Time the torch path of every fastalign op on CUDA against TRL 1.16's own code on the same tensors.

``scripts/gpu_check.sh`` runs it on a machine with CUDA (after the CUDA tests). For each op it
prints the median wall time of one call (forward, backward where there is a gradient, and the
metrics read back where TRL logs them), measured between ``torch.cuda.synchronize()`` calls after
a warm-up, and the number of host synchronisations of one call, counted by CUDA itself
(``torch.cuda.set_sync_debug_mode("warn")`` warns at every synchronising operation: ``.item()``,
``nonzero``, a blocking copy either way).

TRL's side is always TRL's own method, driven on the same tensors: ``GRPOTrainer._compute_loss``
(a tiny trainer whose forward returns the given log-probs), ``DPOTrainer._compute_loss``,
``CPOTrainer.get_batch_loss_metrics`` and ``SFTTrainer.compute_loss`` (``loss_type="dft"``) on a
stub ``self`` (as tests/parity/test_preference_losses.py does), and ``trl.rewards.
get_soft_overlong_punishment`` (on Python lists, the form it takes). The advantages, the IS ratio,
the completion mask and the sequence ratios are lines inside TRL's larger methods
(``_generate_and_score_completions``, ``_generate_single_turn``, ``_compute_loss``) with no
function of their own: they are timed for fastalign alone (TRL column "-"); their sync counts
against TRL's lines are in tests/robustness/test_host_syncs.py.

``--device cpu`` runs the same table on the CPU with fastalign's torch path forced (the branch
CUDA tensors take; the Rust kernels are disabled), to check the script where there is no GPU;
``--dry-run`` makes every size tiny and the repetitions few. Sync counts need CUDA ("-" on CPU).

Usage: python scripts/gpu_ops_check.py [--device cuda|cpu] [--dry-run] [--reps N] [--warmup N]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import time
import types
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch

S = types.SimpleNamespace


@dataclass
class Case:
    name: str
    shape: str
    ours: Callable[[], object]
    theirs: Callable[[], object] | None = None
    note: str = ""


# ------------------------------------------------------------------------------------------
# measuring


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, reps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cuda_syncs(fn: Callable[[], object], device: torch.device) -> int | None:
    """Synchronising CUDA operations in one call of ``fn``, as CUDA's sync debug mode sees them."""
    if device.type != "cuda":
        return None
    sync(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@contextlib.contextmanager
def torch_path_on_cpu(device: torch.device):
    """On the CPU, send fastalign's calls down the branch CUDA tensors take (as
    tests/unit/test_torch_path.py and tests/robustness/test_host_syncs.py do); nothing to do on CUDA."""
    if device.type == "cuda":
        yield
        return
    from fastalign import _native, _validate, ops

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(_validate, "on_accelerator", _validate.is_torch))
        stack.enter_context(mock.patch.object(_native, "grpo_advantages_fast", lambda *args: None))
        stack.enter_context(mock.patch.object(ops, "_plain_eager_cpu", lambda tensors: False))
        for op in (ops.grpo_loss, ops.masked_reduce, ops.masked_reduce_backward, ops.vllm_is_ratio):
            stack.enter_context(op.set_kernel_enabled("cpu", False))
        yield


# ------------------------------------------------------------------------------------------
# inputs


def grpo_batch(b: int, t: int, device: torch.device, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    lp = -torch.rand(b, t, generator=g) * 3
    old = lp + 0.3 * torch.randn(b, t, generator=g)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = (torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)).long()
    out = {
        "lp": lp,
        "old": old,
        "ref": lp + 0.3 * torch.randn(b, t, generator=g),
        "samp": old + 0.2 * torch.randn(b, t, generator=g),
        "adv": torch.randn(b, generator=g),
        "mask": mask,
        "ent": torch.rand(b, t, generator=g),
        "num_items": mask.sum() + 7,
    }
    out = {k: v.to(device) for k, v in out.items()}
    out["lp"].requires_grad_()
    return out


# ------------------------------------------------------------------------------------------
# TRL's side: its own methods on the same tensors


def trl_grpo(trainer, cfg: dict, x: dict, isr) -> Callable[[], object]:
    """``GRPOTrainer._compute_loss`` + backward on the tensors of ``x`` (injected log-probs)."""
    b, t = x["lp"].shape
    dev = x["lp"].device
    inputs = {
        "prompt_ids": torch.zeros(b, 2, dtype=torch.long, device=dev),
        "prompt_mask": torch.ones(b, 2, dtype=torch.long, device=dev),
        "completion_ids": torch.zeros(b, t, dtype=torch.long, device=dev),
        "completion_mask": x["mask"],
        "advantages": x["adv"],
        "num_items_in_batch": x["num_items"],
        "old_per_token_logps": x["old"],
        "sampling_per_token_logps": x["samp"],
        "ref_per_token_logps": x["ref"],
    }
    if isr is not None:
        inputs["importance_sampling_ratio"] = isr

    def call():
        trainer.loss_type = cfg["loss_type"]
        trainer.importance_sampling_level = cfg["level"]
        trainer.epsilon_low, trainer.epsilon_high = 0.2, 0.28
        trainer.args.delta = None
        trainer.beta = cfg["beta"]
        trainer.args.use_bias_correction_kl = True
        trainer.use_vllm = isr is not None
        trainer.vllm_importance_sampling_correction = True
        trainer.off_policy_mask_threshold = None
        trainer.top_entropy_quantile = 1.0
        trainer.current_gradient_accumulation_steps = 1
        trainer.args.steps_per_generation = 1
        trainer._metrics["train"].clear()
        x["lp"].grad = None
        trainer.injected = (x["lp"], x["ent"])
        trainer._compute_loss(trainer.model, inputs).backward()

    return call


class _Acc:
    """A single-process stand-in for ``accelerate.Accelerator`` (gathers are identities)."""

    num_processes = 1
    parallelism_config = None

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @staticmethod
    def gather(x):
        return x

    gather_for_metrics = gather


def trl_dpo(lp, cm, ref_c, ref_r, types_: list[str]) -> Callable[[], object]:
    """``DPOTrainer._compute_loss`` + backward with a model that returns ``lp`` (2B, T-1)."""
    from trl import DPOTrainer

    n, t = cm.shape
    z = torch.zeros(n, t - 1, dtype=lp.dtype, device=lp.device)
    stub = S(
        model=S(training=True), accelerator=_Acc(lp.device), aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", f_alpha_divergence_coef=0.5, loss_types=types_,
        loss_weights=[1.0] * len(types_), beta=0.1, label_smoothing=0.0, use_weighting=False,
        args=S(discopop_tau=0.05), _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
    )  # fmt: skip
    out = S(log_probs=lp, entropy=z, mean_logits=z, is_top1=z.bool(), log_sum_sq_probs=None)
    inputs = {
        "input_ids": torch.zeros(n, t, dtype=torch.long, device=lp.device),
        "attention_mask": torch.ones(n, t, dtype=torch.long, device=lp.device),
        "completion_mask": cm,
        "ref_chosen_logps": ref_c,
        "ref_rejected_logps": ref_r,
    }

    def call():
        lp.grad = None
        stub._metrics["train"].clear()
        DPOTrainer._compute_loss(stub, lambda **kw: out, inputs, False).backward()

    return call


def trl_cpo(c, r, nll, loss_type: str) -> Callable[[], object]:
    """``CPOTrainer.get_batch_loss_metrics`` + backward with a forward returning ``c``, ``r``, ``nll``."""
    from trl.experimental.cpo import CPOTrainer

    logits = torch.zeros(c.shape[0], 1, 1, dtype=c.dtype, device=c.device)
    stub = S(alpha=0.0, beta=0.1, loss_type=loss_type, label_smoothing=0.0, simpo_gamma=0.5, cpo_alpha=1.0,
             accelerator=_Acc(c.device), aux_loss_enabled=False)  # fmt: skip
    stub.concatenated_forward = lambda model, batch: (c, r, logits, logits, nll)
    stub.cpo_loss = functools.partial(CPOTrainer.cpo_loss, stub)

    def call():
        c.grad = None
        loss, _ = CPOTrainer.get_batch_loss_metrics(stub, None, {}, train_eval="train")
        loss.backward()

    return call


def trl_dft(lp, mask, num_items) -> Callable[[], object]:
    """``SFTTrainer.compute_loss`` (``loss_type="dft"``) + backward with a model returning ``lp``."""
    from trl import SFTTrainer

    n, t = lp.shape
    stub = S(model=S(training=True), aux_loss_enabled=False, accelerator=_Acc(lp.device), compute_loss_func=None,
             label_smoother=None, args=S(loss_type="dft", average_tokens_across_devices=True, max_length=None),
             get_tp_size=lambda: 1, current_gradient_accumulation_steps=1, _metrics={"train": defaultdict(list)},
             _total_train_tokens=0, _tp_size=1)  # fmt: skip
    z = torch.zeros_like(lp)
    out = S(log_probs=lp, label_mask=mask, entropy=z, is_top1=z.bool())
    inputs = {"labels": torch.zeros(n, t + 1, dtype=torch.long, device=lp.device),
              "attention_mask": torch.ones(n, t + 1, device=lp.device)}  # fmt: skip

    def call():
        lp.grad = None
        stub._metrics["train"].clear()
        SFTTrainer.compute_loss(stub, lambda **kw: out, inputs, num_items_in_batch=num_items).backward()

    return call


# ------------------------------------------------------------------------------------------
# the cases


def cases(device: torch.device, dry_run: bool) -> list[Case]:
    from fastalign.advantages import grpo_advantages, rloo_advantages, top_k_per_group, zero_variance_groups
    from fastalign.losses import cpo_loss, dft_loss, dpo_loss, grpo_loss
    from fastalign.overlong import completion_mask
    from fastalign.ratios import importance_weights, masked_mean, sequence_log_ratio, vllm_is_ratio
    from fastalign.rewards import soft_overlong_penalty
    from fastalign.testing import injected_logps_grpo_trainer

    out: list[Case] = []
    trainer = injected_logps_grpo_trainer(num_generations=2, per_device_train_batch_size=2)
    trainer.model.train()

    # --- the GRPO loss family
    loss_shapes = [(4, 16)] if dry_run else [(64, 4096), (512, 4096)]
    loss_cfgs = [
        {"loss_type": "dapo", "level": "token", "beta": 0.0, "is_mode": None},
        {"loss_type": "grpo", "level": "sequence", "beta": 0.04, "is_mode": "sequence_mask"},
        {"loss_type": "cispo", "level": "token", "beta": 0.0, "is_mode": None},
        {"loss_type": "sapo", "level": "token", "beta": 0.0, "is_mode": "token_truncate"},
        {"loss_type": "vespo", "level": "token", "beta": 0.0, "is_mode": "token_mask"},
    ]
    for b, t in loss_shapes:
        x = grpo_batch(b, t, device)
        for cfg in loss_cfgs:
            isr = None
            if cfg["is_mode"] is not None:
                with torch_path_on_cpu(device):
                    isr = vllm_is_ratio(x["old"], x["samp"], x["mask"], mode=cfg["is_mode"], clip_min=0.5,
                                        clip_max=3.0).ratio  # fmt: skip

            def ours(x=x, cfg=cfg, isr=isr):
                x["lp"].grad = None
                res = grpo_loss(
                    x["lp"], x["old"], x["adv"], x["mask"], loss_type=cfg["loss_type"],
                    importance_sampling_level=cfg["level"], epsilon=0.2, epsilon_high=0.28, beta=cfg["beta"],
                    ref_per_token_logps=x["ref"], importance_sampling_ratio=isr,
                    sampling_per_token_logps=x["samp"], num_items_in_batch=x["num_items"],
                )  # fmt: skip
                res.loss.backward()
                res.metrics()

            label = f"grpo_loss {cfg['loss_type']} ({cfg['level']}{', kl' if cfg['beta'] else ''}" + (
                f", IS {cfg['is_mode']})" if cfg["is_mode"] else ")"
            )
            out.append(Case(label, f"B={b} T={t}", ours, trl_grpo(trainer, cfg, x, isr), "fwd+bwd+metrics"))

        def seq_ratio(x=x):
            x["lp"].grad = None
            sequence_log_ratio(x["lp"], x["old"], x["mask"]).sum().backward()

        out.append(Case("sequence_log_ratio", f"B={b} T={t}", seq_ratio, note="fwd+bwd; TRL: lines of _compute_loss"))
        out.append(Case("masked_mean", f"B={b} T={t}", lambda x=x: masked_mean(x["ent"], x["mask"])))
        out.append(
            Case(
                "importance_weights sequence_token",
                f"B={b} T={t}",
                lambda x=x: importance_weights(x["lp"].detach(), x["old"], x["mask"], level="sequence_token"),
            )
        )
        for mode in ("token_mask", "sequence_truncate"):
            out.append(Case(f"vllm_is_ratio {mode}", f"B={b} T={t}",
                            lambda x=x, mode=mode: vllm_is_ratio(x["old"], x["samp"], x["mask"], mode=mode,
                                                                 clip_min=0.5, clip_max=3.0).metrics(),
                            note="with metrics; TRL: lines of _generate_and_score_completions"))  # fmt: skip

    # --- advantages and DAPO/GFPO filters
    n, g = (16, 4) if dry_run else (4096, 16)
    gen = torch.Generator().manual_seed(1)
    rewards = torch.rand(n, 2, generator=gen).to(device)
    weights = torch.tensor([1.0, 0.5])  # TRL keeps its reward weights on the CPU
    for scale in ("group", "batch"):
        out.append(Case(f"grpo_advantages {scale}", f"N={n} K=2 G={g}",
                        lambda scale=scale: grpo_advantages(rewards, g, scale_rewards=scale, reward_weights=weights),
                        note="with metrics; TRL: lines of _generate_and_score_completions"))  # fmt: skip
    out.append(
        Case(
            "rloo_advantages",
            f"N={n} K=2 G={g}",
            lambda: rloo_advantages(rewards, g, reward_weights=weights, normalize_advantages=True),
        )
    )
    out.append(Case("zero_variance_groups", f"N={n} K=2 G={g}", lambda: zero_variance_groups(rewards, g)))
    scores = rewards[:, 0].contiguous()
    out.append(Case("top_k_per_group", f"N={n} G={g} k={g // 2}", lambda: top_k_per_group(scores, g, g // 2)))

    # --- masks and rewards
    b, t = (4, 16) if dry_run else (512, 4096)
    ids = torch.randint(4, 100, (b, t), generator=gen)
    ids[torch.arange(b), torch.randint(0, t, (b,), generator=gen)] = 1
    ids = ids.to(device)
    out.append(Case("completion_mask", f"B={b} T={t}", lambda: completion_mask(ids, [1, 2], 0),
                    note="TRL: lines of _generate_single_turn"))  # fmt: skip
    lengths = torch.randint(0, t + t // 4, (b,), generator=gen)
    lengths_dev = lengths.to(device)
    lists = [[5] * int(k) for k in lengths]
    from trl.rewards import get_soft_overlong_punishment

    trl_reward = get_soft_overlong_punishment(max_completion_len=t, soft_punish_cache=t // 8)
    out.append(Case("soft_overlong_penalty", f"B={b}", lambda: soft_overlong_penalty(lengths_dev, t, t // 8),
                    lambda: trl_reward(completion_ids=lists), "TRL: Python lists of ids (its input)"))  # fmt: skip

    # --- preference losses
    pb, pt = (3, 8) if dry_run else (1024, 512)
    cm = torch.zeros(2 * pb, pt, dtype=torch.long)
    for i in range(2 * pb):
        start = int(torch.randint(0, pt // 4, (1,), generator=gen))
        cm[i, start : int(torch.randint(start + 2, pt + 1, (1,), generator=gen))] = 1
    tok = (-torch.rand(2 * pb, pt - 1, generator=gen) * 3 * cm[:, 1:]).to(device).requires_grad_()
    ref = (tok.detach().sum(1) + 0.5 * torch.randn(2 * pb, generator=gen).to(device)).chunk(2)
    cm = cm.to(device)
    for types_ in (["sigmoid"], ["sigmoid", "sft"]):

        def ours_dpo(types_=types_):
            tok.grad = None
            c, r = tok.sum(1).chunk(2)
            res = dpo_loss(c, r, ref[0], ref[1], loss_type=types_, chosen_token_logps=tok[:pb],
                           chosen_token_mask=cm[:pb, 1:])  # fmt: skip
            res.loss.backward()
            res.metrics()

        out.append(Case(f"dpo_loss {'+'.join(types_)}", f"B={pb} pairs T={pt}", ours_dpo,
                        trl_dpo(tok, cm, ref[0], ref[1], types_), "fwd+bwd+metrics"))  # fmt: skip
    c = (-torch.rand(pb, generator=gen) * 30).to(device).requires_grad_()
    r = (-torch.rand(pb, generator=gen) * 30).to(device)
    nll = torch.rand((), generator=gen).to(device)
    for lt in ("sigmoid", "simpo"):

        def ours_cpo(lt=lt):
            c.grad = None
            res = cpo_loss(c, r, loss_type=lt, chosen_nll=nll)
            res.loss.backward()
            res.metrics()

        out.append(Case(f"cpo_loss {lt}", f"B={pb}", ours_cpo, trl_cpo(c, r, nll, lt), "fwd+bwd+metrics"))
    mask = torch.rand(2 * pb, pt - 1, generator=gen).to(device) < 0.8
    dlp = (-torch.rand(2 * pb, pt - 1, generator=gen) * 3).to(device) * mask
    dlp.requires_grad_()
    count = mask.sum() + 11

    def ours_dft():
        dlp.grad = None
        dft_loss(dlp, mask, num_items_in_batch=count).backward()

    out.append(Case("dft_loss", f"N={2 * pb} T={pt - 1}", ours_dft, trl_dft(dlp, mask, count), "fwd+bwd"))
    return out


# ------------------------------------------------------------------------------------------


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def run(device: torch.device, dry_run: bool, reps: int, warmup: int) -> int:
    import trl

    import fastalign

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (torch path forced)"
    print(f"device: {name}; torch {torch.__version__}, trl {trl.__version__}, fastalign {fastalign.__version__}")
    around = "torch.cuda.synchronize() around each call" if device.type == "cuda" else "no device to synchronise"
    print(f"median of {reps} calls after {warmup} warm-up calls; {around}")
    rows = []
    failed = 0
    for case in cases(device, dry_run):
        row = [case.name, case.shape]
        try:
            with torch_path_on_cpu(device):
                ours_t = median_seconds(case.ours, device, reps, warmup)
                ours_s = cuda_syncs(case.ours, device)
        except Exception as e:  # noqa: BLE001 - report and go on: one broken op must not hide the others
            failed += 1
            rows.append([*row, f"error: {type(e).__name__}: {e}"[:80], "", "", "", "", case.note])
            continue
        theirs_t = theirs_s = None
        if case.theirs is not None:
            try:
                theirs_t = median_seconds(case.theirs, device, reps, warmup)
                theirs_s = cuda_syncs(case.theirs, device)
            except Exception as e:  # noqa: BLE001 - a TRL reference that fails is reported, not fatal
                rows.append([*row, fmt_time(ours_t), f"TRL error: {type(e).__name__}: {e}"[:80], "", "-", "-",
                             case.note])  # fmt: skip
                continue
        ratio = f"{theirs_t / ours_t:.1f}x" if theirs_t else "-"
        syncs = ["-" if v is None else str(v) for v in (ours_s, theirs_s)]
        if case.theirs is None and ours_s is not None:
            syncs[1] = "-"
        rows.append([*row, fmt_time(ours_t), fmt_time(theirs_t), ratio, *syncs, case.note])
    header = ["op", "size", "fastalign", "TRL", "TRL/fastalign", "syncs fastalign", "syncs TRL", "what"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths)) + " |")
    if failed:
        print(f"{failed} fastalign op(s) failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--dry-run", action="store_true", help="tiny sizes and few repetitions (checks the script)")
    p.add_argument("--reps", type=int, default=None, help="timed calls per op (default 50, 3 with --dry-run)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls per op (default 5, 1 with --dry-run)")
    a = p.parse_args(argv)
    reps = a.reps if a.reps is not None else (3 if a.dry_run else 50)
    warmup = a.warmup if a.warmup is not None else (1 if a.dry_run else 5)
    if reps < 1 or warmup < 0:
        p.error("--reps must be >= 1 and --warmup >= 0")
    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu_ops_check: no CUDA device; use --device cpu to run the table on the CPU")
        return 0
    return run(torch.device(a.device), a.dry_run, reps, warmup)


if __name__ == "__main__":
    sys.exit(main())
