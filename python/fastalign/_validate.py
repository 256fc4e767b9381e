"""Argument checks of the public functions, in one place, and the choice of backend.

Every array argument is either handed to Rust or sent down the plain-torch path:

* a numpy array, or a torch tensor on the CPU, is handed to Rust as a numpy *view* of the same
  memory (``tensor.detach().numpy()`` shares storage; nothing is copied);
* a torch tensor on any other device (CUDA, MPS, ...) takes the plain-torch path;

and anything the kernels cannot read in place is refused with an
:class:`~fastalign.errors.FastalignError` naming the argument: the wrong dtype, non-contiguous
memory, the wrong number of dimensions, non-native byte order, or something that is not an array
at all. Nothing is converted silently, so a call never hides a copy and never modifies its input.
torch is optional: it is only looked at when the caller already imported it.

One layer of checks each:

* **here**, every argument of the public functions (:mod:`~fastalign.advantages`,
  :mod:`~fastalign.overlong`, :mod:`~fastalign.rewards`, :mod:`~fastalign.ratios`,
  :mod:`~fastalign.losses`, :mod:`~fastalign.packing`), once, for both backends: types, dtypes,
  devices, ranks, shapes and how arguments relate to each other, options, scalar values, and the
  values of the small arguments read here anyway (lengths, masks turned into lengths, reward
  weights; NaN log-probs of the preference losses, where asked). The public functions call these
  helpers and raise no argument error of their own; the plain-torch path has no other checks.
  (Result methods such as ``Advantages.metrics`` check their own arguments.)
* **inside the kernels**, the checks that need the data a kernel reads anyway and would cost an
  extra pass or a device synchronisation up front: NaN log-probs in the GRPO loss (Rust always,
  torch where asked), negative lengths on the torch path of the overlong penalty, label ids
  outside the vocabulary in ``dft_loss``'s logits path, and the Arrow columns the packer reads
  (some columns, list types, no null rows, equal lengths per row). They stay with the data.
* **in Rust**, the few layout invariants its slices depend on, re-checked (O(1)) so that the
  extension is safe to call on its own and can never panic; the torch twins of the ops re-check
  the same few. Valid calls through the public API never reach them.
"""

from __future__ import annotations

import math
import operator
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from .errors import InvalidArgumentError, InvalidTypeError

FLOAT = (np.dtype(np.float32), np.dtype(np.float64))
INT = (np.dtype(np.int32), np.dtype(np.int64))
MASK = (*INT, np.dtype(np.bool_))

_TORCH_TO_NUMPY: dict[Any, np.dtype] = {}
_TORCH: Any = None
_INF = float("inf")
_I64 = 1 << 63


# ---------------------------------------------------------------------------------------------
# backends


def _torch() -> Any:
    """The torch module if the caller imported it (fastalign never imports torch itself)."""
    global _TORCH
    if _TORCH is None:
        _TORCH = sys.modules.get("torch")
    return _TORCH


def is_torch(x: object) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch)."""
    torch = _TORCH or _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def on_accelerator(x: Any) -> bool:
    """True for a torch tensor that lives on a non-CPU device: it takes the torch path."""
    return not isinstance(x, np.ndarray) and is_torch(x) and not x.is_cpu


def _numpy_dtype_map() -> dict[Any, np.dtype]:
    if not _TORCH_TO_NUMPY:
        torch = _torch()
        for t, n in (
            (torch.float32, np.float32),
            (torch.float64, np.float64),
            (torch.int32, np.int32),
            (torch.int64, np.int64),
            (torch.bool, np.bool_),
        ):
            _TORCH_TO_NUMPY[t] = np.dtype(n)
    return _TORCH_TO_NUMPY


def _describe(dtypes: tuple[np.dtype, ...]) -> str:
    return " or ".join(d.name for d in dtypes)


def _rank_error(name: str, ndims: tuple[int, ...], shape: tuple[int, ...]) -> InvalidArgumentError:
    want = " or ".join(f"{d}-D" for d in ndims)
    return InvalidArgumentError(f"expected a {want} array, got shape {tuple(shape)}", name)


def wrap(out: np.ndarray, like_torch: bool) -> Any:
    """Return a result in the caller's kind: a torch tensor (sharing memory) or the array."""
    if like_torch:
        return _TORCH.from_numpy(out)
    return out


# ---------------------------------------------------------------------------------------------
# Python scalars and options


def integer(x: Any, name: str, *, minimum: int | None = None) -> int:
    """An ``int`` argument (numpy/torch integer scalars accepted; bools and floats are not),
    within int64's range (every kernel takes it as a 64-bit integer)."""
    if type(x) is int and -_I64 <= x < _I64 and (minimum is None or x >= minimum):
        return x
    if isinstance(x, bool) or not hasattr(type(x), "__index__"):
        raise InvalidTypeError(f"expected an integer, got {type(x).__name__}", name)
    v = operator.index(x)
    if minimum is not None and v < minimum:
        raise InvalidArgumentError(f"must be >= {minimum}, got {v}", name)
    if not -_I64 <= v < _I64:
        raise InvalidArgumentError(f"must fit in a 64-bit integer (below 2^63 in magnitude), got {v}", name)
    return v


