"""The battle formula against hand-worked examples (travian_repo.rules.battle).

Unit numbers (data/t4_rules.json): clubswinger A40 (infantry); legionnaire A40 Di35 Dc50;
swordsman A65; phalanx Di40; battering ram A60; fire catapult A75; scouts attack 35 and
defend 20 when scouting. K (the Mfactor) is 1.5 for every battle below (N <= ~1000 units).
"""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from travian_repo.domain.values import Resources
from travian_repo.rules import battle, economy
from travian_repo.rules.battle import Army


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-4)


def test_plain_attack_win() -> None:
    # A = 100 x 40 = 4000, all infantry (share 1.0000)
    # D = 20 x 35 = 700, + base 10 = 710 (no wall: x 1)
    # N = 120: K = 3.7184 - 2 x 120**0.015 = 3.7184 - 2 x 1.07445 = 1.5695 -> bounded 1.5
    # x = (4000 / 710)**1.5 = 5.6338**1.5 = 13.372
    # attacker loses 1/x = 0.07478: survivors round(100 x 0.92522) = round(92.52) = 93
    # defender loses min(x, 1) = 1: all 20 legionnaires
    r = battle.fight(Army("teutons", {"clubswinger": 100}), [Army("romans", {"legionnaire": 20})])
    assert r.attack == 4000
    assert r.defence == 710
    assert r.mfactor == 1.5
    assert r.losses.attacker == approx(0.07478)
    assert r.attacker.survivors == {"clubswinger": 93}
    assert r.attacker.lost == {"clubswinger": 7}
    assert r.defenders[0].lost == {"legionnaire": 20}
    assert r.attacker_won


def test_total_loss_attacker_wiped_out() -> None:
    # A = 10 x 40 = 400; D = 50 x 35 + 10 = 1760
    # x = (400 / 1760)**1.5 = 0.22727**1.5 = 0.10835
    # attacker loses min(1/x, 1) = 1: all 10
    # defender loses 0.10835: survivors round(50 x 0.89165) = round(44.58) = 45, lost 5
    r = battle.fight(Army("teutons", {"clubswinger": 10}), [Army("romans", {"legionnaire": 50})])
    assert r.defence == 1760
    assert r.losses.defender == approx(0.10835)
    assert r.attacker.survivors == {"clubswinger": 0}
    assert r.defenders[0].survivors == {"legionnaire": 45}
    assert not r.attacker_won


def test_raid_both_sides_lose_part() -> None:
    # A = 50 x 40 = 2000; D = 40 x 35 + 10 = 1410
    # x = (2000 / 1410)**1.5 = 1.41844**1.5 = 1.68934
    # attacker loses 1 / (1 + x) = 0.37184: survivors round(50 x 0.62816) = round(31.41) = 31
    # defender loses x / (1 + x) = 0.62816: survivors round(40 x 0.37184) = round(14.87) = 15
    r = battle.fight(Army("teutons", {"clubswinger": 50}), [Army("romans", {"legionnaire": 40})],
                     kind=battle.RAID)
    assert r.losses.attacker == approx(0.37184)
    assert r.losses.defender == approx(0.62816)
    assert r.attacker.survivors == {"clubswinger": 31}
    assert r.defenders[0].survivors == {"legionnaire": 15}
    assert r.attacker.lost == {"clubswinger": 19}
    assert r.defenders[0].lost == {"legionnaire": 25}


def test_wall_bonus_changes_the_outcome() -> None:
    attacker = Army("gauls", {"swordsman": 60})          # A = 60 x 65 = 3900
    defenders = [Army("romans", {"legionnaire": 100})]   # Di = 3500
    # No wall: D = 3500 + 10 = 3510; x = (3900/3510)**1.5 = 1.1111**1.5 = 1.1712 -> attacker
    # wins, losing 1/x = 0.8538: survivors round(60 x 0.1462) = round(8.77) = 9
    open_ = battle.fight(attacker, defenders)
    assert open_.defence == 3510
    assert open_.attacker.survivors == {"swordsman": 9}
    assert open_.defenders[0].survivors == {"legionnaire": 0}
    # City wall 10: flat 10 x 10 = 100, multiplier round(1.03**10, 3) = round(1.343916) = 1.344
    # D = (3500 + 10 + 100) x 1.344 = 3610 x 1.344 = 4851.84
    # x = (3900/4851.84)**1.5 = 0.80382**1.5 = 0.72067 -> attacker wiped out; defender
    # loses 0.72067: survivors round(100 x 0.27933) = round(27.93) = 28
    wall = battle.wall("romans", 10)
    assert (wall.name, wall.flat, wall.multiplier) == ("city_wall", 100, 1.344)
    walled = battle.fight(attacker, defenders, wall_effect=wall)
    assert walled.defence == approx(4851.84)
    assert walled.losses.defender == approx(0.72067)
    assert walled.attacker.survivors == {"swordsman": 0}
    assert walled.defenders[0].survivors == {"legionnaire": 28}


