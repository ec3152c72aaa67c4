"""The one serializer: domain values <-> JSON-ready data.

The HTTP client, the sandbox server and the cache all use it, so a field added to a domain
value appears everywhere. Datetimes travel as ISO 8601 UTC (``2026-01-01T12:00:00Z``).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from datetime import datetime, timezone
from typing import Any, Mapping, TypeVar, Union, get_args, get_origin, get_type_hints

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
        return typing.cast(T, _decode(cls, data, cls.__name__))
    except DecodeError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise DecodeError(f"not a valid {cls.__name__}: {exc}") from exc


def decode_list(cls: type[T], data: Any) -> list[T]:
    if not isinstance(data, list):
        raise DecodeError(f"expected a list of {cls.__name__}, got {type(data).__name__}")
    return [decode(cls, item) for item in data]


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


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls, vars(values))


def _decode(tp: Any, data: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if data is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _decode(inner, data, where)
    if tp is Any:
        return data
    if tp is datetime:
        return parse_time(data)
    if tp is bool:
        if not isinstance(data, bool):
            raise DecodeError(f"{where}: expected true/false, got {type(data).__name__}")
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise DecodeError(f"{where}: expected an integer, got {type(data).__name__}")
        return data
    if tp is str:
        if not isinstance(data, str):
            raise DecodeError(f"{where}: expected a string, got {type(data).__name__}")
        return data
    if tp is Troops:
        if not isinstance(data, dict):
            raise DecodeError(f"{where}: expected an object of unit counts")
        return Troops({str(k): _decode(int, v, f"{where}.{k}") for k, v in data.items()})
    if origin is tuple:
        if not isinstance(data, list):
            raise DecodeError(f"{where}: expected a list, got {type(data).__name__}")
        (inner, _ellipsis) = get_args(tp)
        return tuple(_decode(inner, item, f"{where}[{i}]") for i, item in enumerate(data))
    if origin in (Mapping, dict) or tp in (dict,):
        if not isinstance(data, dict):
            raise DecodeError(f"{where}: expected an object, got {type(data).__name__}")
        return dict(data)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise DecodeError(f"{where}: expected an object, got {type(data).__name__}")
        hints = _hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in data:
                kwargs[f.name] = _decode(hints[f.name], data[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DecodeError(f"{where}: missing field {f.name!r}")
        return typing.cast(Any, tp)(**kwargs)
    raise DecodeError(f"{where}: cannot decode into {tp!r}")