def at_most(x: int, bound: int, name: str, bound_name: str) -> int:
    """``x`` (an integer already checked) no larger than the argument ``bound_name``."""
    if x > bound:
        raise InvalidArgumentError(f"must be at most {bound_name} ({bound}), got {x}", name)
    return x


def real(x: object, name: str, *, minimum: float | None = None) -> float:
    """A finite ``float`` argument."""
    if type(x) is float and x == x and -_INF < x < _INF and (minimum is None or x >= minimum):
        return x  # the common case, checked cheaply
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise InvalidTypeError(f"expected a number, got {type(x).__name__}", name)
    v = float(x)
    if v != v or v in (float("inf"), float("-inf")):
        raise InvalidArgumentError(f"must be finite, got {v}", name)
    if minimum is not None and v < minimum:
        raise InvalidArgumentError(f"must be >= {minimum}, got {v}", name)
    return v


def optional_real(x: object, name: str, *, minimum: float | None = None) -> float | None:
    return None if x is None else real(x, name, minimum=minimum)


def positive(x: object, name: str) -> float:
    """A finite ``float`` > 0."""
    value = real(x, name)
    if not value > 0.0:
        raise InvalidArgumentError(f"must be > 0, got {value}", name)
    return value


def boolean(x: object, name: str, *, numpy: bool = True) -> bool:
    """A ``bool`` argument, or a numpy ``bool_`` unless ``numpy=False`` (``grpo_loss``'s
    ``training``, which has always taken Python bools only)."""
    if type(x) is bool:
        return x
    if numpy and isinstance(x, np.bool_):
        return bool(x)
    raise InvalidTypeError(f"expected a bool, got {type(x).__name__}", name)


def choice(x: object, name: str, options: tuple[str, ...]) -> str:
    if not isinstance(x, str) or x not in options:
        raise InvalidArgumentError(f"expected one of {', '.join(map(repr, options))}, got {x!r}", name)
    return x


def required(x: Any, name: str, why: str) -> Any:
    """``x``, which the call's other arguments make necessary (``why`` says which), if given."""
    if x is None:
        raise InvalidArgumentError(why, name)
    return x


def token_ids(x: Any, name: str) -> list[int]:
    """One token id or a sequence of them, as a list of ints."""
    if isinstance(x, (list, tuple)):
        return [integer(v, name) for v in x]
    if is_torch(x) or isinstance(x, np.ndarray):
        return [integer(v, name) for v in x.tolist()] if x.ndim else [integer(x.item(), name)]
    return [integer(x, name)]


def finite_check(check_finite: object, like: Any) -> bool:
    """Resolve a ``check_finite`` argument: ``True`` / ``False`` as given; ``None`` (the default)
    checks where that costs no device synchronisation: tensors in CPU memory, outside
    torch.compile (a data-dependent check cannot be traced). On an accelerator the check is
    opt-in, so that a step runs without the host waiting for the device."""
    if check_finite is None:
        torch = _torch()
        return not on_accelerator(like) and not torch.compiler.is_compiling()
    if not isinstance(check_finite, bool):
        raise InvalidTypeError(f"expected a bool or None, got {type(check_finite).__name__}", "check_finite")
    return check_finite


# ---------------------------------------------------------------------------------------------
# arrays and tensors


def array(x: Any, name: str, dtypes: tuple[np.dtype, ...], ndims: tuple[int, ...]) -> np.ndarray:
    """A zero-copy numpy view of a CPU array argument, or an error naming ``name``.

    ``x`` must be a numpy array or a CPU torch tensor, of one of ``dtypes``, with one of
    ``ndims`` dimensions, C-contiguous and in native byte order.
    """
    if isinstance(x, np.ndarray):
        arr = x
        dt = arr.dtype
        if dt not in dtypes:
            raise InvalidTypeError(f"expected dtype {_describe(dtypes)}, got {dt}", name)
        if not dt.isnative:
            raise InvalidTypeError(f"must be in native byte order, got {dt.str}", name)
        if arr.ndim not in ndims:
            raise _rank_error(name, ndims, arr.shape)
        if not arr.flags.c_contiguous:
            raise InvalidArgumentError("must be C-contiguous; call np.ascontiguousarray first", name)
        return arr
    if is_torch(x):
        # the common case first, checked with as few tensor attribute reads as possible
        dt = (_TORCH_TO_NUMPY or _numpy_dtype_map()).get(x.dtype)
        if (
            dt is not None  # (np.dtype == None compares equal to float64!)
            and dt in dtypes
            and x.is_cpu
            and not x.requires_grad
            and x.dim() in ndims
            and x.is_contiguous()
        ):
            return x.numpy()
        if not x.is_cpu:
            raise InvalidTypeError(
                f"is on {x.device}, but this operation only reads CPU memory; "
                "move it with .cpu() or pass every array on the same device",
                name,
            )
        tensor(x, name, dtypes, ndims)
        # a contiguous CPU tensor's numpy view is C-contiguous and shares its memory
        return (x.detach() if x.requires_grad else x).numpy()
    raise InvalidTypeError(f"expected a numpy array or a torch tensor, got {type(x).__name__}", name)


