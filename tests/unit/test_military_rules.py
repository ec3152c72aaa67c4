"""Unit roles, training buildings, merchant counts and max levels as pure rules: worked
examples with the numbers from the rules' data."""

from __future__ import annotations

import pytest

from travian_repo.domain.errors import InvalidRequest, RuleViolation
from travian_repo.rules import buildings, economy, military, travel, units
from travian_repo.rules.military import (
    check_roles,
    check_target,
    plan_training,
    resolve_units,
    training_building,
)

# ---- unit names and roles ----------------------------------------------------------------------


def test_resolve_units_spells_names_as_the_rules_and_adds_spellings_up() -> None:
    assert resolve_units("romans", {"Legionnaire": 2, "legionnaire": 3, "Equites Legati": 1}) == {
        "legionnaire": 5, "equites_legati": 1}
    with pytest.raises(InvalidRequest, match="clubswinger"):
        resolve_units("romans", {"clubswinger": 1})  # a teuton unit


def test_settlers_never_leave() -> None:
    with pytest.raises(RuleViolation, match="settlers cannot attack: remove settler"):
        check_roles("romans", {"legionnaire": 5, "settler": 1}, "attack")
    with pytest.raises(RuleViolation, match="settlers cannot reinforce"):
        check_roles("romans", {"settler": 3}, "reinforcement")


def test_a_siege_brings_a_ram() -> None:
    with pytest.raises(RuleViolation, match="a siege needs at least one ram"):
        check_roles("teutons", {"clubswinger": 10, "catapult": 1}, "siege")
    check_roles("teutons", {"clubswinger": 10, "ram": 1}, "siege")
    check_roles("romans", {"legionnaire": 10, "battering_ram": 1}, "siege")


def test_scouts_alone_scout_rather_than_attack() -> None:
    for kind in ("attack", "raid"):
        with pytest.raises(RuleViolation, match="use intel.send_scouts"):
            check_roles("romans", {"equites_legati": 4}, kind)
    check_roles("romans", {"equites_legati": 4}, "scout")
    check_roles("romans", {"equites_legati": 4}, "reinforcement")
    check_roles("romans", {"equites_legati": 4, "legionnaire": 1}, "raid")


def test_hostile_movements_may_not_target_the_senders_own_village() -> None:
    with pytest.raises(RuleViolation, match="village 7 is your own; you cannot attack it"):
        check_target("raid", own_village=True, village_id=7)
    with pytest.raises(RuleViolation, match="you cannot scout it"):
        check_target("scout", own_village=True, village_id=7)
    check_target("reinforcement", own_village=True, village_id=7)
    check_target("attack", own_village=False, village_id=7)
    assert military.SEND_KINDS == military.HOSTILE_KINDS | {"reinforcement"}
    assert "return" not in military.SEND_KINDS


# ---- training buildings ------------------------------------------------------------------------


def test_the_first_standing_training_building_trains() -> None:
    legionnaire = units.unit_spec("romans", "legionnaire")
    assert training_building(legionnaire, {"barracks": 1}) == "barracks"
    assert training_building(legionnaire, {"great_barracks": 3}) == "great_barracks"
    assert training_building(legionnaire, {"barracks": 1, "great_barracks": 3}) == "barracks"
    with pytest.raises(RuleViolation, match="trained in barracks or great_barracks") as no_barracks:
        training_building(legionnaire, {"stable": 5, "barracks": 0})
    assert no_barracks.value.details == {"unit": "legionnaire",
                                         "buildings": ["barracks", "great_barracks"]}


def test_research_is_its_prerequisite_buildings() -> None:
    imperian = units.unit_spec("romans", "imperian")  # academy 5, smithy 1
    with pytest.raises(RuleViolation, match="imperian is not researched: it needs academy level 5") as e:
        training_building(imperian, {"barracks": 3, "academy": 4, "smithy": 1})
    assert e.value.details == {"unit": "imperian", "missing": {"academy": 5}}
    assert training_building(imperian, {"barracks": 3, "academy": 5, "smithy": 1}) == "barracks"


def test_settlers_need_residence_or_palace_ten() -> None:
    settler = units.unit_spec("gauls", "settler")
    with pytest.raises(RuleViolation, match="settler needs a residence or palace at level 10") as e:
        training_building(settler, {"residence": 9})
    assert e.value.details["level"] == 10
    assert training_building(settler, {"residence": 9, "palace": 10}) == "palace"
    assert training_building(settler, {"residence": 10}) == "residence"


