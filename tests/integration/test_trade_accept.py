"""Accepting and cancelling offers, recalling troops, on both SQL backends: the events each
write records, and what holds when several players act on one offer at once.

The developed world: player N owns village N; tribes cycle romans, teutons, gauls; every
village has a marketplace 5 (5 merchants) and 4000 of each resource.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain import events
from travian_repo.domain.values import Event, Resources
from travian_repo.sandbox import Clock
from travian_repo.sql import schema
from tests.conftest import MakeWorld


def recorder(world: tr.World) -> list[Event]:
    seen: list[Event] = []
    world.database.add_commit_listener(seen.extend)
    return seen


def kinds(seen: list[Event]) -> list[tuple[str, int]]:
    return sorted((e.kind, e.player_id) for e in seen)


def stock(world: tr.World, village_id: int) -> Resources:
    with world.unit_of_work(player_id=village_id) as uow:
        resources = uow.villages.get(village_id).resources
    assert resources is not None
    return resources


def all_rows(world: tr.World, table: sa.Table) -> list[Any]:
    with world.database.engine.connect() as conn:
        return list(conn.execute(sa.select(table).order_by(table.c.id)))


def at_once(count: int, fn: Callable[[int], str]) -> list[str]:
    barrier = threading.Barrier(count)

    def worker(index: int) -> str:
        barrier.wait()
        return fn(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(worker, range(count)))


# ---- events -------------------------------------------------------------------------------

def test_accept_offer_events(world: tr.World) -> None:
    with world.unit_of_work(player_id=2) as uow:
        offer = uow.trade.create_offer(2, "iron", 1000, "wood", 800)
    seen = recorder(world)
    shipment = world.trade.accept_offer(1, offer.id)
    assert kinds(seen) == [
        (events.OFFER_ACCEPTED, 1), (events.OFFER_ACCEPTED, 2),
        (events.RESOURCES_INCOMING, 1), (events.RESOURCES_INCOMING, 2),
        (events.RESOURCES_SENT, 1), (events.RESOURCES_SENT, 2),
    ]
    accepted = [e for e in seen if e.kind == events.OFFER_ACCEPTED]
    back = [e for e in seen if e.kind == events.RESOURCES_SENT and e.player_id == 2][0]
    assert accepted[0].data == accepted[1].data == {
        "offer_id": offer.id, "village_id": 2, "accepted_by_village_id": 1,
        "shipment_id": shipment.id, "return_shipment_id": back.data["shipment_id"]}
    assert back.data["from_village_id"] == 2 and back.data["to_village_id"] == 1


def test_cancel_offer_and_send_home_events(world: tr.World) -> None:
    offer = world.trade.create_offer(1, "wood", 1000, "clay", 1000)
    sent = world.military.reinforce(1, 2, {"legionnaire": 2})
    m = schema.movements
    with world.database.engine.begin() as conn:
        conn.execute(sa.update(m).where(m.c.id == sent.id).values(state="stationed"))
    seen = recorder(world)
    world.trade.cancel_offer(1, offer.id)
    back = world.military.send_home(1, sent.id)
    assert [(e.kind, e.player_id, e.data) for e in seen] == [
        (events.OFFER_CANCELLED, 1, {"village_id": 1, "offer_id": offer.id}),
        (events.MOVEMENT_SENT, 1, {"movement_id": back.id, "kind": "return",
                                   "from_village_id": 2, "to_village_id": 1,
                                   "arrives_at": back.arrives_at.isoformat()}),
    ]


def test_a_refused_accept_records_no_event(world: tr.World) -> None:
    offer = world.trade.create_offer(1, "wood", 1000, "clay", 1000)
    seen = recorder(world)
    try:
        world.trade.accept_offer(1, offer.id)
    except tr.RuleViolation:
        pass
    assert seen == []


# ---- at once ------------------------------------------------------------------------------

def test_two_players_accepting_one_offer_at_once_one_wins(
    make_world: MakeWorld, database_url: str, clock: Clock
) -> None:
    """Players 1, 3, 4, 5 and 6 accept player 2's offer at the same moment: one shipment
    pair, one payment, everyone else Conflict."""
    make_world()
    with tr.connect(database_url, clock=clock, pool_size=8) as world:
        with world.unit_of_work(player_id=2) as uow:
            offer = uow.trade.create_offer(2, "iron", 1000, "wood", 800)
        accepters = [1, 3, 4, 5, 6]

        def accept(index: int) -> str:
            player = accepters[index]
            try:
                with world.unit_of_work(player_id=player) as uow:
                    uow.trade.accept_offer(player, offer.id)
            except tr.Conflict as exc:
                assert "accepted" in str(exc)
                return "conflict"
            return f"won by {player}"

        outcomes = at_once(len(accepters), accept)
        winners = [o for o in outcomes if o.startswith("won")]
        assert len(winners) == 1 and outcomes.count("conflict") == len(accepters) - 1
        winner = int(winners[0].rsplit(" ", 1)[1])
        shipments = all_rows(world, schema.shipments)
        assert sorted((s.from_village_id, s.to_village_id) for s in shipments) == sorted(
            [(winner, 2), (2, winner)])
        for player in accepters:
            paid = 800 if player == winner else 0
            assert stock(world, player).wood == 4000 - paid
        (stored,) = all_rows(world, schema.trade_offers)
        assert stored.state == "accepted"


def test_accept_and_cancel_at_once_exactly_one_happens(
    make_world: MakeWorld, database_url: str, clock: Clock
) -> None:
    make_world()
    with tr.connect(database_url, clock=clock, pool_size=4) as world:
        with world.unit_of_work(player_id=2) as uow:
            offer = uow.trade.create_offer(2, "iron", 1000, "wood", 800)

        def act(index: int) -> str:
            try:
                with world.unit_of_work(player_id=1 if index == 0 else 2) as uow:
                    if index == 0:
                        uow.trade.accept_offer(1, offer.id)
                    else:
                        uow.trade.cancel_offer(2, offer.id)
            except tr.Conflict:
                return "conflict"
            return "accepted" if index == 0 else "cancelled"

        outcomes = at_once(2, act)
        assert outcomes.count("conflict") == 1
        (stored,) = all_rows(world, schema.trade_offers)
        assert stored.state in outcomes
        shipments = len(all_rows(world, schema.shipments))
        if stored.state == "accepted":
            assert shipments == 2 and stock(world, 2).iron == 3000
        else:
            assert shipments == 0 and stock(world, 2).iron == 4000


def test_crossed_accepts_do_not_deadlock(
    make_world: MakeWorld, database_url: str, clock: Clock
) -> None:
    """Village 1 accepts village 2's offer while village 2 accepts village 1's, five rounds:
    both lock the pair lowest id first, so every accept succeeds (no deadlock)."""
    make_world()
    with tr.connect(database_url, clock=clock, pool_size=4) as world:
        for _ in range(5):
            with world.unit_of_work(player_id=1) as uow:
                ones = uow.trade.create_offer(1, "clay", 500, "iron", 500)
            with world.unit_of_work(player_id=2) as uow:
                twos = uow.trade.create_offer(2, "iron", 1000, "wood", 800)

            def accept(index: int) -> str:
                player, offer_id = (1, twos.id) if index == 0 else (2, ones.id)
                with world.unit_of_work(player_id=player) as uow:
                    uow.trade.accept_offer(player, offer_id)
                return "ok"

            assert at_once(2, accept) == ["ok", "ok"]
            clock.advance(24 * 3600)  # the merchants come home
        assert {r.state for r in all_rows(world, schema.trade_offers)} == {"accepted"}
        assert len(all_rows(world, schema.shipments)) == 20


# ---- the wire -----------------------------------------------------------------------------

def test_server_routes_take_an_empty_body_or_none(make_world: MakeWorld,
                                                  database_url: str, clock: Clock) -> None:
    """POST accept and send_home say everything in the path: `{}` or no body at all; a body
    with fields is refused; DELETE of an offer takes no body."""
    from travian_repo.sandbox.server import app_world, create_app

    summary = make_world()
    app = create_app(database_url, clock=clock)
    try:
        client = app.test_client()

        def headers(player: int) -> dict[str, str]:
            return {"Authorization": f"Bearer {summary.tokens[player]}", "X-World-Id": "default"}

        world = app_world(app)
        with world.unit_of_work(player_id=2) as uow:
            first = uow.trade.create_offer(2, "iron", 1000, "wood", 800)
            second = uow.trade.create_offer(2, "clay", 1000, "wood", 800)
            third = uow.trade.create_offer(2, "wheat", 1000, "wood", 800)
        url = "/v1/village/1/trade/offer/{}/accept"
        r = client.post(url.format(first.id), headers=headers(1))
        assert r.status_code == 200 and r.get_json()["to_village_id"] == 2
        r = client.post(url.format(second.id), headers=headers(1), json={})
        assert r.status_code == 200 and r.get_json()["resources"]["wood"] == 800
        r = client.post(url.format(third.id), headers=headers(1), json={"x": 1})
        assert r.status_code == 400 and r.get_json()["error"]["details"] == {"field": "x"}
        r = client.post(url.format(first.id), headers=headers(1))
        assert r.status_code == 409 and r.get_json()["error"]["code"] == "conflict"
        r = client.delete(f"/v1/village/2/trade/offer/{third.id}", headers=headers(2))
        assert r.status_code == 200 and r.get_json()["id"] == third.id
        r = client.post("/v1/village/1/movements/999/send_home", headers=headers(1))
        assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    finally:
        app_world(app).close()
