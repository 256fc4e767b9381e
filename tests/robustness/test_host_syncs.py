"""Host synchronisations per call on the torch path (what CUDA runs), beside TRL 1.16's own code.

There is no GPU here, so the accelerator branch is forced on CPU tensors, as in
tests/unit/test_torch_path.py: ``_validate.on_accelerator`` says yes to every tensor, and fastalign's
custom ops run their plain-torch kernel (``_torch_losses``) instead of the Rust one
(:func:`accelerator_path`). A
``TorchDispatchMode`` (:class:`HostSyncs`) then counts what would make the host wait for the
device on CUDA. TRL is run for real on the same inputs and counted by the same mode:

* ``grpo_loss``: ``GRPOTrainer._compute_loss`` on a tiny trainer whose forward returns injected
  log-probs (``fastalign.testing.injected_logps_grpo_trainer``), backward included, against
  ``grpo_loss`` + backward + ``.metrics()`` (fastalign's count includes reading the metrics, as
  TRL's includes logging them; ``num_items_in_batch`` is TRL's 0-d tensor);
* the ratios: the sequence log-ratio lines of that ``_compute_loss``;
* ``vllm_is_ratio``, ``grpo_advantages`` and ``rloo_advantages``: the lines of TRL's
  ``_generate_and_score_completions`` (GRPO, RLOO) that compute the IS ratio and its
  ``sampling/*`` metrics, and the advantages and the reward metrics, run on a tiny trainer with
  a fixed ``rollout_func`` (vLLM's path without an engine) and counted by source line (the
  section is found from two lines of TRL's installed source);
* ``completion_mask``: the EOS-mask lines of ``GRPOTrainer._generate_single_turn`` (its model's
  ``generate`` returns fixed ids);
* ``dpo_loss``, ``cpo_loss``, ``dft_loss``: ``DPOTrainer._compute_loss``,
  ``CPOTrainer.get_batch_loss_metrics`` and ``SFTTrainer.compute_loss`` (``loss_type="dft"``) on
  the stubs of tests/parity/test_preference_losses.py, against the loss, its backward and ``.metrics()``.

The counts are recorded in :data:`COUNTS` (fastalign, TRL; ``None`` where TRL has no such code on
device tensors) and asserted exactly, with fastalign <= TRL. Host-to-device copies of Python data
(``torch.tensor(..., device=...)``, blocking on CUDA) are counted apart: fastalign makes none.

What the sync count covers (see :class:`HostSyncs`): ``.item()``/``bool()``/``float()``
(``aten._local_scalar_dense``, ``aten.is_nonzero``), ``aten.nonzero``, boolean-mask indexing and
``masked_select``, ``repeat_interleave`` without ``output_size``, ``unique``, and the Python reads
``Tensor.tolist()``, ``.numpy()``, ``.cpu()``. ``.to("cpu")`` and host-to-device ``.to(device)``
of a CPU tensor cannot be told from a no-op here and are not counted (TRL's
``reward_weights.to(device)`` is one such blocking copy per call on CUDA: TRL's counts are lower
bounds). Tensors that stay in CPU memory on a GPU machine too (TRL's ``reward_weights``) are
exempt (``host=``).

On a machine with CUDA, ``test_cuda_losses_and_ratios_match_cpu_without_syncs`` checks the real
thing: CUDA's sync debug mode sees no synchronisation in ``grpo_loss`` + backward (every case of
:data:`LOSS_CASES`) nor in the ratios, and the results equal the CPU's (scripts/gpu_check.sh).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
from helpers.grpo_loss import GA, SPG, Cfg, make_batch, op_args, run_trl, tolerances, trl_is_ratio
from helpers.trl_preference import trl_cpo, trl_dft, trl_dpo
from torch.utils._python_dispatch import TorchDispatchMode

from fastalign import _native, _validate, ops
from fastalign._torch_backend import layout as _torch_losses
from fastalign.advantages import grpo_advantages, rloo_advantages, top_k_per_group, zero_variance_groups
from fastalign.errors import InvalidArgumentError, InvalidTypeError
from fastalign.losses import cpo_loss, dft_loss, dpo_loss, grpo_loss, wpo_weights
from fastalign.overlong import completion_mask
from fastalign.ratios import importance_weights, masked_max, masked_mean, masked_sum, sequence_log_ratio, vllm_is_ratio
from fastalign.rewards import soft_overlong, soft_overlong_penalty

# ------------------------------------------------------------------------------------------
# the counting mode

aten = torch.ops.aten

_SCALAR_READS = {aten._local_scalar_dense.default, aten.item.default, aten.is_nonzero.default, aten.equal.default}
_NONZERO = {aten.nonzero.default, aten.masked_select.default, aten.argwhere.default}
_UNIQUE = {aten._unique2.default, aten._unique.default, aten.unique_dim.default, aten.unique_consecutive.default}
_INDEX = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}

_FASTALIGN_OPS = {
    "grpo_loss": ops.grpo_loss,
    "masked_reduce": ops.masked_reduce,
    "masked_reduce_backward": ops.masked_reduce_backward,
    "vllm_is_ratio": ops.vllm_is_ratio,
}

_HERE = os.path.abspath(__file__)
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep


@dataclass
class Event:
    kind: str
    """``sync`` (the host waits for the device) or ``h2d`` (a blocking copy of Python data)."""
    what: str
    frames: list[tuple[str, int, str]] = field(repr=False)
    """(file, line, function) from the innermost caller outwards, torch's own frames left out."""


def _bool_index(indices: Any) -> bool:
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ())


