"""Loading ``data/t4_rules.json`` and the small helpers every rules module shares.

The file is read on first use and kept (``functools.cache``); importing the package reads
nothing. The helpers here are private to ``travian_repo.rules``.
"""

from __future__ import annotations

import functools
import json
import math
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from importlib import resources
from typing import Any, Iterable

from travian_repo.domain import validators
from travian_repo.domain.errors import InvalidRequest

DATA_FILE = "t4_rules.json"


@functools.cache
def rules_data() -> dict[str, Any]:
    """The parsed data file (shared, do not mutate)."""
    text = resources.files("travian_repo.rules").joinpath("data", DATA_FILE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def round_half_up(value: float | Fraction) -> int:
    """Round to the nearest int, .5 away from zero for positives (the game's PHP ``round``).

    Python's ``round`` rounds half to even, which disagrees with the data file's tables
    (e.g. population added at wall level 6: round(0.5) must be 1).
    """
    if isinstance(value, Fraction):
        return math.floor(value + Fraction(1, 2))
    if type(value) is float and 0.0 <= value < 2.0**52:
        # Below 2**52 ``value - floor(value)`` is exact, so this is the same rounding.
        whole = math.floor(value)
        return whole + 1 if value - whole >= 0.5 else whole
    # Decimal(float) is exact, so a float that is exactly x.5 rounds up and nothing else moves.
    return int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def round_to_5(value: float) -> int:
    return 5 * round_half_up(value / 5)


def round_to_10(value: float) -> int:
    return 10 * round_half_up(value / 10)


def check_int(value: object, what: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """An int within [minimum, maximum] (the rules' spelling of the one ``check_int``)."""
    return validators.check_int(value, what, low=minimum, high=maximum)


def check_number(value: object, what: str, *, positive: bool = False) -> float:
    """A finite int or float, >= 0 (> 0 when ``positive``); bools refused."""
    if not validators.is_number(value):
        raise InvalidRequest(f"{what} must be a number, got {value!r}", details={"field": what})
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        bound = "> 0" if positive else ">= 0"
        raise InvalidRequest(f"{what} must be finite and {bound}, got {value!r}",
                             details={"field": what})
    return number


def normalize_name(value: object, what: str) -> str:
    """``"Equites Legati"``, ``"hero's-mansion"`` -> ``equites_legati``, ``heros_mansion``."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} name must be a str, got {value!r}", details={"field": what})
    name = value.strip().lower().replace("'", "").replace("\u2019", "")
    return "_".join(name.replace("-", " ").split())


def unknown(what: str, value: object, valid: Iterable[str]) -> InvalidRequest:
    """The error for a name that is not in the rules, listing (a few of) the valid ones."""
    names = sorted(valid)
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return InvalidRequest(
        f"unknown {what} {value!r}; valid: {shown}",
        details={"field": what, "value": str(value), "valid": names},
    )