_LOW_PRECISION: tuple[Any, ...] = ()


def _low_precision() -> tuple[Any, ...]:
    global _LOW_PRECISION
    if not _LOW_PRECISION:
        torch = _torch()
        _LOW_PRECISION = (torch.bfloat16, torch.float16)
    return _LOW_PRECISION


def tensor(
    x: Any,
    name: str,
    dtypes: tuple[np.dtype, ...],
    ndims: tuple[int, ...],
    *,
    contiguous: bool = True,
    low_precision: bool = False,
) -> Any:
    """A torch tensor argument, on any device: one of ``dtypes``, one of ``ndims`` dimensions.

    ``contiguous``: also C-contiguous (what Rust and the custom ops read in place; a function
    that only runs torch on it passes ``False``). ``low_precision``: bfloat16 and float16 are
    accepted too and computed in float32 (``x.float()``, differentiable, as torch promotes them
    against float32 tensors); nothing else is ever converted.
    """
    torch = _TORCH or _torch()
    if torch is None or not isinstance(x, torch.Tensor):
        raise InvalidTypeError(f"expected a torch tensor, got {type(x).__name__}", name)
    if low_precision and x.dtype in _low_precision():
        x = x.float()
    dt = (_TORCH_TO_NUMPY or _numpy_dtype_map()).get(x.dtype)
    if dt is None or dt not in dtypes:  # (np.dtype == None compares equal to float64!)
        also = " (or bfloat16/float16)" if low_precision else ""
        raise InvalidTypeError(f"expected dtype {_describe(dtypes)}{also}, got {x.dtype}", name)
    if x.dim() not in ndims:
        raise _rank_error(name, ndims, tuple(x.shape))
    if contiguous and not x.is_contiguous():
        raise InvalidArgumentError("must be contiguous; call .contiguous() first", name)
    return x


def same_device(x: Any, name: str, device: Any) -> None:
    if not is_torch(x) or x.device != device:
        where = x.device if is_torch(x) else type(x).__name__
        raise InvalidTypeError(f"must be a torch tensor on {device} like the other inputs, got {where}", name)


def same_dtype(x: Any, name: str, ref: Any, ref_name: str) -> None:
    if x.dtype != ref.dtype:
        raise InvalidTypeError(f"has dtype {x.dtype}, but {ref_name} has {ref.dtype}", name)


def aligned(x: Any, name: str, shape: tuple[int, ...], device: Any, like: str) -> None:
    """``x`` must be on ``device`` (else InvalidTypeError, as every wrong device in fastalign) and
    of ``shape`` (else InvalidArgumentError); ``like`` names the argument it must match."""
    if x.device != device:
        raise InvalidTypeError(f"is on {x.device}, but {like} is on {device}", name)
    if tuple(x.shape) != tuple(shape):
        raise InvalidArgumentError(f"has shape {tuple(x.shape)}, expected {tuple(shape)} like {like}", name)


def lengths(x: Any, name: str = "lengths") -> tuple[np.ndarray, bool]:
    """Non-negative int32/int64 1-D CPU lengths as an int64 array (a zero-copy view for int64),
    and whether they came as a tensor."""
    torch_in = is_torch(x)
    arr = array(x, name, INT, (1,))
    if arr.dtype != np.int64:
        arr = arr.astype(np.int64)
    if arr.size and int(arr.min()) < 0:
        i = int(np.argmin(arr))
        raise InvalidArgumentError(f"must be >= 0, got {int(arr[i])} at index {i}", name)
    return arr, torch_in


def finite(named: Sequence[tuple[str, Any]]) -> None:
    """Raise naming the first tensor holding NaN or +-inf (one device sync for all of them)."""
    if not named:
        return
    torch = _torch()
    ok = torch.stack([torch.isfinite(t.detach()).all() for _, t in named]).tolist()
    for (name, t), good in zip(named, ok):
        if not good:
            what = "NaN" if bool(torch.isnan(t.detach()).any()) else "an infinite value"
            raise InvalidArgumentError(f"holds {what}; it must be finite (check_finite=False skips this check)", name)


# ---------------------------------------------------------------------------------------------
# per-token tensors of the ratio and loss ops (fastalign.ratios, fastalign.losses): torch
# tensors on any device; the CPU kernels read them in place, other devices run torch


