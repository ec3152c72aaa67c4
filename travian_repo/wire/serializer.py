"""The one serializer: domain values <-> JSON-ready data.

The HTTP client, the sandbox server and the cache all use it, so a field added to a domain
value appears everywhere. Datetimes travel as ISO 8601 UTC (``2026-01-01T12:00:00Z``).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import types
import typing
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, TypeVar, Union, get_args, get_origin, get_type_hints

from travian_repo.domain import values
from travian_repo.domain.errors import TravianError
from travian_repo.domain.values import Troops

T = TypeVar("T")


class DecodeError(TravianError):
    """Data that does not describe the domain value it should."""

    code = "decode_error"


def encode(value: Any) -> Any:
    """A domain value (or list/dict of them) as JSON-ready data."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Troops):
        return value.as_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    raise TypeError(f"cannot encode {type(value).__name__}")


def decode(cls: type[T], data: Any) -> T:
    """Data made by ``encode`` back into a ``cls`` value; DecodeError when it does not fit."""
    try:
        return typing.cast(T, _decoder(typing.cast(Any, cls))(data, cls.__name__))
    except DecodeError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise DecodeError(f"not a valid {cls.__name__}: {exc}") from exc


def decode_list(cls: type[T], data: Any) -> list[T]:
    if not isinstance(data, list):
        raise DecodeError(f"expected a list of {cls.__name__}, got {type(data).__name__}")
    return [decode(cls, item) for item in data]


def answer_decoder(tp: Any) -> Callable[[Any], Any]:
    """How an answer of type ``tp`` (``Village``, ``list[Village]``, ``Village | None``) is
    decoded, with the errors of ``decode`` / ``decode_list``."""
    origin = get_origin(tp)
    if origin is list:
        (inner,) = get_args(tp)
        return lambda data: decode_list(inner, data)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        one = answer_decoder(inner)
        return lambda data: None if data is None else one(data)
    return lambda data: decode(tp, data)


def format_time(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime: the library works in aware UTC")
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(text: Any) -> datetime:
    if not isinstance(text, str):
        raise DecodeError(f"expected an ISO 8601 time, got {type(text).__name__}")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise DecodeError(f"not an ISO 8601 time: {text[:40]!r}") from exc
    if parsed.tzinfo is None:
        raise DecodeError(f"time without a zone: {text[:40]!r}")
    return parsed.astimezone(timezone.utc)


Decoder = Callable[[Any, str], Any]


@functools.cache
def _decoder(tp: Any) -> Decoder:
    """A decoder for ``tp``, built once per type: the hot path does no type inspection.

    ``where`` names the position for error messages; it is only formatted on failure.
    """
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        optional = type(None) in options
        (inner,) = [o for o in options if o is not type(None)]
        inner_decoder = _decoder(inner)

        def union(data: Any, where: str) -> Any:
            return None if data is None and optional else inner_decoder(data, where)

        return union
    if tp is Any:
        return lambda data, where: data
    if tp is datetime:
        return lambda data, where: parse_time(data)
    if tp in (bool, int, str):
        return _scalar(tp)
    if tp is Troops:
        return _troops
    if origin is tuple:
        item = _decoder(get_args(tp)[0])

        def sequence(data: Any, where: str) -> Any:
            if type(data) is not list:
                raise DecodeError(f"{where}: expected a list, got {type(data).__name__}")
            return tuple([item(x, where) for x in data])

        return sequence
    if origin in (Mapping, collections.abc.Mapping, dict) or tp is dict:

        def mapping(data: Any, where: str) -> Any:
            if not isinstance(data, dict):
                raise DecodeError(f"{where}: expected an object, got {type(data).__name__}")
            return dict(data)

        return mapping
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    raise DecodeError(f"cannot decode into {tp!r}")


def _scalar(tp: type) -> Decoder:
    names = {bool: "true/false", int: "an integer", str: "a string"}

    def scalar(data: Any, where: str) -> Any:
        if type(data) is not tp:  # bool is not accepted for int, nor int for bool
            raise DecodeError(f"{where}: expected {names[tp]}, got {type(data).__name__}")
        return data

    return scalar


def _troops(data: Any, where: str) -> Troops:
    if not isinstance(data, dict):
        raise DecodeError(f"{where}: expected an object of unit counts")
    for unit, count in data.items():
        if type(count) is not int:
            raise DecodeError(f"{where}.{unit}: expected an integer, got {type(count).__name__}")
    return Troops(data)


_MISSING = object()


def _dataclass_decoder(cls: type) -> Decoder:
    """Straight-line code per class (as ``dataclasses`` makes ``__init__``): on the hot
    path of every cached read and every HTTP answer, so no loop, no kwargs."""
    hints = get_type_hints(cls, vars(values))
    env: dict[str, Any] = {"DecodeError": DecodeError, "make": cls, "MISSING": _MISSING}
    lines = [
        "def decode_fields(data, where):",
        "    if type(data) is not dict:",
        "        raise DecodeError(f'{where}: expected an object, got {type(data).__name__}')",
    ]
    args = []
    for n, f in enumerate(dataclasses.fields(cls)):
        tp = hints[f.name]
        env[f"dec{n}"] = _decoder(tp)
        value = f"v{n}"
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required:
            lines += [
                f"    {value} = data.get({f.name!r}, MISSING)",
                f"    if {value} is MISSING:",
                f"        raise DecodeError(where + ': missing field \"{f.name}\"')",
            ]
        else:
            lines.append(f"    {value} = data.get({f.name!r}, MISSING)")
        check = f"type({value}) is not scalar{n}" if tp in (bool, int, str) else "True"
        if tp in (bool, int, str):
            env[f"scalar{n}"] = tp
        guard = f"{value} is not MISSING and {check}" if not required else check
        lines += [
            f"    if {guard}:",
            f"        {value} = dec{n}({value}, where + '.{f.name}')",
        ]
        args.append(value)
    optional = [a for a, f in zip(args, dataclasses.fields(cls))
                if not (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)]
    if optional:
        names = [f.name for f in dataclasses.fields(cls)]
        lines.append("    kwargs = {}")
        for a, name in zip(args, names):
            lines.append(f"    if {a} is not MISSING: kwargs[{name!r}] = {a}")
        lines.append("    return make(**kwargs)")
    else:
        lines.append(f"    return make({', '.join(args)})")
    exec("\n".join(lines), env)  # noqa: S102 - code built from the class's own field names
    return typing.cast(Decoder, env["decode_fields"])
