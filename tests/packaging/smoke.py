"""Smoke test of an installed fastalign wheel, run by tests/robustness/test_wheel.py in a fresh virtual
environment that has the wheel and numpy only (no torch, TRL, transformers or datasets), on each
CPython it finds. Run from outside the checkout, so the installed package is the one imported.

Checks: the abi3 extension from site-packages, the metadata a user reads, the numpy core
(rewards, advantages, masks, packing, balancing) against plain-numpy expectations, and that
the modules needing an extra say which one when it is missing.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import pathlib
import sys

import numpy as np

import fastalign
from fastalign import _native

pkg = pathlib.Path(fastalign.__file__).parent
assert "site-packages" in pkg.parts, f"imported from {pkg}, not from the installed wheel"
assert pathlib.Path(_native.__file__).name == "_native.abi3.so", _native.__file__
assert sorted(p.name for p in pkg.glob("_native*")) == ["_native.abi3.so", "_native.pyi"]
assert _native.build_profile == "release"
assert fastalign.__version__ == md.version("fastalign")
assert (pkg / "py.typed").exists()

meta = md.metadata("fastalign")
assert meta["License-Expression"] == "Apache-2.0", meta["License-Expression"]
assert "Typing :: Typed" in meta.get_all("Classifier")
assert meta["Requires-Python"] == ">=3.11"
assert {"torch", "trl", "vllm", "demo", "dev"} <= set(meta.get_all("Provides-Extra"))
assert meta.get_all("Requires-Dist") and all(
    "extra ==" in r for r in meta.get_all("Requires-Dist") if not r.startswith("numpy")
), "only numpy is required"
dist = md.distribution("fastalign")
licence = [f for f in dist.files if f.name == "LICENSE"]
assert licence and "Apache License" in licence[0].read_text(), "LICENSE missing from the wheel"

# --- the numpy core ------------------------------------------------------------------------
from fastalign.advantages import grpo_advantages, zero_variance_groups  # noqa: E402
from fastalign.overlong import completion_mask  # noqa: E402
from fastalign.packing import balance_partitions, bfd, cu_seqlens, position_ids  # noqa: E402
from fastalign.rewards import soft_overlong, soft_overlong_penalty  # noqa: E402

# rewards: DAPO's soft overlong punishment, on token lists (TRL's reward-function call) and lengths
reward = soft_overlong(10, 4)  # 0 up to 6 tokens, -1/4 per token over 6, -1 past 10
assert reward(completion_ids=[[1] * 3, [1] * 8, [1] * 12]) == [0.0, -0.5, -1.0]
np.testing.assert_array_equal(soft_overlong_penalty(np.array([3, 8, 12]), 10, 4), [0.0, -0.5, -1.0])

# advantages: GRPO's group-normalised rewards (std with Bessel's correction, as torch.std)
rewards = np.array([1.0, 0.0, 1.0, 1.0, 2.0, 2.0], np.float32)
adv = grpo_advantages(rewards, 3)
want = np.concatenate([(g - g.mean()) / (g.std(ddof=1) + 1e-4) for g in rewards.reshape(2, 3)])
np.testing.assert_allclose(np.asarray(adv.advantages), want, rtol=1e-5, atol=1e-6)
assert zero_variance_groups(np.array([1.0, 1.0, 0.0, 1.0], np.float32), 2).tolist() == [True, False]

# masks: up to and including the first EOS
ids = np.array([[5, 2, 7, 0], [5, 6, 7, 8]], np.int64)
m = completion_mask(ids, eos_token_id=2, pad_token_id=0)
assert np.asarray(m.mask).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]

# packing: best-fit decreasing, positions and boundaries; Karmarkar-Karp balancing
lengths = np.array([5, 3, 4, 2, 6], np.int64)
packed = bfd(lengths, 8)
assert sorted(packed.order.tolist()) == list(range(5))  # every sequence placed once
bins = np.split(packed.lengths, packed.bin_offsets[1:-1])
assert all(b.sum() <= 8 for b in bins) and len(bins) == 3  # 20 tokens: 6+2, 5+3, 4
assert position_ids(np.array([3, 2])).tolist() == [0, 1, 2, 0, 1]
assert cu_seqlens(np.array([3, 2])).tolist() == [0, 3, 5]
weights = [8, 7, 6, 5, 4, 3, 2, 1]
parts = balance_partitions(np.array(weights), 2)
assert sorted(i for p in parts for i in p) == list(range(8))
assert [sum(weights[i] for i in p) for p in parts] == [18, 18]  # a perfect split exists and KK finds it

# --- the modules that need an extra say which one ------------------------------------------
absent = [name for name in ("torch", "trl", "transformers", "datasets") if importlib.util.find_spec(name) is None]
assert absent == ["torch", "trl", "transformers", "datasets"], f"this environment should have numpy only: {absent}"
for module, extra in [
    ("fastalign.losses", "torch"),
    ("fastalign.ops", "torch"),
    ("fastalign.ratios", "torch"),
    ("fastalign.trl", "trl"),
    ("fastalign.padding_free", "trl"),
]:
    try:
        importlib.import_module(module)
    except ImportError as e:
        assert isinstance(e, fastalign.MissingExtraError) and isinstance(e, ModuleNotFoundError)
        assert f'pip install "fastalign[{extra}]"' in str(e), (module, str(e))
        assert (module + ".").startswith(e.needed_by + "."), (module, e.needed_by)  # it, or its package
    else:
        raise AssertionError(f"{module} imported without its extra")

print(f"smoke: fastalign {fastalign.__version__} ({_native.__file__}) OK on Python {sys.version.split()[0]}")