def like_tensor(x: object, name: str, ref: Any, ref_name: str, *, shapes: tuple[tuple[int, ...], ...] = ()) -> Any:
    """A float tensor on ``ref``'s device with ``ref``'s dtype and shape (or one of ``shapes``)."""
    t = tensor(x, name, FLOAT, (1, 2), low_precision=True)
    if t.device != ref.device:
        raise InvalidTypeError(f"is on {t.device} but {ref_name} is on {ref.device}", name)
    if t.dtype != ref.dtype:
        raise InvalidTypeError(f"has dtype {t.dtype} but {ref_name} has {ref.dtype}; pass both in one dtype", name)
    allowed = shapes or (tuple(ref.shape),)
    if tuple(t.shape) not in allowed:
        want = " or ".join(str(s) for s in allowed)
        raise InvalidArgumentError(f"has shape {tuple(t.shape)}, expected {want}", name)
    return t


def mask_tensor(x: object, name: str, ref: Any, ref_name: str, *, bool_only: bool = False) -> Any:
    """A mask with ``ref``'s shape and device: bool, int32, int64, float32 or float64."""
    torch = _torch()
    if not isinstance(x, torch.Tensor):
        raise InvalidTypeError(f"expected a torch tensor, got {type(x).__name__}", name)
    ok = (torch.bool,) if bool_only else (torch.bool, torch.int32, torch.int64, torch.float32, torch.float64)
    if x.dtype not in ok:
        raise InvalidTypeError(f"expected dtype {' or '.join(str(d) for d in ok)}, got {x.dtype}", name)
    if x.device != ref.device:
        raise InvalidTypeError(f"is on {x.device} but {ref_name} is on {ref.device}", name)
    if tuple(x.shape) != tuple(ref.shape):
        raise InvalidArgumentError(f"has shape {tuple(x.shape)}, but {ref_name} has {tuple(ref.shape)}", name)
    if not x.is_contiguous():
        raise InvalidArgumentError("must be contiguous; call .contiguous() first", name)
    return x


def cu_seqlens(x: object, tokens: int, device: Any) -> Any:
    """Packed sequence boundaries: 1-D int32/int64 on ``device``, starting at 0, non-decreasing,
    ending at ``tokens``. (The values are checked here except while torch.compile traces; the
    CPU kernels check them again.)"""
    torch = _torch()
    if not isinstance(x, torch.Tensor):
        raise InvalidTypeError(f"expected a torch tensor, got {type(x).__name__}", "cu_seqlens")
    if x.dtype not in (torch.int32, torch.int64):
        raise InvalidTypeError(f"expected dtype int32 or int64, got {x.dtype}", "cu_seqlens")
    if x.dim() != 1 or x.numel() < 1:
        raise InvalidArgumentError(f"expected a non-empty 1-D tensor, got shape {tuple(x.shape)}", "cu_seqlens")
    if x.device != device:
        raise InvalidTypeError(f"is on {x.device}, the values on {device}", "cu_seqlens")
    if not torch.compiler.is_compiling():
        c = x.tolist()
        if c[0] != 0:
            raise InvalidArgumentError(f"must start at 0, got {c[0]}", "cu_seqlens")
        for i in range(1, len(c)):
            if c[i] < c[i - 1]:
                raise InvalidArgumentError(
                    f"must be non-decreasing, but entry {i} ({c[i]}) < entry {i - 1}", "cu_seqlens"
                )
        if c[-1] != tokens:
            raise InvalidArgumentError(f"must end at the number of tokens {tokens}, got {c[-1]}", "cu_seqlens")
    return x


def token_values(values: object, name: str, cu: object) -> tuple[Any, Any]:
    """Per-token values, padded ``(B, T)`` or packed ``(N,)`` with ``cu_seqlens``, and the
    checked ``cu_seqlens`` (``None`` when padded)."""
    if cu is None:
        return tensor(values, name, FLOAT, (2,), low_precision=True), None
    x = tensor(values, name, FLOAT, (1,), low_precision=True)
    return x, cu_seqlens(cu, x.shape[0], x.device)


# ---------------------------------------------------------------------------------------------
# advantages: rewards in groups, reward weights, KL


def scale_rewards(x: object, options: tuple[str, ...]) -> str:
    """``scale_rewards``: one of ``options``, or TRL's legacy ``True`` / ``False``."""
    if x == "group" and type(x) is str:
        return "group"
    if x is True:
        return "group"
    if x is False:
        return "none"
    return choice(x, "scale_rewards", options)


