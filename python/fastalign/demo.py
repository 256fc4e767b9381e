"""fastalign beside TRL 1.16.0: the same numbers, and how much faster.

Run with ``python -m fastalign.demo`` (the README's first command does the set-up too).

1. Training: a tiny random Qwen2 model (built locally, nothing downloaded) learns a small task
   on the CPU, once with stock ``GRPOTrainer`` and once with ``FastGRPOTrainer`` under DAPO's
   settings (dynamic sampling, clip-higher, token-level loss, overlong filtering, and
   fastalign's soft overlong reward): reward, loss and filtered groups per step, the time spent
   in fastalign's hot paths, and a PNG plot of reward per step for both trainers.
2. Parity: TRL's own ``_generate_and_score_completions`` on a fixed batch (NaN rewards, a
   constant group, truncated completions) beside fastalign's advantages, masks and rewards.
3. Speed: fastalign against TRL's own code on the same inputs, at training-batch sizes: the
   whole scoring step (``GRPOTrainer._generate_and_score_completions`` beside
   ``FastGRPOTrainer``'s, completions injected), the loss method (``_compute_loss``, log-probs
   injected) and the soft overlong reward (``trl.rewards``).
4. The training step: one optimizer step of stock ``GRPOTrainer`` beside
   ``FastGRPOTrainer(padding_free=True)`` on a long-tail rollout (32 completions, lengths
   lognormal with median 200, the longest 2,048 tokens), tiny model: step time, tokens
   forwarded, the same loss.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _best(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:9.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:9.2f} ms"


def _target_length(completion_ids, **kwargs):
    """The task: stop (EOS) after about 6 tokens. 1 at exactly 6, less the further off, 0 unstopped."""
    return [max(0.0, 1.0 - abs(len(c) - 6) / 6) if c and c[-1] == 1 else 0.0 for c in completion_ids]


def train_section(steps: int, plot: str | None) -> None:
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import GRPOTrainer

    from .testing import tiny_model, tiny_tokenizer
    from .trl import FastGRPOTrainer

    print("\n== 1. Training: FastGRPOTrainer under the DAPO preset beside stock GRPOTrainer ==")
    print("tiny random Qwen2 on the CPU; task: stop after ~6 tokens; rewards: target length + DAPO soft overlong")
    import tempfile

    from .trl import presets

    # DAPO (arXiv:2503.14476): the preset's paper values (token-level loss, clip-higher 0.2/0.28,
    # overlong filtering, beta 0), scaled down to this model, plus its soft overlong reward and
    # dynamic sampling; the stock trainer gets the same config and rewards without the sampling
    recipe = presets.dapo(
        output_dir=tempfile.mkdtemp(prefix="fastalign-demo-"),
        max_completion_length=16,
        soft_punish_cache=8,
        num_generations=4,
        per_device_train_batch_size=16,
        max_num_gen_batches=3,
        learning_rate=5e-3,
        max_steps=steps,
        use_cpu=True,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        seed=0,
        gradient_checkpointing=False,
        disable_tqdm=True,
    )
    print(
        f"preset: {recipe.config.loss_type} loss, epsilon {recipe.config.epsilon}/{recipe.config.epsilon_high}, "
        f"mask_truncated_completions={recipe.config.mask_truncated_completions}, "
        f"trainer options {dict(recipe.trainer_kwargs)}"
    )
    data = Dataset.from_dict({"prompt": ["what is 1 + 1 ?", "what is 2 + 3 ?", "a b c", "d e f"] * 64})
    runs = {}
    for name, cls, options in [
        ("TRL GRPOTrainer", GRPOTrainer, {}),
        ("fastalign FastGRPOTrainer", FastGRPOTrainer, dict(recipe.trainer_kwargs)),
    ]:
        tokenizer = tiny_tokenizer()
        trainer = cls(
            model=tiny_model(tokenizer),
            reward_funcs=[_target_length, *recipe.reward_funcs],
            args=recipe.config,
            train_dataset=data,
            processing_class=tokenizer,
            **options,
        )
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        t = time.perf_counter()
        trainer.train()
        runs[name] = (trainer, time.perf_counter() - t)

    (trl_trainer, trl_time), (fast_trainer, fast_time) = runs.values()
    trl_log = [r for r in trl_trainer.state.log_history if "reward" in r]
    fast_log = [r for r in fast_trainer.state.log_history if "reward" in r]
    print(
        f"{'step':>4} | {'TRL reward':>10} {'TRL loss':>9} | {'fastalign reward':>16} {'loss':>9} "
        f"{'filtered groups':>15} {'generations':>11}"
    )
    for a, b in zip(trl_log, fast_log):
        print(
            f"{a['step']:>4} | {a['reward']:>10.3f} {a['loss']:>9.4f} | {b['reward']:>16.3f} {b['loss']:>9.4f} "
            f"{b.get('dynamic_sampling/filtered_groups', 0):>15.0f} "
            f"{b.get('dynamic_sampling/generation_batches', 1):>11.0f}"
        )

    def start_end(log):
        k = max(1, min(5, len(log) // 2))
        return sum(r["reward"] for r in log[:k]) / k, sum(r["reward"] for r in log[-k:]) / k, k

    for name, log in (("TRL", trl_log), ("fastalign", fast_log)):
        a, b, k = start_end(log)
        print(f"mean reward, {name:>9}: first {k} steps {a:+.3f} -> last {k} steps {b:+.3f}")
    print(
        f"wall time: TRL {trl_time:.1f} s, fastalign {fast_time:.1f} s (both dominated by generation; "
        "dynamic sampling generates more when it filters)"
    )

    times = fast_trainer.fastalign_times
    print("fastalign hot paths in the run (wall clock per call, median; a busy machine adds outliers to totals):")
    for name in times.samples:
        print(
            f"  {name:<22} {times.calls(name):>3} calls, median {_fmt(times.median(name)).strip()}, "
            f"total {_fmt(times.total(name)).strip()}"
        )
    print("(section 3 times these steps beside TRL's own trainer methods at training-batch sizes)")
    if plot:
        _plot(plot, [r["reward"] for r in trl_log], [r["reward"] for r in fast_log])


def _plot(path: str, trl_rewards: list, fast_rewards: list) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot; pip install fastalign[demo])")
        return
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(range(1, len(trl_rewards) + 1), trl_rewards, marker="o", ms=3, label="TRL GRPOTrainer")
    ax.plot(
        range(1, len(fast_rewards) + 1),
        fast_rewards,
        marker="s",
        ms=3,
        label="fastalign FastGRPOTrainer (DAPO dynamic sampling)",
    )
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward")
    ax.set_title("Tiny Qwen2 on CPU: reward per step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    print(f"reward plot written to {path}")


def parity_section() -> None:
    import torch
    from datasets import Dataset

    from .advantages import grpo_advantages
    from .overlong import completion_mask
    from .rewards import soft_overlong
    from .testing import fixed_rollout, tiny_grpo_trainer

    print("\n== 2. Parity with TRL's own GRPOTrainer._generate_and_score_completions ==")
    rewards = [1.0, 0.0, None, 0.5, 0.3, 0.3, 0.3, 0.3]  # a None (NaN) reward, a constant group
    # completions end in EOS (id 1) or hit max_completion_length=6 without one (truncated)
    comps = [[5, 6, 1], [5, 1], [7, 7, 7, 7, 7, 7], [5, 5, 5, 5, 1], [6, 1], [6, 6, 1], [8, 9, 9, 9, 9, 9], [9, 1]]

    def from_column(completions, r, **kwargs):
        return r

    overlong = soft_overlong(max_completion_len=6, soft_punish_cache=3)
    trainer = tiny_grpo_trainer(
        [from_column, overlong],
        rollout_func=fixed_rollout(comps),
        train_dataset=Dataset.from_dict({"prompt": ["p"] * 8, "r": rewards}),
        mask_truncated_completions=True,
        max_completion_length=6,
    )
    out = trainer._generate_and_score_completions([{"prompt": "p", "r": r} for r in rewards])
    trl_metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}

    matrix = torch.tensor(
        [[float("nan") if r is None else r, p] for r, p in zip(rewards, overlong(completion_ids=comps))],
        dtype=torch.float32,
    )
    ours = grpo_advantages(matrix, 4)
    width = max(map(len, comps))
    padded = torch.tensor([c + [0] * (width - len(c)) for c in comps])  # as model.generate pads
    mask = completion_mask(padded, trainer.eos_token_ids, 0, mask_truncated_completions=True)

    print(f"{'row':>3} {'TRL advantage':>14} {'fastalign':>10} {'TRL mask':>18} {'fastalign mask':>18}")
    for i in range(8):
        trl_m = "".join(map(str, out["completion_mask"][i].tolist()))
        our_m = "".join(map(str, mask.mask[i, : out["completion_mask"].shape[1]].tolist()))
        print(f"{i:>3} {out['advantages'][i].item():>14.6f} {ours.advantages[i].item():>10.6f} {trl_m:>18} {our_m:>18}")
    names = ["from_column", "soft_overlong_punishment_reward"]
    print(f"{'metric':>48} {'TRL':>12} {'fastalign':>12}")
    for k, val in ours.metrics(names).items():
        print(f"{k:>48} {trl_metrics[k]:>12.6f} {val:>12.6f}")
    print(f"{'num_items_in_batch':>48} {int(out['num_items_in_batch']):>12d} {int(mask.num_items):>12d}")
    print(
        f"{'completions/clipped_ratio':>48} {trl_metrics['completions/clipped_ratio']:>12.6f} "
        f"{mask.is_truncated.float().mean().item():>12.6f}"
    )
    same = torch.allclose(out["advantages"], ours.advantages, rtol=1e-5, atol=1e-6) and torch.equal(
        out["completion_mask"], mask.mask[:, : out["completion_mask"].shape[1]]
    )
    print("identical within float32 rounding:", same)


def speed_section(repeat: int) -> None:
    import torch

    from .bench import CASES

    print(
        f"\n== 3. Speed against TRL's own code, same inputs (best of the timed calls; torch threads: "
        f"{torch.get_num_threads()}) =="
    )
    print(
        "(TRL's trainer methods run on a tiny local model with the completions or log-probs injected, beside "
        "FastGRPOTrainer's; answers are compared before timing)"
    )
    rows = []
    for label, name, size, reps in [
        ("GRPO scoring step, N=8192 completions", "grpo scoring step", 8192, max(2, repeat // 25)),
        ("_compute_loss fwd+bwd (dapo), 512 x 4096", "grpo _compute_loss fwd+bwd (dapo)", 512, max(3, repeat // 10)),
        ("_compute_loss fwd+bwd (GSPO), 512 x 4096", "grpo _compute_loss fwd+bwd (GSPO)", 512, max(3, repeat // 10)),
        ("soft_overlong, 8192 token lists", "soft_overlong (lists)", 8192, repeat),
        ("soft_overlong, 8192 lengths (TRL: the lists)", "soft_overlong (lengths)", 8192, repeat),
    ]:
        pair = CASES[name].build(size)
        if pair.check is not None:
            pair.check(pair.reference(), pair.fastalign())
        rows.append((label, _best(pair.reference, reps), _best(pair.fastalign, reps)))

    print(f"{'operation':<42} {'TRL':>12} {'fastalign':>12} {'speed-up':>9}")
    for name, a, b_ in rows:
        print(f"{name:<42} {_fmt(a):>12} {_fmt(b_):>12} {a / b_:>8.1f}x")
    print("fastalign bench times more sizes; the repository's benches/ also time single inline computations")


def step_section(rounds: int) -> None:
    from .step_bench import compare

    print("\n== 4. The training step: TRL's padded GRPO step beside padding-free (long-tail batch, tiny model) ==")
    r = compare("grpo", "tiny", rounds)
    loss = r["first_step_loss"]
    print(
        f"same first-step loss: TRL {loss['trl']:.6f}, fastalign {loss['fastalign']:.6f}; "
        "fastalign bench --step times the small model and DPO too"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fastalign.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="GRPO training steps in section 1")
    parser.add_argument("--plot", default="fastalign-demo-reward.png", help="PNG of reward per step ('' for none)")
    parser.add_argument("--repeat", type=int, default=50, help="timing repetitions in section 3")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument(
        "--step-rounds", type=int, default=1, help="interleaved steps per trainer in section 4 (0: skip)"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch
    import trl

    import fastalign

    print(f"fastalign {fastalign.__version__} | trl {trl.__version__} | torch {torch.__version__}")
    if not args.skip_train:
        train_section(args.steps, args.plot or None)
    parity_section()
    speed_section(args.repeat)
    if args.step_rounds:
        step_section(args.step_rounds)


if __name__ == "__main__":
    main()
