"""Diplomacy: the contract on prefer="sql" and prefer="http" (sqlite and postgresql).

Six players, each with an embassy at level 3; acting as player 1.
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
from tests.contract.conftest import AsPlayer, execute, refuses

NASTY = "Robert'); DROP TABLE players; -- \"quoted\" `tick` \\ %s %(x)s ? :name ' OR '1'='1"
BAD_IDS: tuple[Any, ...] = (0, -1, "2", 2.0, None, True, 2**63)


# ---- messages -----------------------------------------------------------------------------

def test_send_message_and_read_it(world: tr.World, as_player: AsPlayer) -> None:
    sent = world.diplomacy.send_message(1, 2, "Hello", "Shall we trade?")
    assert sent.id > 0 and (sent.from_player_id, sent.to_player_id) == (1, 2)
    assert (sent.subject, sent.body, sent.read, sent.sent_at) == (
        "Hello", "Shall we trade?", False, START)
    assert as_player(2).diplomacy.messages(2) == [sent]
    assert world.diplomacy.messages(1) == []


def test_text_is_stored_verbatim_up_to_the_limits(world: tr.World, as_player: AsPlayer) -> None:
    body = NASTY * 10 + "\n\ttabs, ünïcödé, emoji \U0001F3F0"
    nasty = world.diplomacy.send_message(1, 2, NASTY[:MAX_SUBJECT], body)
    longest = world.diplomacy.send_message(1, 2, "x" * MAX_SUBJECT, "y" * MAX_BODY)
    padded = world.diplomacy.send_message(1, 2, "  padded  ", "")
    assert (nasty.body, longest.body, padded.subject) == (body, "y" * MAX_BODY, "  padded  ")
    assert as_player(2).diplomacy.messages(2) == [padded, longest, nasty]


def test_inbox_newest_first_and_unread_only(world: tr.World, as_player: AsPlayer, clock: Clock,
                                            raw: sa.Engine) -> None:
    first = world.diplomacy.send_message(1, 2, "one", "")
    clock.advance(10)
    second = as_player(3).diplomacy.send_message(3, 2, "two", "b")
    third = world.diplomacy.send_message(1, 2, "three", "c")
    m = schema.messages
    execute(raw, sa.update(m).where(m.c.id == second.id)
            .values(read_at=START + timedelta(seconds=20)))
    inbox = as_player(2).diplomacy.messages(2)
    assert [x.id for x in inbox] == [third.id, second.id, first.id]
    assert [x.read for x in inbox] == [False, True, False]
    assert as_player(2).diplomacy.messages(2, unread_only=True) == [third, first]
    assert as_player(2).diplomacy.messages(2, unread_only=True) == [third, first]


def test_send_message_errors(world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    d: Any = world.diplomacy
    texts = [("", "body"), ("   \n\t", "body"), ("x" * (MAX_SUBJECT + 1), "body"),
             ("ok", "x" * (MAX_BODY + 1)), ("ok", "x" * 1_000_000), ("nul\x00", "body"),
             ("ok", "nul\x00"), (None, "body"), ("ok", None), (b"bytes", "body"), ("ok", 42)]
    invalid = refuses(raw, tr.InvalidRequest,
                      lambda: d.send_message(1, 1, "hi", ""),
                      *[(lambda t=t: d.send_message(1, 2, *t)) for t in texts],
                      *[(lambda b=b: d.send_message(1, b, "hi", "")) for b in BAD_IDS],
                      *[(lambda b=b: d.send_message(b, 2, "hi", "")) for b in BAD_IDS])
    assert "themself" in str(invalid[0])
    refuses(raw, tr.Forbidden, lambda: d.send_message(2, 3, "forged", ""))
    refuses(raw, tr.Unauthorized, lambda: as_player(None).diplomacy.send_message(1, 2, "hi", ""))
    (missing,) = refuses(raw, tr.NotFound, lambda: d.send_message(1, 999, "hi", ""))
    assert "player 999" in str(missing)


def test_messages_are_private_and_checked(world: tr.World, as_player: AsPlayer,
                                          raw: sa.Engine) -> None:
    world.diplomacy.send_message(1, 2, "Secret", "for your eyes only")
    d: Any = world.diplomacy
    refuses(raw, tr.Forbidden, lambda: d.messages(2),
            lambda: as_player(3).diplomacy.messages(2))
    refuses(raw, tr.Unauthorized, lambda: as_player(None).diplomacy.messages(2))
    refuses(raw, tr.InvalidRequest,
            *[(lambda b=b: d.messages(b)) for b in (0, "1", 1.0, None, False)],
            *[(lambda f=f: d.messages(1, unread_only=f)) for f in (1, 0, "yes", None)])


def test_mark_read_marks_one_own_message_and_is_idempotent(
        world: tr.World, as_player: AsPlayer, raw: sa.Engine, clock: Clock) -> None:
    first = world.diplomacy.send_message(1, 2, "one", "a")
    second = world.diplomacy.send_message(1, 2, "two", "b")
    reader = as_player(2).diplomacy
    marked = reader.mark_read(first.id)
    assert marked == tr.Message(first.id, 1, 2, "one", "a", START, read=True)
    assert reader.messages(2, unread_only=True) == [second]
    assert [m.read for m in reader.messages(2)] == [False, True]
    m = schema.messages
    with raw.connect() as conn:
        read_at = conn.execute(sa.select(m.c.read_at).where(m.c.id == first.id)).scalar_one()
    clock.advance(60)
    assert reader.mark_read(first.id) == marked  # already read: the same answer
    with raw.connect() as conn:  # the first read time stays
        assert conn.execute(
            sa.select(m.c.read_at).where(m.c.id == first.id)).scalar_one() == read_at


def test_mark_read_only_the_acting_players_messages(
        world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    sent = world.diplomacy.send_message(1, 2, "mine to read", "")
    d: Any = world.diplomacy
    refuses(raw, tr.Forbidden, lambda: d.mark_read(sent.id),  # the sender's copy is not its
            lambda: as_player(3).diplomacy.mark_read(sent.id))
    refuses(raw, tr.Unauthorized, lambda: as_player(None).diplomacy.mark_read(sent.id))
    (missing,) = refuses(raw, tr.NotFound, lambda: d.mark_read(sent.id + 999))
    assert f"message {sent.id + 999}" in str(missing)
    refuses(raw, tr.InvalidRequest, *[(lambda b=b: d.mark_read(b)) for b in BAD_IDS])
    assert as_player(2).diplomacy.messages(2, unread_only=True) == [sent]


# ---- alliances ----------------------------------------------------------------------------

def test_create_alliance(world: tr.World) -> None:
    alliance = world.diplomacy.create_alliance(1, "  The Iron Legion ", " IRON ")
    assert alliance.id > 0
    assert (alliance.name, alliance.tag, alliance.founder_id, alliance.created_at) == (
        "The Iron Legion", "IRON", 1, START)
    player = world.players.get(1)
    assert (player.alliance_id, player.alliance_tag) == (alliance.id, "IRON")


def test_create_alliance_quotes_and_limits(request: pytest.FixtureRequest, prefer: str,
                                           world: tr.World) -> None:
    name = ("O'Brien's \"'; DROP TABLE alliances; --" + "x" * MAX_NAME)[:MAX_NAME]
    alliance = world.diplomacy.create_alliance(1, f"  {name}  ", "'--;" + "x" * (MAX_TAG - 4))
    assert (alliance.name, alliance.tag) == (name, "'--;xxxx")
    assert world.players.get(1).alliance_tag == "'--;xxxx"


def test_create_alliance_conflicts(world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    world.diplomacy.create_alliance(1, "Legion", "LEG")
    two = as_player(2).diplomacy
    name, tag = refuses(raw, tr.Conflict, lambda: two.create_alliance(2, "Legion", "OTHER"),
                        lambda: two.create_alliance(2, " Other ", "LEG"))
    assert "name" in str(name) and name.details["field"] == "name"
    assert "tag" in str(tag)
    assert two.create_alliance(2, "legion", "leg").tag == "leg"  # case counts


def test_create_alliance_rules_and_rights(world: tr.World, as_player: AsPlayer,
                                          raw: sa.Engine) -> None:
    world.diplomacy.create_alliance(1, "First", "F")
    (member,) = refuses(raw, tr.RuleViolation, lambda: world.diplomacy.create_alliance(1, "S", "S"))
    assert "already in alliance" in str(member)
    b = schema.village_buildings
    execute(raw, sa.update(b).where(b.c.village_id == 2, b.c.building_name == "embassy")
            .values(level=2))
    (embassy,) = refuses(raw, tr.RuleViolation,
                         lambda: as_player(2).diplomacy.create_alliance(2, "Second", "S"))
    assert "embassy" in str(embassy)
    refuses(raw, tr.Forbidden, lambda: world.diplomacy.create_alliance(3, "Puppets", "PUP"))
    refuses(raw, tr.Unauthorized, lambda: as_player(None).diplomacy.create_alliance(3, "X", "X"))


def test_create_alliance_bad_names(world: tr.World, raw: sa.Engine) -> None:
    d: Any = world.diplomacy
    refuses(raw, tr.InvalidRequest, *[(lambda n=n, t=t: d.create_alliance(1, n, t)) for n, t in (
        ("", "T"), ("   ", "T"), ("N", ""), ("N", "  "), ("x" * (MAX_NAME + 1), "T"),
        ("N", "x" * (MAX_TAG + 1)), (None, "T"), ("N", 5), ("N\x00", "T"),
    )], *[(lambda b=b: d.create_alliance(b, "N", "T")) for b in BAD_IDS])


# ---- invitations --------------------------------------------------------------------------

def test_invite_flow(world: tr.World, as_player: AsPlayer, raw: sa.Engine, clock: Clock) -> None:
    alliance = world.diplomacy.create_alliance(1, "Legion", "LEG")
    invitation = world.diplomacy.invite(alliance.id, 2)
    assert invitation.id > 0 and invitation.alliance_id == alliance.id
    assert (invitation.player_id, invitation.invited_by) == (2, 1)
    assert (invitation.status, invitation.created_at) == ("pending", START)
    (pending,) = refuses(raw, tr.Conflict, lambda: world.diplomacy.invite(alliance.id, 2))
    assert "pending" in str(pending)
    refuses(raw, tr.Forbidden, lambda: as_player(2).diplomacy.invite(alliance.id, 3))
    # player 3 joins by hand (no accept yet); an answered invitation renews
    first = world.diplomacy.invite(alliance.id, 4)
    p, i = schema.players, schema.alliance_invitations
    execute(raw, sa.update(p).where(p.c.id == 3).values(alliance_id=alliance.id),
            sa.update(i).where(i.c.id == first.id).values(status="declined"))
    clock.advance(30)
    again = as_player(3).diplomacy.invite(alliance.id, 4)
    assert (again.id, again.invited_by, again.status) == (first.id, 3, "pending")
    assert again.created_at == START + timedelta(seconds=30)


def test_invite_errors(world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    legion = world.diplomacy.create_alliance(1, "Legion", "LEG")
    four = as_player(4).diplomacy
    horde = four.create_alliance(4, "Horde", "HRD")
    d: Any = world.diplomacy
    refuses(raw, tr.Forbidden,
            lambda: four.invite(legion.id, 2),  # a member of another alliance
            lambda: as_player(5).diplomacy.invite(legion.id, 2),  # in no alliance
            lambda: d.invite(horde.id, 2))
    refuses(raw, tr.Unauthorized, lambda: as_player(None).diplomacy.invite(legion.id, 2))
    other, already = refuses(raw, tr.RuleViolation, lambda: d.invite(legion.id, 4),
                             lambda: d.invite(legion.id, 1))
    assert "already in alliance" in str(other)
    alliance, player = refuses(raw, tr.NotFound, lambda: d.invite(999, 2),
                               lambda: d.invite(legion.id, 999))
    assert "alliance 999" in str(alliance) and "player 999" in str(player)
    refuses(raw, tr.InvalidRequest, *[(lambda b=b: d.invite(b, 2)) for b in BAD_IDS],
            *[(lambda b=b: d.invite(legion.id, b)) for b in BAD_IDS])


@pytest.mark.parametrize("limit", [MAX_NAME])
def test_alliance_name_at_the_limit(world: tr.World, limit: int) -> None:
    assert world.diplomacy.create_alliance(1, "n" * limit, "t" * MAX_TAG).name == "n" * limit
