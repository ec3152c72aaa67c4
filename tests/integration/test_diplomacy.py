"""Diplomacy on both SQL backends: messages, alliances, invitations.

The developed world: 6 players, each with an embassy at level 3; acting as player 1.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.repositories.validation import MAX_BODY, MAX_NAME, MAX_SUBJECT, MAX_TAG
from travian_repo.sandbox import Clock
from travian_repo.sql import schema
from tests.conftest import START

NASTY = "Robert'); DROP TABLE players; -- \"quoted\" `tick` \\ %s %(x)s ? :name ' OR '1'='1"


def bad_values(*values: Any) -> tuple[Any, ...]:
    """Arguments of the wrong type or range (typed Any on purpose)."""
    return values



def count(world: tr.World, table: sa.Table) -> int:
    with world.database.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def alliance_of(world: tr.World, player_id: int) -> int | None:
    p = schema.players
    with world.database.engine.connect() as conn:
        value = conn.execute(sa.select(p.c.alliance_id).where(p.c.id == player_id)).scalar()
    return None if value is None else int(value)


# --- messages -----------------------------------------------------------------------------


def test_send_message_and_read_it_as_the_recipient(world: tr.World) -> None:
    sent = world.diplomacy.send_message(1, 2, "Hello", "Shall we trade?")
    assert sent.id > 0
    assert (sent.from_player_id, sent.to_player_id) == (1, 2)
    assert (sent.subject, sent.body, sent.read) == ("Hello", "Shall we trade?", False)
    assert sent.sent_at == START
    with world.unit_of_work(player_id=2) as uow:
        assert uow.diplomacy.messages(2) == [sent]
    assert world.diplomacy.messages(1) == []  # the sender's inbox is not the recipient's


def test_messages_are_private(world: tr.World, database_url: str, clock: Clock) -> None:
    world.diplomacy.send_message(1, 2, "Secret", "for your eyes only")
    with pytest.raises(tr.Forbidden):
        world.diplomacy.messages(2)
    with world.unit_of_work(player_id=3) as uow:
        with pytest.raises(tr.Forbidden):
            uow.diplomacy.messages(2)
    with tr.connect(database_url, clock=clock) as anonymous:
        with pytest.raises(tr.Forbidden):
            anonymous.diplomacy.messages(2)
        with pytest.raises(tr.Forbidden):
            anonymous.diplomacy.send_message(1, 2, "hi", "")


def test_inbox_newest_first_and_unread_only(world: tr.World, clock: Clock) -> None:
    first = world.diplomacy.send_message(1, 2, "one", "")
    clock.advance(10)
    with world.unit_of_work(player_id=3) as uow:
        second = uow.diplomacy.send_message(3, 2, "two", "b")
    third = world.diplomacy.send_message(1, 2, "three", "c")  # same time as second: id decides
    with world.database.engine.begin() as conn:
        conn.execute(
            sa.update(schema.messages)
            .where(schema.messages.c.id == second.id)
            .values(read_at=START + timedelta(seconds=20))
        )
    with world.unit_of_work(player_id=2) as uow:
        inbox = uow.diplomacy.messages(2)
        assert [m.id for m in inbox] == [third.id, second.id, first.id]
        assert [m.read for m in inbox] == [False, True, False]
        assert uow.diplomacy.messages(2, unread_only=True) == [third, first]
        # reading does not mark anything read
        assert uow.diplomacy.messages(2, unread_only=True) == [third, first]


def test_inbox_at_most_500(world: tr.World) -> None:
    rows = [
        dict(from_player_id=3, to_player_id=1, subject=f"s{i}", body="",
             sent_at=START + timedelta(seconds=i))
        for i in range(510)
    ]
    with world.database.engine.begin() as conn:
        conn.execute(sa.insert(schema.messages), rows)
    inbox = world.diplomacy.messages(1)
    assert len(inbox) == 500
    assert inbox[0].subject == "s509" and inbox[-1].subject == "s10"


def test_quotes_and_sql_are_stored_verbatim(world: tr.World) -> None:
    body = NASTY * 10 + "\n\ttabs, ünïcödé, emoji \U0001F3F0"
    sent = world.diplomacy.send_message(1, 2, NASTY[:MAX_SUBJECT], body)
    with world.unit_of_work(player_id=2) as uow:
        (got,) = uow.diplomacy.messages(2)
    assert got.subject == NASTY[:MAX_SUBJECT] and got.body == body and got == sent
    assert count(world, schema.players) == 6
    with world.database.engine.connect() as conn:
        row = conn.execute(sa.select(schema.messages.c.subject, schema.messages.c.body)).one()
    assert tuple(row) == (NASTY[:MAX_SUBJECT], body)


def test_subject_and_body_limits(world: tr.World) -> None:
    longest = world.diplomacy.send_message(1, 2, "x" * MAX_SUBJECT, "y" * MAX_BODY)
    assert longest.body == "y" * MAX_BODY
    assert world.diplomacy.send_message(1, 2, "  padded  ", "").subject == "  padded  "
    assert count(world, schema.messages) == 2


@pytest.mark.parametrize(
    "subject, body",
    [
        ("", "body"),
        ("   \n\t", "body"),
        ("x" * (MAX_SUBJECT + 1), "body"),
        ("ok", "x" * (MAX_BODY + 1)),
        ("ok", "x" * 1_000_000),  # a 1 MB body
        ("nul\x00", "body"),
        ("ok", "nul\x00"),
        (None, "body"),
        ("ok", None),
        (b"bytes", "body"),
        ("ok", 42),
    ],
)
def test_send_message_bad_text(world: tr.World, subject: Any, body: Any) -> None:
    with pytest.raises(tr.InvalidRequest):
        world.diplomacy.send_message(1, 2, subject, body)
    assert count(world, schema.messages) == 0


def test_send_message_bad_players(world: tr.World) -> None:
    for bad in bad_values(0, -1, "2", 2.0, None, True, 2**63):
        with pytest.raises(tr.InvalidRequest):
            world.diplomacy.send_message(1, bad, "hi", "")
        with pytest.raises(tr.InvalidRequest):
            world.diplomacy.send_message(bad, 2, "hi", "")
    with pytest.raises(tr.InvalidRequest, match="themself"):
        world.diplomacy.send_message(1, 1, "hi", "")
    with pytest.raises(tr.Forbidden):
        world.diplomacy.send_message(2, 3, "forged", "")
    with pytest.raises(tr.NotFound, match="player 999"):
        world.diplomacy.send_message(1, 999, "hi", "")
    assert count(world, schema.messages) == 0


def test_messages_bad_arguments(world: tr.World) -> None:
    for bad in bad_values(0, "1", 1.0, None, False):
        with pytest.raises(tr.InvalidRequest):
            world.diplomacy.messages(bad)
    for flag in bad_values(1, 0, "yes", None):
        with pytest.raises(tr.InvalidRequest):
            world.diplomacy.messages(1, unread_only=flag)


def test_messages_of_a_missing_player(world: tr.World) -> None:
    with world.unit_of_work(player_id=999) as uow:
        with pytest.raises(tr.NotFound):
            uow.diplomacy.messages(999)


# --- alliances ----------------------------------------------------------------------------


def test_create_alliance(world: tr.World) -> None:
    alliance = world.diplomacy.create_alliance(1, "  The Iron Legion ", " IRON ")
    assert alliance.id > 0
    assert (alliance.name, alliance.tag, alliance.founder_id) == ("The Iron Legion", "IRON", 1)
    assert alliance.created_at == START
    assert alliance_of(world, 1) == alliance.id
    player = world.players.get(1)
    assert (player.alliance_id, player.alliance_tag) == (alliance.id, "IRON")


def test_create_alliance_name_and_tag_taken(world: tr.World) -> None:
    world.diplomacy.create_alliance(1, "Legion", "LEG")
    with world.unit_of_work(player_id=2) as uow:
        with pytest.raises(tr.Conflict, match="name") as info:
            uow.diplomacy.create_alliance(2, "Legion", "OTHER")
        assert info.value.details["field"] == "name"
        with pytest.raises(tr.Conflict, match="tag"):
            uow.diplomacy.create_alliance(2, " Other ", "LEG")
    assert count(world, schema.alliances) == 1
    assert alliance_of(world, 2) is None
    with world.unit_of_work(player_id=2) as uow:
        assert uow.diplomacy.create_alliance(2, "legion", "leg").tag == "leg"  # case counts


def test_create_alliance_rules(world: tr.World) -> None:
    world.diplomacy.create_alliance(1, "First", "F")
    with pytest.raises(tr.RuleViolation, match="already in alliance"):
        world.diplomacy.create_alliance(1, "Second", "S")
    b = schema.village_buildings
    with world.database.engine.begin() as conn:
        conn.execute(
            sa.update(b).where(b.c.village_id == 2, b.c.building_name == "embassy").values(level=2)
        )
    with world.unit_of_work(player_id=2) as uow:
        with pytest.raises(tr.RuleViolation, match="embassy"):
            uow.diplomacy.create_alliance(2, "Second", "S")
    assert count(world, schema.alliances) == 1
    assert alliance_of(world, 2) is None


def test_create_alliance_for_someone_else_is_forbidden(world: tr.World) -> None:
    with pytest.raises(tr.Forbidden):
        world.diplomacy.create_alliance(2, "Puppets", "PUP")
    assert count(world, schema.alliances) == 0


@pytest.mark.parametrize(
    "name, tag",
    [
        ("", "T"),
        ("   ", "T"),
        ("N", ""),
        ("N", "  "),
        ("x" * (MAX_NAME + 1), "T"),
        ("N", "x" * (MAX_TAG + 1)),
        (None, "T"),
        ("N", 5),
        ("N\x00", "T"),
    ],
)
def test_create_alliance_bad_names(world: tr.World, name: Any, tag: Any) -> None:
    with pytest.raises(tr.InvalidRequest):
        world.diplomacy.create_alliance(1, name, tag)
    assert count(world, schema.alliances) == 0
    assert alliance_of(world, 1) is None


def test_alliance_limits_and_quotes(world: tr.World) -> None:
    name = ("O'Brien's \"'; DROP TABLE alliances; --" + "x" * MAX_NAME)[:MAX_NAME]
    alliance = world.diplomacy.create_alliance(1, f"  {name}  ", "'--;" + "x" * (MAX_TAG - 4))
    assert alliance.name == name and alliance.tag == "'--;xxxx"
    assert world.players.get(1).alliance_tag == "'--;xxxx"


# --- invitations --------------------------------------------------------------------------


def test_invite_flow(world: tr.World) -> None:
    alliance = world.diplomacy.create_alliance(1, "Legion", "LEG")
    invitation = world.diplomacy.invite(alliance.id, 2)
    assert invitation.id > 0
    assert invitation.alliance_id == alliance.id
    assert (invitation.player_id, invitation.invited_by) == (2, 1)
    assert (invitation.status, invitation.created_at) == ("pending", START)
    with pytest.raises(tr.Conflict, match="pending"):
        world.diplomacy.invite(alliance.id, 2)
    assert count(world, schema.alliance_invitations) == 1
    assert alliance_of(world, 2) is None  # invited, not yet a member
    # the invited player is not a member yet, so may not invite
    with world.unit_of_work(player_id=2) as uow:
        with pytest.raises(tr.Forbidden):
            uow.diplomacy.invite(alliance.id, 3)


def test_members_invite_and_answered_invitations_renew(world: tr.World, clock: Clock) -> None:
    alliance = world.diplomacy.create_alliance(1, "Legion", "LEG")
    first = world.diplomacy.invite(alliance.id, 3)
    with world.database.engine.begin() as conn:  # player 2 joins (by hand: no accept yet)
        p = schema.players
        conn.execute(sa.update(p).where(p.c.id == 2).values(alliance_id=alliance.id))
        conn.execute(sa.update(schema.alliance_invitations).values(status="declined"))
    clock.advance(30)
    with world.unit_of_work(player_id=2) as uow:
        again = uow.diplomacy.invite(alliance.id, 3)
    assert again.id == first.id
    assert (again.invited_by, again.status) == (2, "pending")
    assert again.created_at == START + timedelta(seconds=30)
    with world.database.engine.connect() as conn:
        row = conn.execute(sa.select(schema.alliance_invitations)).mappings().one()
    assert (row["status"], row["invited_by"]) == ("pending", 2)


def test_invite_errors(world: tr.World) -> None:
    legion = world.diplomacy.create_alliance(1, "Legion", "LEG")
    with world.unit_of_work(player_id=4) as uow:
        horde = uow.diplomacy.create_alliance(4, "Horde", "HRD")
        with pytest.raises(tr.Forbidden):  # a member of another alliance
            uow.diplomacy.invite(legion.id, 2)
    with world.unit_of_work(player_id=5) as uow:
        with pytest.raises(tr.Forbidden):  # in no alliance at all
            uow.diplomacy.invite(legion.id, 2)
    with pytest.raises(tr.RuleViolation, match="already in alliance"):
        world.diplomacy.invite(legion.id, 4)  # a member of another alliance
    with pytest.raises(tr.RuleViolation):
        world.diplomacy.invite(legion.id, 1)  # already a member
    with pytest.raises(tr.NotFound, match="alliance 999"):
        world.diplomacy.invite(999, 2)
    with pytest.raises(tr.NotFound, match="player 999"):
        world.diplomacy.invite(legion.id, 999)
    with pytest.raises(tr.Forbidden):
        world.diplomacy.invite(horde.id, 2)
    for bad in bad_values(0, -1, "1", 1.0, None, True):
        with pytest.raises(tr.InvalidRequest):
            world.diplomacy.invite(bad, 2)
        with pytest.raises(tr.InvalidRequest):
            world.diplomacy.invite(legion.id, bad)
    assert count(world, schema.alliance_invitations) == 0


def test_invite_acting_as_nobody(world: tr.World, database_url: str, clock: Clock) -> None:
    legion = world.diplomacy.create_alliance(1, "Legion", "LEG")
    with tr.connect(database_url, clock=clock) as anonymous:
        with pytest.raises(tr.Forbidden):
            anonymous.diplomacy.invite(legion.id, 2)
        with pytest.raises(tr.Forbidden):
            anonymous.diplomacy.create_alliance(2, "X", "X")
    assert count(world, schema.alliance_invitations) == 0