class HostSyncs(TorchDispatchMode):
    """``with HostSyncs() as s: ...`` then ``s.count()`` / ``s.count(section=...)``.

    Records (kind ``sync``) every operator whose CUDA kernel copies a value back to the host and
    so blocks until the work queued before it is done: scalar reads (``.item()``, ``bool(t)``,
    ``float(t)``, ``aten.equal``), ``nonzero`` and what stands on it (boolean-mask indexing,
    ``masked_select``, ``repeat_interleave`` without ``output_size``, ``unique``); and, by
    wrapping the ``torch.Tensor`` methods that read memory outside the dispatcher on the CPU,
    ``Tensor.tolist()``, ``.numpy()`` and ``.cpu()``. Kind ``h2d``: host-to-device copies of
    Python data (``torch.tensor(..., device=...)``, ``torch.as_tensor(..., device=...)``,
    ``Tensor.new_tensor``), blocking on CUDA (``non_blocking=False``).

    Each event keeps the Python stack it came from, so a count can be limited to a section of a
    longer TRL method. fastalign's custom ops are opaque to a dispatch mode: the mode runs their
    plain-torch implementation (what CUDA runs) inside itself, so their operators are seen, and
    the Rust kernels never run while it is active. It also notes the largest float64 tensor an
    operator returned (:attr:`largest_f64`).
    """

    def __init__(self, host: tuple[torch.Tensor, ...] = ()) -> None:
        super().__init__()
        self.host = {id(t) for t in host}
        """Tensors that live in CPU memory on a CUDA machine too (TRL's ``reward_weights``):
        reading them (``.numpy()``, ``.tolist()``) is not a device sync."""
        self.events: list[Event] = []
        self._saved: dict[tuple[Any, str], Any] = {}
        self.largest_f64: tuple[int, str] = (0, "")
        """(elements, operator) of the largest float64 tensor an operator returned."""

    # -- recording ------------------------------------------------------------------------
    def _record(self, kind: str, what: str) -> None:
        frames = []
        f = sys._getframe(2)
        while f is not None:
            name = os.path.abspath(f.f_code.co_filename)
            if name != _HERE and not name.startswith(_TORCH_DIR):
                frames.append((name, f.f_lineno, f.f_code.co_name))
            f = f.f_back
        self.events.append(Event(kind, what, frames))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "fastalign":
            # the op's plain-torch implementation, inside this mode so that its operators are seen
            with self:
                return _FASTALIGN_OPS[func._opname]._init_fn(*args, **kwargs)
        what = None
        if func in _SCALAR_READS or func in _NONZERO or func in _UNIQUE:
            what = func._opname
        elif func in _INDEX and _bool_index(args[1] if len(args) > 1 else kwargs.get("indices")):
            what = f"{func._opname} (bool mask)"
        elif func is aten.repeat_interleave.Tensor and kwargs.get("output_size") is None and len(args) < 2:
            what = "repeat_interleave without output_size"
        if what is not None:
            self._record("sync", what)
        out = func(*args, **kwargs)
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.dtype == torch.float64 and t.numel() > self.largest_f64[0]:
                self.largest_f64 = (t.numel(), str(func))
        return out

    # -- the Python-level reads and writes of device memory ------------------------------
    def _wrap(self, owner: Any, name: str, kind: str, when=lambda args, kwargs: True) -> None:
        original = getattr(owner, name)
        self._saved[(owner, name)] = original
        mode = self

        def wrapper(*args, **kwargs):
            if when(args, kwargs) and not (args and id(args[0]) in mode.host):
                mode._record(kind, f"{name}()")
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)

    def __enter__(self):
        # the mode re-enters itself to run fastalign's ops: wrap the methods once
        self._depth = getattr(self, "_depth", 0) + 1
        if self._depth == 1:
            self._wrap(torch.Tensor, "tolist", "sync")
            self._wrap(torch.Tensor, "numpy", "sync")
            self._wrap(torch.Tensor, "cpu", "sync")
            self._wrap(torch.Tensor, "new_tensor", "h2d")
            self._wrap(torch, "tensor", "h2d", lambda a, k: k.get("device") is not None)
            self._wrap(torch, "as_tensor", "h2d", lambda a, k: k.get("device") is not None)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._depth -= 1
            if self._depth == 0:
                for (owner, name), original in self._saved.items():
                    setattr(owner, name, original)
                self._saved.clear()

    # -- reading the record ---------------------------------------------------------------
    def select(self, kind: str = "sync", section: tuple[Any, str, str] | None = None) -> list[Event]:
        """The events of ``kind``; with ``section=(function, first, end)``, only those raised
        while ``function`` ran the lines from the first line containing ``first`` up to (not
        including) the next line containing ``end``."""
        events = [e for e in self.events if e.kind == kind]
        if section is None:
            return events
        fn, first, end = section
        path, lo, hi = _section_lines(fn, first, end)
        name = fn.__name__
        return [e for e in events if any(f == path and lo <= ln < hi and co == name for f, ln, co in e.frames)]

    def count(self, kind: str = "sync", section: tuple[Any, str, str] | None = None) -> int:
        return len(self.select(kind, section))

    def summary(self, kind: str = "sync", section: tuple[Any, str, str] | None = None) -> str:
        """``what@file:line`` of each event, for assertion messages."""
        out = Counter()
        for e in self.select(kind, section):
            f, ln, _ = e.frames[0] if e.frames else ("?", 0, "?")
            out[f"{e.what}@{os.path.basename(f)}:{ln}"] += 1
        return ", ".join(f"{k} x{n}" if n > 1 else k for k, n in out.items()) or "none"


def _section_lines(fn: Any, first: str, end: str) -> tuple[str, int, int]:
    lines, start = inspect.getsourcelines(fn)
    path = os.path.abspath(inspect.getsourcefile(fn))
    i = next((k for k, line in enumerate(lines) if first in line), None)
    if i is None:
        raise AssertionError(f"{fn.__qualname__} has no line containing {first!r} (TRL changed?)")
    j = next((k for k in range(i + 1, len(lines)) if end in lines[k]), None)
    if j is None:
        raise AssertionError(f"{fn.__qualname__} has no line containing {end!r} after {first!r} (TRL changed?)")
    return path, start + i, start + j


