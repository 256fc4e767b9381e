"""fastalign.advantages against the real TRL 1.16.0 trainers, and the project's own plain-torch
references (``tests/reference/``) proven equal to them.

* GRPOTrainer: ``fastalign.testing.tiny_grpo_trainer`` with a fixed ``rollout_func`` and K reward
  functions that return dataset columns (``None`` becomes NaN in TRL).
* RLOOTrainer: ``fastalign.testing.tiny_rloo_trainer`` with fixed completions injected at
  ``_generate_single_turn``. Its ``_generate_and_score_completions`` always runs a forward pass
  for the old log-probs, and with ``beta != 0`` one of the reference model (whose weights are
  perturbed here so that the KL is not zero); both are recorded on the way out of
  ``_get_per_token_logps_and_entropies`` to rebuild the per-sequence KL exactly as TRL does.

For every batch, ``trainer._generate_and_score_completions(inputs)`` runs TRL's own code, then

1. ``reference.advantages.grpo`` / ``rloo`` on the same reward matrix must equal the trainer's
   advantages and logged reward metrics **bit for bit** (same torch ops on the same CPU
   tensors). This proves the reference that ``test_advantages.py`` and the benchmarks rely on;
2. fastalign must equal the trainer within the bounds of ``test_advantages.py`` (see its module
   docstring): advantages, ``frac_reward_zero_std``, ``reward``, ``reward_std`` and
   ``rewards/{name}/mean|std``.

One trainer per configuration (construction dominates the runtime), several batches each;
``trainer._metrics`` is cleared before every call.

``test_policy_loss_reference_is_grpo_trainer`` does the same for ``reference.policy_loss`` (the
clipped loss and GSPO's sequence ratio that ``benches/bench_losses.py`` and ``bench_ratios.py``
time alone): ``GRPOTrainer._compute_loss`` on injected log-probs gives the same loss and gradient.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch
from datasets import Dataset
from helpers.advantage_bounds import check_grpo, check_rloo
from reference import advantages as reference
from reference import policy_loss

from fastalign.advantages import grpo_advantages, rloo_advantages
from fastalign.testing import fixed_rollout, injected_logps_grpo_trainer, tiny_grpo_trainer, tiny_rloo_trainer

PROMPT = "what is 1 + 1 ?"
EOS = 1


def r0(completions, r0, **kwargs):
    return r0


def r1(completions, r1, **kwargs):
    return r1


def r2(completions, r2, **kwargs):
    return r2


REWARD_FUNCS = (r0, r1, r2)
NAMES = ("r0", "r1", "r2")


def _completions(n: int, seed: int) -> list[list[int]]:
    """n completions of 1..6 tokens, about half of them ending with EOS (the others truncated)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ids = rng.integers(4, 30, rng.integers(1, 6)).tolist()
        out.append(ids + [EOS] if i % 2 == 0 else ids)
    return out


# ---------------------------------------------------------------------------------------------
# reward batches (Python floats / None, as reward functions return them)

KINDS = (
    "random",
    "none_rows",
    "all_none",
    "constant_dyadic",
    "constant_nondyadic",
    "one_scorable",
    "partial_none",
    "near_constant",
    "huge_tiny",
)


