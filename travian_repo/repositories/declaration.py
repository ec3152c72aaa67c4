"""One declaration per operation, written next to its contract.

``@operation(...)`` on an abstract repository method states how the operation travels and
is cached; the route table (``wire.routes``), the cache's TTL table and the cache wrapper
every implementation gets (``Repository.__init_subclass__``) are derived from it, so none
of them names the operation again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

VISIBILITIES = ("public", "private")


@dataclass(frozen=True)
class Operation:
    method: str  # the HTTP method: GET (a read), POST or DELETE (a write)
    path: str  # under the API's /v1 prefix, with {placeholders} named after the arguments
    # Cache scope of a read: "private" answers depend on who asks (keyed by the acting
    # player), "public" ones are the same for everybody (one shared entry).
    visibility: str = "private"
    ttl: float | None = None  # seconds a read stays cached; None: never cached
    # Entities a cached read depends on: "village:{village_id}" (from the arguments) or
    # "village:{result.id}" (from the answer); a write of one of them invalidates the entry.
    depends: tuple[str, ...] = ()
    name: str = ""  # "domain.method", set when the contract class is made
    returns: str = ""  # the response type, from the method's annotation

    @property
    def is_write(self) -> bool:
        return self.method != "GET"


def operation(
    method: str, path: str, *, visibility: str = "private", ttl: float | None = None,
    depends: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Declare the operation the decorated abstract method states the contract of."""
    if method not in ("GET", "POST", "DELETE"):
        raise ValueError(f"method must be GET, POST or DELETE, got {method!r}")
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be 'public' or 'private', got {visibility!r}")
    if ttl is not None and method != "GET":
        raise ValueError("only a read (GET) is cached")
    declared = Operation(method, path, visibility, ttl, tuple(depends))

    def mark(fn: F) -> F:
        fn.__operation__ = declared  # type: ignore[attr-defined]
        return fn

    return mark


def named(declared: Operation, domain: str, fn: Callable[..., Any]) -> Operation:
    returns = fn.__annotations__.get("return", "")
    return replace(declared, name=f"{domain}.{fn.__name__}",
                   returns=returns if isinstance(returns, str) else getattr(returns, "__name__", ""))


# Every declared operation by "domain.method", in declaration order (filled as the contracts
# are made, on import of travian_repo.repositories.base).
DECLARED: dict[str, Operation] = {}
