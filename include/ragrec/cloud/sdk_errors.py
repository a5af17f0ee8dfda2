"""One way to turn an Alibaba Cloud SDK failure into a project error with its code."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def describe(exc: Exception) -> str:
    """``Code: message`` from a Tea SDK exception (or the plain message)."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    return f"{code}: {message}" if code else message


def sdk_call(error: type[Exception], what: str, function: Callable[[], T]) -> T:
    try:
        return function()
    except Exception as exc:  # noqa: BLE001 - SDK errors carry code + message
        raise error(f"{what} failed: {describe(exc)}") from exc
