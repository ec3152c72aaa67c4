"""The rules against the data file's tables and against hand-picked known values."""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

import pytest

from travian_repo.domain.errors import InvalidRequest
from travian_repo.domain.values import Resources
from travian_repo.rules import (
    BUILDING_NAMES,
    PLAYABLE_TRIBES,
    RESOURCE_FIELDS,
    TOURNAMENT_SQUARE_BONUS_CLASSIC,
    TOURNAMENT_SQUARE_BONUS_OFFICIAL,
    TRIBES,
    WALLS,
    build_time,
    building_cost,
    building_spec,
    carry_capacity,
    cranny_capacity,
    culture_points,
    distance,
    field_production,
    in_map,
    max_level,
    merchant_capacity,
    merchant_speed,
    merchants_needed,
    missing_prerequisites,
    population_added,
    population_total,
    scout_unit,
    slowest_speed,
    storage_capacity,
    training_time,
    travel_seconds,
    troop_speed_factor,
    unit_cost,
    unit_spec,
    units_of,
    upkeep,
    village_production,
    wrap_delta,
)

# Read independently of travian_repo.rules.data_file, so the tests do not trust the loader.
DATA: dict[str, Any] = json.loads(
    resources.files("travian_repo.rules").joinpath("data", "t4_rules.json").read_text("utf-8")
)

LEVEL_ROWS = [
    pytest.param(name, i, id=f"{name}-L{level}")
    for name, raw in DATA["buildings"].items()
    for i, level in enumerate(raw["per_level"]["levels"])
]


def _row(name: str, i: int) -> tuple[int, dict[str, Any]]:
    table = DATA["buildings"][name]["per_level"]
    return table["levels"][i], table


def rt10(x: float) -> int:
    return 10 * math.floor(x / 10 + 0.5)


# --- buildings: the data file's per-level tables ----------------------------------------

def test_building_names_match_data() -> None:
    assert BUILDING_NAMES == frozenset(DATA["buildings"])


@pytest.mark.parametrize("name,i", LEVEL_ROWS)
def test_building_cost_matches_table(name: str, i: int) -> None:
    level, table = _row(name, i)
    assert building_cost(name, level) == Resources(*table["cost"][i])


@pytest.mark.parametrize("name,i", LEVEL_ROWS)
def test_build_time_matches_table_at_mb1_x1(name: str, i: int) -> None:
    level, table = _row(name, i)
    assert build_time(name, level, main_building_level=1) == table["build_time_s_x1_mb1"][i]


@pytest.mark.parametrize("name,i", LEVEL_ROWS)
def test_population_added_matches_table(name: str, i: int) -> None:
    level, table = _row(name, i)
    assert population_added(name, level) == table["population_added"][i]


@pytest.mark.parametrize("name,i", LEVEL_ROWS)
def test_culture_points_match_table(name: str, i: int) -> None:
    level, table = _row(name, i)
    assert culture_points(name, level) == table["culture_points_total"][i]


@pytest.mark.parametrize("name", sorted(DATA["buildings"]))
def test_population_total_is_running_sum(name: str) -> None:
    table = DATA["buildings"][name]["per_level"]
    assert population_total(name, 0) == 0
    top = table["levels"][-1]
    assert population_total(name, top) == sum(table["population_added"])


# --- buildings: known values --------------------------------------------------------------

@pytest.mark.parametrize(
    "name,level,cost",
    [
        ("woodcutter", 1, (40, 100, 50, 60)),
        ("woodcutter", 2, (65, 165, 85, 100)),
        ("main_building", 1, (70, 40, 60, 20)),
        ("barracks", 1, (210, 140, 260, 120)),
        ("warehouse", 1, (130, 160, 90, 40)),
        ("wonder_of_the_world", 100, (1_000_000, 1_000_000, 1_000_000, 193_630)),
        ("wonder_of_the_world", 98, (926_750, 959_405, 1_000_000, 183_405)),  # capped iron
    ],
)
def test_known_building_costs(name: str, level: int, cost: tuple[int, int, int, int]) -> None:
    assert building_cost(name, level) == Resources(*cost)


