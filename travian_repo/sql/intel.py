"""Intel on the database: sending scouts (through the military ``send_troops``) and reading
scout reports."""

from __future__ import annotations

from sqlalchemy import Connection, select

from travian_repo.domain.values import Movement, Report
from travian_repo.repositories.base import IntelRepository
from travian_repo.sql import schema
from travian_repo.sql.repository import SqlRepository
from travian_repo.sql.military import send_troops
from travian_repo.sql.schema import as_utc

_rep = schema.reports


class SqlIntelRepository(SqlRepository, IntelRepository):
    """Scouting straight on the world database."""

    def send_scouts(self, from_village_id: int, to_village_id: int, count: int = 1) -> Movement:
        """Send ``count`` (1..validation.MAX_COUNT, checked by the declaration) of the tribe's
        scout unit (romans ``equites_legati``, teutons ``scout``, gauls ``pathfinder``) to
        another player's village.

        Movement kind ``scout``; the scouts leave home now and arrive after the rules' travel
        time at the scout's speed. Errors, in this order: InvalidRequest (bad ids or count,
        the same village as source and target); Forbidden / NotFound for the source village;
        NotFound for the target; RuleViolation when the target is the sender's own village;
        RuleViolation "not enough troops" (``details``: ``requested`` / ``available`` /
        ``missing``) when fewer scouts are at home. The rules are ``military.attack``'s: both
        go through ``travian_repo.sql.military.send_troops``.
        """
        actor = self._actor_id("send scouts")
        return self._write(
            lambda conn: send_troops(
                conn, actor=actor, now=self.now, settings=self.settings,
                from_village_id=from_village_id, to_village_id=to_village_id,
                kind="scout", scouts=count, emit=self._emit,
            )
        )

    def scout_reports(self, player_id: int, limit: int = 20) -> list[Report]:
        """The player's newest scout reports (``created_at`` then ``id``, both descending),
        at most ``limit`` (1..validation.MAX_LIMIT, checked by the declaration). The player
        only: anyone else, or acting as nobody, is Forbidden (whether or not that player
        exists). Reading does not mark
        reports as read. One query.
        """
        self._require_self(player_id, "read the scout reports")

        def run(conn: Connection) -> list[Report]:
            rows = conn.execute(
                select(_rep.c.id, _rep.c.player_id, _rep.c.kind, _rep.c.subject, _rep.c.village_id,
                       _rep.c.created_at, _rep.c.payload, _rep.c.read)
                .where(_rep.c.player_id == player_id, _rep.c.kind == "scout")
                .order_by(_rep.c.created_at.desc(), _rep.c.id.desc())
                .limit(limit)
            ).all()
            return [
                Report(
                    id=int(r.id),
                    player_id=int(r.player_id),
                    kind=str(r.kind),
                    subject=str(r.subject),
                    village_id=None if r.village_id is None else int(r.village_id),
                    created_at=as_utc(r.created_at),
                    payload=dict(r.payload or {}),
                    read=bool(r.read),
                )
                for r in rows
            ]

        return self._read(run)


__all__ = ["SqlIntelRepository"]
