"""The HTTP backend: units of work over the v1 API, acting as the token's player."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

from travian_repo.backend import Backend, BackendRequest
from datetime import datetime

from travian_repo.domain.errors import ConfigurationError, Forbidden, NotFound
from travian_repo.domain.settings import Settings
from travian_repo.domain.values import Event, Player
from travian_repo.http.transport import Transport
from travian_repo.infra.ratelimit import rate_limiter_from_option
from travian_repo.wire.routes import ADVANCE_PATH, WORLD_PATH, route
from travian_repo.wire.serializer import decode

if TYPE_CHECKING:
    from travian_repo.infra.cache import Cache
    from travian_repo.sql.database import WorldSettings
    from travian_repo.unit_of_work import UnitOfWork


class HttpBackend(Backend):
    def __init__(self, transport: Transport, world_id: str, token_player: int | None) -> None:
        self.transport = transport
        self.world_id = world_id
        self.token_player = token_player
        self.player_id = token_player

    @classmethod
    def open(cls, request: BackendRequest) -> HttpBackend:
        if request.api_url is None:
            raise ConfigurationError("prefer='http' needs api_url= (or TRAVIAN_API_URL)")
        options = request.options
        # "default" asks for no world in particular: the server says which one it serves
        # (as a database does), and that id names the world here (its cache keys included).
        learn = request.world_id == "default"
        transport = Transport(
            request.api_url,
            token=request.token,
            world_id=None if learn else request.world_id,
            session=options.get("http_session"),
            timeout=options.get("timeout") or (3.05, 10.0),
            retry=options.get("retry"),
            rate_limiter=rate_limiter_from_option(
                options.get("rate_limit"), request.redis_client, world_id=request.world_id
            ),
            metrics=request.metrics,
            pool_size=options.get("pool_size") or 16,
        )
        try:
            world_id = request.world_id
            if learn:
                world_id = decode(Settings, transport.request(
                    "world.settings", "GET", WORLD_PATH)).world_id
                transport.use_world(world_id)
                if world_id != request.world_id:  # a shared limit's keys name the world
                    transport.rate_limiter = rate_limiter_from_option(
                        options.get("rate_limit"), request.redis_client, world_id=world_id)
            token_player: int | None = None
            if request.token:
                me = decode(Player, transport.request(
                    "session.me", "GET", route("session.me").url_path()))
                token_player = me.id
                if request.player_id is not None and request.player_id != me.id:
                    raise Forbidden(
                        f"the API token belongs to player {me.id}, not player {request.player_id}"
                    )
            backend = cls(transport, world_id, token_player)
            if token_player is None:
                backend.player_id = request.player_id
            return backend
        except BaseException:
            transport.close()
            raise

    def unit_of_work(self, player_id: int | None, cache: Cache | None) -> UnitOfWork:
        from travian_repo.unit_of_work import HttpUnitOfWork

        return HttpUnitOfWork(self.transport, player_id, self.token_player, cache)

    @property
    def settings(self) -> WorldSettings | None:
        return None  # the row is the database's; the API answers world_settings() (GET /v1/world)

    def world_settings(self) -> Settings:
        return decode(Settings, self.transport.request("world.settings", "GET", WORLD_PATH))

    def advance(self, seconds: float) -> datetime:
        try:
            # Sent with an Idempotency-Key like every write: a retry moves the clock once.
            answer = self.transport.request("sandbox.advance", "POST", ADVANCE_PATH,
                                            json_body={"seconds": seconds})
        except NotFound:
            raise ConfigurationError(
                f"the server at {self.transport.base_url} has no manual clock (start it with "
                "`travian-repo serve --manual-clock`)") from None
        return datetime.fromisoformat(answer["now"])

    def add_commit_listener(self, listener: Callable[[list[Event]], None]) -> None:
        """The server commits and publishes the API's writes; nothing commits here."""

    def events(self, player_id: int, timeout: float | None) -> Iterator[Event] | None:
        """The server's event stream: its commits (and its engine's) happen there."""
        from travian_repo.http.events import HttpEventSubscription

        return HttpEventSubscription(self.transport, player_id, timeout)

    def close(self) -> None:
        self.transport.close()

    def describe(self) -> str:
        return self.transport.base_url
