"""The one place where inputs are checked, classified and turned into zero-copy numpy views.

Public functions call into this module first. It decides the backend for every array argument:

* a numpy array, or a torch tensor on the CPU, is handed to Rust as a numpy *view* of the same
  memory (``tensor.detach().numpy()`` shares storage; nothing is copied);
* a torch tensor on any other device (CUDA, MPS, ...) takes the plain-torch path;

and it refuses, with an :class:`~fastalign.errors.FastalignError` naming the argument, anything
the kernels cannot read in place: the wrong dtype, non-contiguous memory, the wrong number of
dimensions, non-native byte order, or something that is not an array at all. Nothing is ever
converted silently, so a call never hides a copy and never modifies its input.

torch is optional: it is only looked at when the caller already imported it.

Division of labour with Rust: the public wrappers check shapes, grouping and options here, once,
for both backends (the torch path has no other checks). The Rust core re-checks the few layout
invariants its slices depend on so that it is safe to call on its own and can never panic; those
checks are O(1) and are not reached through the public API with valid arguments.
"""

from __future__ import annotations

import operator
import sys
from typing import Any

import numpy as np

from .errors import InvalidArgumentError, InvalidTypeError

FLOAT = (np.dtype(np.float32), np.dtype(np.float64))
INT = (np.dtype(np.int32), np.dtype(np.int64))

_TORCH_TO_NUMPY: dict[Any, np.dtype] = {}
_TORCH: Any = None


def _torch():
    """The torch module if the caller imported it (fastalign never imports torch itself)."""
    global _TORCH
    if _TORCH is None:
        _TORCH = sys.modules.get("torch")
    return _TORCH


def is_torch(x: object) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch)."""
    torch = _TORCH or _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def on_accelerator(x: object) -> bool:
    """True for a torch tensor that lives on a non-CPU device: it takes the torch path."""
    return not isinstance(x, np.ndarray) and is_torch(x) and not x.is_cpu  # type: ignore[attr-defined]


def _numpy_dtype_of_torch(dtype: Any) -> np.dtype | None:
    return (_TORCH_TO_NUMPY or _numpy_dtype_map()).get(dtype)


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


def array(x: object, name: str, dtypes: tuple[np.dtype, ...], ndims: tuple[int, ...]) -> np.ndarray:
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
        dt = (_TORCH_TO_NUMPY or _numpy_dtype_map()).get(x.dtype)  # type: ignore[attr-defined]
        if (
            dt is not None  # (np.dtype == None compares equal to float64!)
            and dt in dtypes
            and x.is_cpu  # type: ignore[attr-defined]
            and not x.requires_grad  # type: ignore[attr-defined]
            and x.dim() in ndims  # type: ignore[attr-defined]
            and x.is_contiguous()  # type: ignore[attr-defined]
        ):
            return x.numpy()  # type: ignore[attr-defined]
        if not x.is_cpu:  # type: ignore[attr-defined]
            raise InvalidTypeError(
                f"is on {x.device}, but this operation only reads CPU memory; "  # type: ignore[attr-defined]
                "move it with .cpu() or pass every array on the same device",
                name,
            )
        tensor(x, name, dtypes, ndims)
        # a contiguous CPU tensor's numpy view is C-contiguous and shares its memory
        return (x.detach() if x.requires_grad else x).numpy()  # type: ignore[attr-defined]
    raise InvalidTypeError(f"expected a numpy array or a torch tensor, got {type(x).__name__}", name)


def _rank_error(name: str, ndims: tuple[int, ...], shape: tuple[int, ...]) -> InvalidArgumentError:
    want = " or ".join(f"{d}-D" for d in ndims)
    return InvalidArgumentError(f"expected a {want} array, got shape {tuple(shape)}", name)


def tensor(x: object, name: str, dtypes: tuple[np.dtype, ...], ndims: tuple[int, ...]) -> Any:
    """Check a torch tensor's dtype, rank and contiguity (any device), as :func:`array` does."""
    dt = (_TORCH_TO_NUMPY or _numpy_dtype_map()).get(x.dtype)  # type: ignore[attr-defined]
    if dt is None or dt not in dtypes:  # (np.dtype == None compares equal to float64!)
        raise InvalidTypeError(f"expected dtype {_describe(dtypes)}, got {x.dtype}", name)  # type: ignore[attr-defined]
    if x.dim() not in ndims:  # type: ignore[attr-defined]
        raise _rank_error(name, ndims, tuple(x.shape))  # type: ignore[attr-defined]
    if not x.is_contiguous():  # type: ignore[attr-defined]
        raise InvalidArgumentError("must be contiguous; call .contiguous() first", name)
    return x