def groups(shape: tuple[int, ...], num_generations: object, name: str = "rewards") -> tuple[int, int, int]:
    """The grouping of an (N,) or (N, K) argument ``name`` in contiguous blocks of
    ``num_generations`` rows: ``(N, K, G)``."""
    g = integer(num_generations, "num_generations", minimum=1)
    n = shape[0]
    k = shape[1] if len(shape) == 2 else 1
    if n == 0:
        raise InvalidArgumentError("is empty; expected at least one completion", name)
    if k == 0:
        raise InvalidArgumentError("has no columns; expected one column per reward function", name)
    if n % g:
        raise InvalidArgumentError(
            f"{g} does not divide the number of completions {n} (groups are contiguous blocks of num_generations rows)",
            "num_generations",
        )
    return n, k, g


_ONES: dict[tuple[int, np.dtype], np.ndarray] = {}
# The last weights tensor seen and its zero-copy view, checked for the dtype and length it had:
# {"t": (tensor, version, array)}. A trainer passes the same weights tensor every step, and
# `.numpy()` plus the checks cost more than the kernel at a few thousand rows. The checked path
# (reward_weights) and advantages' fast path both use it; it is the only weights cache.
_LAST_WEIGHTS: dict[str, tuple[Any, int, np.ndarray]] = {}


def reward_weights(x: Any, k: int, dtype: Any) -> np.ndarray:
    """The reward weights as a (k,) array of the rewards' dtype (numpy, or torch's dtype of a
    checked tensor); TRL: ``torch.tensor(w, float32)``. Default: all ones."""
    if not isinstance(dtype, np.dtype):
        dtype = (_TORCH_TO_NUMPY or _numpy_dtype_map())[dtype]
    if x is None:
        w = _ONES.get((k, dtype))
        if w is None:
            w = _ONES[(k, dtype)] = np.ones(k, dtype=dtype)
            w.flags.writeable = False  # shared between calls; Rust only reads it
        return w
    if is_torch(x):
        # A trainer passes the same weights tensor every step. When the checked array is a view
        # of that tensor (same dtype, CPU), it is reused while the tensor is the same object with
        # the same version counter: a view always reads the tensor's current values, and the
        # version counter catches in-place changes that would need re-checking.
        hit = _LAST_WEIGHTS.get("t")
        if hit is not None and hit[0] is x and hit[1] == x._version and hit[2].dtype == dtype and hit[2].shape[0] == k:
            return hit[2]
        t = x
        if not t.is_cpu or t.requires_grad:
            t = t.detach().cpu()
        view = t.numpy()
        w = _checked_weights(view, k, dtype)
        if np.shares_memory(w, view):
            _LAST_WEIGHTS["t"] = (x, x._version, w)
        return w
    return _checked_weights(x, k, dtype)


def _checked_weights(x: object, k: int, dtype: np.dtype) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        w = x  # no copy unless the dtype differs (the common case: same dtype)
    else:
        try:
            w = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidTypeError("expected a sequence of numbers", "reward_weights") from None
    if w.ndim != 1 or w.shape[0] != k:
        raise InvalidArgumentError(
            f"expected {k} weights (one per reward function), got shape {tuple(w.shape)}", "reward_weights"
        )
    w = w.astype(dtype, copy=False)
    if not all(map(math.isfinite, w.tolist())):
        raise InvalidArgumentError("must be finite", "reward_weights")
    return np.ascontiguousarray(w)


def clip_range(x: Any) -> tuple[float, float] | None:
    """RLOO's ``reward_clip_range``: ``None`` or a finite ``(min, max)`` pair, ``min <= max``."""
    if x is None:
        return None
    try:
        lo, hi = x
    except (TypeError, ValueError):
        raise InvalidArgumentError("expected a (min, max) pair", "reward_clip_range") from None
    clip = (real(lo, "reward_clip_range"), real(hi, "reward_clip_range"))
    if clip[0] > clip[1]:
        raise InvalidArgumentError(f"lower bound {clip[0]} is above upper bound {clip[1]}", "reward_clip_range")
    return clip


def kl_like_rewards(kl: Any, n: int, dtype: Any) -> None:
    """RLOO's per-sequence ``kl`` (checked as an array): one value per completion, in the
    rewards' dtype."""
    if tuple(kl.shape) != (n,):
        raise InvalidArgumentError(f"expected shape ({n},), one value per completion, got {tuple(kl.shape)}", "kl")
    if kl.dtype != dtype:
        raise InvalidTypeError(f"must have the rewards' dtype {dtype}, got {kl.dtype}", "kl")


# ---------------------------------------------------------------------------------------------
# completion masks and rewards


def completion_ids_shape(shape: tuple[int, ...]) -> None:
    if shape[0] == 0:
        raise InvalidArgumentError("is empty; expected at least one completion", "completion_ids")
    if shape[1] == 0:
        raise InvalidArgumentError("has no columns; expected shape (batch, length) with length >= 1", "completion_ids")


