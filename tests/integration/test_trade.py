"""Trade on both SQL backends: offers, shipments, merchants, the market.

The developed world: player N owns village N; tribes cycle romans, teutons, gauls; every
village has a marketplace at level 5 (5 merchants) and 4000 of each resource.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import travian_repo as tr
from travian_repo.domain.values import Resources
from travian_repo.repositories.validation import MAX_AMOUNT
from travian_repo.rules import economy, travel
from travian_repo.sandbox import Clock
from travian_repo.sql import schema
from tests.conftest import START, MakeWorld

FULL = Resources(4000, 4000, 4000, 4000)


def bad_values(*values: Any) -> tuple[Any, ...]:
    """Arguments of the wrong type or range (typed Any on purpose)."""
    return values



def stock(world: tr.World, village_id: int) -> Resources:
    with world.unit_of_work(player_id=village_id) as uow:
        resources = uow.villages.get(village_id).resources
    assert resources is not None
    return resources


def count(world: tr.World, table: sa.Table) -> int:
    with world.database.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def unchanged(world: tr.World) -> None:
    """Nothing was written: full stock and no offers or shipments."""
    assert stock(world, 1) == FULL
    assert count(world, schema.trade_offers) == 0
    assert count(world, schema.shipments) == 0


def set_building(world: tr.World, village_id: int, name: str, level: int) -> None:
    b = schema.village_buildings
    with world.database.engine.begin() as conn:
        if level == 0:
            conn.execute(
                sa.delete(b).where(b.c.village_id == village_id, b.c.building_name == name)
            )
        else:
            conn.execute(
                sa.update(b)
                .where(b.c.village_id == village_id, b.c.building_name == name)
                .values(level=level)
            )


# --- create_offer -------------------------------------------------------------------------


def test_create_offer_spends_goods_and_holds_merchants(world: tr.World) -> None:
    offer = world.trade.create_offer(1, "wood", 1200, "clay", 1000)
    assert offer.id > 0
    assert (offer.village_id, offer.player_id) == (1, 1)
    assert (offer.offer_resource, offer.offer_amount) == ("wood", 1200)
    assert (offer.request_resource, offer.request_amount) == ("clay", 1000)
    assert offer.merchants == 3  # romans carry 500 each: 1200 needs 3
    assert offer.created_at == START
    assert stock(world, 1) == Resources(2800, 4000, 4000, 4000)
    with world.database.engine.connect() as conn:
        row = conn.execute(sa.select(schema.trade_offers)).mappings().one()
    assert row["state"] == "open" and row["merchants"] == 3 and row["offer_amount"] == 1200


def test_offer_ratio_limits(world: tr.World) -> None:
    assert world.trade.create_offer(1, "wood", 200, "iron", 100).merchants == 1  # 2:1 allowed
    assert world.trade.create_offer(1, "clay", 100, "iron", 200).merchants == 1  # 1:2 allowed
    with pytest.raises(tr.RuleViolation, match="between 1:2 and 2:1"):
        world.trade.create_offer(1, "wood", 201, "iron", 100)
    with pytest.raises(tr.RuleViolation):
        world.trade.create_offer(1, "wood", 100, "iron", 201)
    assert stock(world, 1) == Resources(3800, 3900, 4000, 4000)
    assert count(world, schema.trade_offers) == 2


@pytest.mark.parametrize(
    "args",
    [
        ("gold", 100, "clay", 100),
        ("wood", 100, "crop", 100),
        (None, 100, "clay", 100),
        (3, 100, "clay", 100),
        ("Wood", 100, "clay", 100),
        ("wood", 100, "wood", 100),
        ("wood", 0, "clay", 1),
        ("wood", -5, "clay", 100),
        ("wood", 100, "clay", 0),
        ("wood", 100.0, "clay", 100),
        ("wood", "100", "clay", 100),
        ("wood", True, "clay", 1),
        ("wood", MAX_AMOUNT + 1, "clay", MAX_AMOUNT),
        ("wood", 10**30, "clay", 10**30),
    ],
)
def test_create_offer_bad_arguments(world: tr.World, args: tuple[Any, ...]) -> None:
    with pytest.raises(tr.InvalidRequest):
        world.trade.create_offer(1, *args)
    unchanged(world)


@pytest.mark.parametrize("village_id", [0, -1, "1", 1.0, True, None, 2**63])
def test_create_offer_bad_village_id(world: tr.World, village_id: Any) -> None:
    with pytest.raises(tr.InvalidRequest):
        world.trade.create_offer(village_id, "wood", 100, "clay", 100)
    unchanged(world)


def test_create_offer_not_yours_or_missing(world: tr.World) -> None:
    with pytest.raises(tr.NotFound):
        world.trade.create_offer(999, "wood", 100, "clay", 100)
    with pytest.raises(tr.Forbidden):
        world.trade.create_offer(2, "wood", 100, "clay", 100)
    unchanged(world)
    assert stock(world, 2) == FULL


def test_create_offer_acting_as_nobody_is_forbidden(
    make_world: MakeWorld, database_url: str, clock: Clock
) -> None:
    make_world()
    with tr.connect(database_url, clock=clock) as anonymous:
        with pytest.raises(tr.Forbidden):
            anonymous.trade.create_offer(1, "wood", 100, "clay", 100)
        # the market itself is public
        assert anonymous.trade.offers(1) == []


def test_create_offer_not_enough_merchants(world: tr.World) -> None:
    with pytest.raises(tr.RuleViolation, match="not enough merchants") as info:
        world.trade.create_offer(1, "wood", 2600, "clay", 2600)
    assert not isinstance(info.value, tr.InsufficientResources)
    assert info.value.details == {"needed": 6, "free": 5}
    unchanged(world)


def test_create_offer_insufficient_resources(world: tr.World) -> None:
    with world.database.engine.begin() as conn:
        conn.execute(sa.update(schema.village_resources).values(iron=300))
    with pytest.raises(tr.InsufficientResources) as info:
        world.trade.create_offer(1, "iron", 301, "clay", 301)
    assert info.value.required == Resources(iron=301)
    assert info.value.available.iron == 300
    assert stock(world, 1).iron == 300
    assert count(world, schema.trade_offers) == 0


def test_create_offer_needs_a_marketplace(world: tr.World) -> None:
    set_building(world, 1, "marketplace", 0)
    with pytest.raises(tr.RuleViolation, match="no marketplace"):
        world.trade.create_offer(1, "wood", 100, "clay", 100)
    unchanged(world)


def test_trade_office_raises_merchant_capacity(world: tr.World) -> None:
    b = schema.village_buildings
    with world.database.engine.begin() as conn:
        conn.execute(
            sa.insert(b).values(village_id=1, slot=30, building_name="trade_office", level=10)
        )
    # romans: 500 * (1 + 10 * 10 %) = 1000 per merchant
    assert economy.merchant_capacity("romans", trade_office_level=10) == 1000
    assert world.trade.create_offer(1, "wood", 2000, "clay", 2000).merchants == 2


# --- send_resources -----------------------------------------------------------------------


def test_send_resources_spends_and_travels(world: tr.World) -> None:
    source, target = world.villages.get(1), world.villages.get(3)
    shipment = world.trade.send_resources(1, 3, {"wood": 700, "wheat": 300})
    assert shipment.id > 0
    assert (shipment.from_village_id, shipment.to_village_id) == (1, 3)
    assert shipment.resources == Resources(wood=700, wheat=300)
    assert shipment.merchants == 2  # 1000 at 500 per roman merchant
    fields = travel.distance(source.x, source.y, target.x, target.y, radius=200)
    seconds = travel.travel_seconds(fields, 16, server_speed=1)
    assert seconds > 0
    assert shipment.departed_at == START
    assert shipment.arrives_at == START + timedelta(seconds=seconds)
    assert stock(world, 1) == Resources(3300, 4000, 4000, 3700)
    assert stock(world, 3) == FULL  # nothing arrives before the engine delivers it
    with world.database.engine.connect() as conn:
        row = conn.execute(sa.select(schema.shipments)).mappings().one()
    assert row["state"] == "underway" and row["merchants"] == 2
    assert (row["wood"], row["clay"], row["iron"], row["wheat"]) == (700, 0, 0, 300)
    assert row["returns_at"] - row["arrives_at"] == timedelta(seconds=seconds)


def test_send_resources_accepts_resources_value(world: tr.World) -> None:
    shipment = world.trade.send_resources(1, 2, Resources(clay=500))
    assert shipment.merchants == 1
    assert stock(world, 1) == Resources(4000, 3500, 4000, 4000)


def test_gaul_merchants_carry_750(world: tr.World) -> None:
    with world.unit_of_work(player_id=3) as uow:
        shipment = uow.trade.send_resources(3, 1, {"iron": 3750})
        assert shipment.merchants == 5
        with pytest.raises(tr.RuleViolation, match="not enough merchants") as info:
            uow.trade.send_resources(3, 1, {"iron": 1})
        assert info.value.details == {"needed": 1, "free": 0}
    assert stock(world, 3).iron == 250
    assert count(world, schema.shipments) == 1


def test_roman_merchants_cannot_carry_2600(world: tr.World) -> None:
    with pytest.raises(tr.RuleViolation) as info:
        world.trade.send_resources(1, 2, {"wood": 1300, "clay": 1300})
    assert info.value.details == {"needed": 6, "free": 5}
    unchanged(world)
    assert world.trade.send_resources(1, 2, {"wood": 1250, "clay": 1250}).merchants == 5


def test_offers_and_shipments_share_the_merchants(world: tr.World, clock: Clock) -> None:
    world.trade.create_offer(1, "wood", 1000, "clay", 1000)  # 2 merchants held
    shipment = world.trade.send_resources(1, 2, {"iron": 1500})  # 3 out
    assert shipment.merchants == 3
    with pytest.raises(tr.RuleViolation) as info:
        world.trade.create_offer(1, "wheat", 1, "clay", 1)
    assert info.value.details == {"needed": 1, "free": 0}
    with pytest.raises(tr.RuleViolation):
        world.trade.send_resources(1, 2, {"wheat": 1})
    # merchants still on their way home stay busy; once due home they are free again
    returns = shipment.arrives_at + (shipment.arrives_at - shipment.departed_at)
    clock.set(returns - timedelta(seconds=1))
    with pytest.raises(tr.RuleViolation):
        world.trade.send_resources(1, 2, {"wheat": 1})
    with world.database.engine.begin() as conn:
        conn.execute(sa.update(schema.shipments).values(state="returning"))
    clock.set(returns)
    assert world.trade.send_resources(1, 2, {"wheat": 1500}).merchants == 3
    # a closed (accepted) offer frees its merchants
    with world.database.engine.begin() as conn:
        conn.execute(sa.update(schema.trade_offers).values(state="accepted"))
    assert world.trade.create_offer(1, "clay", 1000, "wood", 1000).merchants == 2


def test_send_resources_server_speed_but_no_tournament_square(
    make_world: MakeWorld, database_url: str, clock: Clock
) -> None:
    make_world(speed=3)
    b = schema.village_buildings
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(b).values(village_id=1, slot=31, building_name="tournament_square", level=10)
        )
    engine.dispose()
    with tr.connect(database_url, player_id=1, clock=clock) as world:
        source, target = world.villages.get(1), world.villages.get(5)
        fields = travel.distance(source.x, source.y, target.x, target.y, radius=200)
        shipment = world.trade.send_resources(1, 5, {"wood": 100})
    # x3 servers walk x2 (like troops); the tournament square does not count for merchants
    expected = travel.travel_seconds(fields, 16 * 2, server_speed=1)
    assert shipment.arrives_at - shipment.departed_at == timedelta(seconds=expected)


@pytest.mark.parametrize(
    "resources",
    [
        {},
        {"wood": 0},
        {"gold": 5},
        {"crop": 5},
        {"wood": -1},
        {"wood": 1.5},
        {"wood": "10"},
        {"wood": True},
        {"wood": MAX_AMOUNT + 1},
        [("wood", 5)],
        "wood",
        None,
        Resources(),
    ],
)
def test_send_resources_bad_resources(world: tr.World, resources: Any) -> None:
    with pytest.raises(tr.InvalidRequest):
        world.trade.send_resources(1, 2, resources)
    unchanged(world)


def test_send_resources_bad_villages(world: tr.World) -> None:
    with pytest.raises(tr.InvalidRequest, match="itself"):
        world.trade.send_resources(1, 1, {"wood": 10})
    for bad in bad_values(0, -3, "2", 2.0, None, False):
        with pytest.raises(tr.InvalidRequest):
            world.trade.send_resources(1, bad, {"wood": 10})
        with pytest.raises(tr.InvalidRequest):
            world.trade.send_resources(bad, 2, {"wood": 10})
    with pytest.raises(tr.NotFound, match="village 999"):
        world.trade.send_resources(1, 999, {"wood": 10})
    with pytest.raises(tr.NotFound, match="village 999"):
        world.trade.send_resources(999, 1, {"wood": 10})
    with pytest.raises(tr.Forbidden):
        world.trade.send_resources(2, 1, {"wood": 10})
    unchanged(world)
    assert stock(world, 2) == FULL


def test_send_resources_insufficient_and_no_marketplace(world: tr.World) -> None:
    with world.database.engine.begin() as conn:
        conn.execute(sa.update(schema.village_resources).values(wheat=99))
    with pytest.raises(tr.InsufficientResources) as info:
        world.trade.send_resources(1, 2, {"wheat": 100})
    assert info.value.required == Resources(wheat=100)
    assert count(world, schema.shipments) == 0
    assert stock(world, 1).wheat == 99
    set_building(world, 1, "marketplace", 0)
    with pytest.raises(tr.RuleViolation, match="no marketplace"):
        world.trade.send_resources(1, 2, {"wood": 10})
    assert count(world, schema.shipments) == 0
    assert stock(world, 1).wood == 4000


def test_failed_step_leaves_earlier_writes_of_the_unit_of_work(world: tr.World) -> None:
    with world.unit_of_work() as uow:
        uow.trade.send_resources(1, 2, {"wood": 500})
        with pytest.raises(tr.RuleViolation):
            uow.trade.send_resources(1, 2, {"wood": 2001})  # 5 needed, 4 free
    assert stock(world, 1).wood == 3500
    assert count(world, schema.shipments) == 1


# --- offers -------------------------------------------------------------------------------


def test_offers_show_other_villages_newest_first(world: tr.World, clock: Clock) -> None:
    own = world.trade.create_offer(1, "wood", 100, "clay", 100)
    clock.advance(60)
    with world.unit_of_work(player_id=2) as uow:
        second = uow.trade.create_offer(2, "iron", 300, "wheat", 200)
    clock.advance(60)
    with world.unit_of_work(player_id=3) as uow:
        third = uow.trade.create_offer(3, "clay", 500, "wood", 500)
    assert world.trade.offers(1) == [third, second]
    with world.unit_of_work(player_id=2) as uow:
        assert uow.trade.offers(2) == [third, own]
    # anyone may look at the market from any village
    assert world.trade.offers(4) == [third, second, own]
    with world.database.engine.begin() as conn:
        conn.execute(
            sa.update(schema.trade_offers)
            .where(schema.trade_offers.c.id == third.id)
            .values(state="accepted")
        )
    assert world.trade.offers(1) == [second]


def test_offers_same_time_ordered_by_id(world: tr.World) -> None:
    with world.unit_of_work(player_id=2) as uow:
        a = uow.trade.create_offer(2, "wood", 100, "clay", 100)
        b = uow.trade.create_offer(2, "wood", 100, "iron", 100)
    assert world.trade.offers(1) == [b, a]


def test_offers_empty_missing_and_bad(world: tr.World) -> None:
    assert world.trade.offers(1) == []
    with pytest.raises(tr.NotFound):
        world.trade.offers(999)
    for bad in bad_values(0, -1, "1", 1.5, None, True):
        with pytest.raises(tr.InvalidRequest):
            world.trade.offers(bad)


def test_offers_at_most_200(world: tr.World) -> None:
    rows = [
        dict(village_id=2, player_id=2, offer_resource="wood", offer_amount=10,
             request_resource="clay", request_amount=10, merchants=1, state="open",
             created_at=START + timedelta(seconds=i))
        for i in range(205)
    ]
    with world.database.engine.begin() as conn:
        conn.execute(sa.insert(schema.trade_offers), rows)
    offers = world.trade.offers(1)
    assert len(offers) == 200
    assert offers[0].created_at == START + timedelta(seconds=204)
    assert offers[-1].created_at == START + timedelta(seconds=5)


def test_concurrent_writers_never_overbook_merchants(
    make_world: MakeWorld, database_url: str, clock: Clock
) -> None:
    """12 threads at once, each wanting one of the 5 merchants: exactly 5 get one."""
    make_world()
    threads = 12
    with tr.connect(database_url, player_id=1, clock=clock, pool_size=threads) as world:
        barrier = threading.Barrier(threads)

        def worker(index: int) -> str:
            barrier.wait()
            try:
                if index % 2:
                    world.trade.send_resources(1, 2, {"wood": 500})
                else:
                    world.trade.create_offer(1, "wood", 500, "clay", 500)
            except tr.RuleViolation as exc:
                assert exc.details == {"needed": 1, "free": 0}
                return "refused"
            return "ok"

        with ThreadPoolExecutor(threads) as pool:
            outcomes = list(pool.map(worker, range(threads)))
        assert outcomes.count("ok") == 5
        assert count(world, schema.trade_offers) + count(world, schema.shipments) == 5
        assert stock(world, 1).wood == 4000 - 5 * 500
