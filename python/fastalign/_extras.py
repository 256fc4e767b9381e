"""Optional dependencies: which extra brings which package, and a clear error when one is missing.

fastalign's core (advantages, masks, rewards, packing's numpy functions) needs numpy only; the
rest needs an extra (see ``[project.optional-dependencies]`` in pyproject.toml)::

    pip install "fastalign[torch]"   # fastalign.losses, fastalign.ops, fastalign.ratios
    pip install "fastalign[trl]"     # fastalign.trl, fastalign.padding_free, pack_dataset, bench

Importing a fastalign module whose dependency is not installed raises :class:`MissingExtraError`
(a ``ModuleNotFoundError``, so existing ``except ImportError`` code still works) whose message
names the extra to install, instead of a bare ``No module named 'torch'``::

    ModuleNotFoundError: fastalign.losses needs torch, which is not installed: pip install "fastalign[torch]"

Two ways in: :func:`require` for code that imports an optional package itself, and an import hook
(:func:`install`, run by ``import fastalign``) that gives every ``fastalign.*`` module's top-level
imports the same message without each module having to ask.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any, cast

__all__ = ["EXTRAS", "MissingExtraError", "require"]

EXTRAS: dict[str, str] = {
    "torch": "torch",
    "trl": "trl",
    # TRL's own dependencies: the trl extra brings them
    "transformers": "trl",
    "accelerate": "trl",
    "datasets": "trl",
    "matplotlib": "demo",
    "vllm": "vllm",
}
"""Top-level package -> the fastalign extra that installs it."""

MODULE_EXTRAS: dict[str, str] = {
    "fastalign.trl": "trl",
    "fastalign.padding_free": "trl",  # transformers' attention interface
    "fastalign.step_bench": "trl",
    "fastalign.testing": "trl",
    "fastalign.demo": "demo",
}
"""fastalign modules (and their submodules) that need more than the one missing package: the
extra named is the one that brings all they need (``fastalign.trl`` without torch says
``fastalign[trl]``, not ``fastalign[torch]``, which would fail next on trl)."""


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency of a fastalign module is not installed; the message names the extra.

    ``name`` is the missing package (as ``ModuleNotFoundError.name``), ``extra`` the extra that
    brings it, ``needed_by`` the fastalign module or function that needs it.
    """

    def __init__(self, needed_by: str, missing: str, extra: str) -> None:
        super().__init__(
            f'{needed_by} needs {missing}, which is not installed: pip install "fastalign[{extra}]"', name=missing
        )
        self.extra = extra
        self.needed_by = needed_by

    __module__ = "fastalign"  # shown as fastalign.MissingExtraError in tracebacks

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.needed_by, self.name, self.extra)


def _installed(top: str) -> bool:
    if top in sys.modules:
        return sys.modules[top] is not None
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _translate(error: ModuleNotFoundError, needed_by: str) -> MissingExtraError | None:
    top = (error.name or "").partition(".")[0]
    extra = EXTRAS.get(top)
    if extra is None or _installed(top):
        return None  # not one of ours, or installed with a part missing: the original error says more
    for module, bigger in MODULE_EXTRAS.items():
        if needed_by == module or needed_by.startswith(module + "."):
            extra = bigger
    return MissingExtraError(needed_by, top, extra)


def require(package: str, needed_by: str) -> ModuleType:
    """``importlib.import_module(package)``, or :class:`MissingExtraError` naming the extra that
    brings it when it (or the package it belongs to) is not installed.

    >>> torch = require("torch", "fastalign.losses")  # doctest: +SKIP
    """
    try:
        return importlib.import_module(package)
    except MissingExtraError:
        raise
    except ModuleNotFoundError as e:
        missing = _translate(e, needed_by)
        if missing is None:
            raise
        raise missing from e


class _Loader:
    """A fastalign module's own loader, with its top-level imports' errors translated; every
    other attribute is the wrapped loader's."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, resource readers, ...
        return getattr(self._inner, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        try:
            self._inner.exec_module(module)
        except ModuleNotFoundError as e:
            # a module imported by this one may already have translated it: name the outermost
            missing = _translate(e, module.__name__)
            if missing is None:
                raise
            raise missing from e


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``fastalign.*`` modules with the other finders and wraps their loaders."""

    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None) -> Any:
        if not fullname.startswith("fastalign."):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if (
            loader is not None
            and hasattr(loader, "exec_module")
            and not isinstance(loader, (_Loader, importlib.machinery.ExtensionFileLoader))
        ):
            # a loader by duck typing (create_module, exec_module, the rest forwarded), not by
            # subclassing importlib.abc.Loader, whose defaults would shadow the forwarded methods
            spec.loader = cast(importlib.abc.Loader, _Loader(loader))
        return spec


def install() -> None:
    """Put the hook first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