def test_defence_is_weighted_by_the_attackers_mix() -> None:
    # A: 10 clubswingers (infantry 400) + 10 teutonic knights (cavalry 1500) = 1900
    # infantry share round(400/1900, 4) = 0.2105, cavalry 0.7895
    # D: 10 legionnaires: Di 350, Dc 500 -> 350 x 0.2105 + 500 x 0.7895 = 73.675 + 394.75
    #    = 468.425, + 10 = 478.425
    attacker = Army("teutons", {"clubswinger": 10, "teutonic_knight": 10})
    points = battle.attack_points(attacker)
    assert (points.infantry, points.cavalry) == (400, 1500)
    assert battle.infantry_share(points) == 0.2105
    d = battle.effective_defence(points, battle.defence_points([Army("romans", {"legionnaire": 10})]),
                                 battle.Wall())
    assert d == approx(478.425)


def test_rams_lower_the_wall_and_catapults_a_building() -> None:
    # A = 100 x 40 + 10 x 60 (rams) + 10 x 75 (catapults) = 5350, all infantry
    # palisade 5: flat 8 x 5 = 40, multiplier round(1.025**5, 3) = 1.131, durability 2
    # Full wall: D = (10 phalanx x 40 + 10 + 40) x 1.131 = 450 x 1.131 = 508.95, ratio 10.5118
    # Early: sigma = (2 - 10.5118**-1.5)/2 = 0.98533, 4 x 0.98533 x 10 = 39.41, -0.5 = 38.91;
    # palisade 5 down 1, 2, 3 levels costs 9, 14, 35 (x 2 = 18, 28, 70): it falls to 3
    # Battle at palisade 3: D = 450 x round(1.025**3, 3) = 450 x 1.077 = 484.65
    # ratio = 5350 / 484.65 = 11.0389; sigma = (2 - 11.0389**-1.5)/2 = (2 - 0.027265)/2
    # = 0.98637; points = 4 x 0.98637 x 10 = 39.455
    # wall 5 (durability 2): (39.455 - 0.5) / 2 = 19.48 >= 5 + 4 + 3 + 2 + 1 = 15 -> level 0
    # building 10: 38.955 of damage: 10 + 9 + 8 + 7 = 34, the next level costs 6 > 4.955 -> 6
    attacker = Army("romans", {"legionnaire": 100, "battering_ram": 10, "fire_catapult": 10})
    r = battle.fight(attacker, [Army("gauls", {"phalanx": 10})],
                     wall_effect=battle.wall("gauls", 5), target_level=10)
    assert r.wall_during == 3
    assert r.defence == approx(484.65)
    assert r.ratio == approx(11.0389)
    assert battle.sigma(r.ratio) == approx(0.98637)
    assert battle.demolish_points(10, r.ratio) == approx(39.455)
    assert (r.wall_before, r.wall_after) == (5, 0)
    assert (r.target_before, r.target_after) == (10, 6)
    # attacker loses 1/x = 11.0389**-1.5 = 0.027265: round(100 x 0.972735) = 97 legionnaires
    assert r.attacker.survivors == {"battering_ram": 10, "fire_catapult": 10, "legionnaire": 97}


def test_demolish_steps() -> None:
    # 3.4 points: 2.9 of damage knocks level 2 (cost 2) to 1, level 1 costs 1 > 0.9
    assert battle.demolish(2, 3.4) == 1
    assert battle.demolish(2, 3.5) == 0  # 3.0 = 2 + 1
    assert battle.demolish(7, 0.4) == 7  # under 0.5: nothing
    # Losing side: ratio 0.5 -> sigma = 0.5**1.5 / 2 = 0.17678; 10 rams: 7.07 points
    assert battle.demolish_points(10, 0.5) == approx(7.0711)


def test_rams_and_catapults_do_not_fire_in_a_raid() -> None:
    attacker = Army("romans", {"legionnaire": 100, "battering_ram": 10})
    r = battle.fight(attacker, [], kind=battle.RAID, wall_effect=battle.wall("gauls", 5),
                     target_level=10)
    assert (r.wall_after, r.target_after) == (5, 10)


