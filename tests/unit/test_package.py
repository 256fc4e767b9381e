"""Package-level checks: the compiled module, its stub, the error hierarchy, release build."""

from __future__ import annotations

import ast
import pathlib
import pickle

import pytest

import fastalign
from fastalign import _native
from fastalign.errors import FastalignError, InternalError, InvalidArgumentError, InvalidTypeError

PKG = pathlib.Path(fastalign.__file__).parent


def test_version_and_release_build():
    assert fastalign.__version__ == _native.__version__
    # the README's set-up builds with --release; a debug build would make every benchmark lie
    assert _native.build_profile == "release"


def test_stub_matches_compiled_module():
    tree = ast.parse((PKG / "_native.pyi").read_text())
    stubbed = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    compiled = {n for n in dir(_native) if not n.startswith("__") and n != "build_profile"}
    assert stubbed == compiled
    assert (PKG / "py.typed").exists()


def test_error_hierarchy():
    assert issubclass(InvalidArgumentError, ValueError) and issubclass(InvalidArgumentError, FastalignError)
    assert issubclass(InvalidTypeError, TypeError) and issubclass(InvalidTypeError, FastalignError)
    assert issubclass(InternalError, RuntimeError)
    err = InvalidArgumentError("must be >= 1, got 0", "num_generations")
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is InvalidArgumentError and clone.argument == "num_generations"
    assert str(clone) == "num_generations: must be >= 1, got 0"


def test_rust_errors_use_the_hierarchy():
    import numpy as np

    # raised inside the Rust binding, not by the Python wrapper
    with pytest.raises(InvalidArgumentError) as info:
        _native.grpo_advantages_f32(
            np.ones((4, 1), np.float32), np.ones(1, np.float32), 3, "group", "sum_then_normalize", 1e-4, False
        )
    assert info.value.argument == "num_generations"
    with pytest.raises(InvalidArgumentError) as info:
        _native.grpo_advantages_f32(
            np.ones((4, 2), np.float32).T, np.ones(4, np.float32), 1, "group", "sum_then_normalize", 1e-4, False
        )
    assert info.value.argument == "rewards"
    with pytest.raises(InvalidArgumentError, match="1-D or 2-D") as info:
        _native.grpo_advantages_f32(
            np.ones((4, 1, 1), np.float32), np.ones(1, np.float32), 2, "group", "sum_then_normalize", 1e-4, False
        )
    assert info.value.argument == "rewards"
    one_d = _native.grpo_advantages_f32(
        np.arange(4, dtype=np.float32), np.ones(1, np.float32), 2, "group", "sum_then_normalize", 1e-4, False
    )
    two_d = _native.grpo_advantages_f32(
        np.arange(4, dtype=np.float32).reshape(4, 1),
        np.ones(1, np.float32),
        2,
        "group",
        "sum_then_normalize",
        1e-4,
        False,
    )
    np.testing.assert_array_equal(one_d[0], two_d[0])
    with pytest.raises(InvalidArgumentError, match="scale_rewards"):
        _native.grpo_advantages_f32(
            np.ones((4, 1), np.float32), np.ones(1, np.float32), 2, "max", "sum_then_normalize", 1e-4, False
        )
    with pytest.raises(TypeError):  # wrong dtype for the monomorphic entry point
        _native.grpo_advantages_f32(
            np.ones((4, 1), np.float64), np.ones(1, np.float32), 2, "group", "sum_then_normalize", 1e-4, False
        )


def test_a_panic_is_an_exception_not_an_abort():
    with pytest.raises(InternalError, match="deliberate panic"):
        _native._panic_for_tests()
    # the interpreter and the extension keep working afterwards
    assert _native.SoftOverlong(10, 2).penalties_of([[1] * 9]) == [-0.5]