def test_known_build_times() -> None:
    assert build_time("woodcutter", 1, main_building_level=1) == 260
    assert build_time("main_building", 2, main_building_level=1) == 2620
    assert build_time("barracks", 1, main_building_level=1) == 2000
    assert build_time("barracks", 1, main_building_level=20) == rt10(2000 * 0.498269) == 1000
    assert build_time("barracks", 1, main_building_level=2) == rt10(2000 * 0.964) == 1930
    # MB destroyed: five times as slow; speed divides.
    assert build_time("barracks", 1, main_building_level=0) == 10000
    assert build_time("barracks", 1, main_building_level=1, server_speed=3) == rt10(2000 / 3)
    # a = 1660/3 exactly (the file prints 553.3333): the table says 4180540 s.
    assert build_time("clay_pit", 20, main_building_level=1) == 4180540


@pytest.mark.parametrize(
    "name, level, mb, seconds",
    [
        # stable 18: a x k**17 - b = 4075 x 1.16**17 - 1875 = 48930.816 s at MB 1; at MB 6
        # x 0.964**5 = 0.83250178 -> 40734.991 -> 40730 (the table's rounded 0.832502 gives
        # 40735.0007 -> 40740)
        ("stable", 18, 6, 40730),
        ("great_stable", 18, 6, 40730),
        ("wonder_of_the_world", 88, 6, 134140),
        # marketplace 19: 51274.741 x 0.964**13 = 51274.741 x 0.62087109 = 31835.004 -> 31840
        # (the table's 0.620871 gives 31834.998 -> 31830)
        ("marketplace", 19, 14, 31840),
        ("wonder_of_the_world", 90, 14, 103620),
        # palace 15: 53039.186 x 0.964**14 = 53039.186 x 0.59851973 = 31744.9996 -> 31740
        # (the table's 0.59852 gives 31745.013 -> 31750)
        ("palace", 15, 15, 31740),
    ],
)
def test_main_building_factor_is_exact_not_the_rounded_table(
    name: str, level: int, mb: int, seconds: int
) -> None:
    assert build_time(name, level, main_building_level=mb) == seconds


def test_main_building_factor_agrees_with_the_data_files_table() -> None:
    from travian_repo.rules.buildings import main_building_factor

    table = json.loads(
        resources.files("travian_repo.rules").joinpath("data", "t4_rules.json").read_text("utf-8")
    )["main_building_time_factor"]["by_level"]
    assert main_building_factor(0) == table["0"] == 5.0
    for level in range(1, 21):
        assert main_building_factor(level) == pytest.approx(table[str(level)], abs=5e-7)



def test_aliases_are_accepted() -> None:
    assert building_spec("blacksmith").name == "smithy"
    assert building_spec("arena").name == "tournament_square"
    assert building_cost("hero_mansion", 1) == building_cost("heros_mansion", 1)
    assert building_spec("Main Building").name == "main_building"


def test_building_spec_fields() -> None:
    barracks = building_spec("barracks")
    assert (barracks.gid, barracks.category, barracks.max_level) == (19, "military", 20)
    assert barracks.tribes is None and not barracks.capital_only
    assert building_spec("city_wall").tribes == frozenset({"romans"})
    assert building_spec("stonemason").capital_only
    assert building_spec("great_barracks").forbidden_in_capital
    warehouse = building_spec("warehouse")
    assert warehouse.multiple_allowed and warehouse.additional_instance_requires_level == 20
    assert building_spec("great_warehouse").special_condition is not None
    assert building_spec("palace").excludes == frozenset({"residence", "command_center"})


