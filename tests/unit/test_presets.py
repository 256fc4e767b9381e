"""fastalign.trl.presets: every preset builds a real TRL 1.16 config holding its paper's values.

The expected values below are transcribed from TRL's paper index
(https://huggingface.co/docs/trl/paper_index, the page at TRL commit f2cd57710, each value with
its paper-section comment), plus the 1.16 corrections the presets document; they are not read
from the presets' code. Where a correction
is claimed ("the page's snippet fails on 1.16"), a test shows the failure on the installed TRL.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import os

import pytest

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
trl = pytest.importorskip("trl")

from fastalign.errors import InvalidArgumentError, InvalidTypeError  # noqa: E402
from fastalign.trl import presets  # noqa: E402

FAST = "fastalign.trl.FastGRPOTrainer"

# name -> (config class, {field: value the paper index gives (after the documented 1.16 fixes)})
EXPECTED: dict[str, tuple[str, dict]] = {
    # --- GRPO family ---
    "deepseekmath_grpo": (
        "trl.GRPOConfig",
        dict(
            loss_type="grpo",
            beta=0.001,
            epsilon=10.0,
            num_generations=16,
            max_completion_length=32_768,
            steps_per_generation=16,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=128,
        ),
    ),
    # the index's values, plus the batch fix (generation batch must hold whole groups of 16)
    "deepseek_r1": (
        "trl.GRPOConfig",
        dict(
            learning_rate=4.0e-5,
            max_completion_length=32768,
            num_generations=16,
            beta=0.001,
            use_vllm=True,
            per_device_train_batch_size=16,
        ),
    ),
    "gspo": (
        "trl.GRPOConfig",
        dict(
            importance_sampling_level="sequence",
            loss_type="grpo",
            beta=0.0,
            epsilon=3e-4,
            epsilon_high=4e-4,
            gradient_accumulation_steps=1,
            steps_per_generation=4,
        ),
    ),
    # GSPO's values with the removed experimental trainer's level name
    "gspo_token": (
        "trl.GRPOConfig",
        dict(
            importance_sampling_level="sequence_token",
            loss_type="grpo",
            beta=0.0,
            epsilon=3e-4,
            epsilon_high=4e-4,
            gradient_accumulation_steps=1,
            steps_per_generation=4,
        ),
    ),
    "gmpo": ("trl.experimental.gmpo.GMPOConfig", dict(epsilon=0.4, beta=0.0)),
    "dapo": (
        "trl.GRPOConfig",
        dict(
            mask_truncated_completions=True,
            loss_type="dapo",
            epsilon_high=0.28,
            epsilon=0.2,
            per_device_train_batch_size=512,
            num_generations=16,
            max_completion_length=20480,
            beta=0.0,
        ),
    ),
    "long_cot_rewards": ("trl.GRPOConfig", dict()),
    "intellect2": (
        "trl.GRPOConfig",
        dict(delta=4, epsilon=0.2, beta=0.001, num_generations=16, learning_rate=3e-7, per_device_train_batch_size=16),
    ),
    "skywork_or1": (
        "trl.GRPOConfig",
        dict(use_adaptive_entropy=True, entropy_coef=0.01, entropy_target=5.0, entropy_coef_delta=0.005),
    ),
    "high_entropy_tokens": (
        "trl.GRPOConfig",
        dict(
            mask_truncated_completions=True,
            loss_type="dapo",
            epsilon_high=0.28,
            epsilon=0.2,
            per_device_train_batch_size=512,
            num_generations=16,
            max_completion_length=20480,
            beta=0.0,
            top_entropy_quantile=0.2,
        ),
    ),
    # the index's values, minus max_prompt_length, plus scale_rewards="none" and the batch fix
    "dr_grpo": (
        "trl.GRPOConfig",
        dict(
            loss_type="dr_grpo",
            per_device_train_batch_size=1,
            num_generations=8,
            max_completion_length=3000,
            beta=0.0,
            scale_rewards="none",
            gradient_accumulation_steps=8,
        ),
    ),
    "lite_ppo": (
        "trl.GRPOConfig",
        dict(
            scale_rewards="batch",
            loss_type="dapo",
            beta=0.0,
            top_p=0.99,
            top_k=100,
            temperature=0.99,
            num_generations=8,
            num_iterations=1,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=32,
            steps_per_generation=8,
        ),
    ),
    "tis": (
        "trl.GRPOConfig",
        dict(
            use_vllm=True,
            vllm_importance_sampling_correction=True,
            vllm_importance_sampling_mode="token_truncate",
            vllm_importance_sampling_clip_max=2.0,
        ),
    ),
    "mis": (
        "trl.GRPOConfig",
        dict(
            use_vllm=True,
            vllm_importance_sampling_correction=True,
            vllm_importance_sampling_mode="sequence_mask",
            vllm_importance_sampling_clip_max=2.0,
            vllm_importance_sampling_clip_min=0.5,
        ),
    ),
    "cispo": (
        "trl.GRPOConfig",
        dict(
            loss_type="cispo",
            epsilon_high=5.0,
            num_generations=16,
            scale_rewards="batch",
            cast_lm_head_to_fp32=True,
            per_device_train_batch_size=16,
        ),
    ),
    "two_grpo": ("trl.GRPOConfig", dict(num_generations=2, loss_type="grpo")),
    "sapo": (
        "trl.GRPOConfig",
        dict(loss_type="sapo", sapo_temperature_pos=1.0, sapo_temperature_neg=1.05, scale_rewards="group"),
    ),
    "deepseek_v32_kl": ("trl.GRPOConfig", dict(beta=0.001, use_bias_correction_kl=True)),
    "deepseek_v32_off_policy_mask": ("trl.GRPOConfig", dict(off_policy_mask_threshold=0.5)),
    "gdpo": ("trl.GRPOConfig", dict(multi_objective_aggregation="normalize_then_sum")),
    "luspo": (
        "trl.GRPOConfig",
        dict(loss_type="luspo", importance_sampling_level="sequence", epsilon=2e-3, epsilon_high=2.5e-3),
    ),
    "vespo": (
        "trl.GRPOConfig",
        dict(
            loss_type="vespo",
            use_vllm=True,
            vllm_importance_sampling_mode="token_truncate",
            vespo_k_pos=2.0,
            vespo_lambda_pos=3.0,
            vespo_k_neg=3.0,
            vespo_lambda_neg=2.0,
        ),
    ),
    "gfpo": ("trl.GRPOConfig", dict(num_generations=16, per_device_train_batch_size=16)),
    "a2po": ("trl.experimental.a2po.A2POConfig", dict(beta1=0.5, beta2=1e-3, num_value_samples=8)),
    # --- DPO family ---
    "dpo": ("trl.DPOConfig", dict(loss_type=["sigmoid"], per_device_train_batch_size=64, learning_rate=1e-6, beta=0.1)),
    "slic_hf": (
        "trl.DPOConfig",
        dict(loss_type=["hinge"], per_device_train_batch_size=512, learning_rate=1e-4, beta=0.1),
    ),
    "rso": ("trl.DPOConfig", dict(loss_type=["hinge"], beta=0.05)),
    "f_dpo": (
        "trl.DPOConfig",
        dict(loss_type=["sigmoid"], beta=0.1, f_divergence_type="js_divergence", f_alpha_divergence_coef=0.5),
    ),
    "ipo": ("trl.DPOConfig", dict(loss_type=["ipo"], per_device_train_batch_size=90, learning_rate=1e-2, beta=0.1)),
    "exo": (
        "trl.DPOConfig",
        dict(
            loss_type=["exo_pair"], per_device_train_batch_size=64, learning_rate=1e-6, beta=0.1, label_smoothing=1e-3
        ),
    ),
    "nca": (
        "trl.DPOConfig",
        dict(loss_type=["nca_pair"], per_device_train_batch_size=32, learning_rate=5e-6, beta=0.01),
    ),
    "robust_dpo": (
        "trl.DPOConfig",
        dict(
            loss_type=["robust"],
            per_device_train_batch_size=16,
            learning_rate=1e-3,
            beta=0.1,
            max_length=512,
            label_smoothing=0.1,
        ),
    ),
    "bco": (
        "trl.DPOConfig",
        dict(loss_type=["bco_pair"], per_device_train_batch_size=128, learning_rate=5e-7, beta=0.01),
    ),
    "tr_dpo": (
        "trl.DPOConfig",
        dict(
            sync_ref_model=True,
            ref_model_mixup_alpha=0.6,
            ref_model_sync_steps=512,
            beta=0.05,
            learning_rate=1e-6,
            num_train_epochs=1,
            max_length=1024,
            max_grad_norm=2,
            warmup_steps=100,
            loss_type=["sigmoid"],
        ),
    ),
    "iterative_rpo": ("trl.DPOConfig", dict(loss_type=["sigmoid", "sft"], loss_weights=[1.0, 1.0])),
    "sppo": (
        "trl.DPOConfig",
        dict(loss_type=["sppo_hard"], beta=0.001, per_device_train_batch_size=64, learning_rate=5e-7),
    ),
    "rpo": (
        "trl.DPOConfig",
        dict(
            loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.005], beta=0.01, learning_rate=5e-7, num_train_epochs=1
        ),
    ),
    "aot": ("trl.DPOConfig", dict(loss_type=["aot"], beta=0.01)),
    "aot_unpaired": ("trl.DPOConfig", dict(loss_type=["aot_unpaired"], beta=0.01)),
    "discopop": (
        "trl.DPOConfig",
        dict(loss_type=["discopop"], per_device_train_batch_size=64, learning_rate=5e-7, beta=0.05, discopop_tau=0.05),
    ),
    "wpo": ("trl.DPOConfig", dict(loss_type=["sigmoid"], beta=0.01, use_weighting=True)),
    "apo_zero": (
        "trl.DPOConfig",
        dict(loss_type=["apo_zero"], per_device_train_batch_size=64, learning_rate=2e-7, beta=0.1),
    ),
    "apo_down": (
        "trl.DPOConfig",
        dict(loss_type=["apo_down"], per_device_train_batch_size=64, learning_rate=2e-7, beta=0.1),
    ),
    "ld_dpo": ("trl.DPOConfig", dict(ld_alpha=0.5, loss_type=["sigmoid"])),
    "mpo": (
        "trl.DPOConfig",
        dict(loss_type=["sigmoid", "bco_pair", "sft"], loss_weights=[0.8, 0.2, 1.0], learning_rate=5e-6),
    ),
    "tulu3": ("trl.DPOConfig", dict(loss_type=["sigmoid_norm"])),
    "kto": ("trl.KTOConfig", dict(loss_type="kto", beta=0.1)),
    # --- SFT ---
    "bema": ("trl.SFTConfig", dict()),
    "dft": (
        "trl.SFTConfig",
        dict(
            loss_type="dft",
            learning_rate=5e-5,
            max_length=2048,
            per_device_train_batch_size=8,
            gradient_accumulation_steps=32,
        ),
    ),
    "fewer_truncations": ("trl.SFTConfig", dict(packing=True, packing_strategy="bfd_split", max_length=4096)),
    "t5_packing": ("trl.SFTConfig", dict(packing=True, max_length=512)),
    # --- RLOO, ORPO, CPO family, TPO, reward, distillation ---
    "rloo": (
        "trl.RLOOConfig",
        dict(per_device_train_batch_size=512, steps_per_generation=2, beta=0.03, num_generations=2, learning_rate=1e-6),
    ),
    "reinforce_pp": ("trl.RLOOConfig", dict(normalize_advantages=True)),
    "orpo": (
        "trl.experimental.orpo.ORPOConfig",
        dict(
            beta=0.1,
            learning_rate=5e-6,
            lr_scheduler_type="inverse_sqrt",
            num_train_epochs=5,
            warmup_steps=200,
            per_device_train_batch_size=8,
        ),
    ),
    # warmup_ratio=0.01 -> warmup_steps=0.01 on transformers 5.23
    "cpo": (
        "trl.experimental.cpo.CPOConfig",
        dict(
            loss_type="sigmoid",
            cpo_alpha=1.0,
            beta=0.1,
            learning_rate=1e-4,
            lr_scheduler_type="inverse_sqrt",
            num_train_epochs=1,
            warmup_steps=0.01,
            max_length=512,
        ),
    ),
    "simpo": (
        "trl.experimental.cpo.CPOConfig",
        dict(loss_type="simpo", cpo_alpha=0.0, beta=2.5, simpo_gamma=1.375, learning_rate=1e-6, num_train_epochs=1),
    ),
    # CPOConfig 1.16 rewrites alphapo -> simpo and forces cpo_alpha=0
    "alphapo": (
        "trl.experimental.cpo.CPOConfig",
        dict(loss_type="simpo", cpo_alpha=0.0, alpha=0.25, beta=2.5, simpo_gamma=0.1, learning_rate=7e-7),
    ),
    "tpo": (
        "trl.experimental.tpo.TPOConfig",
        dict(loss_type="sigmoid", tpo_alpha=1.0, beta=0.01, learning_rate=5e-7, num_train_epochs=1, max_length=1024),
    ),
    "tpo_l": (
        "trl.experimental.tpo.TPOConfig",
        dict(loss_type="tpo-l", tpo_alpha=1.0, beta=0.01, tpo_l_gamma=0.5, learning_rate=5e-7, num_train_epochs=1),
    ),
    "reward_centering": ("trl.RewardConfig", dict(center_rewards_coefficient=0.01)),
    "gkd": (
        "trl.experimental.gkd.GKDConfig",
        dict(
            lmbda=0.5,
            beta=0.5,
            temperature=1.0,
            max_steps=40000,
            learning_rate=3e-4,
            per_device_train_batch_size=32,
            warmup_steps=2000,
            max_new_tokens=64,
        ),
    ),
    "on_policy_distillation": ("trl.experimental.gkd.GKDConfig", dict(lmbda=1.0, beta=1.0)),
    # the index's values, warmup_ratio=0.0 -> warmup_steps=0, plus max_length = 2048 + 16384
    "iw_opd": (
        "trl.experimental.iw_opd.IWOPDConfig",
        dict(
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
            warmup_steps=0,
            use_vllm=True,
            vllm_sync_frequency=1,
            save_steps=10,
            eval_steps=10,
            max_length=18432,
        ),
    ),
    "sdpo": (
        "trl.experimental.sdpo.SDPOConfig",
        dict(
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
    ),
    "sdft": (
        "trl.experimental.sdft.SDFTConfig",
        dict(distillation_alpha=0.5, distillation_mode="topk_logits", distillation_topk=5, max_completion_length=64),
    ),
}

RECIPES = {"gspo_token", "dapo", "long_cot_rewards", "high_entropy_tokens", "gfpo", "bema"}
NEEDS_FAST = {"gspo_token", "dapo", "gfpo"}

# Papers of TRL's paper index -> the preset(s) covering them.
SEED_PAPERS = {
    "2507.18071": ["gspo", "gspo_token"],
    "2503.14476": ["dapo"],
    "2503.20783": ["dr_grpo"],
    "2508.08221": ["lite_ppo"],
    "https://fengyao.notion.site/off-policy-rl": ["tis"],
    "2510.18855": ["mis"],
    "2508.09726": ["gfpo"],
    "2305.18290": ["dpo"],
    "2310.12036": ["ipo"],
    "2305.10425": ["slic_hf"],
    "2402.00856": ["exo"],
    "2402.05369": ["nca"],
    "2403.00409": ["robust_dpo"],
    "2404.04656": ["bco"],
    "2405.00675": ["sppo"],
    "2406.05882": ["aot", "aot_unpaired"],
    "2406.08414": ["discopop"],
    "2408.06266": ["apo_zero", "apo_down"],
    "2501.03884": ["alphapo"],
    "2508.00180": ["bema"],
    "2508.05629": ["dft"],
}

INFO = {p.name: p for p in presets.available()}


def _resolve(dotted: str):
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _config(result):
    return result.config if isinstance(result, presets.Recipe) else result


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("presets"))


# --------------------------------------------------------------------------------------------
# Enumeration


def test_enumeration_is_exactly_the_table():
    assert set(INFO) == set(EXPECTED)


def test_enumeration_lists_every_preset_function():
    public = {
        name
        for name, obj in vars(presets).items()
        if inspect.isfunction(obj) and obj.__module__ == presets.__name__ and not name.startswith("_")
    }
    assert public - {"available", "get", "list"} == set(INFO)
    for name, info in INFO.items():
        assert info.function is getattr(presets, name)
        assert presets.get(name) is info.function


def test_list_alias_and_get_errors():
    assert presets.list is presets.available
    assert presets.list() == presets.available()
    namespace: dict = {}
    exec("from fastalign.trl.presets import *", namespace)
    assert "list" not in namespace  # a star-import must not shadow the builtin
    with pytest.raises(InvalidArgumentError, match="dapo") as exc:
        presets.get("dappo")
    assert exc.value.argument == "name"


@pytest.mark.parametrize("arxiv_or_url", sorted(SEED_PAPERS))
def test_every_seed_paper_is_listed(arxiv_or_url):
    for name in SEED_PAPERS[arxiv_or_url]:
        assert name in INFO, name
        assert arxiv_or_url in INFO[name].url


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_enumeration_entry(name):
    info = INFO[name]
    assert info.title and info.section
    assert info.url.startswith("https://")
    assert info.config_class == EXPECTED[name][0] or _resolve(info.config_class) is _resolve(EXPECTED[name][0])
    assert info.returns == ("recipe" if name in RECIPES else "config")
    assert info.needs_fast_trainer == (name in NEEDS_FAST)
    assert (info.trainer == FAST) == (name in NEEDS_FAST)
    if info.trainer != FAST:
        assert isinstance(_resolve(info.trainer), type)  # the trainer exists in TRL 1.16


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_docstring_cites_the_paper_and_states_its_pins(name):
    info = INFO[name]
    doc = inspect.getdoc(info.function)
    key = info.url.rsplit("/", 1)[-1] if "arxiv.org" in info.url else info.url
    assert key in doc  # the arXiv id, or the blog's address
    assert "Pinned" in doc or "No pin" in doc


# --------------------------------------------------------------------------------------------
# Construction, values, overrides


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_builds_the_papers_config(name, outdir):
    cls_path, values = EXPECTED[name]
    result = INFO[name].function(output_dir=outdir)
    assert isinstance(result, presets.Recipe) == (name in RECIPES)
    config = _config(result)
    assert type(config) is _resolve(cls_path)
    for field, value in values.items():
        assert getattr(config, field) == value, field
    assert config.bf16 is False  # CPU-safe default
    assert config.output_dir == outdir


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_overrides_pass_through(name, outdir):
    config = _config(INFO[name].function(output_dir=outdir, learning_rate=1.25e-5, seed=7, logging_steps=3))
    assert (config.learning_rate, config.seed, config.logging_steps) == (1.25e-5, 7, 3)


def test_override_replaces_a_paper_value(outdir):
    config = presets.gspo(output_dir=outdir, epsilon=1e-3, steps_per_generation=8)
    assert (config.epsilon, config.steps_per_generation, config.epsilon_high) == (1e-3, 8, 4e-4)


def test_bf16_override_is_respected(outdir):
    assert presets.dpo(output_dir=outdir, bf16=True, use_cpu=True).bf16 is True


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_unknown_field_raises_naming_it(name, outdir):
    with pytest.raises(presets.UnknownFieldError) as exc:
        INFO[name].function(output_dir=outdir, not_a_field_xyz=1)
    assert exc.value.argument == "not_a_field_xyz"
    assert "not_a_field_xyz" in str(exc.value)
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, TypeError)


@pytest.mark.parametrize(
    ("name", "field", "hint"),
    [
        ("gspo", "learning_rat", "learning_rate"),  # typo: close match
        ("dr_grpo", "max_prompt_length", "removed it"),  # removed on 1.16 (old Dr. GRPO snippet)
        ("robust_dpo", "max_prompt_length", "max_length"),
        ("apo_zero", "max_completion_length", "no separate completion limit"),  # old APO snippet
        ("cpo", "warmup_ratio", "warmup_steps"),  # transformers 5.23
        ("lite_ppo", "num_completions", "num_generations"),  # old Lite PPO snippet
    ],
)
def test_unknown_field_hints(name, field, hint, outdir):
    with pytest.raises(presets.UnknownFieldError, match=hint) as exc:
        INFO[name].function(output_dir=outdir, **{field: 1})
    assert exc.value.argument == field


# --------------------------------------------------------------------------------------------
# Contradictions and strict=False

# (preset, overrides contradicting the method, field named, value the config holds with strict=False)
CONTRADICTIONS = [
    ("deepseekmath_grpo", {"loss_type": "dapo"}, "loss_type", "dapo"),
    ("deepseek_r1", {"beta": 0.0}, "beta", 0.0),
    ("gspo", {"importance_sampling_level": "token"}, "importance_sampling_level", "token"),
    ("gspo", {"loss_type": "dapo"}, "loss_type", "dapo"),
    ("gspo_token", {"importance_sampling_level": "sequence"}, "importance_sampling_level", "sequence"),
    ("dapo", {"loss_type": "grpo"}, "loss_type", "grpo"),
    ("dapo", {"mask_truncated_completions": False}, "mask_truncated_completions", False),
    ("intellect2", {"delta": None}, "delta", None),
    ("skywork_or1", {"use_adaptive_entropy": False}, "use_adaptive_entropy", False),
    ("high_entropy_tokens", {"top_entropy_quantile": 1.0}, "top_entropy_quantile", 1.0),
    ("dr_grpo", {"scale_rewards": "group"}, "scale_rewards", "group"),
    ("dr_grpo", {"scale_rewards": True}, "scale_rewards", "group"),  # TRL maps True -> "group"
    ("dr_grpo", {"loss_type": "grpo"}, "loss_type", "grpo"),
    ("lite_ppo", {"scale_rewards": "group"}, "scale_rewards", "group"),
    ("tis", {"vllm_importance_sampling_mode": "sequence_mask"}, "vllm_importance_sampling_mode", "sequence_mask"),
    ("tis", {"use_vllm": False}, "use_vllm", False),
    ("mis", {"vllm_importance_sampling_mode": "token_truncate"}, "vllm_importance_sampling_mode", "token_truncate"),
    ("cispo", {"loss_type": "dapo"}, "loss_type", "dapo"),
    ("two_grpo", {"num_generations": 4}, "num_generations", 4),
    ("sapo", {"loss_type": "grpo"}, "loss_type", "grpo"),
    ("deepseek_v32_kl", {"beta": 0.0}, "beta", 0.0),
    ("deepseek_v32_kl", {"use_bias_correction_kl": False}, "use_bias_correction_kl", False),
    ("deepseek_v32_off_policy_mask", {"off_policy_mask_threshold": None}, "off_policy_mask_threshold", None),
    (
        "gdpo",
        {"multi_objective_aggregation": "sum_then_normalize"},
        "multi_objective_aggregation",
        "sum_then_normalize",
    ),
    ("luspo", {"importance_sampling_level": "token"}, "importance_sampling_level", "token"),
    ("vespo", {"vllm_importance_sampling_mode": "sequence_mask"}, "vllm_importance_sampling_mode", "sequence_mask"),
    ("vespo", {"importance_sampling_level": "sequence"}, "importance_sampling_level", "sequence"),
    ("dpo", {"loss_type": "ipo"}, "loss_type", ["ipo"]),
    ("ipo", {"loss_type": "sigmoid"}, "loss_type", ["sigmoid"]),
    ("exo", {"label_smoothing": 0.0}, "label_smoothing", 0.0),
    ("robust_dpo", {"label_smoothing": 0.5}, "label_smoothing", 0.5),
    ("f_dpo", {"f_divergence_type": "reverse_kl"}, "f_divergence_type", "reverse_kl"),
    ("tr_dpo", {"sync_ref_model": False}, "sync_ref_model", False),
    ("aot_unpaired", {"loss_type": "aot"}, "loss_type", ["aot"]),
    ("wpo", {"use_weighting": False}, "use_weighting", False),
    ("ld_dpo", {"ld_alpha": 1.5}, "ld_alpha", 1.5),
    ("mpo", {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 1.0]}, "loss_type", ["sigmoid", "sft"]),
    ("kto", {"loss_type": "apo_zero_unpaired"}, "loss_type", "apo_zero_unpaired"),
    ("dft", {"loss_type": "nll"}, "loss_type", "nll"),
    ("fewer_truncations", {"packing_strategy": "bfd"}, "packing_strategy", "bfd"),
    ("t5_packing", {"packing": False}, "packing", False),
    ("reinforce_pp", {"normalize_advantages": False}, "normalize_advantages", False),
    ("cpo", {"cpo_alpha": 0.0}, "cpo_alpha", 0.0),
    ("simpo", {"alpha": 0.25}, "alpha", 0.25),
    ("alphapo", {"alpha": 0.0}, "alpha", 0.0),
    ("tpo_l", {"loss_type": "sigmoid"}, "loss_type", "sigmoid"),
    ("reward_centering", {"center_rewards_coefficient": None}, "center_rewards_coefficient", None),
    ("on_policy_distillation", {"lmbda": 0.5}, "lmbda", 0.5),
    ("iw_opd", {"distillation_objective": "jsd"}, "distillation_objective", "jsd"),
]


@pytest.mark.parametrize(("name", "overrides", "field", "value"), CONTRADICTIONS)
def test_contradiction_raises_naming_the_field(name, overrides, field, value, outdir):
    with pytest.raises(InvalidArgumentError, match="strict=False") as exc:
        INFO[name].function(output_dir=outdir, **overrides)
    assert exc.value.argument == field
    assert str(exc.value).startswith(f"{field}:")


@pytest.mark.parametrize(("name", "overrides", "field", "value"), CONTRADICTIONS)
def test_strict_false_allows_the_deviation(name, overrides, field, value, outdir):
    config = _config(INFO[name].function(output_dir=outdir, strict=False, **overrides))
    assert getattr(config, field) == value


def test_strict_must_be_a_bool(outdir):
    with pytest.raises(InvalidTypeError) as exc:
        presets.gspo(output_dir=outdir, strict="no")
    assert exc.value.argument == "strict"


# --------------------------------------------------------------------------------------------
# Recipes


def _trl_soft_overlong(max_len, cache):
    from trl.rewards import get_soft_overlong_punishment

    return get_soft_overlong_punishment(max_completion_len=max_len, soft_punish_cache=cache)


def test_dapo_recipe(outdir):
    from fastalign.rewards import SoftOverlongPunishment

    recipe = presets.dapo(output_dir=outdir)
    (reward,) = recipe.reward_funcs
    assert isinstance(reward, SoftOverlongPunishment)
    trl_reward = _trl_soft_overlong(20480, 4096)
    assert reward.__name__ == trl_reward.__name__ == "soft_overlong_punishment_reward"
    assert (reward.max_completion_len, reward.soft_punish_cache) == (20480, 4096)
    lengths = [0, 1, 16383, 16384, 16385, 18000, 20479, 20480, 20481, 30000]
    ids = [[7] * n for n in lengths]
    assert reward(completion_ids=ids, prompts=["p"] * len(ids)) == trl_reward(completion_ids=ids)
    assert recipe.callbacks == ()
    assert recipe.trainer_cls == FAST and recipe.needs_fast_trainer
    assert dict(recipe.trainer_kwargs) == {"dynamic_sampling": True, "max_num_gen_batches": 10}


def test_dapo_reward_follows_the_final_max_completion_length(outdir):
    recipe = presets.dapo(output_dir=outdir, max_completion_length=100, soft_punish_cache=20)
    (reward,) = recipe.reward_funcs
    assert recipe.config.max_completion_length == reward.max_completion_len == 100
    ids = [[1] * n for n in range(0, 130, 3)]
    assert reward(completion_ids=ids) == _trl_soft_overlong(100, 20)(completion_ids=ids)
    with pytest.raises(InvalidArgumentError) as exc:  # the paper's 4096-token cache exceeds 100
        presets.dapo(output_dir=outdir, max_completion_length=100)
    assert exc.value.argument == "soft_punish_cache"


def test_dapo_without_dynamic_sampling_runs_on_stock_trl(outdir):
    recipe = presets.dapo(output_dir=outdir, dynamic_sampling=False)
    assert recipe.trainer_class() is trl.GRPOTrainer
    assert not recipe.needs_fast_trainer and dict(recipe.trainer_kwargs) == {}
    with pytest.raises(InvalidTypeError):
        presets.dapo(output_dir=outdir, dynamic_sampling="yes")
    with pytest.raises(InvalidArgumentError) as exc:
        presets.dapo(output_dir=outdir, max_num_gen_batches=0)
    assert exc.value.argument == "max_num_gen_batches"


def test_high_entropy_recipe_carries_the_soft_overlong_reward(outdir):
    recipe = presets.high_entropy_tokens(output_dir=outdir)
    (reward,) = recipe.reward_funcs
    assert reward.__name__ == "soft_overlong_punishment_reward"
    assert (reward.max_completion_len, reward.soft_punish_cache) == (20480, 4096)
    assert recipe.trainer_class() is trl.GRPOTrainer


def test_fast_trainer_is_resolved_lazily(outdir):
    recipe = presets.gspo_token(output_dir=outdir)
    import fastalign.trl

    assert recipe.trainer_class() is fastalign.trl.FastGRPOTrainer


def test_gfpo_recipe(outdir):
    recipe = presets.gfpo(output_dir=outdir)
    assert dict(recipe.trainer_kwargs) == {"gfpo_num_remains_in_group": 8, "gfpo_metric": "length"}
    assert recipe.trainer_cls == FAST
    recipe = presets.gfpo(output_dir=outdir, num_remains_in_group=4, group_filter="reward_per_token")
    assert dict(recipe.trainer_kwargs) == {"gfpo_num_remains_in_group": 4, "gfpo_metric": "reward_per_token"}
    with pytest.raises(InvalidArgumentError) as exc:
        presets.gfpo(output_dir=outdir, num_remains_in_group=16)
    assert exc.value.argument == "num_remains_in_group"
    with pytest.raises(InvalidArgumentError) as exc:
        presets.gfpo(output_dir=outdir, group_filter="longest")
    assert exc.value.argument == "group_filter"


def test_bema_recipe(outdir):
    recipe = presets.bema(output_dir=outdir)
    (callback,) = recipe.callbacks
    assert isinstance(callback, trl.BEMACallback)
    assert (callback.update_freq, callback.ema_power, callback.bias_power, callback.lag) == (400, 0.5, 0.2, 10)
    assert recipe.trainer_class() is trl.SFTTrainer
    (callback,) = presets.bema(output_dir=outdir, bema_kwargs={"update_freq": 50}).callbacks
    assert callback.update_freq == 50
    with pytest.raises(presets.UnknownFieldError, match="update_freq") as exc:
        presets.bema(output_dir=outdir, bema_kwargs={"update_frq": 50})
    assert exc.value.argument == "update_frq"


def test_long_cot_recipe_uses_trls_rewards(outdir):
    recipe = presets.long_cot_rewards(output_dir=outdir)
    cosine, repetition = recipe.reward_funcs
    assert all(
        type(f).__module__.startswith("trl.rewards") or f.__module__.startswith("trl.rewards")
        for f in recipe.reward_funcs
    )
    ids = [[1, 2, 3] * 4]  # 10 trigrams, 3 distinct: (1 - 3/10) * max_penalty(-1.0)
    assert repetition(completion_ids=ids) == [pytest.approx(-0.7)]
    assert recipe.trainer_class() is trl.GRPOTrainer


def test_recipe_is_frozen(outdir):
    recipe = presets.dapo(output_dir=outdir)
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.config = None
    with pytest.raises(TypeError):
        recipe.trainer_kwargs["dynamic_sampling"] = False


@pytest.mark.parametrize(("level", "mode"), [("token", "token_truncate"), ("sequence", "sequence_truncate")])
def test_tis_levels(level, mode, outdir):
    assert presets.tis(output_dir=outdir, level=level).vllm_importance_sampling_mode == mode
    assert presets.mis(output_dir=outdir, level=level).vllm_importance_sampling_mode == mode.replace("truncate", "mask")


def test_tis_level_checked(outdir):
    with pytest.raises(InvalidArgumentError) as exc:
        presets.tis(output_dir=outdir, level="batch")
    assert exc.value.argument == "level"


# --------------------------------------------------------------------------------------------
# The paper-index snippets the presets correct really fail (or change meaning) on TRL 1.16


def test_page_snippets_that_fail_on_1_16(outdir):
    from trl.experimental.cpo import CPOConfig

    base = dict(output_dir=outdir, bf16=False)
    # generation batch (8 per device by default) not divisible by num_generations=16
    with pytest.raises(ValueError, match="divisible by num_generations"):
        trl.GRPOConfig(**base, learning_rate=4.0e-5, max_completion_length=32768, num_generations=16, beta=0.001)
    # Dr. GRPO: per-device batch 1 with 8 generations
    with pytest.raises(ValueError, match="divisible by num_generations"):
        trl.GRPOConfig(
            **base,
            loss_type="dr_grpo",
            per_device_train_batch_size=1,
            num_generations=8,
            max_completion_length=3000,
            beta=0.0,
        )
    with pytest.raises(TypeError, match="max_prompt_length"):
        trl.GRPOConfig(**base, max_prompt_length=1024)
    with pytest.raises(TypeError, match="num_completions"):
        trl.GRPOConfig(**base, num_completions=8)
    with pytest.raises(TypeError, match="max_prompt_length"):
        trl.DPOConfig(**base, loss_type="robust", max_prompt_length=128)
    with pytest.raises(TypeError, match="warmup_ratio"):
        CPOConfig(**base, warmup_ratio=0.01)
    with pytest.raises(ImportError):  # the older index's `from trl import CPOConfig`
        exec("from trl import CPOConfig")
    # old TIS snippet: the deprecated cap alone now means *masked* IS (default mode sequence_mask)
    with pytest.warns(FutureWarning):
        old_tis = trl.GRPOConfig(**base, use_vllm=True, vllm_importance_sampling_cap=2.0)
    assert old_tis.vllm_importance_sampling_mode == "sequence_mask"
    # IW-OPD: warmup_ratio is gone, and a 16384-token completion does not fit the default max_length
    from trl.experimental.iw_opd import IWOPDConfig

    with pytest.raises(TypeError, match="warmup_ratio"):
        IWOPDConfig(**base, warmup_ratio=0.0)
    with pytest.raises(ValueError, match="max_length"):
        IWOPDConfig(**base, max_prompt_length=2048, max_completion_length=16384)
    # AlphaPO on 1.16: rewritten to simpo with cpo_alpha forced to 0
    alphapo = CPOConfig(**base, loss_type="alphapo", alpha=0.25, cpo_alpha=1.0)
    assert (alphapo.loss_type, alphapo.cpo_alpha) == ("simpo", 0.0)


# --------------------------------------------------------------------------------------------
# End to end: the presets' DPO configs drive a real DPOTrainer on CPU


def _preference_data():
    from datasets import Dataset

    return Dataset.from_dict(
        {
            # trailing space: TRL concatenates prompt and completion, and the word-level tokenizer splits on spaces
            "prompt": ["what is 1 + 1 ? ", "what is 2 + 2 ? ", "what is 3 + 1 ? ", "what is 2 + 1 ? "],
            "chosen": ["the answer is 2", "the answer is 4", "the answer is 4", "the answer is 3"],
            "rejected": ["the answer is 3", "the answer is 5", "the answer is 1", "the answer is 9"],
        }
    )


def _cpu_args(outdir):
    return dict(
        output_dir=outdir,
        use_cpu=True,
        report_to=[],
        per_device_train_batch_size=2,
        max_steps=1,
        save_strategy="no",
        logging_steps=1,
        gradient_checkpointing=False,
        disable_tqdm=True,
        seed=0,
        max_length=16,
    )


def test_dpo_preset_trains_one_step_on_cpu(outdir):
    from fastalign.testing import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    args = presets.dpo(**_cpu_args(outdir))
    # the reference model is passed explicitly (same seed, so the policy's initial weights): a
    # model built from a config has no hub id for DPOTrainer to load a reference from
    trainer = trl.DPOTrainer(
        model=tiny_model(tok),
        ref_model=tiny_model(tok),
        args=args,
        train_dataset=_preference_data(),
        processing_class=tok,
    )
    out = trainer.train()
    assert out.global_step == 1
    (loss,) = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    # policy == reference before the first update, so every margin is 0 and the sigmoid loss is log 2
    assert loss == pytest.approx(math.log(2), abs=1e-4)
    assert trainer.loss_types == ["sigmoid"] and trainer.beta == 0.1


def test_exo_correction_is_what_lets_the_trainer_start(outdir):
    from fastalign.testing import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    model, ref = tiny_model(tok), tiny_model(tok)
    data = _preference_data()
    # the paper index's EXO snippet (label_smoothing left at 0) is refused by DPOTrainer 1.16 ...
    page = presets.exo(**_cpu_args(outdir), label_smoothing=0.0, strict=False)
    with pytest.raises(ValueError, match="1e-3"):
        trl.DPOTrainer(model=model, ref_model=ref, args=page, train_dataset=data, processing_class=tok)
    # ... the preset's ε = 1e-3 is accepted
    trainer = trl.DPOTrainer(
        model=model, ref_model=ref, args=presets.exo(**_cpu_args(outdir)), train_dataset=data, processing_class=tok
    )
    assert trainer.label_smoothing == 1e-3