def same_device(x: object, name: str, device: Any) -> None:
    if not is_torch(x) or x.device != device:  # type: ignore[attr-defined]
        where = x.device if is_torch(x) else type(x).__name__  # type: ignore[attr-defined]
        raise InvalidTypeError(f"must be a torch tensor on {device} like the other inputs, got {where}", name)


def wrap(out: np.ndarray, like_torch: bool) -> Any:
    """Return a result in the caller's kind: a torch tensor (sharing memory) or the array."""
    if like_torch:
        return _TORCH.from_numpy(out)
    return out


_INF = float("inf")


_I64 = 1 << 63


def integer(x: object, name: str, *, minimum: int | None = None) -> int:
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


def choice(x: object, name: str, options: tuple[str, ...]) -> str:
    if not isinstance(x, str) or x not in options:
        raise InvalidArgumentError(f"expected one of {', '.join(map(repr, options))}, got {x!r}", name)
    return x


def token_ids(x: object, name: str) -> list[int]:
    """One token id or a sequence of them, as a list of ints."""
    if isinstance(x, (list, tuple)):
        return [integer(v, name) for v in x]
    if is_torch(x) or isinstance(x, np.ndarray):
        return [integer(v, name) for v in x.tolist()] if x.ndim else [integer(x.item(), name)]  # type: ignore[attr-defined]
    return [integer(x, name)]


def torch_tensor(x: object, name: str, dtypes: tuple[np.dtype, ...], ndims: tuple[int, ...]) -> Any:
    """A torch tensor argument of a plain-torch function (any device, any strides).

    Checks the type, dtype and rank as :func:`tensor` does; contiguity is not required because
    nothing is handed to Rust.
    """
    if not is_torch(x):
        raise InvalidTypeError(f"expected a torch tensor, got {type(x).__name__}", name)
    dt = (_TORCH_TO_NUMPY or _numpy_dtype_map()).get(x.dtype)  # type: ignore[attr-defined]
    if dt is None or dt not in dtypes:
        raise InvalidTypeError(f"expected dtype {_describe(dtypes)}, got {x.dtype}", name)  # type: ignore[attr-defined]
    if x.dim() not in ndims:  # type: ignore[attr-defined]
        raise _rank_error(name, ndims, tuple(x.shape))  # type: ignore[attr-defined]
    return x


# ---------------------------------------------------------------------------------------------
# torch-only checks for the ratio and loss ops (fastalign.ratios, fastalign.losses). Those ops
# take torch tensors on any device; the CPU kernels read them in place, other devices run torch.

_LOW_PRECISION: tuple[Any, ...] = ()


def _low_precision() -> tuple[Any, ...]:
    global _LOW_PRECISION
    if not _LOW_PRECISION:
        torch = _torch()
        _LOW_PRECISION = (torch.bfloat16, torch.float16)
    return _LOW_PRECISION


def float_tensor(x: object, name: str, ndims: tuple[int, ...]) -> Any:
    """A float32/float64 torch tensor of one of ``ndims`` dimensions, contiguous. bfloat16 and
    float16 are accepted and computed in float32 (``x.float()``, differentiable, as torch would
    promote them against float32 tensors); nothing else is converted."""
    torch = _torch()
    if torch is None or not isinstance(x, torch.Tensor):
        raise InvalidTypeError(f"expected a torch tensor, got {type(x).__name__}", name)
    if x.dtype in _low_precision():
        x = x.float()
    if x.dtype not in (torch.float32, torch.float64):
        raise InvalidTypeError(f"expected dtype float32 or float64 (or bfloat16/float16), got {x.dtype}", name)
    if x.dim() not in ndims:
        raise _rank_error(name, ndims, tuple(x.shape))
    if not x.is_contiguous():
        raise InvalidArgumentError("must be contiguous; call .contiguous() first", name)
    return x


def like_tensor(x: object, name: str, ref: Any, ref_name: str, *, shapes: tuple[tuple[int, ...], ...] = ()) -> Any:
    """A float tensor on ``ref``'s device with ``ref``'s dtype and shape (or one of ``shapes``)."""
    t = float_tensor(x, name, (1, 2))
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


def optional_real(x: object, name: str, *, minimum: float | None = None) -> float | None:
    return None if x is None else real(x, name, minimum=minimum)


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