def mask_dtype(dtype: Any) -> str:
    """``completion_mask``'s ``dtype``: ``"int64"`` (default), ``"int32"`` or ``"bool"``, given
    as a numpy or torch dtype."""
    if dtype is None:
        return "int64"
    torch = _torch()
    if torch is not None and isinstance(dtype, torch.dtype):
        names = {torch.int64: "int64", torch.int32: "int32", torch.bool: "bool"}
        if dtype in names:
            return names[dtype]
    else:
        try:
            d = np.dtype(dtype)
        except TypeError:
            d = None
        if d is not None and d.name in ("int64", "int32", "bool"):
            return d.name
    raise InvalidTypeError(f"expected int64, int32 or bool, got {dtype!r}", "dtype")


def penalty_float64(dtype: Any) -> bool:
    """``soft_overlong_penalty``'s ``dtype``: whether it is float64 (the default) or float32,
    given as a numpy or torch dtype."""
    if dtype is None:
        return True
    torch = _torch()
    if torch is not None and isinstance(dtype, torch.dtype):
        if dtype in (torch.float32, torch.float64):
            return dtype == torch.float64
    else:
        try:
            d = np.dtype(dtype)
        except TypeError:
            d = None
        if d in FLOAT:
            return d == np.float64
    raise InvalidTypeError(f"expected float32 or float64, got {dtype!r}", "dtype")


def overlong_params(max_completion_len: object, soft_punish_cache: object) -> tuple[int, int]:
    """DAPO's ``L_max >= 1`` and ``0 <= L_cache <= L_max``."""
    lmax = integer(max_completion_len, "max_completion_len", minimum=1)
    cache = integer(soft_punish_cache, "soft_punish_cache", minimum=0)
    if cache > lmax:
        raise InvalidArgumentError(f"({cache}) must not exceed max_completion_len ({lmax})", "soft_punish_cache")
    return lmax, cache


def mask_lengths(mask: Any, ids: Any) -> Any:
    """Row sums of a (B, T) 0/1 completion mask (bool, integer or float), as int64 lengths.

    The mask must have the padded ids' shape when ids are given as an array, and hold finite,
    non-negative values (a NaN or a negative entry would make a meaningless length).
    """
    if is_torch(mask):
        if mask.dtype.is_complex:
            raise InvalidTypeError(f"expected a bool, integer or float mask, got {mask.dtype}", "completion_mask")
        shape = tuple(mask.shape)
    elif isinstance(mask, np.ndarray):
        if mask.dtype.kind not in "biuf":
            raise InvalidTypeError(f"expected a bool, integer or float mask, got {mask.dtype}", "completion_mask")
        shape = mask.shape
    else:
        raise InvalidTypeError(
            f"expected a numpy array or a torch tensor, got {type(mask).__name__}", "completion_mask"
        )
    if len(shape) != 2:
        raise InvalidArgumentError(f"expected a 2-D mask, got shape {shape}", "completion_mask")
    if ids is not None:
        if not (is_torch(ids) or isinstance(ids, np.ndarray)):
            raise InvalidTypeError(
                f"must be a padded (B, T) array like completion_mask, got {type(ids).__name__}", "completion_ids"
            )
        if tuple(ids.shape) != shape:
            raise InvalidArgumentError(
                f"has shape {shape}, but completion_ids has {tuple(ids.shape)}", "completion_mask"
            )
    if is_torch(mask):
        torch = _torch()
        if mask.dtype.is_floating_point:
            # both checks read back together: one device synchronisation
            not_finite, negative = torch.stack([~torch.isfinite(mask).all(), (mask < 0).any()]).tolist()
            if not_finite:
                raise InvalidArgumentError("must be finite (a 0/1 mask)", "completion_mask")
            if negative:
                raise InvalidArgumentError("must be non-negative (a 0/1 mask)", "completion_mask")
        elif mask.dtype != torch.bool and shape[0] * shape[1] and bool((mask < 0).any()):
            raise InvalidArgumentError("must be non-negative (a 0/1 mask)", "completion_mask")
        return mask.sum(dim=1, dtype=torch.int64)
    if mask.dtype.kind == "f" and not np.isfinite(mask).all():
        raise InvalidArgumentError("must be finite (a 0/1 mask)", "completion_mask")
    if mask.dtype.kind in "if" and mask.size and (mask < 0).any():
        raise InvalidArgumentError("must be non-negative (a 0/1 mask)", "completion_mask")
    return mask.sum(axis=1, dtype=np.int64)


def no_lengths(completion_ids: object) -> NoReturn:
    """A reward call that gives no way to tell the completions' lengths."""
    if completion_ids is None:
        raise InvalidArgumentError("is required (or pass lengths= or completion_mask=)", "completion_ids")
    raise InvalidArgumentError(
        "is an array: padded ids need completion_mask= to tell the lengths (or pass lengths=)", "completion_ids"
    )


# ---------------------------------------------------------------------------------------------
# ratios and the GRPO loss


