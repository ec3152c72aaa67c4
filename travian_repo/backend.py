"""What a backend is, and the names ``connect(prefer=...)`` knows them by.

A backend serves the repositories of one world: it opens units of work, knows the world's
settings when it can read them, tells listeners about each commit that wrote, and closes.
The SQL side (``travian_repo.sql.backend``) and the HTTP side (``travian_repo.http.backend``)
each implement it; ``"auto"`` reads through the first and writes through the second. A new
backend is one package implementing ``Backend`` plus one ``register_backend`` call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterator

from travian_repo.domain.errors import ConfigurationError
from travian_repo.domain.settings import Settings
from travian_repo.domain.values import Event

if TYPE_CHECKING:
    import redis

    from travian_repo.infra.cache import Cache
    from travian_repo.infra.metrics import Metrics
    from travian_repo.sql.database import Database, WorldSettings
    from travian_repo.unit_of_work import UnitOfWork


@dataclass
class BackendRequest:
    """What ``connect()`` was given, resolved from its arguments and the environment."""

    database_url: Any
    api_url: str | None
    token: str | None
    player_id: int | None
    world_id: str  # "default": nothing asked for, the backend says which world it serves
    metrics: Metrics
    redis_client: redis.Redis | None
    options: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """One world's repositories, served one way."""

    # The world served, and the acting player the backend settled on (an API token's).
    world_id: str
    player_id: int | None
    # The player an API token acts as (then no other may act), or None.
    token_player: int | None = None
    # The database behind the backend, when it has one (the sandbox engine needs it).
    database: Database | None = None

    @abstractmethod
    def unit_of_work(self, player_id: int | None, cache: Cache | None) -> UnitOfWork:
        """A new unit of work acting as ``player_id`` (already checked as an id)."""

    @property
    @abstractmethod
    def settings(self) -> WorldSettings | None:
        """The world's settings, or None when this backend cannot read them."""

    @abstractmethod
    def add_commit_listener(self, listener: Callable[[list[Event]], None]) -> None:
        """Call ``listener(events)`` after each commit of this process that wrote (a backend
        whose commits happen elsewhere, such as the API's, has none to report)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the backend opened itself (never what it was handed)."""

    def world_settings(self) -> Settings:
        """The world's settings and the server's time now (a read each call)."""
        raise ConfigurationError(f"{type(self).__name__} cannot read the world's settings")

    def advance(self, seconds: float) -> datetime:
        """Move a sandbox's manual clock on by ``seconds`` and process what fell due; the
        world's time after. ConfigurationError where time is not the caller's to move."""
        raise ConfigurationError(f"{type(self).__name__} has no manual clock to move")

    def events(self, player_id: int, timeout: float | None) -> Iterator[Event] | None:
        """``player_id``'s events from the backend's own source (the API's event stream), or
        None: the world's event bus serves them (the commits happen in reach of it)."""
        return None

    def describe(self) -> str:
        """Where it connects, for ``repr(world)``."""
        return type(self).__name__


BackendOpener = Callable[[BackendRequest], Backend]

BACKENDS: dict[str, BackendOpener] = {}


def register_backend(name: str, opener: BackendOpener) -> None:
    """Make ``connect(prefer=name)`` open worlds with ``opener``."""
    if not name.isidentifier():
        raise ConfigurationError(f"a backend name is an identifier, got {name!r}")
    BACKENDS[name] = opener


def open_backend(name: str, request: BackendRequest) -> Backend:
    opener = BACKENDS.get(name)
    if opener is None:
        raise ConfigurationError(
            f"prefer must be one of {', '.join(sorted(BACKENDS))}, got {name!r}")
    return opener(request)
