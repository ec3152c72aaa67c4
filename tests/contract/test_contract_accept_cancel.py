"""Accepting and cancelling trade offers, recalling reinforcements: the contract on
prefer="sql" and prefer="http" (sqlite and postgresql).

Player 1 (romans, village 1), 2 (teutons, village 2), 3 (gauls, village 3); every village has
a marketplace 5 (5 merchants) and 4000 of each resource (storage 4000); romans carry 500 per
merchant, teutons 1000, gauls 750. Stationing is the engine's: the tests set a reinforcement
``stationed`` straight on the database, as the engine does when it arrives.

Choices under test:

- ``accept_offer``: NotFound for a missing offer, Conflict for one accepted or cancelled,
  RuleViolation for an offer of the acting player's own; the accepter's shipment is returned.
- ``cancel_offer``: Forbidden for another player's offer, NotFound for an offer of another
  of the player's own villages, Conflict when no longer open.
- ``send_home``: the owner recalls (``village_id`` is the troops' home); the host gets
  Forbidden; Conflict for troops not stationed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Movement, Resources, Shipment, Troops
from travian_repo.rules import travel, units
from travian_repo.sql import schema

from tests.conftest import START
from tests.contract.conftest import AsPlayer, Contract, execute, refuses

BAD_IDS: tuple[Any, ...] = (0, -1, "1", 1.5, None, True, 2**63)
FULL = Resources(4000, 4000, 4000, 4000)


def stock(world: tr.World, village_id: int) -> Resources:
    resources = world.villages.get(village_id).resources
    assert resources is not None
    return resources


def walk(world: tr.World, source: int, target: int, speed: int) -> timedelta:
    a, b = world.villages.get(source), world.villages.get(target)
    return timedelta(seconds=travel.travel_seconds(
        travel.distance(a.x, a.y, b.x, b.y, radius=200), speed, server_speed=1))


def rows(raw: sa.Engine, table: sa.Table, *where: Any) -> list[Any]:
    with raw.connect() as conn:
        return list(conn.execute(sa.select(table).where(*where).order_by(table.c.id)))


def set_stock(raw: sa.Engine, village_id: int, **amounts: int) -> None:
    r = schema.village_resources
    execute(raw, sa.update(r).where(r.c.village_id == village_id).values(**amounts))


def station(raw: sa.Engine, movement_id: int) -> None:
    """What the engine writes when a reinforcement arrives."""
    m = schema.movements
    execute(raw, sa.update(m).where(m.c.id == movement_id).values(state="stationed"))


def add_village(raw: sa.Engine, player_id: int, village_id: int, x: int, y: int) -> None:
    execute(
        raw,
        schema.villages.insert().values(id=village_id, name=f"outpost {x}|{y}",
                                        player_id=player_id, x=x, y=y, population=2,
                                        is_capital=False, created_at=START),
        schema.village_resources.insert().values(
            village_id=village_id, wood=1000, clay=1000, iron=1000, wheat=1000,
            wood_production=10, clay_production=10, iron_production=10, wheat_production=10,
            warehouse_capacity=4000, granary_capacity=4000, updated_at=START),
    )


# ---- accept_offer -------------------------------------------------------------------------

def test_accept_offer_ships_both_ways(world: tr.World, as_player: AsPlayer,
                                      raw: sa.Engine) -> None:
    teutons = as_player(2)
    offer = teutons.trade.create_offer(2, "iron", 1000, "wood", 800)
    assert stock(teutons, 2) == Resources(4000, 4000, 3000, 4000)
    shipment = world.trade.accept_offer(1, offer.id)
    assert shipment == Shipment(
        id=shipment.id, from_village_id=1, to_village_id=2, resources=Resources(wood=800),
        merchants=2, departed_at=START, arrives_at=START + walk(world, 1, 2, 16))
    assert stock(world, 1) == Resources(3200, 4000, 4000, 4000)
    assert stock(teutons, 2) == Resources(4000, 4000, 3000, 4000)  # paid when offered
    assert offer.id not in [o.id for o in world.trade.offers(1)]
    assert world.military.incoming(1) == []  # shipments are not movements

    (state,) = [r.state for r in rows(raw, schema.trade_offers, schema.trade_offers.c.id == offer.id)]
    assert state == "accepted"
    s = schema.shipments
    out, back = rows(raw, s)
    assert (out.id, out.from_village_id, out.to_village_id, out.wood, out.merchants) == (
        shipment.id, 1, 2, 800, 2)
    assert (back.from_village_id, back.to_village_id, back.iron, back.merchants) == (2, 1, 1000, 1)
    assert (back.wood, back.clay, back.wheat, back.state) == (0, 0, 0, "underway")
    assert back.arrives_at == START + walk(world, 2, 1, 12)  # teuton merchants
    assert back.returns_at == START + 2 * walk(world, 2, 1, 12)

    # merchants: the accepter's 2 are out, the offerer's 1 is still out (now with a shipment)
    (mine,) = refuses(raw, tr.RuleViolation, lambda: world.trade.send_resources(1, 3, {"clay": 2000}))
    assert mine.details == {"needed": 4, "free": 3}
    (theirs,) = refuses(raw, tr.RuleViolation,
                        lambda: teutons.trade.send_resources(2, 3, {"clay": 4500}))
    assert theirs.details == {"needed": 5, "free": 4}


def test_accept_offer_of_a_gaul_and_the_last_merchants(world: tr.World, as_player: AsPlayer,
                                                      raw: sa.Engine) -> None:
    gauls = as_player(3)
    offer = gauls.trade.create_offer(3, "wheat", 1500, "clay", 2000)
    world.trade.send_resources(1, 2, {"wood": 500})  # 4 merchants left: exactly enough
    shipment = world.trade.accept_offer(1, offer.id)
    assert (shipment.resources, shipment.merchants) == (Resources(clay=2000), 4)
    assert stock(world, 1) == Resources(3500, 2000, 4000, 4000)
    back = rows(raw, schema.shipments, schema.shipments.c.from_village_id == 3)[0]
    assert (back.wheat, back.merchants, back.to_village_id) == (1500, 2, 1)
    assert back.arrives_at == START + walk(world, 3, 1, 24)


def test_accept_offer_refusals(world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    t: Any = world.trade
    offer = as_player(2).trade.create_offer(2, "iron", 1000, "wood", 800)
    refuses(raw, tr.InvalidRequest,
            *[(lambda b=b: t.accept_offer(b, offer.id)) for b in BAD_IDS],
            *[(lambda b=b: t.accept_offer(1, b)) for b in BAD_IDS])
    village, missing = refuses(raw, tr.NotFound, lambda: t.accept_offer(999, offer.id),
                               lambda: t.accept_offer(1, offer.id + 999))
    assert "village 999" in str(village) and f"offer {offer.id + 999}" in str(missing)
    refuses(raw, tr.Forbidden, lambda: t.accept_offer(2, offer.id),
            lambda: t.accept_offer(3, offer.id))
    refuses(raw, tr.Unauthorized, lambda: as_player(None).trade.accept_offer(1, offer.id))

    mine = world.trade.create_offer(1, "clay", 500, "iron", 500)
    (own,) = refuses(raw, tr.RuleViolation, lambda: t.accept_offer(1, mine.id))
    assert "your own" in str(own)
    # the teuton accepting its own offer from village 2 is refused alike
    refuses(raw, tr.RuleViolation, lambda: as_player(2).trade.accept_offer(2, offer.id))

    set_stock(raw, 1, wood=799)
    (poor,) = refuses(raw, tr.InsufficientResources, lambda: t.accept_offer(1, offer.id))
    assert poor.required == Resources(wood=800)
    assert poor.available == Resources(799, 3500, 4000, 4000)
    set_stock(raw, 1, wood=4000)

    world.trade.send_resources(1, 3, {"iron": 1500})  # 3 out + 1 held by the offer: 1 free
    (busy,) = refuses(raw, tr.RuleViolation, lambda: t.accept_offer(1, offer.id))
    assert busy.details == {"needed": 2, "free": 1}

    b = schema.village_buildings
    execute(raw, sa.delete(b).where(b.c.village_id == 1, b.c.building_name == "marketplace"))
    (market,) = refuses(raw, tr.RuleViolation, lambda: t.accept_offer(1, offer.id))
    assert "no marketplace" in str(market)


def test_accept_offer_conflicts_once_closed(world: tr.World, as_player: AsPlayer,
                                            raw: sa.Engine) -> None:
    teutons, gauls = as_player(2), as_player(3)
    taken = teutons.trade.create_offer(2, "iron", 1000, "wood", 800)
    withdrawn = teutons.trade.create_offer(2, "clay", 1000, "wood", 800)
    gauls.trade.accept_offer(3, taken.id)
    teutons.trade.cancel_offer(2, withdrawn.id)
    accepted, cancelled = refuses(raw, tr.Conflict, lambda: world.trade.accept_offer(1, taken.id),
                                  lambda: world.trade.accept_offer(1, withdrawn.id))
    assert "accepted" in str(accepted) and "cancelled" in str(cancelled)
    assert accepted.details == {"offer_id": taken.id, "state": "accepted"}
    assert stock(world, 1) == FULL


# ---- cancel_offer -------------------------------------------------------------------------

def test_cancel_offer_refunds_and_frees_merchants(world: tr.World, as_player: AsPlayer,
                                                  raw: sa.Engine) -> None:
    offer = world.trade.create_offer(1, "wood", 1200, "clay", 1000)
    assert stock(world, 1) == Resources(2800, 4000, 4000, 4000)
    assert world.trade.cancel_offer(1, offer.id) == offer
    assert stock(world, 1) == FULL
    assert offer.id not in [o.id for o in as_player(2).trade.offers(2)]
    (state,) = [r.state for r in rows(raw, schema.trade_offers)]
    assert state == "cancelled"
    assert world.trade.send_resources(1, 2, {"wood": 2500}).merchants == 5  # all free again


def test_cancel_offer_refund_is_capped_by_storage(world: tr.World, raw: sa.Engine) -> None:
    offer = world.trade.create_offer(1, "wheat", 1500, "clay", 1000)
    set_stock(raw, 1, wheat=3000)
    world.trade.cancel_offer(1, offer.id)
    assert stock(world, 1) == FULL


def test_cancel_offer_refusals(world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    t: Any = world.trade
    mine = world.trade.create_offer(1, "wood", 1000, "clay", 1000)
    theirs = as_player(2).trade.create_offer(2, "iron", 1000, "wood", 800)
    refuses(raw, tr.InvalidRequest,
            *[(lambda b=b: t.cancel_offer(b, mine.id)) for b in BAD_IDS],
            *[(lambda b=b: t.cancel_offer(1, b)) for b in BAD_IDS])
    refuses(raw, tr.NotFound, lambda: t.cancel_offer(999, mine.id),
            lambda: t.cancel_offer(1, theirs.id + 999))
    village, offer = refuses(raw, tr.Forbidden, lambda: t.cancel_offer(2, theirs.id),
                             lambda: t.cancel_offer(1, theirs.id))
    refuses(raw, tr.Unauthorized, lambda: as_player(None).trade.cancel_offer(1, mine.id))
    assert "village 2" in str(village) and f"offer {theirs.id}" in str(offer)

    add_village(raw, 1, 50, 30, 30)  # another village of player 1: not where the offer is
    (elsewhere,) = refuses(raw, tr.NotFound, lambda: t.cancel_offer(50, mine.id))
    assert "village 50 has no offer" in str(elsewhere)

    world.trade.cancel_offer(1, mine.id)
    as_player(3).trade.accept_offer(3, theirs.id)
    cancelled, accepted = refuses(raw, tr.Conflict, lambda: t.cancel_offer(1, mine.id),
                                  lambda: as_player(2).trade.cancel_offer(2, theirs.id))
    assert "cancelled" in str(cancelled) and "accepted" in str(accepted)


# ---- send_home ----------------------------------------------------------------------------

def test_send_home_recalls_stationed_reinforcements(world: tr.World, contract: Contract,
                                                    raw: sa.Engine) -> None:
    sent = world.military.reinforce(1, 2, {"legionnaire": 5, "equites_legati": 2})
    station(raw, sent.id)
    contract.clock.advance(3600)
    now = START + timedelta(hours=1)
    back = world.military.send_home(1, sent.id)
    assert back == Movement(
        id=back.id, kind="return", from_village_id=2, to_village_id=1,
        troops=Troops(legionnaire=5, equites_legati=2), departed_at=now,
        arrives_at=now + walk(world, 2, 1, units.unit_spec("romans", "legionnaire").speed))
    assert back.id != sent.id
    assert world.military.incoming(1) == [back]
    assert world.military.outgoing(1) == []
    assert world.military.troops(1) == Troops(legionnaire=15, equites_legati=3)  # not home yet
    m = schema.movements
    states = {r.id: (r.kind, r.state, r.player_id) for r in rows(raw, m)}
    assert states == {sent.id: ("reinforcement", "done", 1), back.id: ("return", "underway", 1)}


def test_send_home_refusals(world: tr.World, as_player: AsPlayer, raw: sa.Engine) -> None:
    mil: Any = world.military
    teutons = as_player(2)
    mine = world.military.reinforce(1, 2, {"legionnaire": 5})
    station(raw, mine.id)
    guest = teutons.military.reinforce(2, 1, {"clubswinger": 3})
    station(raw, guest.id)
    underway = world.military.reinforce(1, 3, {"legionnaire": 1})
    attack = world.military.attack(1, 3, {"legionnaire": 1})

    refuses(raw, tr.InvalidRequest,
            *[(lambda b=b: mil.send_home(b, mine.id)) for b in BAD_IDS],
            *[(lambda b=b: mil.send_home(1, b)) for b in BAD_IDS])
    refuses(raw, tr.NotFound, lambda: mil.send_home(999, mine.id),
            lambda: mil.send_home(1, attack.id + 999))
    village, host, *_ = refuses(
        raw, tr.Forbidden,
        lambda: mil.send_home(2, mine.id),
        lambda: mil.send_home(1, guest.id),  # the host cannot send the teutons away
        lambda: teutons.military.send_home(2, mine.id))
    refuses(raw, tr.Unauthorized, lambda: as_player(None).military.send_home(1, mine.id))
    assert "village 2" in str(village) and "only their owner" in str(host)

    add_village(raw, 1, 50, 30, 30)
    (elsewhere,) = refuses(raw, tr.NotFound, lambda: mil.send_home(50, mine.id))
    assert f"village 50 has no reinforcement {mine.id}" in str(elsewhere)

    still_going, attacking = refuses(raw, tr.Conflict, lambda: mil.send_home(1, underway.id),
                                     lambda: mil.send_home(1, attack.id))
    assert still_going.details == {"movement_id": underway.id, "kind": "reinforcement",
                                   "state": "underway"}
    assert attacking.details["kind"] == "attack"

    back = world.military.send_home(1, mine.id)
    (again,) = refuses(raw, tr.Conflict, lambda: mil.send_home(1, mine.id))
    assert again.details["state"] == "done"
    refuses(raw, tr.NotFound, lambda: mil.send_home(1, back.id))  # a return is no station
    assert teutons.military.send_home(2, guest.id).to_village_id == 2