def test_cranny_protects_resources() -> None:
    # Capacity 1000, 800 of each, the cranny hides 300: 500 of each lootable, 250 taken each
    assert battle.bounty(1000, Resources(800, 800, 800, 800), 300).taken == Resources(250, 250, 250, 250)
    # The cranny hides everything there is: nothing taken
    assert battle.bounty(1000, Resources(200, 300, 100, 0), 300).taken == Resources()
    # Uneven: stock 350/900/900/900, hidden 200 -> lootable 150/700/700/700.
    # Round 1: 1000/4 = 250 each; wood gives only 150 (taken 900, 100 left).
    # Round 2: 100 over clay, iron, wheat = 34, 33, 33 -> 284, 283, 283 (total 1000)
    assert battle.bounty(1000, Resources(350, 900, 900, 900), 200).taken == Resources(150, 284, 283, 283)
    # What is there limits: lootable 200 + 500 = 700 < capacity 1000
    assert battle.bounty(1000, Resources(500, 100, 800, 0), 300).taken == Resources(200, 0, 500, 0)


def test_cranny_capacity_by_tribe() -> None:
    romans = economy.cranny_capacity([10], tribe="romans")
    assert economy.cranny_capacity([10], tribe="gauls") == romans * 3 // 2  # gauls x1.5
    # Against teutons a cranny hides 80 %: 2000 -> 1600
    assert battle.hidden_by_cranny(2000, attacker_tribe="teutons") == 1600
    assert battle.hidden_by_cranny(2000, attacker_tribe="romans") == 2000


def test_scouts_succeed() -> None:
    # A = 5 x 35 = 175, D = 3 x 20 = 60; loss = (60/175)**1.5 = 0.342857**1.5 = 0.20076
    # survivors round(5 x 0.79924) = round(3.996) = 4
    r = battle.scout(Army("gauls", {"pathfinder": 5}), [Army("romans", {"equites_legati": 3})])
    assert (r.attack, r.defence) == (175, 60)
    assert r.loss == approx(0.20076)
    assert r.attacker.survivors == {"pathfinder": 4}
    assert r.success
    # The wall helps: city wall 10 -> D = 60 x 1.344 = 80.64; loss = (80.64/175)**1.5
    # = 0.460800**1.5 = 0.31280; survivors round(5 x 0.68720) = round(3.44) = 3
    walled = battle.scout(Army("gauls", {"pathfinder": 5}), [Army("romans", {"equites_legati": 3})],
                          battle.wall("romans", 10))
    assert walled.defence == approx(80.64)
    assert walled.loss == approx(0.31280)
    assert walled.attacker.survivors == {"pathfinder": 3}


def test_scouts_die() -> None:
    # A = 2 x 35 = 70 < D = 4 x 20 = 80: loss = min((80/70)**1.5, 1) = min(1.2218, 1) = 1
    r = battle.scout(Army("gauls", {"pathfinder": 2}), [Army("romans", {"equites_legati": 4})])
    assert r.loss == 1
    assert r.attacker.lost == {"pathfinder": 2}
    assert not r.success
    # No defending scouts: nobody dies
    assert battle.scout(Army("romans", {"equites_legati": 1}), [Army("teutons", {"clubswinger": 9})]).loss == 0


def test_mfactor_grows_smaller_with_army_size() -> None:
    assert battle.mfactor(1000) == 1.5
    # 5000**0.015 = 1.136283: 3.7184 - 2.272566 = 1.445834 -> 1.4458 (to 0.0002)
    assert battle.mfactor(5000) == 1.4458
    # 100000**0.015 = 1.188494: 3.7184 - 2.376988 = 1.341412 -> 1.3414
    assert battle.mfactor(100_000) == 1.3414
    assert battle.mfactor(10**9) == 1.2578  # the lower bound


def test_a_lone_weak_attacker_dies() -> None:
    # 1 clubswinger: A = 40 < 84.5. The formula alone would keep him (x = (40/10)**1.5 = 8,
    # loss 1/8: round(0.875) = 1), the lone-attacker rule kills him.
    r = battle.fight(Army("teutons", {"clubswinger": 1}), [])
    assert r.attacker.survivors == {"clubswinger": 0}
    # 1 haeduan: A = 140 >= 84.5 survives (loss (10/140)**1.5 = 0.019)
    assert battle.fight(Army("gauls", {"haeduan": 1}), []).attacker.survivors == {"haeduan": 1}


def test_bad_kind() -> None:
    with pytest.raises(ValueError):
        battle.fight(Army("gauls", {"haeduan": 1}), [], kind="siege")


def test_the_calculators_example_in_the_docs_runs() -> None:
    rules_md = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
    result = doctest.testfile(str(rules_md), module_relative=False)
    assert result.attempted >= 5 and result.failed == 0
