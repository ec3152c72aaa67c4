"""Repositories that pass each call on to others, built from the contracts (one class per
domain, made here once): each is a real subclass of its contract, with the contract's
methods, signatures and docstrings.

- ``QUICK``: ``world.villages.get(1)``, each call in its own unit of work.
- ``ROUTED``: ``prefer="auto"``, reads to the database repository, writes to the API one.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable

from travian_repo.repositories.base import CONTRACTS, Repository, check_open, operations
from travian_repo.wire.routes import BY_OPERATION

if TYPE_CHECKING:
    from travian_repo.unit_of_work import UnitOfWork


class QuickRepository(Repository):
    """Each call runs in its own unit of work (committed when it returns) as the world's
    player."""

    def __init__(self, new_unit: Callable[[], UnitOfWork]) -> None:
        self._new_unit = new_unit

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: each call in its own unit of work>"


class RoutedRepository(Repository):
    """Reads go to ``reads`` (the database), writes to ``writes`` (the API)."""

    def __init__(self, reads: Repository, writes: Repository) -> None:
        self._reads = reads
        self._writes = writes

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: reads {self._reads!r}, writes {self._writes!r}>"


def _quick_method(contract: type[Repository], name: str) -> Callable[..., Any]:
    domain = contract.domain

    @functools.wraps(getattr(contract, name))
    def call(self: QuickRepository, *args: Any, **kwargs: Any) -> Any:
        with self._new_unit() as uow:
            return getattr(getattr(uow, domain), name)(*args, **kwargs)

    return _concrete(call)


def _routed_method(contract: type[Repository], name: str) -> Callable[..., Any]:
    route = BY_OPERATION[f"{contract.domain}.{name}"]
    side = "_writes" if route.is_write else "_reads"

    @functools.wraps(getattr(contract, name))
    def call(self: RoutedRepository, *args: Any, **kwargs: Any) -> Any:
        unit = self._unit
        if unit is not None and unit._closed:
            check_open(unit)
        return getattr(getattr(self, side), name)(*args, **kwargs)

    return _concrete(call)


def _concrete(call: Callable[..., Any]) -> Callable[..., Any]:
    # functools.wraps copied the abstract method's flag; this one implements it.
    call.__isabstractmethod__ = False  # type: ignore[attr-defined]
    call.__repository_operation__ = True  # type: ignore[attr-defined]
    return call


def _derive(
    base: type[Repository], contract: type[Repository],
    method: Callable[[type[Repository], str], Callable[..., Any]],
) -> type[Repository]:
    namespace: dict[str, Any] = {name: method(contract, name) for name in operations(contract)}
    namespace["__module__"] = __name__
    namespace["__doc__"] = f"{contract.__name__}: {base.__doc__}"
    name = base.__name__.replace("Repository", "") + contract.__name__
    return type(name, (base, contract), namespace)


QUICK: dict[str, type[Repository]] = {
    c.domain: _derive(QuickRepository, c, _quick_method) for c in CONTRACTS
}
ROUTED: dict[str, type[Repository]] = {
    c.domain: _derive(RoutedRepository, c, _routed_method) for c in CONTRACTS
}