@contextlib.contextmanager
def accelerator_path():
    """The branch CUDA tensors take, on CPU tensors: ``on_accelerator`` says yes to every
    tensor (the public functions' dispatch, ``check_finite=None``'s choice, the op's backward),
    and the custom ops run their plain-torch kernel (their CPU kernels disabled, no eager
    shortcut to the Rust kernel). ``grpo_advantages``' one-call fast path, which reads a CPU
    tensor through ``.numpy()`` (a CUDA tensor makes it decline before reading), declines."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(_validate, "on_accelerator", _validate.is_torch))
        stack.enter_context(mock.patch.object(_native, "grpo_advantages_fast", lambda *args: None))
        stack.enter_context(mock.patch.object(ops, "_plain_eager_cpu", lambda tensors: False))
        for op in _FASTALIGN_OPS.values():
            stack.enter_context(op.set_kernel_enabled("cpu", False))
        yield


def count(fn, *, fastalign: bool, host: tuple[torch.Tensor, ...] = ()) -> HostSyncs:
    """Run ``fn()`` under :class:`HostSyncs` (on the accelerator branch for fastalign); ``host``:
    tensors that stay in CPU memory on a CUDA machine too."""
    with accelerator_path() if fastalign else contextlib.nullcontext(), HostSyncs(host) as syncs:
        fn()
    return syncs


# ------------------------------------------------------------------------------------------
# the record: (fastalign, TRL) synchronisations per call; TRL None = no TRL code on device tensors

COUNTS: dict[str, tuple[int, int | None]] = {}


def check(case: str, ours: HostSyncs, theirs: int | None, trl_detail: str = "") -> None:
    """Assert the recorded counts, fastalign <= TRL, and no blocking host-to-device copy."""
    mine = ours.count()
    want_ours, want_theirs = COUNTS[case]
    assert ours.count("h2d") == 0, f"{case}: host-to-device copies {ours.summary('h2d')}"
    assert (mine, theirs) == (want_ours, want_theirs), (
        f"{case}: fastalign {mine} ({ours.summary()}), TRL {theirs} ({trl_detail}); recorded {COUNTS[case]}"
    )
    if theirs is not None:
        assert mine <= theirs, case


# ------------------------------------------------------------------------------------------
# grpo_loss and the ratios against GRPOTrainer._compute_loss

LOSS_CASES = {
    "grpo_loss dapo": Cfg(),
    "grpo_loss grpo, sequence, kl, IS": Cfg(loss_type="grpo", level="sequence", beta=0.04, is_mode="sequence_mask"),
    "grpo_loss bnpo, off-policy mask": Cfg(loss_type="bnpo", opsm=0.05),
    "grpo_loss dr_grpo, delta, kl": Cfg(loss_type="dr_grpo", delta=1.5, beta=0.04, bias_kl=False),
    "grpo_loss cispo": Cfg(loss_type="cispo"),
    "grpo_loss sapo, IS": Cfg(loss_type="sapo", is_mode="token_truncate"),
    "grpo_loss vespo, IS": Cfg(loss_type="vespo", is_mode="token_mask"),
    "grpo_loss luspo, sequence": Cfg(loss_type="luspo", level="sequence"),
}
COUNTS.update({
    "grpo_loss dapo": (1, 10),
    "grpo_loss grpo, sequence, kl, IS": (1, 11),
    "grpo_loss bnpo, off-policy mask": (1, 10),
    "grpo_loss dr_grpo, delta, kl": (1, 11),
    "grpo_loss cispo": (1, 2),
    "grpo_loss sapo, IS": (0, 1),
    "grpo_loss vespo, IS": (1, 2),
    "grpo_loss luspo, sequence": (1, 10),
})  # fmt: skip
NUM_ITEMS = 50


@pytest.fixture(scope="module")
def loss_trainer():
    from fastalign.testing import injected_logps_grpo_trainer

    return injected_logps_grpo_trainer(num_generations=2, per_device_train_batch_size=2)


def fastalign_grpo(trainer, cfg: Cfg, bt, read_metrics=True, **kw):
    """``grpo_loss`` fed as a trainer feeds it (TRL's tensor ``num_items_in_batch``), its backward
    and its metrics."""
    lp = bt.lp.clone().requires_grad_()
    isr = None if cfg.is_mode is None else trl_is_ratio(bt.old, bt.samp, bt.mask, cfg.is_mode)
    out = grpo_loss(
        lp, bt.old, bt.adv, bt.mask, loss_type=cfg.loss_type, importance_sampling_level=cfg.level,
        epsilon=cfg.epsilon, epsilon_high=cfg.epsilon_high, delta=cfg.delta, beta=cfg.beta,
        ref_per_token_logps=bt.ref if cfg.beta != 0.0 else None, use_bias_correction_kl=cfg.bias_kl,
        importance_sampling_ratio=isr, sampling_per_token_logps=bt.samp, off_policy_mask_threshold=cfg.opsm,
        num_items_in_batch=torch.tensor(NUM_ITEMS), gradient_accumulation_steps=GA, steps_per_generation=SPG,
        max_completion_length=trainer.max_completion_length, **kw,
    )  # fmt: skip
    out.loss.backward()
    return out.loss.detach(), lp.grad, out.metrics() if read_metrics else None


@pytest.mark.parametrize("case", list(LOSS_CASES))
def test_grpo_loss_syncs(loss_trainer, case):
    cfg = LOSS_CASES[case]
    bt = make_batch(11, b=8, t=16, dtype=torch.float32)
    res = {}
    theirs = count(lambda: res.update(trl=run_trl(loss_trainer, cfg, bt, NUM_ITEMS)), fastalign=False)
    ours = count(lambda: res.update(ours=fastalign_grpo(loss_trainer, cfg, bt)), fastalign=True)
    check(case, ours, theirs.count(), theirs.summary())
    # the loss and its backward make none: the one sync is reading the metrics
    bare = count(lambda: fastalign_grpo(loss_trainer, cfg, bt, read_metrics=False), fastalign=True)
    assert bare.count() == 0 and bare.count("h2d") == 0, bare.summary()
    # what was counted is the computation TRL makes: same loss, gradient and metrics
    (tl, tg, tm), (fl, fg, fm) = res["trl"], res["ours"]
    rtol, atol = tolerances(torch.float32)
    scale = max(1.0, float(tg.abs().max()), float(tl.abs()))
    torch.testing.assert_close(fl, tl, rtol=rtol, atol=atol * scale)
    torch.testing.assert_close(fg, tg, rtol=rtol, atol=atol * scale)
    for k, want in fm.items():
        assert (math.isnan(want) and math.isnan(tm[k])) or math.isclose(want, tm[k], rel_tol=1e-5, abs_tol=1e-6), k


RATIO_CASES = {
    "sequence_log_ratio": lambda lp, old, m: sequence_log_ratio(lp, old, m),
    "masked_mean": lambda lp, old, m: masked_mean(lp - old, m),
    "masked_sum": lambda lp, old, m: masked_sum(lp - old, m),
    "importance_weights sequence": lambda lp, old, m: importance_weights(lp, old, m, level="sequence"),
    "importance_weights token": lambda lp, old, m: importance_weights(lp, old, m, level="token"),
    "importance_weights sequence_token": lambda lp, old, m: importance_weights(lp, old, m, level="sequence_token"),
    "masked_max": lambda lp, old, m: masked_max(lp - old, m),
}
COUNTS.update({name: (0, 0) for name in RATIO_CASES})
COUNTS.update({"importance_weights sequence_token": (0, None), "masked_max": (0, None)})
# TRL's lines for the same computation: GSPO's masked mean of the log-ratio in _compute_loss
RATIO_SECTION = ("log_ratio = per_token_logps - old_per_token_logps", "# Compute the KL divergence")


@pytest.mark.parametrize("case", list(RATIO_CASES))
def test_ratio_syncs(loss_trainer, case):
    from trl import GRPOTrainer

    bt = make_batch(12, b=8, t=16, dtype=torch.float32)
    theirs = count(lambda: run_trl(loss_trainer, Cfg(level="sequence"), bt, NUM_ITEMS), fastalign=False)
    section = (GRPOTrainer._compute_loss, *RATIO_SECTION)
    trl = theirs.count(section=section) if COUNTS[case][1] is not None else None

    def ours_fn():
        lp = bt.lp.clone().requires_grad_()
        RATIO_CASES[case](lp, bt.old, bt.mask).sum().backward()

    check(case, count(ours_fn, fastalign=True), trl, theirs.summary(section=section))


def test_packed_layout_reads_cu_seqlens_once():
    """Packed (N,) inputs: the one sync is the check of ``cu_seqlens``' values (fastalign's own
    layout; TRL's GRPO has none). The rest of the op makes none."""
    bt = make_batch(13, b=6, t=7, dtype=torch.float32)
    cu = torch.arange(0, 6 * 7 + 1, 7)
    flat = [x.reshape(-1) for x in (bt.lp, bt.old, bt.mask)]

    def ours_fn():
        lp = flat[0].clone().requires_grad_()
        out = grpo_loss(lp, flat[1], bt.adv, flat[2], cu_seqlens=cu, num_items_in_batch=torch.tensor(NUM_ITEMS))
        (out.loss + sequence_log_ratio(lp, flat[1], flat[2], cu_seqlens=cu).sum()).backward()

    syncs = count(ours_fn, fastalign=True)
    assert syncs.count() == 2 and syncs.count("h2d") == 0, syncs.summary()
    assert all(e.frames[0][2] == "cu_seqlens" for e in syncs.select()), syncs.summary()


# ------------------------------------------------------------------------------------------
# vllm_is_ratio and the advantages against TRL's _generate_and_score_completions

G = 4
IS_MODES = {"token_truncate": (None, 2.0), "token_mask": (0.5, 2.0), "sequence_truncate": (None, 3.0),
            "sequence_mask": (0.5, 3.0)}  # fmt: skip
ADV_CASES = {  # (scale_rewards, multi_objective_aggregation), one IS mode each (one TRL run each)
    "token_truncate": ("group", "sum_then_normalize"),
    "token_mask": ("batch", "sum_then_normalize"),
    "sequence_truncate": ("none", "sum_then_normalize"),
    "sequence_mask": ("group", "normalize_then_sum"),
}
IS_SECTIONS = (
    ("per_token_logps_diff = (old_per_token_logps - sampling_per_token_logps) * mask",
     "# Compute the per-token log probabilities for the reference model"),
    ("delta = torch.abs(old_per_token_logps - sampling_per_token_logps)", "output = {"),
)  # fmt: skip
ADV_SECTION = ("unscorable_mask = torch.isnan(rewards_per_func).all(dim=1)", "# Log prompts and completions")
COUNTS.update({f"vllm_is_ratio {m}": (1, 11 if m.startswith("token") else 10) for m in IS_MODES})
COUNTS.update({
    "grpo_advantages group": (1, 7),
    "grpo_advantages batch": (1, 7),
    "grpo_advantages none": (1, 7),
    "grpo_advantages normalize_then_sum": (1, 7),
    "rloo_advantages": (1, 7),
    "rloo_advantages normalized": (1, 7),
})  # fmt: skip


def _length_reward(completion_ids, **kwargs):
    return [float(len(c)) for c in completion_ids]


def _first_token_reward(completion_ids, **kwargs):
    """None (unscored) for one row, so that TRL's NaN handling runs."""
    return [None if i == 2 else float(c[0] % 3) for i, c in enumerate(completion_ids)]


def _completions(seed=7):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, size=2 * G)
    completions = [[int(t) for t in rng.integers(4, 20, size=n - 1)] + [1] for n in lengths]
    logprobs = [[float(x) for x in -rng.exponential(2.0, size=len(c))] for c in completions]
    logprobs[2][0] = None  # a token vLLM could not score (NaN)
    return completions, logprobs