def clip_bounds(clip_min: object, clip_max: object, mode: str) -> tuple[float | None, float | None]:
    """The vLLM IS ratio's bounds: ``clip_min < clip_max``, and a truncate mode needs one."""
    lo = optional_real(clip_min, "clip_min")
    hi = optional_real(clip_max, "clip_max")
    if lo is not None and hi is not None and lo >= hi:
        raise InvalidArgumentError(f"must be < clip_max ({hi}), got {lo}", "clip_min")
    if mode.endswith("truncate") and lo is None and hi is None:
        raise InvalidArgumentError(f"mode {mode!r} needs clip_min or clip_max", "clip_max")
    return lo, hi


def vespo_ratio(ratio: Any, rows: int, tokens: int, loss_type: str) -> None:
    """vespo folds the IS ratio into phi per token: it needs a per-token ratio."""
    if loss_type == "vespo" and ratio.numel() == rows and ratio.numel() != tokens:
        raise InvalidArgumentError(
            "vespo needs a per-token ratio (a token_* vLLM IS mode), got one per sequence",
            "importance_sampling_ratio",
        )


def items_count(x: Any, like: Any, check: bool) -> Any:
    """The GRPO loss's ``num_items_in_batch``: ``None``, a float >= 0, or a 0-d tensor on
    ``like``'s accelerator (or any tensor while torch.compile traces), kept there (no sync: its
    value is checked only with ``check``). Any other tensor is read as a number."""
    if x is None:
        return None
    torch = _torch()
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise InvalidArgumentError(
                f"expected a number or a 0-d tensor, got shape {tuple(x.shape)}", "num_items_in_batch"
            )
        if x.device == like.device and (on_accelerator(x) or torch.compiler.is_compiling()):
            if x.dtype == torch.bool or x.dtype.is_complex:
                raise InvalidTypeError(f"expected an integer or float count, got {x.dtype}", "num_items_in_batch")
            if check and not torch.compiler.is_compiling():
                real(x.item(), "num_items_in_batch", minimum=0.0)
            return x
        x = x.item()  # a CPU tensor (or one on another device than the log-probs)
    return real(x, "num_items_in_batch", minimum=0.0)


# ---------------------------------------------------------------------------------------------
# preference and SFT losses (per-pair (B,) tensors)


def logps_like(t: Any, name: str, like: Any, *, dtype: bool = True, rows: bool = True) -> None:
    """``t`` on the log-probs' device, of their dtype and number of rows (each where asked)."""
    if t.device != like.device:
        raise InvalidTypeError(f"is on {t.device}, but the log-probs are on {like.device}", name)
    if dtype and t.dtype != like.dtype:
        raise InvalidTypeError(f"has dtype {t.dtype}, but the log-probs have {like.dtype}", name)
    if rows and t.shape[0] != like.shape[0]:
        raise InvalidArgumentError(f"has {t.shape[0]} rows, expected {like.shape[0]} (one per pair)", name)


def pair_vector(x: object, name: str, like: Any = None) -> Any:
    """A (B,) float32/float64 tensor; with ``like``, on its device and of its dtype and rows,
    else non-empty."""
    t = tensor(x, name, FLOAT, (1,), contiguous=False)
    if like is not None:
        logps_like(t, name, like)
    elif t.shape[0] == 0:
        raise InvalidArgumentError("must not be empty", name)
    return t


def loss_types(x: object, options: tuple[str, ...], *, several: bool = True) -> list[str]:
    """One loss type, or (with ``several``) a non-empty list of them, each one of ``options``."""
    if isinstance(x, str):
        names = [x]
    elif not several:
        raise InvalidTypeError(f"expected a str, got {type(x).__name__}", "loss_type")
    elif isinstance(x, (list, tuple)):
        names = list(x)
        if not names:
            raise InvalidArgumentError("must name at least one loss type", "loss_type")
    else:
        raise InvalidTypeError(f"expected a str or a list of str, got {type(x).__name__}", "loss_type")
    for name in names:
        if not isinstance(name, str) or name not in options:
            raise InvalidArgumentError(
                f"unknown loss type {name!r}; expected one of {', '.join(map(repr, options))}", "loss_type"
            )
    return names


def loss_weights(x: object, n: int) -> list[float]:
    """One finite weight per loss type (default all 1.0)."""
    if x is None:
        return [1.0] * n
    if not isinstance(x, (list, tuple)):
        raise InvalidTypeError(f"expected a list of floats, got {type(x).__name__}", "loss_weights")
    weights = [real(w, "loss_weights") for w in x]
    if len(weights) != n:
        raise InvalidArgumentError(
            f"has {len(weights)} weights for {n} loss types; give one weight per loss type", "loss_weights"
        )
    return weights


