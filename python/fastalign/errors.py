"""The one exception hierarchy of fastalign.

Every error fastalign raises on bad input is a :class:`FastalignError` *and* the builtin a
user would expect (``ValueError`` for a bad value or shape, ``TypeError`` for a wrong type or
dtype), so existing ``except ValueError`` code keeps working. ``argument`` names the offending
parameter. The Rust extension raises these same classes.
"""

from __future__ import annotations

__all__ = [
    "FastalignError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "InternalError",
    "PaddingFreeError",
]


class FastalignError(Exception):
    """Base class of every fastalign exception."""

    def __init__(self, message: str, argument: str | None = None) -> None:
        self.argument = argument
        self.message = message
        super().__init__(f"{argument}: {message}" if argument else message)

    def __reduce__(self):  # keep pickling (e.g. across processes) lossless
        return (type(self), (self.message, self.argument))


class InvalidArgumentError(FastalignError, ValueError):
    """A value, shape, length or option is not acceptable."""


class InvalidTypeError(FastalignError, TypeError):
    """An argument has the wrong Python type, dtype or device."""


class PaddingFreeError(InvalidArgumentError):
    """A model, option or input that a padding-free (packed) forward cannot run exactly."""


class InternalError(FastalignError, RuntimeError):
    """A bug in fastalign (a Rust panic caught at the boundary). Please report it."""