def test_resource_fields_and_walls() -> None:
    assert dict(RESOURCE_FIELDS) == {
        "woodcutter": "wood", "clay_pit": "clay", "iron_mine": "iron", "cropland": "wheat",
    }
    assert all(DATA["buildings"][f]["category"] == "resource" for f in RESOURCE_FIELDS)
    for tribe, wall in WALLS.items():
        assert DATA["buildings"][wall]["tribes"] == [tribe]
    assert WALLS["romans"] == "city_wall" and WALLS["huns"] == "makeshift_wall"


def test_max_levels() -> None:
    for field in RESOURCE_FIELDS:
        assert max_level(field, is_capital=False) == 10
        assert max_level(field, is_capital=True) == 20
    assert max_level("cranny", is_capital=False) == 10
    assert max_level("main_building", is_capital=True) == 20
    assert max_level("wonder_of_the_world", is_capital=False) == 100


def test_prerequisites() -> None:
    assert missing_prerequisites("barracks", {}) == [("main_building", 3), ("rally_point", 1)]
    assert missing_prerequisites("barracks", {"main_building": 3}) == [("rally_point", 1)]
    assert missing_prerequisites("barracks", {"main_building": 5, "rally_point": 1}) == []
    assert missing_prerequisites("main_building", {}) == []
    assert missing_prerequisites("marketplace", {"main_building": 3, "warehouse": 1}) == [
        ("granary", 1)
    ]
    # Aliases in the levels mapping count too.
    assert ("smithy", 3) not in missing_prerequisites("stable", {"blacksmith": 3})


@pytest.mark.parametrize("name", ["castle", "", "woodcutters"])
def test_unknown_building_raises(name: str) -> None:
    with pytest.raises(InvalidRequest, match="unknown building"):
        building_cost(name, 1)
    with pytest.raises(InvalidRequest):
        building_spec(name)


@pytest.mark.parametrize("level", [0, -1, 21, 2.0, True, "3", None])
def test_bad_building_levels_raise(level: Any) -> None:
    with pytest.raises(InvalidRequest):
        building_cost("barracks", level)
    with pytest.raises(InvalidRequest):
        build_time("barracks", level, main_building_level=1)


def test_bad_build_time_arguments_raise() -> None:
    for mb in (-1, 21, 1.0):
        with pytest.raises(InvalidRequest):
            build_time("barracks", 1, main_building_level=mb)  # type: ignore[arg-type]
    for speed in (0, -1, 1.5, False):
        with pytest.raises(InvalidRequest):
            build_time("barracks", 1, main_building_level=1, server_speed=speed)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        missing_prerequisites("barracks", {"castle": 1})
    with pytest.raises(InvalidRequest):
        population_total("barracks", -1)


# --- units ----------------------------------------------------------------------------------

def test_tribes() -> None:
    assert TRIBES == ("romans", "teutons", "gauls")
    assert set(PLAYABLE_TRIBES) == {"romans", "teutons", "gauls", "egyptians", "huns"}


@pytest.mark.parametrize("tribe", PLAYABLE_TRIBES)
def test_units_of_matches_data(tribe: str) -> None:
    specs = units_of(tribe)
    raws = DATA["units"][tribe]
    assert len(specs) == 10 and len({s.name for s in specs}) == 10
    for spec, raw in zip(specs, raws):
        assert spec.tribe == tribe
        assert spec.name == raw["name"].lower().replace("'", "").replace(" ", "_")
        assert unit_spec(tribe, spec.name) == spec
        assert spec.cost == Resources(*raw["cost"])
        assert (spec.attack, spec.speed, spec.carry, spec.upkeep) == (
            raw["attack"], raw["speed"], raw["carry"], raw["upkeep"]
        )
        assert spec.training_time_s == raw["training_time_s"]
        assert spec.category in ("infantry", "cavalry")
    assert specs[-1].role == "settler"


@pytest.mark.parametrize(
    "tribe,name",
    [
        ("romans", "legionnaire"), ("romans", "equites_legati"), ("romans", "battering_ram"),
        ("romans", "fire_catapult"), ("teutons", "clubswinger"), ("teutons", "ram"),
        ("gauls", "phalanx"), ("gauls", "theutates_thunder"), ("gauls", "ram"),
        ("egyptians", "slave_militia"), ("huns", "spotter"),
    ],
)
def test_known_unit_names(tribe: str, name: str) -> None:
    assert unit_spec(tribe, name).name == name


