"""Diplomacy on the database: in-game messages, alliances and invitations.

Choices the backends share (the HTTP side answers the same):

- A message's subject must hold something besides whitespace (at most 200 characters); its
  body may be empty (at most 10,000 characters). Both are stored verbatim (bound parameters,
  no trimming), so quotes and SQL in them are just text.
- Reading the inbox does not mark messages read (a read never writes); ``mark_read`` does,
  one message of the acting player's inbox at a time.
- Alliance name and tag lose their surrounding whitespace before they are checked and stored;
  they are unique as written (case-sensitive, like the database constraint that backs the
  check when two founders race).
- An invitation for a pair that already has one: ``Conflict`` while it is pending; one that
  was answered (any other status) is renewed as a new pending invitation.
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import Connection, exists, func, insert, or_, select, update

from travian_repo.domain import events
from travian_repo.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RuleViolation,
)
from travian_repo.domain.values import Alliance, Invitation, Message
from travian_repo.repositories.base import DiplomacyRepository
from travian_repo.sql import schema
from travian_repo.sql.repository import SqlRepository
from travian_repo.sql.dialect import insert_unless_taken

_msg = schema.messages
_a = schema.alliances
_i = schema.alliance_invitations
_p = schema.players
_v = schema.villages
_b = schema.village_buildings

INBOX_LIMIT = 500
ALLIANCE_EMBASSY_LEVEL = 3


class SqlDiplomacyRepository(SqlRepository, DiplomacyRepository):
    def send_message(
        self, from_player_id: int, to_player_id: int, subject: str, body: str
    ) -> Message:
        """Send a message from the acting player; it arrives unread.

        InvalidRequest for bad ids, an empty or too long subject, a too long body, or a
        message to oneself; Forbidden when ``from_player_id`` is not the acting player;
        NotFound when the recipient does not exist.
        """
        self._require_self(from_player_id, "send messages in the name")

        def run(conn: Connection) -> Message:
            self._require_player_exists(conn, to_player_id)
            now = self.now
            message_id = conn.execute(
                insert(_msg)
                .values(
                    from_player_id=from_player_id,
                    to_player_id=to_player_id,
                    subject=subject,
                    body=body,
                    sent_at=now,
                    read_at=None,
                )
                .returning(_msg.c.id)
            ).scalar_one()
            self._emit(events.MESSAGE_RECEIVED, to_player_id, message_id=int(message_id),
                       from_player_id=from_player_id)
            return Message(int(message_id), from_player_id, to_player_id, subject, body, now,
                           read=False)

        return self._write(run)

    def messages(self, player_id: int, *, unread_only: bool = False) -> list[Message]:
        """The player's inbox, newest first, at most 500 (the player only)."""
        self._require_self(player_id, "read the messages")
        query = select(_msg).where(_msg.c.to_player_id == player_id)
        if unread_only:
            query = query.where(_msg.c.read_at.is_(None))
        query = query.order_by(_msg.c.sent_at.desc(), _msg.c.id.desc()).limit(INBOX_LIMIT)

        def run(conn: Connection) -> list[Any]:
            rows = list(conn.execute(query).all())
            if not rows:
                self._require_player_exists(conn, player_id)
            return rows

        return [
            Message(
                id=int(r.id),
                from_player_id=int(r.from_player_id),
                to_player_id=int(r.to_player_id),
                subject=r.subject,
                body=r.body,
                sent_at=r.sent_at,
                read=r.read_at is not None,
            )
            for r in self._read(run)
        ]

    def mark_read(self, message_id: int) -> Message:
        """Mark the message read: one UPDATE (its row lock) restricted to the acting player's
        inbox; a message read before keeps its first read time. When it changed no row, the
        message is missing (NotFound) or someone else's (Forbidden)."""
        action = "mark messages read"
        actor = self._actor_id(action)

        def run(conn: Connection) -> Message:
            now = self.now
            changed = conn.execute(
                update(_msg)
                .where(_msg.c.id == message_id, _msg.c.to_player_id == actor)
                .values(read_at=func.coalesce(_msg.c.read_at, now))
            ).rowcount
            row = conn.execute(select(_msg).where(_msg.c.id == message_id)).first()
            if row is None:
                raise NotFound(f"message {message_id} does not exist")
            if changed != 1:
                raise Forbidden(f"message {message_id} is not to player {actor}; {action} denied")
            self._emit(events.MESSAGE_READ, actor, message_id=message_id)
            return Message(int(row.id), int(row.from_player_id), int(row.to_player_id),
                           row.subject, row.body, row.sent_at, read=True)

        return self._write(run)

    def create_alliance(self, player_id: int, name: str, tag: str) -> Alliance:
        """Found an alliance; the founder joins it.

        Needs an embassy at level 3 in one of the player's villages and no alliance yet
        (RuleViolation otherwise); a name or tag already taken is a Conflict.
        """
        self._require_self(player_id, "found an alliance in the name")

        def run(conn: Connection) -> Alliance:
            # The founder's row is locked first, so two foundings by one player cannot both
            # pass; what is decided on is read after the lock.
            lock_players(conn, (player_id,))
            current = conn.execute(select(_p.c.alliance_id).where(_p.c.id == player_id)).first()
            if current is None:
                raise NotFound(f"player {player_id} does not exist")
            if current.alliance_id is not None:
                raise RuleViolation(
                    f"player {player_id} is already in alliance {current.alliance_id}",
                    details={"alliance_id": int(current.alliance_id)},
                )
            has_embassy = conn.execute(
                select(
                    exists().where(
                        _v.c.player_id == player_id,
                        _b.c.village_id == _v.c.id,
                        _b.c.building_name == "embassy",
                        _b.c.level >= ALLIANCE_EMBASSY_LEVEL,
                    )
                )
            ).scalar()
            if not has_embassy:
                raise RuleViolation(
                    f"founding an alliance needs an embassy at level {ALLIANCE_EMBASSY_LEVEL}",
                    details={"building": "embassy", "level": ALLIANCE_EMBASSY_LEVEL},
                )
            _check_name_free(conn, name, tag)
            now = self.now
            # Two founders of one name race past the check above: the unique constraints
            # decide, the insert waits for the other one and then inserts nothing.
            alliance_id = conn.execute(
                insert_unless_taken(conn, _a)
                .values(name=name, tag=tag, founder_id=player_id, created_at=now)
                .returning(_a.c.id)
            ).scalar()
            if alliance_id is None:
                _check_name_free(conn, name, tag)
                raise Conflict(f"the alliance {name!r} [{tag}] conflicts with one founded at "
                               "the same moment")
            conn.execute(update(_p).where(_p.c.id == player_id).values(alliance_id=alliance_id))
            self._emit(events.ALLIANCE_CREATED, player_id, alliance_id=int(alliance_id))
            return Alliance(int(alliance_id), name, tag, player_id, now)

        return self._write(run)

    def invite(self, alliance_id: int, player_id: int) -> Invitation:
        """Invite a player into the alliance (by a member of it).

        NotFound for an unknown alliance or player; Forbidden when the acting player is not a
        member; RuleViolation when the player is already in an alliance; Conflict when an
        invitation for the pair is pending.
        """
        action = "invite players"
        actor = self._actor_id(action)

        def run(conn: Connection) -> Invitation:
            # Both players' rows are locked first (lowest id first): every invitation of the
            # target, and the target's own founding, waits here, so what is read below
            # stays true until the commit.
            lock_players(conn, (actor, player_id))
            found = conn.execute(select(_a.c.id).where(_a.c.id == alliance_id)).scalar()
            if found is None:
                raise NotFound(f"alliance {alliance_id} does not exist")
            actor_alliance = conn.execute(
                select(_p.c.alliance_id).where(_p.c.id == actor)
            ).scalar()
            if actor_alliance != alliance_id:
                raise Forbidden(
                    f"player {actor} is not a member of alliance {alliance_id}; {action} denied"
                )
            target = conn.execute(select(_p.c.alliance_id).where(_p.c.id == player_id)).first()
            if target is None:
                raise NotFound(f"player {player_id} does not exist")
            if target.alliance_id is not None:
                raise RuleViolation(
                    f"player {player_id} is already in alliance {target.alliance_id}",
                    details={"alliance_id": int(target.alliance_id)},
                )
            previous = conn.execute(
                select(_i.c.id, _i.c.status).where(
                    _i.c.alliance_id == alliance_id, _i.c.player_id == player_id
                )
            ).first()
            now = self.now
            if previous is not None and previous.status == "pending":
                raise _pending(alliance_id, player_id, int(previous.id))
            values = dict(invited_by=actor, status="pending", created_at=now)
            if previous is not None:
                renewed = conn.execute(
                    update(_i).where(_i.c.id == previous.id, _i.c.status != "pending")
                    .values(**values)
                ).rowcount
                if renewed != 1:  # pragma: no cover - only if something bypassed the locks
                    raise _pending(alliance_id, player_id, int(previous.id))
                invitation_id = int(previous.id)
            else:
                invitation_id = int(
                    conn.execute(
                        insert(_i)
                        .values(alliance_id=alliance_id, player_id=player_id, **values)
                        .returning(_i.c.id)
                    ).scalar_one()
                )
            self._emit(events.ALLIANCE_INVITATION, player_id, alliance_id=alliance_id,
                       invitation_id=invitation_id, invited_by=actor)
            return Invitation(invitation_id, alliance_id, player_id, actor, now, "pending")

        return self._write(run)


def lock_players(conn: Connection, player_ids: Iterable[int]) -> None:
    """Lock the players' rows, lowest id first (so two writers cannot deadlock), each in a
    statement of its own; a missing player is left for the caller's read to report."""
    for player_id in sorted(set(player_ids)):
        conn.execute(select(_p.c.id).where(_p.c.id == player_id).with_for_update()).first()


def _check_name_free(conn: Connection, name: str, tag: str) -> None:
    """Conflict naming the field when an alliance has the name or the tag already."""
    taken = conn.execute(
        select(_a.c.name, _a.c.tag).where(or_(_a.c.name == name, _a.c.tag == tag))
    ).first()
    if taken is not None:
        what, value = ("name", name) if taken.name == name else ("tag", tag)
        raise Conflict(
            f"an alliance with the {what} {value!r} already exists",
            details={"field": what, "value": value},
        )


def _pending(alliance_id: int, player_id: int, invitation_id: int) -> Conflict:
    return Conflict(
        f"player {player_id} already has a pending invitation to alliance {alliance_id}",
        details={"invitation_id": invitation_id},
    )