def label_smoothing(x: object, types: Sequence[str] = ()) -> float:
    """In [0, 1]; below 0.5 for DPO's ``robust`` loss, in (0, 1) for ``exo_pair``."""
    eps = real(x, "label_smoothing")
    if not 0.0 <= eps <= 1.0:
        raise InvalidArgumentError(f"must be in [0, 1], got {eps}", "label_smoothing")
    if "robust" in types and not eps < 0.5:
        raise InvalidArgumentError(f"must be in [0, 0.5) for the 'robust' loss, got {eps}", "label_smoothing")
    if "exo_pair" in types and not 0.0 < eps < 1.0:
        raise InvalidArgumentError(
            f"must be in (0, 1) for the 'exo_pair' loss (the EXO paper recommends 1e-3), got {eps}", "label_smoothing"
        )
    return eps


def f_divergence(fdiv: str, types: Sequence[str], supported: frozenset[str]) -> None:
    """A divergence other than ``reverse_kl`` only for the loss types in ``supported`` (TRL
    refuses the others)."""
    if fdiv != "reverse_kl" and not set(types) <= supported:
        raise InvalidArgumentError(
            f"{fdiv!r} is only supported for the loss types {sorted(supported)}; got {list(types)}",
            "f_divergence_type",
        )


def wpo_pair(chosen: object, rejected: object, types: Sequence[str]) -> bool:
    """Whether WPO weights were given: both or neither, and not with aot/aot_unpaired/sft."""
    if chosen is None and rejected is None:
        return False
    if chosen is None or rejected is None:
        need = "chosen_weights" if chosen is None else "rejected_weights"
        raise InvalidArgumentError("WPO needs both chosen_weights and rejected_weights", need)
    bad = [t for t in types if t in ("aot", "aot_unpaired", "sft")]
    if bad:
        raise InvalidArgumentError(
            f"WPO weights are not supported with {bad[0]!r} (TRL refuses 'aot'/'aot_unpaired' and fails on 'sft')",
            "loss_type",
        )
    return True


def dft_inputs(per_token_logps: object, mask: object, logits: object, labels: object) -> bool:
    """Which of ``dft_loss``'s two forms the call uses: ``True`` for logits and labels, ``False``
    for per-token log-probs and mask. Both of a form's arguments are needed, and only one form."""
    if logits is not None or labels is not None:
        if per_token_logps is not None or mask is not None:
            given = "per_token_logps" if per_token_logps is not None else "mask"
            raise InvalidArgumentError("pass either per_token_logps and mask, or logits and labels, not both", given)
        if logits is None or labels is None:
            raise InvalidArgumentError(
                "is required together with " + ("labels" if logits is None else "logits"),
                "logits" if logits is None else "labels",
            )
        return True
    if per_token_logps is None or mask is None:
        need = "per_token_logps" if per_token_logps is None else "mask"
        raise InvalidArgumentError("is required (or pass logits and labels)", need)
    return False


def logits(x: Any) -> Any:
    """Full (N, T, V) logits of a floating dtype (bfloat16/float16 included), T, V >= 1."""
    if not is_torch(x):
        raise InvalidTypeError(f"expected a torch tensor, got {type(x).__name__}", "logits")
    torch = _torch()
    if x.dtype not in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        raise InvalidTypeError(f"expected a floating dtype, got {x.dtype}", "logits")
    if x.dim() != 3 or x.shape[1] < 1 or x.shape[2] < 1:
        raise InvalidArgumentError(f"expected shape (N, T, V), got {tuple(x.shape)}", "logits")
    return x


# ---------------------------------------------------------------------------------------------
# packing


def int64_total(arr: np.ndarray, name: str) -> None:
    """Refuse int64 weights whose total could wrap (sums are int64)."""
    if arr.size and int(arr.max()) > (_I64 - 1) // arr.size and sum(arr.tolist()) > _I64 - 1:
        raise InvalidArgumentError(f"sum to {sum(arr.tolist())}, beyond int64 (2^63 - 1)", name)


def packing_strategy(x: object, options: tuple[str, ...]) -> str:
    """``pack_dataset``'s ``strategy``, refused with TRL's message."""
    if not isinstance(x, str) or x not in options:
        raise InvalidArgumentError(f"invalid packing strategy {x!r}, must be one of {options}", "strategy")
    return x


def map_kwargs(x: object) -> dict[str, Any]:
    if x is None:
        return {}
    if not isinstance(x, dict):
        raise InvalidTypeError(f"expected a dict or None, got {type(x).__name__}", "map_kwargs")
    return x


def dataset(x: object) -> None:
    """A ``datasets`` Dataset or IterableDataset (the dict kinds are split by the caller)."""
    from datasets import Dataset, IterableDataset

    if not isinstance(x, (Dataset, IterableDataset)):
        raise InvalidTypeError(
            f"expected a datasets Dataset, DatasetDict, IterableDataset or IterableDatasetDict, got {type(x).__name__}",
            "dataset",
        )
