"""Trade: the contract on prefer="sql" and prefer="http" (sqlite and postgresql).

Every village has a marketplace 5 (5 merchants) and 4000 of each resource; romans carry
500 per merchant, gauls 750; acting as player 1 (village 1).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Resources
from travian_repo.repositories.validation import MAX_AMOUNT
from travian_repo.rules import travel
from travian_repo.sandbox import Clock
from travian_repo.sql import schema

from tests.conftest import START
from tests.contract.conftest import AsPlayer, execute, refuses

FULL = Resources(4000, 4000, 4000, 4000)
BAD_IDS: tuple[Any, ...] = (0, -1, "1", 1.5, None, True, 2**63)


def stock(world: tr.World, village_id: int = 1) -> Resources:
    resources = world.villages.get(village_id).resources
    assert resources is not None
    return resources


def remove_marketplace(raw: sa.Engine) -> None:
    b = schema.village_buildings
    execute(raw, sa.delete(b).where(b.c.village_id == 1, b.c.building_name == "marketplace"))


# ---- create_offer -------------------------------------------------------------------------

def test_create_offer_holds_goods_and_merchants(world: tr.World) -> None:
    offer = world.trade.create_offer(1, "wood", 1200, "clay", 1000)
    assert offer.id > 0 and (offer.village_id, offer.player_id) == (1, 1)
    assert (offer.offer_resource, offer.offer_amount) == ("wood", 1200)
    assert (offer.request_resource, offer.request_amount) == ("clay", 1000)
    assert offer.merchants == 3 and offer.created_at == START
    assert stock(world) == Resources(2800, 4000, 4000, 4000)


def test_create_offer_ratio_and_merchants(world: tr.World, raw: sa.Engine) -> None:
    assert world.trade.create_offer(1, "wood", 200, "iron", 100).merchants == 1
    assert world.trade.create_offer(1, "clay", 100, "iron", 200).merchants == 1
    ratio, _, merchants = refuses(
        raw, tr.RuleViolation,
        lambda: world.trade.create_offer(1, "wood", 201, "iron", 100),
        lambda: world.trade.create_offer(1, "wood", 100, "iron", 201),
        lambda: world.trade.create_offer(1, "wheat", 2600, "clay", 2600),
    )
    assert "between 1:2 and 2:1" in str(ratio)
    assert "not enough merchants" in str(merchants)
    assert merchants.details == {"needed": 6, "free": 3}


def test_create_offer_bad_arguments(world: tr.World, raw: sa.Engine) -> None:
    t: Any = world.trade
    refuses(raw, tr.InvalidRequest, *[(lambda a=a: t.create_offer(1, *a)) for a in (
        ("gold", 100, "clay", 100), ("wood", 100, "crop", 100), (None, 100, "clay", 100),
        (3, 100, "clay", 100), ("Wood", 100, "clay", 100), ("wood", 100, "wood", 100),
        ("wood", 0, "clay", 1), ("wood", -5, "clay", 100), ("wood", 100, "clay", 0),
        ("wood", 100.0, "clay", 100), ("wood", "100", "clay", 100), ("wood", True, "clay", 1),
        ("wood", MAX_AMOUNT + 1, "clay", MAX_AMOUNT), ("wood", 10**30, "clay", 10**30),
    )], *[(lambda b=b: t.create_offer(b, "wood", 100, "clay", 100)) for b in BAD_IDS])


def test_create_offer_not_yours_missing_poor_or_no_market(world: tr.World, raw: sa.Engine) -> None:
    t = world.trade
    refuses(raw, tr.NotFound, lambda: t.create_offer(999, "wood", 100, "clay", 100))
    refuses(raw, tr.Forbidden, lambda: t.create_offer(2, "wood", 100, "clay", 100))
    execute(raw, sa.update(schema.village_resources).values(iron=300))
    (poor,) = refuses(raw, tr.InsufficientResources,
                      lambda: t.create_offer(1, "iron", 301, "clay", 301))
    assert poor.required == Resources(iron=301)
    assert poor.available == Resources(4000, 4000, 300, 4000)
    remove_marketplace(raw)
    (market,) = refuses(raw, tr.RuleViolation, lambda: t.create_offer(1, "wood", 100, "clay", 100))
    assert "no marketplace" in str(market)


# ---- send_resources -----------------------------------------------------------------------

def test_send_resources_spends_and_travels(world: tr.World, as_player: AsPlayer) -> None:
    source, target = world.villages.get(1), world.villages.get(3)
    shipment = world.trade.send_resources(1, 3, {"wood": 700, "wheat": 300})
    assert shipment.id > 0 and (shipment.from_village_id, shipment.to_village_id) == (1, 3)
    assert shipment.resources == Resources(wood=700, wheat=300) and shipment.merchants == 2
    walk = travel.travel_seconds(travel.distance(source.x, source.y, target.x, target.y,
                                                 radius=200), 16, server_speed=1)
    assert shipment.departed_at == START
    assert shipment.arrives_at == START + timedelta(seconds=walk)
    assert stock(world) == Resources(3300, 4000, 4000, 3700)
    assert stock(as_player(3), 3) == FULL  # nothing arrives before the engine delivers it
    assert world.trade.send_resources(1, 2, Resources(clay=500)).merchants == 1


def test_merchants_are_shared_and_counted(world: tr.World, as_player: AsPlayer,
                                          raw: sa.Engine) -> None:
    gauls = as_player(3)
    assert gauls.trade.send_resources(3, 1, {"iron": 3750}).merchants == 5
    (none_left,) = refuses(raw, tr.RuleViolation, lambda: gauls.trade.send_resources(3, 1, {"iron": 1}))
    assert none_left.details == {"needed": 1, "free": 0}
    world.trade.create_offer(1, "wood", 1000, "clay", 1000)
    (busy,) = refuses(raw, tr.RuleViolation,
                      lambda: world.trade.send_resources(1, 2, {"iron": 2000}))
    assert busy.details == {"needed": 4, "free": 3}


def test_send_resources_bad_resources(world: tr.World, raw: sa.Engine) -> None:
    t: Any = world.trade
    refuses(raw, tr.InvalidRequest, *[(lambda r=r: t.send_resources(1, 2, r)) for r in (
        {}, {"wood": 0}, {"gold": 5}, {"crop": 5}, {"wood": -1}, {"wood": 1.5}, {"wood": "10"},
        {"wood": True}, {"wood": MAX_AMOUNT + 1}, [("wood", 5)], "wood", None, Resources(),
    )])


def test_send_resources_bad_villages(world: tr.World, raw: sa.Engine) -> None:
    t: Any = world.trade
    (itself, *_) = refuses(raw, tr.InvalidRequest,
                           lambda: t.send_resources(1, 1, {"wood": 10}),
                           *[(lambda b=b: t.send_resources(1, b, {"wood": 10})) for b in BAD_IDS],
                           *[(lambda b=b: t.send_resources(b, 2, {"wood": 10})) for b in BAD_IDS])
    assert "itself" in str(itself)
    to_missing, from_missing = refuses(raw, tr.NotFound,
                                       lambda: t.send_resources(1, 999, {"wood": 10}),
                                       lambda: t.send_resources(999, 1, {"wood": 10}))
    assert "village 999" in str(to_missing) and "village 999" in str(from_missing)
    refuses(raw, tr.Forbidden, lambda: t.send_resources(2, 1, {"wood": 10}))
    (heavy,) = refuses(raw, tr.RuleViolation,
                       lambda: t.send_resources(1, 2, {"wood": 1300, "clay": 1300}))
    assert heavy.details == {"needed": 6, "free": 5}


def test_send_resources_insufficient_and_no_marketplace(world: tr.World, raw: sa.Engine) -> None:
    execute(raw, sa.update(schema.village_resources).values(wheat=99))
    (poor,) = refuses(raw, tr.InsufficientResources,
                      lambda: world.trade.send_resources(1, 2, {"wheat": 100}))
    assert poor.required == Resources(wheat=100)
    assert poor.available == Resources(4000, 4000, 4000, 99)
    remove_marketplace(raw)
    (market,) = refuses(raw, tr.RuleViolation,
                        lambda: world.trade.send_resources(1, 2, {"wood": 10}))
    assert "no marketplace" in str(market)


# ---- offers -------------------------------------------------------------------------------

def test_offers_show_other_villages_newest_first(world: tr.World, as_player: AsPlayer,
                                                 clock: Clock, raw: sa.Engine) -> None:
    own = world.trade.create_offer(1, "wood", 100, "clay", 100)
    clock.advance(60)
    second = as_player(2).trade.create_offer(2, "iron", 300, "wheat", 200)
    clock.advance(60)
    third = as_player(3).trade.create_offer(3, "clay", 500, "wood", 500)
    tie = as_player(3).trade.create_offer(3, "clay", 100, "wood", 100)
    assert world.trade.offers(1) == [tie, third, second]
    assert as_player(2).trade.offers(2) == [tie, third, own]
    assert world.trade.offers(4) == [tie, third, second, own]
    o = schema.trade_offers
    execute(raw, sa.update(o).where(o.c.id.in_([third.id, tie.id])).values(state="accepted"))
    assert world.trade.offers(1) == [second]


def test_offers_errors(world: tr.World, raw: sa.Engine) -> None:
    assert world.trade.offers(1) == []
    t: Any = world.trade
    refuses(raw, tr.NotFound, lambda: t.offers(999))
    refuses(raw, tr.InvalidRequest, *[(lambda b=b: t.offers(b)) for b in BAD_IDS])


def test_trade_acting_as_nobody(request: pytest.FixtureRequest, prefer: str, world: tr.World,
                                as_player: AsPlayer, raw: sa.Engine) -> None:
    anonymous = as_player(None)
    refuses(raw, tr.Unauthorized,
            lambda: anonymous.trade.create_offer(1, "wood", 100, "clay", 100),
            lambda: anonymous.trade.send_resources(1, 2, {"wood": 10}))
    assert anonymous.trade.offers(1) == []