def test_units_with_the_same_name_differ_by_tribe() -> None:
    assert unit_spec("teutons", "ram").cost == Resources(1000, 300, 350, 70)
    assert unit_spec("gauls", "ram").cost == Resources(950, 555, 330, 75)
    assert unit_spec("teutons", "maceman").name == "clubswinger"  # the data's old name
    assert unit_spec("romans", "Equites Legati").name == "equites_legati"


def test_unit_spec_fields() -> None:
    legionnaire = unit_spec("romans", "legionnaire")
    assert (legionnaire.attack, legionnaire.def_infantry, legionnaire.def_cavalry) == (40, 35, 50)
    assert (legionnaire.speed, legionnaire.carry, legionnaire.training_time_s) == (6, 50, 1600)
    assert legionnaire.role == "regular" and legionnaire.trained_in == ("barracks", "great_barracks")
    assert legionnaire.research_prerequisites == ()
    assert unit_spec("romans", "battering_ram").role == "ram"
    assert unit_spec("romans", "senator").role == "chief"
    assert unit_spec("romans", "equites_legati").research_prerequisites == (
        ("academy", 5), ("stable", 1)
    )


@pytest.mark.parametrize(
    "tribe,name",
    [("romans", "equites_legati"), ("teutons", "scout"), ("gauls", "pathfinder"),
     ("egyptians", "sopdu_explorer"), ("huns", "spotter")],
)
def test_scout_unit(tribe: str, name: str) -> None:
    assert scout_unit(tribe).name == name


def test_unit_cost() -> None:
    assert unit_cost("romans", "legionnaire") == Resources(120, 100, 150, 30)
    assert unit_cost("romans", "legionnaire", 10) == Resources(1200, 1000, 1500, 300)
    assert unit_cost("gauls", "phalanx", 0) == Resources(0, 0, 0, 0)


def test_training_time() -> None:
    assert training_time("romans", "legionnaire", building_level=1) == 1600
    assert training_time("romans", "legionnaire", building_level=2) == 1440
    assert training_time("romans", "legionnaire", building_level=3) == 1296
    # 1600 * 0.9**19 = 216.12...
    assert training_time("romans", "legionnaire", building_level=20) == 216
    assert training_time("teutons", "clubswinger", building_level=1, server_speed=3) == 240
    assert training_time("egyptians", "slave_militia", building_level=3) == 429  # 429.3
    assert training_time("teutons", "clubswinger", building_level=2, server_speed=2) == 324
    # Exact halves round up (computed exactly, not with floats): 5000 * 0.9**4 = 3280.5.
    assert training_time("gauls", "ram", building_level=5) == 3281
    assert training_time("huns", "settler", building_level=3) == 23450  # 23449.5


def test_troop_sums() -> None:
    troops = {"legionnaire": 10, "equites_imperatoris": 2, "battering_ram": 0}
    assert slowest_speed("romans", troops) == 6
    assert slowest_speed("romans", {"equites_legati": 5}) == 16
    assert slowest_speed("romans", {"battering_ram": 1, "legionnaire": 1}) == 4
    assert carry_capacity("romans", troops) == 10 * 50 + 2 * 100
    assert upkeep("romans", troops) == 10 * 1 + 2 * 3
    assert upkeep("romans", {}) == 0


