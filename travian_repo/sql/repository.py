"""What every SQL repository shares: the session, the acting player, ownership checks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, TypeVar

from sqlalchemy import Connection, select

from travian_repo.domain.errors import Forbidden, NotFound, Unauthorized
from travian_repo.repositories.base import Repository
from travian_repo.sql import prepared, schema
from travian_repo.sql.database import SqlSession, WorldSettings
from travian_repo.sql.village_writes import check_owner

T = TypeVar("T")


class SqlRepository(Repository):
    def __init__(self, session: SqlSession, acting_player_id: int | None) -> None:
        self._session = session
        self._actor = acting_player_id

    @property
    def now(self) -> datetime:
        return self._session.now

    @property
    def settings(self) -> WorldSettings:
        return self._session.settings

    def _read(self, fn: Callable[[Connection], T]) -> T:
        return self._session.read(fn)

    def _fetch(self, statement: prepared.Prepared, params: dict[str, Any]) -> prepared.Rows:
        """The rows of a registered read statement (the quick path: ``SqlSession.fetch``)."""
        return self._session.fetch(statement, params)

    def _write(self, fn: Callable[[Connection], T]) -> T:
        return self._session.write(fn)

    def _step(self) -> int:
        """The session's current write step (within a step, its number: ``keep_state``)."""
        return self._session.step

    def _emit(self, kind: str, player_id: int, /, **data: Any) -> None:
        self._session.emit(kind, player_id, **data)

    def _actor_id(self, action: str) -> int:
        """The acting player, or Unauthorized (a Forbidden) when the unit of work acts as
        nobody: over HTTP that is a request without a token, answered 401."""
        if self._actor is None:
            raise Unauthorized(
                f"{action} needs an acting player: connect with player_id= or use "
                "world.unit_of_work(player_id)"
            )
        return self._actor

    def _require_self(self, player_id: int, action: str) -> int:
        """Private data of ``player_id``: only that player may read or act."""
        actor = self._actor_id(action)
        if actor != player_id:
            raise Forbidden(f"player {actor} may not {action} of player {player_id}")
        return actor

    def _require_village_owner(self, conn: Connection, village_id: int, action: str) -> int:
        """The village's owner when it is the acting player; NotFound / Forbidden otherwise."""
        actor = self._actor_id(action)
        owner = conn.execute(
            select(schema.villages.c.player_id).where(schema.villages.c.id == village_id)
        ).scalar()
        if owner is None:
            raise NotFound(f"village {village_id} does not exist")
        check_owner(int(owner), actor, village_id, action)
        return actor

    def _require_player_exists(self, conn: Connection, player_id: int) -> None:
        found = conn.execute(
            select(schema.players.c.id).where(schema.players.c.id == player_id)
        ).scalar()
        if found is None:
            raise NotFound(f"player {player_id} does not exist")
