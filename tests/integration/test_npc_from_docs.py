"""An NPC script written only from the docs (README, docs/operations.md, docs/testing.md),
played twice with the same code: on the SQLite world of the ``travian_world`` fixture, and
over HTTP against that kind of world served by ``ServerThread`` (as docs/testing.md says).

The script builds, lets game time pass, trains, raids its nearest neighbour, reads the
battle report (and the defender reads its own), marks it read, waits for its survivors to
come home, and reads a message and marks it read. Both runs must end in the same state, read back through the library and row
by row from the two databases.

Time: the script asks its ``wait(seconds)`` to let game time pass. On SQLite that moves the
fixture's ``Clock`` and nothing else: the world moves on by itself before the next unit of
work reads it. Over HTTP it is ``world.advance(seconds)`` on a manual-clock server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.rules import distance, units
from travian_repo.sandbox.server import ServerThread, app_world, create_app
from travian_repo.sql import schema
from travian_repo.testing import TravianWorld

pytestmark = pytest.mark.slow

Wait = Callable[[float], Any]
Connect = Callable[[int], tr.World]  # a world acting as that player, the way the run connects


# -- the NPC script: the same code for both runs --------------------------------------------


def play(world: tr.World, connect: Connect, wait: Wait, now: Callable[[], Any]) -> list[Any]:
    """Player 1's game; returns what it saw, step by step."""
    seen: list[Any] = []

    def wait_until(when: Any) -> None:
        wait(max(0.0, (when - now()).total_seconds()))

    npc = world.npc(1)
    home = npc.initialize()[0]
    first = units.units_of(home.tribe)[0].name  # the tribe's first unit: legionnaire

    # Build, and wait for it.
    assert npc.build_in_village(home.id, "cropland"), npc.last_error
    order: Any = npc.last_result
    seen.append(("built", order.building, order.slot, order.target_level))
    wait_until(order.completes_at)
    home = npc.initialize()[0]
    assert home.build_queue == ()
    assert any(b.slot == order.slot and b.level == order.target_level for b in home.buildings)

    # Train, and wait for the troops.
    before = world.military.troops(home.id).get(first)
    assert npc.train_army(home.id, first, 3), npc.last_error
    training: Any = npc.last_result
    wait_until(training.completes_at)
    at_home = world.military.troops(home.id).get(first)
    assert at_home == before + 3
    seen.append(("trained", first, at_home))

    # Raid the nearest neighbour with all but two.
    others = [v for p in range(2, 7) for v in world.villages.list_by_player(p)]
    radius = world.settings.map_radius
    target = min(others, key=lambda v: distance(home.x, home.y, v.x, v.y, radius=radius))
    sent = at_home - 2
    assert npc.launch_raid(home.id, target.x, target.y, {first: sent}), npc.last_error
    raid: Any = npc.last_result
    wait_until(raid.arrives_at)

    # The battle report, as the attacker and as the defender.
    [report] = world.intel.reports(1, kind="attack", limit=1)
    fought = report.battle
    assert fought is not None and fought.movement_id == raid.id
    assert fought.attacker.troops == {first: sent}
    assert fought.attacker.lost.get(first) + fought.attacker.survivors.get(first) == sent
    defender = connect(target.player_id)
    [theirs] = defender.intel.reports(target.player_id, kind="defense", limit=1)
    assert theirs.battle is not None and theirs.battle.attacker == fought.attacker
    assert defender.military.troops(target.id) == theirs.battle.defenders[0].survivors
    assert world.intel.mark_report_read(report.id).read is True
    assert [r.read for r in world.intel.reports(1, kind="attack")] == [True]
    seen.append(("report", report.subject, fought.attacker_won, fought.attacker.lost,
                 fought.bounty, fought.defenders))

    # The survivors come home with the bounty.
    back = [m for m in world.military.incoming(home.id) if m.kind == "return"]
    if fought.attacker_won:
        assert [m.troops for m in back] == [fought.attacker.survivors]
        stock = world.villages.get(home.id).resources
        wait_until(back[0].arrives_at)
        assert world.military.troops(home.id).get(first) == 2 + fought.attacker.survivors.get(first)
        assert world.villages.get(home.id).resources != stock
    else:
        assert back == []

    # The mailbox: a message arrives, the NPC reads it and marks it read.
    connect(2).diplomacy.send_message(2, 1, "Truce?", "After that raid, let us talk.")
    mail = world.diplomacy.messages(1, unread_only=True)
    assert [m.subject for m in mail] == ["Truce?"]
    assert world.diplomacy.mark_read(mail[0].id).read is True
    assert world.diplomacy.messages(1, unread_only=True) == []
    seen.append(("mail", [(m.from_player_id, m.subject) for m in mail]))
    return seen