def _rollout(prompts, trainer):
    completions, logprobs = _completions()
    return {"prompt_ids": [[4, 5] for _ in prompts], "completion_ids": completions, "logprobs": logprobs}


ROWS = [{"prompt": p} for p in ("a", "b") for _ in range(G)]


@pytest.fixture(scope="module")
def grpo_trainer():
    from fastalign.testing import tiny_grpo_trainer

    return tiny_grpo_trainer(
        [_length_reward, _first_token_reward],
        num_generations=G,
        per_device_train_batch_size=2 * G,
        rollout_func=_rollout,
    )


def _capturing_rewards(trainer, captured):
    original = trainer._calculate_rewards

    def calculate(*args, **kwargs):
        rewards = original(*args, **kwargs)
        captured["rewards"] = rewards.clone()
        return rewards

    return calculate


def trl_scoring(trainer, **attrs):
    """TRL's scoring step on the fixed rollout, counted: (syncs, output, rewards_per_func). With
    ``use_vllm`` the rollout_func path skips generation and the IS ratio is computed (as in
    tests/parity/test_trl_fast_trainer.py)."""
    missing = object()
    saved = {k: getattr(trainer, k, missing) for k in attrs}
    for k, val in attrs.items():
        setattr(trainer, k, val)
    captured, out = {}, {}
    trainer._calculate_rewards = _capturing_rewards(trainer, captured)
    try:
        syncs = count(lambda: out.update(trainer._generate_and_score_completions(ROWS)), fastalign=False)
    finally:
        del trainer._calculate_rewards
        for k, val in saved.items():
            if val is missing:
                delattr(trainer, k)
            else:
                setattr(trainer, k, val)
    return syncs, out, captured["rewards"]


