"""What a request says, read strictly before any repository runs: query string and body.

Path ids are ASCII digits (``travian_repo.sandbox.inputs.AsciiIdConverter``); the query
string takes known names only, each at most once; a body is a JSON object (UTF-8, no NaN,
no lone surrogates: ``travian_repo.sandbox.inputs.decode_json``) with known fields only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from flask import request

from travian_repo.domain.errors import InvalidRequest
from travian_repo.sandbox.inputs import decode_json
from travian_repo.wire.routes import PREFIX, Route

_INT = re.compile(r"-?[0-9]{1,18}")


class Query:
    """The query string, parsed strictly: known names only, each at most once."""

    def __init__(self, args: Mapping[str, list[str]]) -> None:
        self._args = args
        self._used: set[str] = set()

    def _one(self, name: str) -> str | None:
        self._used.add(name)
        values = self._args.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise InvalidRequest(f"query parameter {name!r} given {len(values)} times",
                                 details={"parameter": name})
        return values[0]

    def int(self, name: str, default: int | None = None, *, required: bool = False) -> Any:
        text = self._one(name)
        if text is None:
            if required:
                raise InvalidRequest(f"query parameter {name!r} is required",
                                     details={"parameter": name})
            return default
        if not _INT.fullmatch(text):
            raise InvalidRequest(f"query parameter {name!r} must be an integer, got {text[:40]!r}",
                                 details={"parameter": name})
        return int(text)

    def text(self, name: str) -> str | None:
        """A string parameter as given (None when absent); the repository checks it."""
        return self._one(name)

    def bool(self, name: str, default: bool) -> bool:
        text = self._one(name)
        if text is None:
            return default
        if text not in ("true", "false"):
            raise InvalidRequest(
                f"query parameter {name!r} must be true or false, got {text[:40]!r}",
                details={"parameter": name},
            )
        return text == "true"

    def finish(self) -> None:
        unknown = sorted(set(self._args) - self._used)
        if unknown:
            raise InvalidRequest(f"unknown query parameter {unknown[0]!r}",
                                 details={"parameter": unknown[0]})


_MISSING = object()


class Body:
    """A JSON object body: required and optional fields, unknown fields refused.

    Values pass through as they are: the repository checks their types and ranges, so a
    string ``count`` gets the repository's own ``InvalidRequest``.
    """

    def __init__(self, data: Mapping[str, Any], where: str = "body") -> None:
        self._data = data
        self._where = where
        self._used: set[str] = set()

    def get(self, name: str, default: Any = _MISSING) -> Any:
        self._used.add(name)
        if name in self._data:
            return self._data[name]
        if default is _MISSING:
            raise InvalidRequest(f"{self._where} is missing the field {name!r}",
                                 details={"field": self._path(name)})
        return default

    def object(self, name: str) -> Body:
        value = self.get(name)
        if not isinstance(value, dict):
            raise InvalidRequest(f"{self._path(name)} must be a JSON object",
                                 details={"field": self._path(name)})
        return Body(value, self._path(name))

    def finish(self) -> None:
        unknown = sorted(set(self._data) - self._used)
        if unknown:
            raise InvalidRequest(f"{self._where} has an unknown field {unknown[0]!r}",
                                 details={"field": self._path(unknown[0])})

    def _path(self, name: str) -> str:
        return name if self._where == "body" else f"{self._where}.{name}"


@dataclass
class Call:
    """One request, parsed: the acting player, path parameters, query, body."""

    player_id: int | None
    params: dict[str, Any]
    query: Query
    body: Body | None

    @property
    def json(self) -> Body:
        assert self.body is not None
        return self.body


def request_query() -> Query:
    """The current request's query string; on a GET, also a JSON object body's fields (the
    original async client sends a read's parameters so), as if they were in the query."""
    args = request.args.to_dict(flat=False)
    if request.method == "GET":
        raw = request.get_data(cache=True)
        if raw.strip():
            data = decode_json(raw)
            if not isinstance(data, dict):
                raise InvalidRequest(
                    f"a GET's JSON body must be an object of parameters, got {json_kind(data)}")
            for name, value in data.items():
                args.setdefault(name, []).append(_query_text(name, value))
    return Query(args)


def _query_text(name: str, value: Any) -> str:
    """A JSON parameter as the query string would carry it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(value)
    raise InvalidRequest(f"parameter {name!r} must be an integer, a string or a boolean, "
                         f"got {json_kind(value)}", details={"parameter": name})


def request_body(route: Route) -> tuple[Any, Body | None]:
    """The current request's body: its JSON value (for the idempotency fingerprint) and a
    ``Body`` over it; ``(None, None)`` for routes that take no body."""
    if not route.is_write:
        return None, None  # a GET's body, if any, is its parameters: request_query reads it
    raw = request.get_data(cache=False)
    if route.method == "DELETE":
        if raw.strip():
            raise InvalidRequest(f"{route.method} {PREFIX}{route.path} takes no body")
        return None, None
    if not raw.strip():
        if not route.takes_body:  # the path says it all: empty is the same as `{}`
            return {}, Body({})
        raise InvalidRequest("the request body must be a JSON object; it is empty")
    data = decode_json(raw)
    if not isinstance(data, dict):
        raise InvalidRequest(
            f"the request body must be a JSON object, got {json_kind(data)}")
    return data, Body(data)


def optional_object_body() -> Body:
    """The current request's body as a JSON object; an empty body is ``{}``."""
    raw = request.get_data(cache=False)
    data = decode_json(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return Body(data)


def json_kind(value: Any) -> str:
    """What a JSON value is, for messages ("a string", "an array", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


__all__ = ["Body", "Call", "Query", "json_kind", "optional_object_body",
           "request_body", "request_query"]
