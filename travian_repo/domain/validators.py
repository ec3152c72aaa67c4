"""The primitive argument checks every layer uses (rules, repositories, infra, the server).

Python's ``bool`` is an ``int``: ``True`` would pass as a count of 1 and ``False`` as a
timeout of 0. Every numeric check goes through ``is_int`` / ``is_number`` so a bool is
refused the same way everywhere. This module depends on nothing but the domain's errors, so
any layer can import it.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from travian_repo.domain.errors import InvalidRequest


def is_int(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """An ``int`` or ``float`` that is not a ``bool`` (NaN and infinities included)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """A number that is neither NaN nor infinite."""
    return is_number(value) and math.isfinite(value)


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` if it is an int within ``[low, high]`` (a missing bound is open), else
    ``InvalidRequest``; bools and floats are refused (a level 2.0 is a bug, not a 2)."""
    if not is_int(value):
        raise InvalidRequest(f"{name} must be an integer, got {type(value).__name__}",
                             details={"field": name})
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            bounds = f"between {low} and {high}"
        elif low is not None:
            bounds = f">= {low}"
        else:
            bounds = f"<= {high}"
        raise InvalidRequest(
            f"{name} must be {bounds}, got {value}",
            details={"field": name, "value": value, "min": low, "max": high},
        )
    return value


def check_timeout(value: object, name: str = "timeout") -> float | None:
    """A wait limit in seconds: None (no limit) or a number >= 0."""
    if value is None:
        return None
    if not is_number(value) or math.isnan(value) or value < 0:
        raise InvalidRequest(f"{name} must be None or a number of seconds >= 0, not {value!r}")
    return float(value)


__all__ = ["check_int", "check_timeout", "is_finite_number", "is_int", "is_number"]