@pytest.mark.parametrize("mode", list(IS_MODES))
def test_is_ratio_and_advantage_syncs(grpo_trainer, mode):
    from trl import GRPOTrainer

    lo, hi = IS_MODES[mode]
    scale, agg = ADV_CASES[mode]
    trainer = grpo_trainer
    theirs, out, rewards = trl_scoring(
        trainer, use_vllm=True, _last_loaded_step=trainer.state.global_step, vllm_importance_sampling_mode=mode,
        vllm_importance_sampling_clip_min=lo, vllm_importance_sampling_clip_max=hi, scale_rewards=scale,
        multi_objective_aggregation=agg,
    )  # fmt: skip
    fn = GRPOTrainer._generate_and_score_completions
    is_trl = sum(theirs.count(section=(fn, *s)) for s in IS_SECTIONS)
    detail = "; ".join(theirs.summary(section=(fn, *s)) for s in IS_SECTIONS)
    res = {}

    def is_fn():
        r = vllm_is_ratio(out["old_per_token_logps"], out["sampling_per_token_logps"], out["completion_mask"],
                          mode=mode, clip_min=lo, clip_max=hi)  # fmt: skip
        res["is"] = (r.ratio, r.metrics())

    check(f"vllm_is_ratio {mode}", count(is_fn, fastalign=True), is_trl, detail)
    torch.testing.assert_close(res["is"][0], out["importance_sampling_ratio"], rtol=1e-6, atol=0)
    trl_metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k.startswith("sampling/")}
    for k, want in trl_metrics.items():
        assert res["is"][1][k] == pytest.approx(want, rel=1e-6, nan_ok=True), k

    def adv_fn():
        res["adv"] = grpo_advantages(rewards, G, scale_rewards=scale, reward_weights=trainer.reward_weights,
                                     multi_objective_aggregation=agg)  # fmt: skip

    section = (fn, *ADV_SECTION)
    name = "grpo_advantages " + (scale if agg == "sum_then_normalize" else agg)
    ours = count(adv_fn, fastalign=True, host=(trainer.reward_weights,))
    check(name, ours, theirs.count(section=section), theirs.summary(section=section))
    torch.testing.assert_close(res["adv"].advantages, out["advantages"], rtol=1e-5, atol=1e-6)
    assert res["adv"].reward_mean == pytest.approx(trainer._metrics["train"]["reward"][-1], rel=1e-5)


