"""Diplomacy writes raced by 2 and 32 threads on PostgreSQL, through the SQL side and the
server: every accepted message stored once; one alliance per name and per tag and a player
in at most one; one invitation per alliance and player, one winner per contested invite.

The developed world: six players, each with an embassy at level 3 (enough to found).
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Alliance, Invitation
from travian_repo.sql import schema
from tests.integration.race_arena import (  # noqa: F401 - arena, side, threads: fixtures
    Act, Arena, Outcome, arena, errors, one_winner, only_errors, side, threads, winners,
)

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["postgresql"])]

ROUNDS = 3
PLAYERS = (1, 2, 3, 4, 5, 6)


def reset_alliances(arena: Arena) -> None:
    p = schema.players
    arena.execute(sa.update(p).values(alliance_id=None),
                  sa.delete(schema.alliance_invitations), sa.delete(schema.alliances))


def check_alliances(arena: Arena, won: list[Alliance]) -> None:
    """Names and tags unique; each alliance's founder is in it; nobody else is in one
    (nobody joins in these tests); what the winners were told is what is stored."""
    alliances = arena.rows(schema.alliances)
    players = {row.id: row.alliance_id for row in arena.rows(schema.players)}
    assert len({a.name for a in alliances}) == len(alliances)
    assert len({a.tag for a in alliances}) == len(alliances)
    assert len({a.founder_id for a in alliances}) == len(alliances)
    for alliance in alliances:
        assert players[alliance.founder_id] == alliance.id
    members = {player for player, alliance in players.items() if alliance is not None}
    assert members == {a.founder_id for a in alliances}
    assert sorted((a.id, a.name, a.tag, a.founder_id) for a in alliances) == sorted(
        (a.id, a.name, a.tag, a.founder_id) for a in won)


# ---- messages ---------------------------------------------------------------------------------

def test_every_message_stored_once(arena: Arena, threads: int) -> None:
    """Every thread sends a message (players 1-6 to the next one): each one that was
    accepted is stored exactly once, as sent, under the id it was answered with."""
    m = schema.messages
    for round_ in range(ROUNDS):
        arena.execute(sa.delete(m))

        def send(index: int, act: Act) -> Any:
            sender = PLAYERS[index % len(PLAYERS)]
            to = sender % len(PLAYERS) + 1
            with act(sender) as uow:
                return uow.diplomacy.send_message(sender, to, f"round {round_} #{index}",
                                                  f"body {index}")

        outcomes = arena.race(threads, send)
        assert errors(outcomes) == []
        stored = arena.rows(m)
        assert sorted((r.id, r.from_player_id, r.to_player_id, r.subject, r.body)
                      for r in stored) == sorted(
            (w.id, w.from_player_id, w.to_player_id, w.subject, w.body)
            for w in winners(outcomes))
        assert sorted(r.subject for r in stored) == sorted(
            f"round {round_} #{index}" for index in range(threads))


def test_marking_one_message_read_at_once(arena: Arena, threads: int) -> None:
    """Threads of the recipient mark the same message read at once: every one answers the
    message read, the row is read once (one read time) and no other message changes."""
    m = schema.messages
    for round_ in range(ROUNDS):
        arena.execute(sa.delete(m))
        with arena.setup(1) as uow:
            target = uow.diplomacy.send_message(1, 2, f"read me {round_}", "")
            other = uow.diplomacy.send_message(1, 2, f"leave me {round_}", "")

        def mark(index: int, act: Act) -> Any:
            with act(2) as uow:
                return uow.diplomacy.mark_read(target.id)

        outcomes = arena.race(threads, mark)
        assert errors(outcomes) == []
        assert {(w.id, w.read) for w in winners(outcomes)} == {(target.id, True)}
        rows = {r.id: r.read_at for r in arena.rows(m)}
        assert rows[target.id] is not None and rows[other.id] is None


# ---- founding ---------------------------------------------------------------------------------

def test_one_player_founds_one_alliance(arena: Arena, threads: int) -> None:
    """Threads of player 1 found alliances of different names at once: one is founded,
    every other thread gets RuleViolation (already in an alliance)."""
    for round_ in range(ROUNDS):
        reset_alliances(arena)

        def found(index: int, act: Act) -> Any:
            with act(1) as uow:
                return uow.diplomacy.create_alliance(1, f"Guild {round_}-{index}",
                                                     f"G{round_}x{index}")

        outcomes = arena.race(threads, found)
        won = one_winner(outcomes)
        only_errors(outcomes, tr.RuleViolation)
        for exc in errors(outcomes):
            assert exc.details == {"alliance_id": won.id}, (str(exc), exc.details)
        check_alliances(arena, [won])


@pytest.mark.parametrize("contested", ["name", "tag"])
def test_one_alliance_per_name_and_tag(arena: Arena, threads: int, contested: str) -> None:
    """Players 1-6 (several threads each when 32) found alliances with one name (or one
    tag) at once: one alliance has it; the others get Conflict naming the field taken, or
    RuleViolation when their own player founded it meanwhile."""
    for round_ in range(ROUNDS):
        reset_alliances(arena)
        name, tag = f"Wolves {round_}", f"WLF{round_}"

        def found(index: int, act: Act) -> Any:
            player = PLAYERS[index % len(PLAYERS)]
            mine = (name, f"W{round_}x{index}") if contested == "name" \
                else (f"Pack {round_}-{index}", tag)
            with act(player) as uow:
                return uow.diplomacy.create_alliance(player, *mine)

        outcomes = arena.race(threads, found)
        won = one_winner(outcomes)
        only_errors(outcomes, tr.Conflict, tr.RuleViolation)
        value = name if contested == "name" else tag
        for exc in errors(outcomes):
            if isinstance(exc, tr.Conflict):
                assert exc.details == {"field": contested, "value": value}, (str(exc),
                                                                             exc.details)
            else:
                assert exc.details == {"alliance_id": won.id}, (str(exc), exc.details)
        check_alliances(arena, [won])


# ---- invitations ------------------------------------------------------------------------------

def test_one_invitation_per_alliance_and_player(arena: Arena, threads: int) -> None:
    """Members 1 and 2 of one alliance invite the same players at once (player 3; with 32
    threads players 3 and 4): one invitation each, one winner each, everyone else gets
    Conflict. The first round makes the invitations; later rounds renew answered ones."""
    reset_alliances(arena)
    with arena.setup(1) as uow:
        alliance = uow.diplomacy.create_alliance(1, "Keepers", "KEEP")
    p, i = schema.players, schema.alliance_invitations
    arena.execute(sa.update(p).where(p.c.id == 2).values(alliance_id=alliance.id))
    targets = (3,) if threads == 2 else (3, 4)
    for round_ in range(ROUNDS):
        if round_:
            arena.execute(sa.update(i).values(status=("declined", "expired")[round_ % 2]))

        def invite(index: int, act: Act) -> Any:
            member = (1, 2)[index % 2]
            with act(member) as uow:
                return uow.diplomacy.invite(alliance.id, targets[(index // 2) % len(targets)])

        outcomes = arena.race(threads, invite)
        won: list[Invitation] = winners(outcomes)
        assert sorted(w.player_id for w in won) == sorted(targets), outcomes
        only_errors(outcomes, tr.Conflict)
        stored = arena.rows(i)
        assert sorted((r.id, r.alliance_id, r.player_id, r.invited_by, r.status)
                      for r in stored) == sorted(
            (w.id, alliance.id, w.player_id, w.invited_by, "pending") for w in won)
        for exc in errors(outcomes):
            assert exc.details.get("invitation_id") in {w.id for w in won}, (str(exc),
                                                                             exc.details)
        players = {row.id: row.alliance_id for row in arena.rows(p)}
        assert players == {1: alliance.id, 2: alliance.id, 3: None, 4: None, 5: None,
                           6: None}
