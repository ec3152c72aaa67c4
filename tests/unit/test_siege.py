"""Walls and rams as the game has them, against hand-worked examples
(travian_repo.rules.siege, through the battle calculator travian_repo.rules.battle).

Unit numbers (data/t4_rules.json): legionnaire A40 Di35; battering ram (romans) A60; teuton
clubswinger A40, axeman A60, ram A65, spearman Di35; gaul phalanx A15 Di40, pathfinder A0
(a scout), ram A50, Theutates Thunder Di25. Walls: city wall flat 10/level, x1.030/level;
palisade 8, x1.025; earth wall 6, x1.020.
"""

from __future__ import annotations

import pytest

from travian_repo.rules import battle
from travian_repo.rules.battle import Army


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-4)


@pytest.mark.parametrize(
    "tribe, level, multiplier",
    [
        ("romans", 3, 1.093),     # 1.03**3 = 1.092727 -> 1.093
        ("romans", 20, 1.806),    # 1.03**20 = 1.806111
        ("gauls", 2, 1.051),      # 1.025**2 = 1.050625 -> 1.051
        ("gauls", 20, 1.639),     # 1.025**20 = 1.638616
        ("teutons", 19, 1.457),   # 1.02**19 = 1.456811
        ("teutons", 20, 1.486),   # 1.02**20 = 1.485947
        ("romans", 0, 1.0),
    ],
)
def test_the_wall_multiplier_is_rounded_to_three_decimals(
    tribe: str, level: int, multiplier: float
) -> None:
    assert battle.wall(tribe, level).multiplier == multiplier


def test_a_level_3_city_wall_defends_with_1_093() -> None:
    # 100 legionnaires behind a city wall 3: (3500 + 10 + 30) x 1.093 = 3869.22
    # (with 1.03**3 = 1.092727 it was 3868.25)
    r = battle.fight(Army("gauls", {"phalanx": 10}), [Army("romans", {"legionnaire": 100})],
                     wall_effect=battle.wall("romans", 3))
    assert r.defence == approx(3869.22)


def test_an_earth_wall_resists_rams_five_times() -> None:
    # 200 legionnaires + 60 rams: A = 8000 + 3600 = 11600; nobody defends an earth wall 20.
    # Full wall: D = (10 + 6 x 20) x 1.486 = 130 x 1.486 = 193.18, ratio 60.048.
    # Early: 4 x sigma x 60 = 239.7, -0.5 = 239.2; down 1 level costs 39 x 5 = 195, 2 levels
    # 74 x 5 = 370: the battle is fought at 19: D = 130 x 1.457 = 189.41, ratio 61.243.
    # After: sigma(61.243) = (2 - 61.243**-1.5) / 2 = 0.99896, 4 x 0.99896 x 60 = 239.75
    # points; (239.75 - 0.5) / 5 = 47.85 of damage: 20 + 19 = 39, level 18 would cost 18 more
    # -> 18 (undivided, the 239.25 of damage knocked all 210 points of levels 20..1: 0).
    r = battle.fight(Army("romans", {"legionnaire": 200, "battering_ram": 60}), [],
                     wall_effect=battle.wall("teutons", 20))
    assert r.wall_after == 18
    assert r.wall_during == 19
    assert r.defence == approx(189.41)
    assert battle.demolish_points(60, r.ratio) == approx(239.75)


def test_a_palisade_resists_rams_twice() -> None:
    # 4 phalanxes, a pathfinder and a ram: A = 60 + 0 + 50 = 110 (all infantry).
    # A legionnaire and a Theutates Thunder: Di = 35 + 25 = 60.
    # Palisade 2: D = (60 + 10 + 16) x 1.051 = 90.386; ratio 1.21700
    # sigma = (2 - 1.217**-1.5) / 2 = 0.62753; one ram: 4 x 0.62753 = 2.510 points.
    # Early: 2.010 < 3 x 2 (one level down): the battle is at 2.
    # After: (2.510 - 0.5) / 2 = 1.005 < 2: the palisade stays at 2 (undivided, 2.010 >= 2
    # knocked it to 1).
    r = battle.fight(
        Army("gauls", {"phalanx": 4, "pathfinder": 1, "ram": 1}),
        [Army("romans", {"legionnaire": 1}), Army("gauls", {"theutates_thunder": 1})],
        wall_effect=battle.wall("gauls", 2),
    )
    assert r.defence == approx(90.386)
    assert battle.demolish_points(1, r.ratio) == approx(2.5101)
    assert (r.wall_before, r.wall_after) == (2, 2)
    assert r.wall_during == 2


