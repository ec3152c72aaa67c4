"""One declaration per operation, written next to its contract.

``@operation(...)`` on an abstract repository method states everything about the operation
that is not its SQL: how it travels over the v1 API (route, and where each argument goes on
the wire under which name), how its arguments are checked, how it is cached, what a write
invalidates. From it come the route table (``wire.routes``), the HTTP client
(``http.repositories``), the server's request parsing (``sandbox.server.handlers``), the
cache's TTLs and invalidation (``infra.cache.policy``), the argument checks every backend
gets (``repositories.binding``) and ``docs/openapi.yaml`` (``wire.openapi``), so none of
them names the operation again.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

VISIBILITIES = ("public", "private")

# A checker takes an argument's value and name and returns the value to use (or raises
# InvalidRequest); a whole-call check takes the checked arguments by name.
Checker = Callable[[Any, str], Any]
CallCheck = Callable[..., None]

PATH, QUERY, BODY = "path", "query", "body"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_PLACEHOLDER_ANY = re.compile(r"\{([a-z_.]+)\}")  # in a template: "{result.id}" too
_CONDITION = re.compile(r"^(?P<template>\S+) if (?P<arg>[a-z_]+)$")


@dataclass(frozen=True)
class Param:
    """One argument of an operation, as it travels."""

    name: str  # the Python argument
    keyword_only: bool
    default: Any  # inspect.Parameter.empty when required
    annotation: Any  # the resolved type (int, str, bool, Mapping[str, int], ...)
    wire: str  # the name on the wire; "offer.resource" is the field resource of object offer
    where: str  # PATH, QUERY or BODY
    check: Checker

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@dataclass(frozen=True)
class Invalidation:
    """An entity template a write changes: formatted with the arguments by name, ``actor``
    (the acting player) and ``result`` (the decoded answer); only when ``when`` (an argument)
    is true, if it names one."""

    template: str
    when: str | None = None


@dataclass(frozen=True)
class Operation:
    method: str  # the HTTP method: GET (a read), POST or DELETE (a write)
    path: str  # under the API's /v1 prefix, with {placeholders} named by wire names
    # Cache scope of a read: "private" answers depend on who asks (keyed by the acting
    # player), "public" ones are the same for everybody (one shared entry).
    visibility: str = "private"
    ttl: float | None = None  # seconds a read stays cached; None: never cached
    # Entities a cached read depends on: "village:{village_id}" (from the arguments) or
    # "village:{result.id}" (from the answer); a write of one of them invalidates the entry.
    depends: tuple[str, ...] = ()
    # What a write changes, for the client's cache (the SQL side invalidates from the
    # domain events of its commit instead): entity templates as in ``Invalidation``.
    invalidates: tuple[Invalidation, ...] = ()
    wire_names: Mapping[str, str] = field(default_factory=dict)  # argument -> wire name
    checks: Mapping[str, Checker] = field(default_factory=dict)  # argument -> checker
    check: CallCheck | None = None  # run after the per-argument checks
    summary: str = ""  # one line for the OpenAPI document (default: the docstring's first)
    # Set when the contract class is made:
    name: str = ""  # "domain.method"
    doc: str = ""
    params: tuple[Param, ...] = ()
    response: Any = None  # the resolved return annotation
    signature: inspect.Signature | None = None  # the contract method's, self included

    @property
    def is_write(self) -> bool:
        return self.method != "GET"

    @property
    def returns(self) -> str:
        """The response type as written (``list[Village]``)."""
        return type_name(self.response)

    def located(self, where: str) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.where == where)


def operation(
    method: str, path: str, *, visibility: str = "private", ttl: float | None = None,
    depends: tuple[str, ...] = (), invalidates: tuple[str, ...] = (),
    wire: Mapping[str, str] | None = None, checks: Mapping[str, Checker] | None = None,
    check: CallCheck | None = None, summary: str = "",
) -> Callable[[F], F]:
    """Declare the operation the decorated abstract method states the contract of.

    ``wire``: arguments whose wire name is not their own (``{"kind": "attack_type"}``; a
    dotted name nests in the body). An argument whose wire name is a ``{placeholder}`` of
    ``path`` travels there; the others go in the query string (GET) or the JSON body.
    ``checks``: a checker per argument (an ``int`` named ``*_id`` defaults to a positive id,
    a ``bool`` to a boolean); ``check``: a check over several arguments, run after them.
    ``invalidates``: for a write, the entities it changes (``"village:{village_id}"``,
    ``"villages_of:{actor}"``, ``"village:{result.to_village_id}"``, ``"rank if instant"``).
    """
    if method not in ("GET", "POST", "DELETE"):
        raise ValueError(f"method must be GET, POST or DELETE, got {method!r}")
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be 'public' or 'private', got {visibility!r}")
    if ttl is not None and method != "GET":
        raise ValueError("only a read (GET) is cached")
    if invalidates and method == "GET":
        raise ValueError("only a write invalidates")
    declared = Operation(
        method, path, visibility, ttl, tuple(depends),
        tuple(_invalidation(t) for t in invalidates), dict(wire or {}), dict(checks or {}),
        check, summary,
    )

    def mark(fn: F) -> F:
        fn.__operation__ = declared  # type: ignore[attr-defined]
        return fn

    return mark


def _invalidation(text: str) -> Invalidation:
    found = _CONDITION.match(text)
    if found:
        return Invalidation(found["template"], found["arg"])
    return Invalidation(text)


def named(
    declared: Operation, domain: str, fn: Callable[..., Any],
    default_check: Callable[[str, Any], Checker | None],
) -> Operation:
    """The declaration completed from the contract method: its name, arguments (with their
    wire places and checkers), response type and signature; a declaration that does not fit
    its method is a TypeError when the contract class is made."""
    name = f"{domain}.{fn.__name__}"
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    placeholders = set(_PLACEHOLDER.findall(declared.path))
    arguments = list(signature.parameters.values())[1:]  # after self
    unknown = (set(declared.wire_names) | set(declared.checks)) - {a.name for a in arguments}
    if unknown:
        raise TypeError(f"{name}: the declaration names no argument {sorted(unknown)}")
    params = []
    for arg in arguments:
        wire = declared.wire_names.get(arg.name, arg.name)
        if wire in placeholders:
            where = PATH
        elif "." in wire and declared.method == "GET":
            raise TypeError(f"{name}: a GET has no body for {wire!r}")
        else:
            where = QUERY if declared.method == "GET" else BODY
        if where == BODY and declared.method == "DELETE":
            raise TypeError(f"{name}: a DELETE takes no body; put {arg.name!r} in the path")
        checker = declared.checks.get(arg.name) or default_check(arg.name, hints[arg.name])
        if checker is None:
            raise TypeError(f"{name}: no check for the argument {arg.name!r}: declare checks=")
        params.append(Param(
            arg.name, arg.kind is inspect.Parameter.KEYWORD_ONLY, arg.default,
            hints[arg.name], wire, where, checker,
        ))
    missing = placeholders - {p.wire for p in params}
    if missing:
        raise TypeError(f"{name}: no argument travels as the path's {sorted(missing)}")
    names = {p.name for p in params} | {"actor", "result"}
    for inv in declared.invalidates:
        fields = {f.split(".")[0] for f in _PLACEHOLDER_ANY.findall(inv.template)}
        if not fields <= names or (inv.when is not None and inv.when not in names):
            raise TypeError(f"{name}: invalidates {inv.template!r} names an unknown argument")
    return replace(
        declared, name=name, doc=inspect.getdoc(fn) or "", params=tuple(params),
        response=hints.get("return"), signature=signature,
    )



def type_name(tp: Any) -> str:
    """A type as written: ``list[Village]``, ``Village | None``."""
    if tp is None:
        return ""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


# Every declared operation by "domain.method", in declaration order (filled as the contracts
# are made, on import of travian_repo.repositories.base).
DECLARED: dict[str, Operation] = {}