# -- the two runs ---------------------------------------------------------------------------


class Run:
    """One run's world: the fixture's (SQL) or a served one (HTTP)."""

    def __init__(self, sandbox: TravianWorld, server: ServerThread | None = None) -> None:
        self.sandbox = sandbox
        self.server = server
        self.opened: list[tr.World] = []

    def connect(self, player_id: int) -> tr.World:
        if self.server is None:
            return self.sandbox.as_player(player_id)
        world = tr.connect(api_url=self.server.url, token=self.sandbox.tokens[player_id],
                           cache=False)
        self.opened.append(world)
        return world

    def play(self) -> list[Any]:
        world = self.connect(1)
        wait: Wait = self.sandbox.clock.advance if self.server is None else world.advance
        return play(world, self.connect, wait, lambda: self.sandbox.now)

    def close(self) -> None:
        for world in self.opened:
            world.close()
        if self.server is not None:
            self.server.stop()
            app_world(self.server.app).close()  # the app was made here, not by the server


@pytest.fixture
def served(tmp_path: Path) -> Iterator[TravianWorld]:
    """A second world made as the fixture makes its own, to serve over HTTP."""
    sandbox = TravianWorld(f"sqlite:///{tmp_path / 'served.db'}")
    try:
        yield sandbox
    finally:
        sandbox.close()


def library_state(run: Run) -> dict[int, Any]:
    """Each player's world as the library shows it to that player."""
    state: dict[int, Any] = {}
    for player in range(1, 7):
        world = run.connect(player)
        villages = world.villages.list_by_player(player)
        state[player] = (
            villages,
            [(world.military.troops(v.id), world.military.incoming(v.id),
              world.military.outgoing(v.id)) for v in villages],
            world.intel.reports(player, limit=1000),
            world.diplomacy.messages(player),
        )
    return state


# Rows that differ between two worlds by design: the API tokens and each world's identity
# (world_settings.world_uid) are random.
SKIPPED_TABLES = {schema.api_tokens.name, schema.idempotency_keys.name}


def rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return {t.name: sorted((tuple(r) for r in conn.execute(
                        sa.select(*(c for c in t.c if c is not schema.world_settings.c.world_uid)))),
                        key=repr)
                    for t in schema.metadata.sorted_tables if t.name not in SKIPPED_TABLES}
    finally:
        engine.dispose()


def test_the_same_npc_script_ends_in_the_same_state_on_sqlite_and_over_http(
    travian_world: TravianWorld, served: TravianWorld
) -> None:
    on_sql = Run(travian_world)
    over_http = Run(served, ServerThread(
        create_app(served.url, clock=served.clock, manual_clock=True)).start())
    try:
        seen_sql = on_sql.play()
        seen_http = over_http.play()
        assert seen_sql == seen_http
        assert [step[0] for step in seen_sql] == ["built", "trained", "report", "mail"]
        assert travian_world.now == served.now
        assert travian_world.overdue() == served.overdue() == 0
        assert library_state(on_sql) == library_state(over_http)
        assert rows(travian_world.url) == rows(served.url)
    finally:
        on_sql.close()
        over_http.close()
