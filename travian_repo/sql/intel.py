"""Intel on the database: sending scouts (through the military ``send_troops``), reading
reports and marking them read."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from travian_repo.domain import events
from travian_repo.domain.errors import Forbidden, NotFound
from travian_repo.domain.values import Movement, Report
from travian_repo.repositories.base import IntelRepository
from travian_repo.sql import reports, schema
from travian_repo.sql.repository import SqlRepository
from travian_repo.sql.military import send_troops

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
                select(*reports.COLUMNS)
                .where(_rep.c.player_id == player_id, _rep.c.kind == "scout")
                .order_by(_rep.c.created_at.desc(), _rep.c.id.desc())
                .limit(limit)
            ).all()
            return [reports.report_from_row(r) for r in rows]

        return self._read(run)

    def reports(self, player_id: int, *, kind: str | None = None, limit: int = 20) -> list[Report]:
        """The player's newest reports (``created_at`` then ``id``, both descending), at
        most ``limit`` (1..validation.MAX_LIMIT): every kind, or only ``kind`` (one of
        ``REPORT_KINDS``). An ``attack`` or ``defense`` report carries ``battle``, the
        typed battle read from its payload. The player only: anyone else, or acting as
        nobody, is Forbidden (whether or not that player exists). Reading does not mark
        reports read. One query.
        """
        self._require_self(player_id, "read the reports")
        wanted = _rep.c.player_id == player_id
        if kind is not None:
            wanted &= _rep.c.kind == kind

        def run(conn: Connection) -> list[Report]:
            rows = conn.execute(
                select(*reports.COLUMNS).where(wanted)
                .order_by(_rep.c.created_at.desc(), _rep.c.id.desc())
                .limit(limit)
            ).all()
            return [reports.report_from_row(r) for r in rows]

        return self._read(run)

    def mark_report_read(self, report_id: int) -> Report:
        """Mark the acting player's report read and return it. The update is the lock (it
        changes only the actor's unread report); when it changed nothing, the row says
        why: no such report (NotFound), another player's (Forbidden), or read already (no
        error, nothing written). A change emits ``report_read`` to the player.
        """
        actor = self._actor_id("mark a report read")

        def run(conn: Connection) -> Report:
            changed = conn.execute(
                update(_rep)
                .where(_rep.c.id == report_id, _rep.c.player_id == actor, _rep.c.read.is_(False))
                .values(read=True)
            ).rowcount
            row = conn.execute(select(*reports.COLUMNS).where(_rep.c.id == report_id)).first()
            if row is None:
                raise NotFound(f"report {report_id} does not exist")
            if int(row.player_id) != actor:
                raise Forbidden(f"report {report_id} is player {row.player_id}'s, not yours "
                                f"(player {actor}); only its player marks it read")
            if changed:
                self._emit(events.REPORT_READ, actor, report_id=report_id)
            return reports.report_from_row(row)

        return self._write(run)


__all__ = ["SqlIntelRepository"]