def test_unit_errors() -> None:
    with pytest.raises(InvalidRequest, match="tribe"):
        unit_spec("vikings", "legionnaire")
    with pytest.raises(InvalidRequest):
        units_of("natars")
    with pytest.raises(InvalidRequest):
        units_of("nature")
    with pytest.raises(InvalidRequest, match="legionaire"):
        unit_spec("romans", "legionaire")
    with pytest.raises(InvalidRequest):
        unit_spec("romans", "phalanx")  # a Gaul unit
    with pytest.raises(InvalidRequest):
        unit_cost("romans", "legionnaire", -1)
    with pytest.raises(InvalidRequest):
        training_time("romans", "legionnaire", building_level=0)
    with pytest.raises(InvalidRequest):
        training_time("romans", "legionnaire", building_level=1, server_speed=0)
    with pytest.raises(InvalidRequest):
        slowest_speed("romans", {"legionnaire": 0})
    with pytest.raises(InvalidRequest):
        carry_capacity("romans", {"legionnaire": -1})
    with pytest.raises(InvalidRequest):
        upkeep("romans", {"legionnaire": 1.5})  # type: ignore[dict-item]


# --- economy --------------------------------------------------------------------------------

def test_field_production_table() -> None:
    table = DATA["resource_field_production"]
    for level, per_hour in zip(table["levels"], table["per_hour"]):
        assert field_production(level) == per_hour
    assert field_production(0) == 3
    assert field_production(5) == 46  # disputed 46 vs 47: the data table's value
    assert field_production(10) == 280
    assert field_production(10, server_speed=3) == 840
    for bad in (-1, 22, 1.0):
        with pytest.raises(InvalidRequest):
            field_production(bad)  # type: ignore[arg-type]