def _group(rng, kind: str, g: int, k: int) -> list[list[float | None]]:
    if kind == "random":
        return rng.uniform(-2, 2, (g, k)).tolist()
    if kind == "none_rows":
        x = rng.uniform(-2, 2, (g, k)).tolist()
        for i in rng.choice(g, max(1, g // 3), replace=False):
            x[i] = [None] * k
        return x
    if kind == "all_none":
        return [[None] * k for _ in range(g)]
    if kind == "constant_dyadic":
        return [rng.choice([0.75, -2.0, 0.0, 1.5], k).tolist()] * g
    if kind == "constant_nondyadic":
        return [rng.choice([0.1, 1000.1, -0.3, 1 / 3], k).tolist()] * g
    if kind == "one_scorable":
        x = [[None] * k for _ in range(g)]
        x[rng.integers(g)] = rng.uniform(-2, 2, k).tolist()
        return x
    if kind == "partial_none":
        x = rng.uniform(-2, 2, (g, k)).tolist()
        for i in range(g):
            j = rng.integers(k)
            if k > 1 or i == 0:
                x[i][j] = None
        return x
    if kind == "near_constant":  # float32 neighbours of one value
        base = np.float32(rng.uniform(-2, 2))
        return [
            [float(np.nextafter(base, np.float32(np.inf)) if (i + j) % 2 else base) for j in range(k)] for i in range(g)
        ]
    if kind == "huge_tiny":
        return (rng.uniform(-1, 1, (g, k)) * rng.choice([1e30, 1e-30, 1.0], (g, k))).tolist()
    raise AssertionError(kind)


def _batches(n: int, k: int, g: int, count: int, seed: int) -> list[list[list[float | None]]]:
    """``count`` reward batches; group i of batch b is of kind KINDS[(b * groups + i) % len]."""
    rng = np.random.default_rng(seed)
    groups = n // g
    out = []
    for b in range(count):
        rows: list = []
        for i in range(groups):
            rows += [list(r) for r in _group(rng, KINDS[(b * groups + i) % len(KINDS)], g, k)]
        out.append([[None if v is None else float(v) for v in row] for row in rows])
    return out


def _matrix(rows) -> np.ndarray:
    """What TRL builds: float32, NaN for None (``torch.tensor(..., dtype=float32)`` rounding)."""
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float32)


def _inputs(rows, k: int) -> list[dict]:
    return [{"prompt": PROMPT, **{NAMES[j]: row[j] for j in range(k)}} for row in rows]


def _dataset(n: int, k: int) -> Dataset:
    return Dataset.from_dict({"prompt": [PROMPT] * n, **{NAMES[j]: [0.0] * n for j in range(k)}})


def _call(trainer, rows, k: int):
    """Run TRL's ``_generate_and_score_completions``; return its output and the metrics logged."""
    trainer._metrics["train"].clear()
    out = trainer._generate_and_score_completions(_inputs(rows, k))
    logged = trainer._metrics["train"]
    assert all(len(v) == 1 for v in logged.values()), dict(logged)
    return out, {key: v[0] for key, v in logged.items()}


def _reward_metrics(logged: dict, k: int) -> dict:
    keys = ["reward", "reward_std", "frac_reward_zero_std"]
    keys += [f"rewards/{NAMES[j]}/{s}" for j in range(k) for s in ("mean", "std")]
    return {key: logged[key] for key in keys}


def _assert_reference_is_trl(ref_adv, ref_metrics, trl_adv, logged, k: int) -> None:
    """The reference reproduces the trainer bit for bit (advantages and reward metrics)."""
    assert ref_adv.dtype == trl_adv.dtype == torch.float32
    assert torch.equal(ref_adv, trl_adv), (ref_adv, trl_adv)
    trl = _reward_metrics(logged, k)
    assert ref_metrics.keys() == trl.keys()
    for key, v in trl.items():
        same = (math.isnan(v) and math.isnan(ref_metrics[key])) or v == ref_metrics[key]
        assert same, (key, ref_metrics[key], v)


# ---------------------------------------------------------------------------------------------
# GRPO

GRPO_CONFIGS = [
    # id, K, G, N (per-device batch), GRPOConfig fields
    ("K1-G4-group", 1, 4, 8, {}),
    ("K3-G2-batch-weights", 3, 2, 8, {"scale_rewards": "batch", "reward_weights": [0.5, -1.0, 2.0]}),
    ("K2-G4-none-weights", 2, 4, 8, {"scale_rewards": "none", "reward_weights": [1.0, 0.3]}),
    ("K2-G2-True", 2, 2, 8, {"scale_rewards": True}),
    ("K1-G8-False", 1, 8, 16, {"scale_rewards": False}),
    (
        "K3-G4-normalize_then_sum-weights",
        3,
        4,
        8,
        {"multi_objective_aggregation": "normalize_then_sum", "reward_weights": [1.0, 0.5, -2.0]},
    ),
    (
        "K2-G2-normalize_then_sum-batch",
        2,
        2,
        8,
        {"multi_objective_aggregation": "normalize_then_sum", "scale_rewards": "batch"},
    ),
]


@pytest.mark.parametrize("cfg", GRPO_CONFIGS, ids=[c[0] for c in GRPO_CONFIGS])
def test_grpo_trainer(cfg, tmp_path):
    name, k, g, n, fields = cfg
    trainer = tiny_grpo_trainer(
        list(REWARD_FUNCS[:k]),
        num_generations=g,
        per_device_train_batch_size=n,
        rollout_func=fixed_rollout(_completions(n, seed=k * 10 + g)),
        train_dataset=_dataset(n, k),
        output_dir=str(tmp_path),
        **fields,
    )
    assert trainer.reward_func_names == list(NAMES[:k])
    assert trainer.num_generations == g
    scale = fields.get("scale_rewards", "group")
    agg = fields.get("multi_objective_aggregation", "sum_then_normalize")
    weights = fields.get("reward_weights")
    w = np.ones(k, np.float32) if weights is None else np.asarray(weights, np.float32)
    assert torch.equal(trainer.reward_weights, torch.from_numpy(w))
    n_batches = max(5, math.ceil(len(KINDS) / (n // g)))
    seen_nonzero = False
    for b, rows in enumerate(_batches(n, k, g, n_batches, seed=zlib.crc32(name.encode()))):
        out, logged = _call(trainer, rows, k)
        trl_adv = out["advantages"]
        r = _matrix(rows)
        ref_adv, _, ref_metrics = reference.grpo(
            torch.from_numpy(r), torch.from_numpy(w), g, scale, agg, names=NAMES[:k]
        )
        _assert_reference_is_trl(ref_adv, ref_metrics, trl_adv, logged, k)
        fa = grpo_advantages(r, g, scale_rewards=scale, reward_weights=weights, multi_objective_aggregation=agg)
        check_grpo(
            fa,
            trl_adv,
            None,
            _reward_metrics(logged, k),
            r,
            w,
            g,
            scale,
            agg,
            names=NAMES[:k],
            label=f"{name} batch {b}",
        )
        seen_nonzero |= bool((trl_adv != 0).any())
    assert seen_nonzero


# ---------------------------------------------------------------------------------------------
# RLOO

RLOO_CONFIGS = [
    ("K1-G4", 1, 4, 8, {}),
    (
        "K2-G2-normalize-clip-weights",
        2,
        2,
        8,
        {"normalize_advantages": True, "reward_clip_range": (-1.0, 1.5), "reward_weights": [1.0, 0.5]},
    ),
    ("K3-G4-beta-weights", 3, 4, 8, {"beta": 0.05, "reward_weights": [1.0, -0.5, 2.0]}),
    (
        "K2-G2-beta-normalize-clip",
        2,
        2,
        8,
        {"beta": 0.2, "normalize_advantages": True, "reward_clip_range": (-2.0, 2.0)},
    ),
]


class _LogpsSpy:
    """Wraps ``_get_per_token_logps_and_entropies`` to keep the last policy and reference log-probs."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.inner = trainer._get_per_token_logps_and_entropies
        self.logps: dict[str, torch.Tensor] = {}

    def __call__(self, model, *args, **kwargs):
        out = self.inner(model, *args, **kwargs)
        self.logps["ref" if model is self.trainer.ref_model else "old"] = out[0]
        return out


@pytest.mark.parametrize("cfg", RLOO_CONFIGS, ids=[c[0] for c in RLOO_CONFIGS])
def test_rloo_trainer(cfg, tmp_path):
    name, k, g, n, fields = cfg
    trainer = tiny_rloo_trainer(
        list(REWARD_FUNCS[:k]),
        num_generations=g,
        per_device_train_batch_size=n,
        completion_ids=_completions(n, seed=k * 10 + g + 1),
        train_dataset=_dataset(n, k),
        output_dir=str(tmp_path),
        **fields,
    )
    beta = fields.get("beta", 0.0)
    clip = fields.get("reward_clip_range")
    normalize = fields.get("normalize_advantages", False)
    weights = fields.get("reward_weights")
    w = np.ones(k, np.float32) if weights is None else np.asarray(weights, np.float32)
    assert trainer.beta == beta and trainer.normalize_advantages == normalize
    assert torch.equal(trainer.reward_weights, torch.from_numpy(w))
    spy = _LogpsSpy(trainer)
    trainer._get_per_token_logps_and_entropies = spy
    if beta != 0.0:
        assert trainer.ref_model is not None
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in trainer.ref_model.parameters():
                p.add_(0.5 * torch.randn(p.shape, generator=gen))
    n_batches = max(5, math.ceil(len(KINDS) / (n // g)))
    for b, rows in enumerate(_batches(n, k, g, n_batches, seed=zlib.crc32(name.encode()))):
        spy.logps.clear()
        out, logged = _call(trainer, rows, k)
        trl_adv = out["advantages"]
        r = _matrix(rows)
        kl = None
        if beta != 0.0:
            # TRL: per_token_kl = old - ref; kl = (per_token_kl * completion_mask).sum(-1)
            per_token_kl = spy.logps["old"] - spy.logps["ref"]
            mask = out["completion_mask"]
            kl = (per_token_kl * mask).sum(-1)
            assert (kl != 0).all()
            # the recorded log-probs are those TRL used: its logged mean KL matches them
            assert logged["kl"] == ((per_token_kl * mask).sum() / mask.sum().float().clamp(min=1.0)).item()
        else:
            assert "ref" not in spy.logps and trainer.ref_model is None
        ref_adv, _, ref_metrics = reference.rloo(
            torch.from_numpy(r), torch.from_numpy(w), g, clip, beta, kl, normalize, names=NAMES[:k]
        )
        _assert_reference_is_trl(ref_adv, ref_metrics, trl_adv, logged, k)
        kl_np = None if kl is None else kl.numpy()
        fa = rloo_advantages(
            r, g, reward_weights=weights, reward_clip_range=clip, beta=beta, kl=kl_np, normalize_advantages=normalize
        )
        check_rloo(
            fa,
            trl_adv,
            None,
            _reward_metrics(logged, k),
            r,
            w,
            g,
            clip,
            beta,
            kl_np,
            normalize,
            names=NAMES[:k],
            label=f"{name} batch {b}",
        )


# ---------------------------------------------------------------------------------------------
# the policy loss (reference.policy_loss, timed alone by benches/bench_losses.py, bench_ratios.py)

LOSS_CONFIGS = [("token", "dapo"), ("sequence", "grpo"), ("token", "grpo"), ("sequence", "dapo")]


@pytest.fixture(scope="module")
def loss_trainer():
    return injected_logps_grpo_trainer(num_generations=2, per_device_train_batch_size=2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("level, aggregation", LOSS_CONFIGS)
def test_policy_loss_reference_is_grpo_trainer(loss_trainer, level, aggregation, dtype):
    """``GRPOTrainer._compute_loss`` on injected log-probs (beta 0, epsilon 0.2/0.28, one process,
    one accumulation step) and ``reference.policy_loss.clipped_policy_loss``: the same loss and
    gradient bit for bit, on batches with ratios far enough from 1 to clip, an empty row and an
    item count that is not the mask's sum. GSPO's sequence ratio (``sequence_log_ratio``) and the
    masked mean enter the sequence-level and ``grpo`` configurations."""
    trainer = loss_trainer
    trainer.loss_type, trainer.importance_sampling_level = aggregation, level
    trainer.epsilon_low, trainer.epsilon_high = 0.2, 0.28
    trainer.beta, trainer.use_vllm, trainer.off_policy_mask_threshold = 0.0, False, None
    trainer.top_entropy_quantile, trainer.args.delta = 1.0, None
    trainer.current_gradient_accumulation_steps, trainer.args.steps_per_generation = 1, 1
    trainer.model.train()
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        b, t = 6, 9
        logps = -torch.rand(b, t, generator=g, dtype=dtype) * 3
        old = logps + 0.4 * torch.randn(b, t, generator=g, dtype=dtype)
        mask = (torch.arange(t)[None, :] < torch.randint(1, t + 1, (b,), generator=g)[:, None]).long()
        mask[seed % b] = 0
        advantages = torch.randn(b, generator=g, dtype=dtype)
        num_items = torch.tensor(int(mask.sum()) + seed)
        trainer._metrics["train"].clear()
        lp = logps.clone().requires_grad_()
        trainer.injected = (lp, torch.rand(b, t, generator=g, dtype=dtype))
        inputs = {
            "prompt_ids": torch.zeros(b, 2, dtype=torch.long),
            "prompt_mask": torch.ones(b, 2, dtype=torch.long),
            "completion_ids": torch.zeros(b, t, dtype=torch.long),
            "completion_mask": mask,
            "advantages": advantages,
            "num_items_in_batch": num_items,
            "old_per_token_logps": old,
        }
        trl_loss = trainer._compute_loss(trainer.model, inputs)
        (trl_grad,) = torch.autograd.grad(trl_loss, lp)
        lp2 = logps.clone().requires_grad_()
        ref_loss = policy_loss.clipped_policy_loss(
            lp2,
            old,
            advantages,
            mask,
            level=level,
            aggregation=aggregation,
            num_items=num_items,
            eps_low=0.2,
            eps_high=0.28,
        )
        (ref_grad,) = torch.autograd.grad(ref_loss, lp2)
        assert torch.equal(ref_loss.detach(), trl_loss.detach()), (seed, ref_loss, trl_loss)
        assert torch.equal(ref_grad, trl_grad), seed
        if level == "sequence":  # the trainer's clip metrics see the same sequence weights
            weight = torch.exp(policy_loss.sequence_log_ratio(logps, old, mask))
            high = ((weight > 1.28) & (advantages > 0)).to(dtype)
            assert trainer._metrics["train"]["clip_ratio/high_max"][-1] == high.max().item()
