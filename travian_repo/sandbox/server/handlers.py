"""From a parsed request to a repository call, by the operation's declaration.

``parse`` reads the request (path, query, body) into an ``Op`` -- which repository method
to call with which arguments -- before any repository runs, so a malformed request never
reaches the database. Where each argument is read from, under which wire name and with
which default comes from the operation's ``@operation`` declaration; the values pass
through as they are, and the repository checks them (so a string ``count`` gets the
repository's own ``InvalidRequest``).
"""

from __future__ import annotations

from typing import Any

from travian_repo.repositories.declaration import BODY, PATH, QUERY, Operation, Param
from travian_repo.sandbox.server.parsing import Body, Call
from travian_repo.unit_of_work import UnitOfWork
from travian_repo.wire.routes import Route

_MISSING: Any = object()


class Op:
    """A parsed request: which repository method to call, with which arguments."""

    __slots__ = ("target", "args", "kwargs")

    def __init__(self, target: str, *args: Any, **kwargs: Any) -> None:
        self.target = target  # "domain.method"
        self.args = args
        self.kwargs = kwargs

    def __call__(self, uow: UnitOfWork) -> Any:
        domain, method = self.target.split(".")
        return getattr(getattr(uow, domain), method)(*self.args, **self.kwargs)


def _from_query(call: Call, param: Param) -> Any:
    default = None if param.required else param.default
    if param.annotation is bool:
        return call.query.bool(param.wire, bool(default))
    return call.query.int(param.wire, default, required=param.required)


def _arguments(declared: Operation, call: Call) -> tuple[list[Any], dict[str, Any]]:
    body = call.body
    objects: dict[str, Body] = {}
    if body is not None:
        # Nested objects first, in the order of their fields (a missing one is reported
        # before the fields of any).
        for param in declared.located(BODY):
            if "." in param.wire:
                outer = param.wire.split(".")[0]
                if outer not in objects:
                    objects[outer] = body.object(outer)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in declared.params:
        if param.where == PATH:
            value = call.params[param.wire]
        elif param.where == QUERY:
            value = _from_query(call, param)
        else:
            assert body is not None
            source, field = body, param.wire
            if "." in field:
                outer, field = field.split(".", 1)
                source = objects[outer]
            value = source.get(field) if param.required else source.get(field, param.default)
        if param.keyword_only:
            kwargs[param.name] = value
        else:
            args.append(value)
    for nested in objects.values():
        nested.finish()
    return args, kwargs


def parse(route: Route, call: Call) -> Op:
    """The request as an Op; InvalidRequest for a malformed query string or body."""
    declared = route.declared
    if declared is None:  # the session route: who the token is
        op = Op("players.get", call.player_id)
    else:
        args, kwargs = _arguments(declared, call)
        op = Op(declared.name, *args, **kwargs)
    call.query.finish()
    if call.body is not None:
        call.body.finish()
    return op


__all__ = ["Op", "parse"]