def test_village_production() -> None:
    fields = [("woodcutter", 1)] * 4 + [("clay_pit", 1)] * 4 + [("iron_mine", 1)] * 4 + [
        ("cropland", 1)
    ] * 6
    assert village_production(fields) == Resources(28, 28, 28, 42)
    assert village_production(fields, population=2, troop_upkeep=50) == Resources(28, 28, 28, -10)
    big = [("woodcutter", 10)] * 4 + [("cropland", 10)] * 6
    assert village_production(
        big, bonus_levels={"sawmill": 5, "grain_mill": 5, "bakery": 5}, population=100
    ) == Resources(1400, 0, 0, 6 * 280 * 150 // 100 - 100)
    assert village_production(fields, server_speed=2) == Resources(56, 56, 56, 84)
    assert village_production([]) == Resources(0, 0, 0, 0)
    with pytest.raises(InvalidRequest):
        village_production([("barracks", 1)])
    with pytest.raises(InvalidRequest):
        village_production(fields, bonus_levels={"sawmill": 6})
    with pytest.raises(InvalidRequest):
        village_production(fields, bonus_levels={"warehouse": 1})
    with pytest.raises(InvalidRequest):
        village_production(fields, population=-1)


def test_storage_capacity() -> None:
    assert storage_capacity("warehouse", []) == 800
    assert storage_capacity("warehouse", [0]) == 800
    assert storage_capacity("warehouse", [1]) == 1200
    assert storage_capacity("warehouse", [20]) == 80000
    assert storage_capacity("granary", [20, 20, 1]) == 161200
    assert storage_capacity("great_warehouse", [20]) == 240000
    table = DATA["storage_capacity"]["warehouse"]
    for level in range(1, 21):
        assert storage_capacity("warehouse", [level]) == table[level]
    with pytest.raises(InvalidRequest):
        storage_capacity("silo", [1])
    with pytest.raises(InvalidRequest):
        storage_capacity("warehouse", [21])


def test_cranny_capacity() -> None:
    assert cranny_capacity([], tribe="romans") == 0
    assert cranny_capacity([1], tribe="romans") == 200
    assert cranny_capacity([10], tribe="teutons") == 2000
    assert cranny_capacity([10], tribe="gauls") == 3000
    assert cranny_capacity([10, 10], tribe="gauls") == 6000
    with pytest.raises(InvalidRequest):
        cranny_capacity([11], tribe="romans")
    with pytest.raises(InvalidRequest):
        cranny_capacity([1], tribe="elves")


def test_merchants() -> None:
    assert (merchant_capacity("romans"), merchant_speed("romans")) == (500, 16)
    assert (merchant_capacity("teutons"), merchant_speed("teutons")) == (1000, 12)
    assert (merchant_capacity("gauls"), merchant_speed("gauls")) == (750, 24)
    assert merchant_capacity("romans", trade_office_level=10) == 1000
    assert merchant_capacity("gauls", trade_office_level=1) == 825
    assert merchants_needed("romans", 0) == 0
    assert merchants_needed("romans", 1) == 1
    assert merchants_needed("romans", 500) == 1
    assert merchants_needed("romans", 501) == 2
    assert merchants_needed("romans", 1000, trade_office_level=10) == 1
    with pytest.raises(InvalidRequest):
        merchants_needed("romans", -1)
    with pytest.raises(InvalidRequest):
        merchant_capacity("romans", trade_office_level=21)


# --- travel ---------------------------------------------------------------------------------

def test_wrap_and_distance() -> None:
    assert wrap_delta(200, -200, radius=200) == -1
    assert wrap_delta(-200, 200, radius=200) == 1
    assert wrap_delta(5, 2, radius=200) == 3
    assert distance(200, 0, -200, 0, radius=200) == 1.0
    assert distance(0, 200, 0, -200, radius=200) == 1.0
    assert distance(0, 0, 3, 4, radius=200) == 5.0
    assert distance(400, 400, -400, -400, radius=400) == math.sqrt(2)
    assert distance(-200, -200, 200, 200, radius=200) == math.sqrt(2)
    # Half the width apart is the farthest two points can be.
    assert distance(-100, 0, 100, 0, radius=200) == 200.0
    with pytest.raises(InvalidRequest):
        distance(201, 0, 0, 0, radius=200)


def test_in_map() -> None:
    assert in_map(0, 0, radius=200)
    assert in_map(-200, 200, radius=200)
    assert not in_map(201, 0, radius=200)
    assert not in_map(0, -401, radius=400)


def test_troop_speed_factor() -> None:
    assert [troop_speed_factor(s) for s in (1, 2, 3, 5, 10)] == [1, 2, 2, 2, 4]
    assert troop_speed_factor(4) == 2 and troop_speed_factor(20) == 4
    with pytest.raises(InvalidRequest):
        troop_speed_factor(0)


def test_travel_seconds() -> None:
    assert TOURNAMENT_SQUARE_BONUS_OFFICIAL == 20 and TOURNAMENT_SQUARE_BONUS_CLASSIC == 10
    assert travel_seconds(0, 6) == 0
    assert travel_seconds(6, 6) == 3600
    assert travel_seconds(1.0, 7) == 514  # 514.28...
    assert travel_seconds(6, 6, server_speed=3) == 1800
    # Tournament square only works beyond 20 fields.
    assert travel_seconds(20, 5, tournament_square_level=10) == 4 * 3600
    # 30 fields at 3/h with TS 10 at +20 %: 20/3 h + 10/(3*3) h.
    assert travel_seconds(30, 3, tournament_square_level=10) == 24000 + 4000
    classic = travel_seconds(30, 3, tournament_square_level=10,
                             tournament_square_bonus_percent=TOURNAMENT_SQUARE_BONUS_CLASSIC)
    assert classic == 24000 + 6000
    assert travel_seconds(30, 3) == 36000
    for bad in ({"dist": -1.0, "speed": 5}, {"dist": 1.0, "speed": 0},
                {"dist": math.inf, "speed": 5}):
        with pytest.raises(InvalidRequest):
            travel_seconds(bad["dist"], bad["speed"])
    with pytest.raises(InvalidRequest):
        travel_seconds(30, 3, tournament_square_level=21)


@pytest.mark.slow  # a Python process of its own
def test_import_reads_no_file() -> None:
    import subprocess
    import sys

    code = (
        "import travian_repo.rules\n"
        "from travian_repo.rules.data_file import rules_data\n"
        "assert rules_data.cache_info().currsize == 0\n"
        "travian_repo.rules.building_cost('barracks', 1)\n"
        "assert rules_data.cache_info().currsize == 1\n"
    )
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p
    )}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
