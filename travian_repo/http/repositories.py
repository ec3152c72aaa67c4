"""The HTTP repositories: one generic implementation of every contract, built from the
declarations.

``http_repository(contract)`` makes the contract's HTTP class once, at import: for each
operation a plan (route, where each argument travels under which wire name, how the answer
is decoded, what a write invalidates) is computed there, so a call only fills it in. The
arguments arrive checked: ``Repository`` applies the declared checks before any
implementation runs, so bad input never leaves the process; the server checks again and
answers with the same errors.
"""

from __future__ import annotations

import re
import typing
from typing import Any, Callable, Sequence

from travian_repo.http.transport import Transport
from travian_repo.repositories.base import CONTRACTS, Repository, operations
from travian_repo.repositories.declaration import BODY, PATH, QUERY, Operation
from travian_repo.wire.routes import PREFIX
from travian_repo.wire.serializer import answer_decoder, encode


class HttpRepository(Repository):
    """What every HTTP repository shares: the transport and the acting player."""

    def __init__(self, transport: Transport, acting_player_id: int | None) -> None:
        self._transport = transport
        self._actor = acting_player_id


class _Plan:
    """One operation's request, precomputed: a call fills in the values."""

    __slots__ = ("name", "method", "path", "path_args", "query_args", "body_args",
                 "nested", "decode", "declared")

    def __init__(self, declared: Operation) -> None:
        self.declared = declared
        self.name = declared.name
        self.method = declared.method
        indexed = list(enumerate(declared.params))
        # The path as a positional format ("/v1/village/{0}/build") and the argument of each
        # placeholder, in order.
        placeholders = re.findall(r"\{([a-z_]+)\}", declared.path)
        by_wire = {p.wire: i for i, p in indexed if p.where == PATH}
        self.path_args = tuple(by_wire[name] for name in placeholders)
        self.path = PREFIX + re.sub(r"\{[a-z_]+\}", "{}", declared.path)
        self.query_args = tuple((p.wire, i) for i, p in indexed if p.where == QUERY)
        self.body_args = tuple((p.wire, i) for i, p in indexed
                               if p.where == BODY and "." not in p.wire)
        self.nested: tuple[tuple[str, str, int], ...] = tuple(
            (p.wire.split(".")[0], p.wire.split(".")[1], i) for i, p in indexed
            if p.where == BODY and "." in p.wire)
        self.decode = answer_decoder(declared.response)

    def send(self, repo: HttpRepository, values: Sequence[Any]) -> Any:
        path = self.path.format(*[values[i] for i in self.path_args])
        params = ({wire: _query(values[i]) for wire, i in self.query_args}
                  if self.query_args else None)
        body: dict[str, Any] | None = None
        if self.method == "POST":
            body = {wire: _json(values[i]) for wire, i in self.body_args}
            for outer, field, i in self.nested:
                body.setdefault(outer, {})[field] = _json(values[i])
        result = None
        try:
            result = self.decode(repo._transport.request(
                self.name, self.method, path, params=params, json_body=body))
            return result
        finally:
            if self.declared.is_write and repo._cache is not None:
                # Committed by the server when it answered (or maybe, when the call
                # failed): invalidate after it, never before.
                repo._cache.wrote(self.declared, repo._actor, values, result)


_AS_IS = (int, str, bool, type(None), dict)  # checked values JSON carries as they are


def _json(value: Any) -> Any:
    return value if type(value) in _AS_IS else encode(value)


def _query(value: Any) -> Any:
    """A query parameter: a list of ids travels as one comma-separated value."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def _method(plan: _Plan) -> Callable[..., Any]:
    send = plan.send

    def call(self: HttpRepository, *args: Any, **kwargs: Any) -> Any:
        # Under the cache wrapper (a cached read): the checked values as the signature
        # has them, positional then keyword-only in declaration order.
        return send(self, (*args, *kwargs.values()) if kwargs else args)

    def direct(self: HttpRepository, values: list[Any]) -> Any:
        return send(self, values)

    method: Any = call if plan.declared.ttl is not None else direct
    method.__name__ = plan.name.split(".")[1]
    method.__signature__ = plan.declared.signature
    # Resolved types: the cache decodes its entries by the return type.
    method.__annotations__ = {**{p.name: p.annotation for p in plan.declared.params},
                              "return": plan.declared.response}
    # Repository hands a method that is not cached the checked values as one list.
    method.__takes_values__ = plan.declared.ttl is None
    return typing.cast(Callable[..., Any], method)


def http_repository(contract: type[Repository]) -> type[HttpRepository]:
    """The contract's HTTP implementation: a real subclass of it, one generic method per
    operation (``Repository`` then adds the checks, guard, metrics and cache)."""
    namespace: dict[str, Any] = {
        name: _method(_Plan(contract.declarations[name])) for name in operations(contract)
    }
    namespace["__module__"] = __name__
    namespace["__doc__"] = f"{contract.__name__} over the v1 API."
    return type(f"Http{contract.__name__}", (HttpRepository, contract), namespace)


# One class per domain, made once.
HTTP_REPOSITORIES: dict[str, type[HttpRepository]] = {
    contract.domain: http_repository(contract) for contract in CONTRACTS
}

__all__ = ["HTTP_REPOSITORIES", "HttpRepository", "http_repository"]