@pytest.mark.parametrize("normalize", [False, True])
def test_rloo_advantage_syncs(normalize):
    from trl import RLOOTrainer

    from fastalign.testing import tiny_rloo_trainer

    completions, _ = _completions()
    trainer = tiny_rloo_trainer([_length_reward, _first_token_reward], num_generations=G,
                                per_device_train_batch_size=2 * G, completion_ids=completions,
                                normalize_advantages=normalize)  # fmt: skip
    theirs, out, rewards = trl_scoring(trainer)
    res = {}

    def adv_fn():
        res["adv"] = rloo_advantages(rewards, G, reward_weights=trainer.reward_weights, normalize_advantages=normalize)

    section = (RLOOTrainer._generate_and_score_completions, *ADV_SECTION)
    name = "rloo_advantages normalized" if normalize else "rloo_advantages"
    ours = count(adv_fn, fastalign=True, host=(trainer.reward_weights,))
    check(name, ours, theirs.count(section=section), theirs.summary(section=section))
    torch.testing.assert_close(res["adv"].advantages, out["advantages"], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------
# completion_mask against GRPOTrainer._generate_single_turn's EOS mask

COUNTS["completion_mask"] = (0, 2)
EOS_SECTION = ("# Mask everything after the first EOS token", "completion_ids = [")


def test_completion_mask_syncs(grpo_trainer):
    from trl import GRPOTrainer

    trainer = grpo_trainer
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(4, 20, (2 * G, 10), generator=g)
    ids[0, 3] = ids[2, 0] = ids[3, 9] = ids[5, 4] = 1  # EOS; the other rows run to the end
    prompt_ids = [[4, 5] for _ in range(2 * G)]
    trainer.model.generate = lambda input_ids=None, **kwargs: torch.cat([input_ids, ids], dim=1)
    res = {}
    try:
        theirs = count(lambda: res.update(trl=trainer._generate_single_turn(prompt_ids, None, {}, G)), fastalign=False)
    finally:
        del trainer.model.generate
    section = (GRPOTrainer._generate_single_turn, *EOS_SECTION)
    pad = trainer.processing_class.pad_token_id
    ours = count(lambda: res.update(ours=completion_mask(ids, trainer.eos_token_ids, pad)), fastalign=True)
    check("completion_mask", ours, theirs.count(section=section), theirs.summary(section=section))
    assert res["ours"].lengths.tolist() == [len(c) for c in res["trl"][0]]


# ------------------------------------------------------------------------------------------
# the preference losses against TRL's trainer methods (tests/parity/test_preference_losses.py's stubs)

COUNTS.update({
    "dpo_loss sigmoid": (1, 17),
    "dpo_loss ipo": (1, 17),
    "dpo_loss sigmoid + sft (RPO)": (3, 19),
    "cpo_loss sigmoid": (1, 9),
    "cpo_loss simpo": (1, 9),
    "dft_loss": (0, 5),
    "dft_loss from logits": (1, None),
    "wpo_weights": (0, None),
})  # fmt: skip


def _dpo_batch(b=4, t=8):
    g = torch.Generator().manual_seed(3)
    cm = torch.zeros(2 * b, t, dtype=torch.long)
    for i in range(2 * b):
        start = int(torch.randint(0, t // 2, (1,), generator=g))
        cm[i, start : int(torch.randint(start + 2, t + 1, (1,), generator=g))] = 1
    lp = -torch.rand(2 * b, t - 1, generator=g) * 3 * cm[:, 1:]
    ref = lp.sum(1) + 0.5 * torch.randn(2 * b, generator=g)
    return lp, cm, ref[:b].contiguous(), ref[b:].contiguous()


@pytest.mark.parametrize("types", [("sigmoid",), ("ipo",), ("sigmoid", "sft")], ids=["sigmoid", "ipo", "rpo"])
def test_dpo_syncs(types):
    lp, cm, ref_c, ref_r = _dpo_batch()
    b = cm.shape[0] // 2
    res = {}

    def trl_fn():
        a = lp.clone().requires_grad_()
        loss, metrics = trl_dpo(a, cm, ref_c, ref_r, loss_type=types)
        loss.backward()
        res["trl"] = (loss.detach(), a.grad, metrics)

    def ours_fn():
        a = lp.clone().requires_grad_()
        c, r = a.sum(1).chunk(2)
        lengths = cm.sum(1)
        out = dpo_loss(
            c,
            r,
            ref_c,
            ref_r,
            loss_type=list(types),
            chosen_lengths=lengths[:b],
            rejected_lengths=lengths[b:],
            chosen_token_logps=a[:b],
            chosen_token_mask=cm[:b, 1:],
        )
        out.loss.backward()
        res["ours"] = (out.loss.detach(), a.grad, out.metrics())

    theirs = count(trl_fn, fastalign=False)
    name = {"sigmoid": "dpo_loss sigmoid", "ipo": "dpo_loss ipo"}.get("+".join(types), "dpo_loss sigmoid + sft (RPO)")
    check(name, count(ours_fn, fastalign=True), theirs.count(), theirs.summary())
    (tl, tg, tm), (fl, fg, fm) = res["trl"], res["ours"]
    torch.testing.assert_close(fl, tl, rtol=0, atol=0)
    torch.testing.assert_close(fg, tg, rtol=0, atol=0)
    assert all(fm[k] == tm[k] for k in fm)


@pytest.mark.parametrize("loss_type", ["sigmoid", "simpo"])
def test_cpo_syncs(loss_type):
    g = torch.Generator().manual_seed(4)
    c, r, nll = -torch.rand(6, generator=g) * 3, -torch.rand(6, generator=g) * 3, torch.rand((), generator=g)
    res = {}

    def trl_fn():
        ca = c.clone().requires_grad_()
        loss, _metrics = trl_cpo(ca, r, loss_type=loss_type, nll=nll)
        loss.backward()
        res["trl"] = (loss.detach(), ca.grad)

    def ours_fn():
        ca = c.clone().requires_grad_()
        out = cpo_loss(ca, r, loss_type=loss_type, chosen_nll=nll)
        out.loss.backward()
        out.metrics()
        res["ours"] = (out.loss.detach(), ca.grad)

    theirs = count(trl_fn, fastalign=False)
    check(f"cpo_loss {loss_type}", count(ours_fn, fastalign=True), theirs.count(), theirs.summary())
    torch.testing.assert_close(res["ours"], res["trl"], rtol=0, atol=0)


def test_dft_and_wpo_syncs():
    g = torch.Generator().manual_seed(6)
    mask = torch.rand(4, 9, generator=g) < 0.7
    lp = -torch.rand(4, 9, generator=g) * 3 * mask
    n = torch.tensor(int(mask.sum()) + 5)
    res = {}

    def trl_fn():
        a = lp.clone().requires_grad_()
        loss = trl_dft(a, mask, num_items_in_batch=n)
        loss.backward()
        res["trl"] = loss.detach()

    def ours_fn():
        a = lp.clone().requires_grad_()
        loss = dft_loss(a, mask, num_items_in_batch=n)
        loss.backward()
        res["ours"] = loss.detach()

    theirs = count(trl_fn, fastalign=False)
    check("dft_loss", count(ours_fn, fastalign=True), theirs.count(), theirs.summary())
    torch.testing.assert_close(res["ours"], res["trl"], rtol=0, atol=0)
    # from full logits: one sync, the check that the labels index the vocabulary (an
    # out-of-range gather would be a device-side assert on CUDA)
    logits = torch.randn(4, 10, 12, generator=g)
    labels = torch.randint(0, 12, (4, 10), generator=g)
    labels[:, :3] = -100
    check("dft_loss from logits", count(lambda: dft_loss(logits=logits, labels=labels), fastalign=True), None)
    lssp = -torch.rand(4, 9, generator=g) * 2
    check("wpo_weights", count(lambda: wpo_weights(lp, lssp, mask), fastalign=True), None)


# ------------------------------------------------------------------------------------------
# fastalign's own ops (no TRL code on device tensors)

COUNTS.update({
    "zero_variance_groups": (0, None),
    "top_k_per_group": (0, None),
    "soft_overlong_penalty": (1, None),
    "soft_overlong (ids, bool mask)": (0, None),
    "soft_overlong (ids, int mask)": (1, None),
})  # fmt: skip


def test_own_ops_syncs():
    """zero_variance_groups (DAPO's filter) and top_k_per_group (GFPO's) make none. TRL's soft
    overlong reward reads Python lists (no device data); on device tensors fastalign checks the
    lengths (``soft_overlong_penalty``: negative lengths raise, one sync, as
    tests/unit/test_torch_path.py requires) or the mask (an integer mask must be >= 0, one sync; a bool
    mask needs no check)."""
    g = torch.Generator().manual_seed(8)
    r = torch.rand(16, 2, generator=g)
    r[3] = float("nan")
    check("zero_variance_groups", count(lambda: zero_variance_groups(r, G), fastalign=True), None)
    check("top_k_per_group", count(lambda: top_k_per_group(r[:, 0].contiguous(), G, 2), fastalign=True), None)
    lengths = torch.randint(0, 40, (8,), generator=g)
    check("soft_overlong_penalty", count(lambda: soft_overlong_penalty(lengths, 32, 8), fastalign=True), None)
    ids = torch.randint(2, 9, (8, 40), generator=g)
    mask = torch.arange(40) < lengths.unsqueeze(1)
    reward = soft_overlong(32, 8)
    check("soft_overlong (ids, bool mask)", count(lambda: reward(ids, completion_mask=mask), fastalign=True), None)
    check(
        "soft_overlong (ids, int mask)", count(lambda: reward(ids, completion_mask=mask.long()), fastalign=True), None
    )


def test_every_recorded_case_ran():
    """The record holds exactly the cases above (a renamed case cannot leave a stale row)."""
    expected = set(LOSS_CASES) | set(RATIO_CASES) | {f"vllm_is_ratio {m}" for m in IS_MODES}
    expected |= {"grpo_advantages group", "grpo_advantages batch", "grpo_advantages none",
                 "grpo_advantages normalize_then_sum", "rloo_advantages", "rloo_advantages normalized",
                 "completion_mask", "dpo_loss sigmoid", "dpo_loss ipo", "dpo_loss sigmoid + sft (RPO)",
                 "cpo_loss sigmoid", "cpo_loss simpo", "dft_loss", "dft_loss from logits", "wpo_weights",
                 "zero_variance_groups", "top_k_per_group", "soft_overlong_penalty",
                 "soft_overlong (ids, bool mask)", "soft_overlong (ids, int mask)"}  # fmt: skip
    assert set(COUNTS) == expected


# ------------------------------------------------------------------------------------------
# check_finite, the device-side normaliser, float64 temporaries, torch.compile


def test_check_finite_is_opt_in_on_accelerators():
    bt = make_batch(14, b=4, t=6, dtype=torch.float32)
    lp = bt.lp.clone()
    lp[1, 2] = math.nan
    n = torch.tensor(NUM_ITEMS)
    # default: no check on an accelerator, no sync; NaN flows into the loss as in TRL
    syncs = count(lambda: grpo_loss(lp, bt.old, bt.adv, bt.mask, num_items_in_batch=n), fastalign=True)
    assert syncs.count() == 0, syncs.summary()
    with accelerator_path():
        assert torch.isnan(grpo_loss(lp, bt.old, bt.adv, bt.mask).loss)
    # check_finite=True: one sync for the three log-prob tensors, one for the count's value
    with accelerator_path(), HostSyncs() as syncs, pytest.raises(InvalidArgumentError) as e:
        grpo_loss(lp, bt.old, bt.adv, bt.mask, beta=0.04, ref_per_token_logps=bt.ref, num_items_in_batch=n,
                  check_finite=True)  # fmt: skip
    assert e.value.argument == "per_token_logps" and syncs.count() == 2, syncs.summary()
    old = bt.old.clone()
    old[0, 0] = math.nan
    with accelerator_path(), pytest.raises(InvalidArgumentError) as e:
        grpo_loss(bt.lp, old, bt.adv, bt.mask, check_finite=True)
    assert e.value.argument == "old_per_token_logps"
    # on CPU tensors the Rust kernel checks in its own pass, whatever check_finite says
    for flag in (None, False, True):
        with pytest.raises(InvalidArgumentError, match="per_token_logps"):
            grpo_loss(lp, bt.old, bt.adv, bt.mask, check_finite=flag)
    # the preference losses: the same rule
    c = torch.tensor([-1.0, math.nan])
    with accelerator_path():
        assert torch.isnan(dpo_loss(c, c - 1, c, c).loss)
        with pytest.raises(InvalidArgumentError):
            dpo_loss(c, c - 1, c, c, check_finite=True)
        assert torch.isnan(cpo_loss(c, c - 1, cpo_alpha=0.0).loss)
        assert torch.isnan(dft_loss(c.reshape(1, 2), torch.ones(1, 2, dtype=torch.bool)))
    with pytest.raises(InvalidArgumentError):
        dpo_loss(c, c - 1, c, c)  # CPU tensors: checked by default, as before


@pytest.mark.parametrize("bad", [1, "yes", 0.0])
def test_check_finite_type_is_named(bad):
    bt = make_batch(15, b=2, t=3)
    for call in (lambda: grpo_loss(bt.lp, bt.old, bt.adv, bt.mask, check_finite=bad),
                 lambda: dpo_loss(bt.adv, bt.adv, bt.adv, bt.adv, check_finite=bad),
                 lambda: cpo_loss(bt.adv, bt.adv, cpo_alpha=0.0, check_finite=bad),
                 lambda: dft_loss(bt.lp, bt.mask, check_finite=bad)):  # fmt: skip
        with pytest.raises(InvalidTypeError) as e:
            call()
        assert e.value.argument == "check_finite"


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.float32, torch.float64])
def test_device_count_gives_the_float_normaliser(training, dtype):
    """A count on the device is used there, in float32 as TRL's ``num_items.clamp(1) / P * GA /
    spg``: the loss and gradient are those of the same count given as a Python number."""
    bt = make_batch(16, b=6, t=7, dtype=torch.float32)
    kw = {"loss_type": "dapo", "num_processes": 3, "gradient_accumulation_steps": 2, "steps_per_generation": 6,
          "training": training}  # fmt: skip
    outs = []
    for n in (37, torch.tensor(37, dtype=dtype)):
        lp = bt.lp.clone().requires_grad_()
        with accelerator_path(), HostSyncs() as syncs:
            out = grpo_loss(lp, bt.old, bt.adv, bt.mask, num_items_in_batch=n, **kw)
            out.loss.backward()
        assert syncs.count() == 0, syncs.summary()
        outs.append((out.loss.detach(), lp.grad))
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=0)
    # and both equal the CPU (Rust) path's
    lp = bt.lp.clone().requires_grad_()
    cpu = grpo_loss(lp, bt.old, bt.adv, bt.mask, num_items_in_batch=torch.tensor(37, dtype=dtype), **kw)
    cpu.loss.backward()
    torch.testing.assert_close(outs[1][0], cpu.loss.detach(), rtol=1e-6, atol=0)