def test_a_city_wall_has_durability_1() -> None:
    assert [battle.wall(t, 5).durability for t in ("romans", "gauls", "teutons")] == [1, 2, 5]
    # durability 1 (the default) divides nothing: 2.9 points of damage take level 2 to 1
    assert battle.demolish(2, 3.4) == 1 == battle.demolish(2, 3.4, 1)
    # the same points against durability 2: (3.4 - 0.5) / 2 = 1.45 < 2
    assert battle.demolish(2, 3.4, 2) == 2
    # (6.5 - 0.5) / 2 = 3 = 2 + 1 -> 0
    assert battle.demolish(2, 6.5, 2) == 0


# A teuton army with 15 rams against three defending groups behind a city wall 4:
# A = 150 x 40 + 550 x 60 + 15 x 65 = 6000 + 33000 + 975 = 39975 (all infantry)
# Di = 200 x 35 + 350 x 40 + 200 x 35 = 7000 + 14000 + 7000 = 28000; + 10 + 40 = 28050
# N = 715 + 750 = 1465 units: K = 3.7184 - 2 x 1465**0.015 = 3.7184 - 2 x 1.115546
#   = 1.487308 -> 1.4874
EARLY_ATTACKER = Army("teutons", {"clubswinger": 150, "axeman": 550, "ram": 15})
EARLY_DEFENDERS = [
    Army("romans", {"legionnaire": 200}),
    Army("gauls", {"phalanx": 350}),
    Army("teutons", {"spearman": 200}),
]


def test_rams_strike_before_the_battle() -> None:
    # Full wall: D = 28050 x 1.126 = 31584.3, ratio = 39975 / 31584.3 = 1.26566
    #   (the battle used to be fought here, with 1.03**4: D 31570.52, loss
    #   1.26621**-1.4874 = 0.70393: survivors 44 clubswingers, 163 axemen, 4 rams)
    # Early: sigma = (2 - 1.26566**-1.5) / 2 = 0.64885; 4 x 0.64885 x 15 = 38.93, -0.5
    #   = 38.43; the city wall 4 down 1, 2, 3, 4 levels costs 7, 10, 30, 81: 3 levels -> 1
    # Battle at 1: D = 28050 x 1.030 = 28891.5, ratio 1.38362
    # attacker loses 1.38362**-1.4874 = 0.61695: survivors round(150 x 0.38305) = 57
    #   clubswingers, round(550 x 0.38305) = round(210.68) = 211 axemen, round(5.75) = 6 rams
    # After: sigma(1.38362) = 0.69278, 4 x 0.69278 x 15 = 41.57: 41.07 >= 4+3+2+1 -> 0
    r = battle.fight(EARLY_ATTACKER, EARLY_DEFENDERS, wall_effect=battle.wall("romans", 4))
    assert r.mfactor == 1.4874
    assert r.losses.attacker == approx(0.61695)
    assert r.attacker.survivors == {"axeman": 211, "clubswinger": 57, "ram": 6}
    assert r.defence == approx(28891.5)
    assert (r.wall_before, r.wall_during, r.wall_after) == (4, 1, 0)
    assert all(not any(d.survivors.values()) for d in r.defenders)


def test_early_ram_costs() -> None:
    # City wall 4: the first half (2 levels) d x (2L + 1) - 2 d**2 = 9 - 2 = 7, 18 - 8 = 10;
    # the next L(L+1)/2 + 20 = 30; then 51 more = 81
    assert battle.early_ram_costs(4) == [7, 10, 30, 81]
    # level 5: 11 - 2 = 9, 22 - 8 = 14; 15 + 20 = 35; + 51 = 86; + 53.5 = 139.5
    assert battle.early_ram_costs(5) == [9, 14, 35, 86, 139.5]
    assert battle.early_ram_costs(1) == [21]  # no first half: 1 x 2 / 2 + 20
    # 38.43 points (-0.5 included) against durability 2: 7x2, 10x2 fall, 30x2 holds
    assert battle.wall_during(4, 15, 1.26566, 2) == 2
    assert battle.wall_during(4, 15, 1.26566, 1) == 1
    assert battle.wall_during(0, 15, 1.26566) == 0


def test_rams_do_not_strike_in_a_raid() -> None:
    r = battle.fight(EARLY_ATTACKER, EARLY_DEFENDERS, kind=battle.RAID,
                     wall_effect=battle.wall("romans", 4))
    assert (r.wall_during, r.wall_after) == (4, 4)
    assert r.defence == approx(31584.3)