def test_plan_training_times_each_unit_at_its_buildings_level() -> None:
    levels = {"barracks": 20, "stable": 1, "academy": 5, "smithy": 1}
    plans = plan_training("romans", {"Legionnaire": 3, "equites_legati": 2}, levels,
                          server_speed=1)
    assert [(p.spec.name, p.count, p.building, p.seconds_each) for p in plans] == [
        ("equites_legati", 2, "stable", 1360),  # level 1: the base time
        ("legionnaire", 3, "barracks", 216),  # 1600 x 0.9^19, rounded half up
    ]
    # A level above the building's top (never stored by the game) is read as the top.
    above = plan_training("romans", {"legionnaire": 1}, {"barracks": 25}, server_speed=1)
    assert above[0].seconds_each == 216
    fast = plan_training("romans", {"legionnaire": 1}, {"barracks": 1}, server_speed=3)
    assert fast[0].seconds_each == 533  # 1600 / 3 = 533.3


def test_plan_training_reports_the_first_broken_rule_in_name_order() -> None:
    with pytest.raises(InvalidRequest, match="dragon"):
        plan_training("romans", {"legionnaire": 1, "dragon": 1}, {"barracks": 1}, server_speed=1)
    with pytest.raises(RuleViolation, match="equites_legati is trained in stable"):
        plan_training("romans", {"legionnaire": 1, "equites_legati": 1}, {"barracks": 1},
                      server_speed=1)


# ---- merchants ---------------------------------------------------------------------------------


def test_a_village_has_one_merchant_per_marketplace_level() -> None:
    assert economy.merchants_of(0) == 0
    assert economy.merchants_of(5) == 5
    assert economy.merchants_at_home(5, 2) == 3
    assert economy.merchants_at_home(2, 5) == 0  # a lowered marketplace never goes negative
    with pytest.raises(InvalidRequest):
        economy.merchants_of(-1)


def test_reserving_merchants() -> None:
    # A roman merchant carries 500; 1200 takes 3 of them.
    assert economy.reserve_merchants("romans", 1200, marketplace_level=5, trade_office_level=0,
                                     busy=0, village_id=9) == 3
    # The trade office at 10 doubles what one carries: 1200 takes 2.
    assert economy.reserve_merchants("romans", 1200, marketplace_level=5, trade_office_level=10,
                                     busy=3, village_id=9) == 2
    with pytest.raises(RuleViolation, match="not enough merchants: 1200 resources need 3, 2 are free") as e:
        economy.reserve_merchants("romans", 1200, marketplace_level=5, trade_office_level=0,
                                  busy=3, village_id=9)
    assert e.value.details == {"needed": 3, "free": 2}
    with pytest.raises(RuleViolation, match="village 9 has no marketplace"):
        economy.reserve_merchants("romans", 1, marketplace_level=0, trade_office_level=0,
                                  busy=0, village_id=9)


# ---- max levels come from the rules' data, not a literal ---------------------------------------


def test_top_and_capped_levels() -> None:
    assert buildings.top_level("woodcutter") == 20  # 10 outside a capital, 20 in one
    assert buildings.max_level("woodcutter", is_capital=False) == 10
    assert buildings.top_level("cranny") == 10
    assert buildings.top_level("wonder_of_the_world") == 100
    assert buildings.capped_level("tournament_square", 25) == 20
    assert buildings.capped_level("tournament_square", 3) == 3


def test_the_rules_refuse_levels_above_the_top() -> None:
    assert units.training_time("romans", "legionnaire", building_level=20) == 216
    with pytest.raises(InvalidRequest, match="building_level"):
        units.training_time("romans", "legionnaire", building_level=21)
    assert travel.travel_seconds(30.0, 6, tournament_square_level=20) > 0
    with pytest.raises(InvalidRequest, match="tournament_square_level"):
        travel.travel_seconds(30.0, 6, tournament_square_level=21)
    assert economy.merchant_capacity("romans", trade_office_level=20) == 1500
    with pytest.raises(InvalidRequest, match="trade_office_level"):
        economy.merchant_capacity("romans", trade_office_level=21)
    with pytest.raises(InvalidRequest, match="main_building_level"):
        buildings.build_time("barracks", 1, main_building_level=21)


def test_trade_needs_a_marketplace() -> None:
    economy.check_marketplace(1, village_id=4)
    with pytest.raises(RuleViolation, match="village 4 has no marketplace"):
        economy.check_marketplace(0, village_id=4)