def test_device_count_is_checked_on_request():
    bt = make_batch(17, b=2, t=3, dtype=torch.float32)
    with accelerator_path():
        with pytest.raises(InvalidTypeError) as e:
            grpo_loss(bt.lp, bt.old, bt.adv, bt.mask, num_items_in_batch=torch.tensor(True))
        assert e.value.argument == "num_items_in_batch"
        with pytest.raises(InvalidArgumentError) as e:
            grpo_loss(bt.lp, bt.old, bt.adv, bt.mask, num_items_in_batch=torch.tensor([3, 4]))
        assert e.value.argument == "num_items_in_batch"
        # unchecked by default: TRL's clamp(min=1) applies
        neg = grpo_loss(bt.lp, bt.old, bt.adv, bt.mask, num_items_in_batch=torch.tensor(-5)).loss
        one = grpo_loss(bt.lp, bt.old, bt.adv, bt.mask, num_items_in_batch=1).loss
        torch.testing.assert_close(neg, one, rtol=0, atol=0)
        with pytest.raises(InvalidArgumentError) as e:
            grpo_loss(bt.lp, bt.old, bt.adv, bt.mask, num_items_in_batch=torch.tensor(-5), check_finite=True)
        assert e.value.argument == "num_items_in_batch"


F64_CASES = [*LOSS_CASES.values(), Cfg(loss_type="grpo", level="sequence_token", opsm=0.1, beta=0.04)]


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_no_full_float64_copies_of_float32_inputs(monkeypatch, packed):
    """float32 inputs: sums accumulate in float64 a block at a time, so no float64 tensor larger
    than a block (or than one value per sequence) exists; the results equal those of one block."""
    b, t = 8, 64
    bt = make_batch(18, b=b, t=t, dtype=torch.float32)
    block = 16
    cu = torch.arange(0, b * t + 1, t) if packed else None

    def flat(x):
        return x.reshape(-1) if packed else x

    def run(cfg):
        args = list(ops_args(cfg, bt, packed))
        loss, grad, metrics = ops.grpo_loss(*args)
        ratio, stats = ops.vllm_is_ratio(flat(bt.old), flat(bt.samp), flat(bt.mask), cu, "token_mask", 0.5, 2.0)
        reds = [ops.masked_reduce(flat(bt.lp), flat(bt.old), flat(bt.mask), cu, red) for red in ("sum", "mean")]
        back = ops.masked_reduce_backward(torch.ones(b), flat(bt.mask), flat(bt.lp), cu, "mean")
        return [loss, grad, metrics, ratio, stats, *reds, back]

    for cfg in F64_CASES:
        with HostSyncs():
            whole = run(cfg)
        monkeypatch.setattr(_torch_losses, "F64_BLOCK", block)
        with HostSyncs() as mode:
            blocks = run(cfg)
        monkeypatch.undo()
        assert mode.largest_f64[0] <= max(block, b + 1, ops.N_LOSS_METRICS), (cfg, mode.largest_f64)
        for x, y in zip(blocks, whole):
            torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-12, equal_nan=True)


