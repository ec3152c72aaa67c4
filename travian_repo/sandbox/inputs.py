"""What the server takes from a request, checked before anything runs: path ids and JSON bodies.

- Path ids are ASCII digits only. Werkzeug's ``int`` converter matches ``\\d``, which takes
  any Unicode digit (``/v1/village/１`` and ``/v1/village/١`` would act on village 1).
- A JSON body is UTF-8 JSON text with no NaN or Infinity (nor numbers that only fit as
  infinity, like ``1e309``), no lone surrogate (``"\\ud800"``) in any string or field name
  (no database can store one, and no answer could quote it), nested at most ``MAX_DEPTH``
  levels, and at most ``MAX_BODY_BYTES`` long (``413`` past that).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from werkzeug.routing import BaseConverter, ValidationError

from travian_repo.domain.errors import InvalidRequest

MAX_BODY_BYTES = 1 << 20
MAX_DEPTH = 16  # the deepest valid body is 2 levels ({"offer": {"amount": 1}})
MAX_ID_DIGITS = 18  # below 2**63: every id fits a BIGINT

_SURROGATE = re.compile("[\ud800-\udfff]")


class AsciiIdConverter(BaseConverter):
    """The ``int`` path converter, ASCII digits only: anything else does not match (404)."""

    regex = r"[0-9]{1,%d}" % MAX_ID_DIGITS
    weight = 50
    part_isolating = True

    def to_python(self, value: str) -> int:
        if not (value.isascii() and value.isdigit()):  # the regex says so too
            raise ValidationError()
        return int(value)

    def to_url(self, value: Any) -> str:
        return str(int(value))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def printable(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX`` escapes (safe to quote)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def decode_json(raw: bytes, what: str = "the request body") -> Any:
    """The JSON value of ``raw``; ``InvalidRequest`` for anything the server cannot take."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{what} is not UTF-8 text") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise InvalidRequest(f"{what} is nested too deeply (at most {MAX_DEPTH} levels)",
                             details={"max_depth": MAX_DEPTH}) from None
    except ValueError as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {printable(str(exc))[:120]}") from None
    check_value(value, what)
    return value


def check_value(value: Any, what: str = "the request body") -> None:
    """No lone surrogate in any string or key, nesting at most ``MAX_DEPTH`` levels."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"{what} is nested too deeply (at most {MAX_DEPTH} levels)",
                                 details={"max_depth": MAX_DEPTH})
        if isinstance(node, str):
            _check_text(node, path or "body", what)
        elif isinstance(node, dict):
            for key, item in node.items():
                where = f"{path}.{key}" if path else key
                _check_text(key, where, what, key=True)
                stack.append((item, where, depth + 1))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                stack.append((item, f"{path}[{index}]", depth + 1))


def _check_text(text: str, where: str, what: str, *, key: bool = False) -> None:
    if text.isascii() or not _SURROGATE.search(text):
        return
    place = printable(where)[:80]
    raise InvalidRequest(
        f"{what} has a lone surrogate (an unpaired \\ud800-\\udfff escape) in "
        + (f"the field name {place!r}" if key else f"the value of {place!r}")
        + "; JSON strings must be valid Unicode",
        details={"field": place, "reason": "lone_surrogate"},
    )


__all__ = ["MAX_BODY_BYTES", "MAX_DEPTH", "MAX_ID_DIGITS", "AsciiIdConverter", "check_value",
           "decode_json", "printable"]