def ops_args(cfg: Cfg, bt, packed: bool):
    return op_args(cfg, bt, packed=packed, num_items=37.0)


def test_compile_fullgraph_with_a_device_count():
    """``torch.compile(fullgraph=True)`` traces grpo_loss with TRL's tensor ``num_items_in_batch``
    (no ``.item()``, no data-dependent check in the traced code) and gives eager's results."""
    bt = make_batch(19, b=6, t=9, dtype=torch.float32)

    def f(lp, old, adv, m, n):
        out = grpo_loss(lp, old, adv, m, loss_type="dapo", num_items_in_batch=n, gradient_accumulation_steps=2,
                        steps_per_generation=4)  # fmt: skip
        return out.loss, out.raw_metrics

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    a, b = bt.lp.clone().requires_grad_(), bt.lp.clone().requires_grad_()
    n = torch.tensor(45)
    le, me = f(a, bt.old, bt.adv, bt.mask, n)
    lc, mc = compiled(b, bt.old, bt.adv, bt.mask, n)
    torch.testing.assert_close(lc, le, rtol=0, atol=0)
    torch.testing.assert_close(mc, me, rtol=0, atol=0, equal_nan=True)
    le.backward()
    lc.backward()
    torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------
# on a CUDA device (scripts/gpu_check.sh runs these): the same results as the CPU, and CUDA's own
# sync debug mode sees no synchronisation in the loss, the ratios and their backward


def _cuda_syncs(fn) -> list[str]:
    import warnings

    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [str(w.message) for w in caught if "synchroniz" in str(w.message)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_losses_and_ratios_match_cpu_without_syncs():
    bt = make_batch(20, b=8, t=32, dtype=torch.float32)
    rtol, atol = tolerances(torch.float32)
    for name, cfg in LOSS_CASES.items():
        isr = None if cfg.is_mode is None else trl_is_ratio(bt.old, bt.samp, bt.mask, cfg.is_mode)
        results = []
        for dev in ("cpu", "cuda"):
            lp = bt.lp.to(dev).requires_grad_()
            kw = {
                "loss_type": cfg.loss_type, "importance_sampling_level": cfg.level, "epsilon": cfg.epsilon,
                "epsilon_high": cfg.epsilon_high, "delta": cfg.delta, "beta": cfg.beta,
                "ref_per_token_logps": bt.ref.to(dev), "use_bias_correction_kl": cfg.bias_kl,
                "importance_sampling_ratio": None if isr is None else isr.to(dev),
                "sampling_per_token_logps": bt.samp.to(dev), "off_policy_mask_threshold": cfg.opsm,
                "num_items_in_batch": torch.tensor(NUM_ITEMS, device=dev), "max_completion_length": 32,
            }  # fmt: skip
            args = (bt.old.to(dev), bt.adv.to(dev), bt.mask.to(dev))
            out = {}

            def step(lp=lp, args=args, kw=kw, out=out):
                lp.grad = None
                res = grpo_loss(lp, *args, **kw)
                res.loss.backward()
                out["res"] = res

            if dev == "cuda":
                step()  # warm-up (lazy CUDA initialisation)
                assert _cuda_syncs(step) == [], name
            else:
                step()
            results.append((out["res"].loss.detach().cpu(), lp.grad.cpu(), out["res"].raw_metrics.cpu()))
        (cl, cg, cm), (gl, gg, gm) = results
        scale = max(1.0, float(cg.abs().max()), float(cl.abs()))
        torch.testing.assert_close(gl, cl, rtol=rtol, atol=atol * scale, msg=name)
        torch.testing.assert_close(gg, cg, rtol=rtol, atol=atol * scale, msg=name)
        torch.testing.assert_close(gm, cm, rtol=1e-5, atol=1e-6, equal_nan=True, msg=name)
    lp, old, mask = bt.lp.cuda().requires_grad_(), bt.old.cuda(), bt.mask.cuda()

    def ratios():
        lp.grad = None
        s = sequence_log_ratio(lp, old, mask).sum() + masked_max(lp, mask).sum()
        s = s + importance_weights(lp, old, mask, level="sequence_token").sum()
        s.backward()
        vllm_is_ratio(old, bt.samp.cuda(), mask, mode="token_mask", clip_min=0.5)
        dpo_loss(lp.sum(1)[:4], lp.sum(1)[4:], old.sum(1)[:4], old.sum(1)[4:]).loss.backward()

    ratios()
    assert _cuda_syncs(ratios) == []
    cpu = sequence_log_ratio(bt.lp, bt.old, bt.mask)
    torch.testing.assert_close(sequence_log_ratio(lp, old, mask).cpu(), cpu, rtol=1e-6, atol=1e-7)
    r = vllm_is_ratio(bt.old, bt.samp, bt.mask, mode="token_mask", clip_min=0.5)
    g = vllm_is_ratio(old, bt.samp.cuda(), mask, mode="token_mask", clip_min=0.5)
    torch.testing.assert_close(g.ratio.cpu(), r.ratio, rtol=1e-6, atol=0)
    torch.testing.assert_close(g.stats.cpu(), r.stats, rtol=1e-6, atol=1e-12)
