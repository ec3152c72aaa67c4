"""Morale (Travian 4) against hand-worked examples: the defender's population against the
attacker's, applied by the battle calculator only when it is given both."""

from __future__ import annotations

import pytest

from travian_repo.domain.errors import InvalidRequest
from travian_repo.rules import battle
from travian_repo.rules.battle import Army


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-4)


@pytest.mark.parametrize(
    "attacker, defender, ratio, expected",
    [
        (900, 300, 1.0, 0.803),     # 3**-0.2 = 0.802742
        (900, 300, 2.5, 0.803),     # a ratio above 1 counts as 1
        (900, 300, 0.5, 0.896),     # 3**-0.1 = 0.895958: a weak attack suffers less
        (10_000, 100, 1.0, 0.667),  # 100**-0.2 = 0.398 -> at least 0.667
        (300, 900, 1.0, 1.0),       # a smaller attacker: no morale
        (500, 500, 1.0, 1.0),
        (6, 1, 1.0, 0.871),         # the defender counts at least 3: 2**-0.2 = 0.870551
        (30, 0, 1.0, 0.667),        # 10**-0.2 = 0.631 -> 0.667
    ],
)
def test_morale(attacker: int, defender: int, ratio: float, expected: float) -> None:
    assert battle.morale(attacker, defender, ratio) == expected


def test_catapult_morale() -> None:
    assert battle.catapult_morale(900, 300) == approx(0.71922)  # 3**-0.3
    assert battle.catapult_morale(1000, 10) == 0.3333           # 100**-0.3 = 0.251
    assert battle.catapult_morale(300, 900) == 1.0


def test_a_bigger_attacker_fights_with_less() -> None:
    attacker = Army("gauls", {"swordsman": 100})            # A = 6500
    defenders = [Army("romans", {"legionnaire": 100})]      # D = 3500 + 10 = 3510
    # Without populations: ratio 1.85185, loss 1.85185**-1.5 = 0.39682 -> 60 survive
    plain = battle.fight(attacker, defenders)
    assert plain.morale == 1.0
    assert plain.attacker.survivors == {"swordsman": 60}
    # 900 against 300: ratio >= 1, morale 3**-0.2 -> 0.803; 6500 x 0.803 = 5219.5,
    # ratio 1.48704, loss 1.48704**-1.5 = 0.55146: round(100 x 0.44854) = 45 survive
    r = battle.fight(attacker, defenders, attacker_population=900, defender_population=300)
    assert r.attack == 6500
    assert r.morale == 0.803
    assert r.ratio == approx(1.48704)
    assert r.losses.attacker == approx(0.55146)
    assert r.attacker.survivors == {"swordsman": 45}
    # The other way round (300 attacking 900) nothing changes
    small = battle.fight(attacker, defenders, attacker_population=300, defender_population=900)
    assert small.attacker.survivors == {"swordsman": 60}


def test_a_weak_attack_suffers_less_morale() -> None:
    # 50 swordsmen: A = 3250 < D = 3510, ratio 0.92593; morale 3**(-0.2 x 0.92593)
    # = 3**-0.185185 = 0.81592 -> 0.816; ratio 3250 x 0.816 / 3510 = 0.75556
    # the defender loses 0.75556**1.5 = 0.65675: round(100 x 0.34325) = 34 survive
    # (without morale: 0.92593**1.5 = 0.89097 -> 11 survive)
    attacker = Army("gauls", {"swordsman": 50})
    defenders = [Army("romans", {"legionnaire": 100})]
    assert battle.fight(attacker, defenders).defenders[0].survivors == {"legionnaire": 11}
    r = battle.fight(attacker, defenders, attacker_population=900, defender_population=300)
    assert r.morale == 0.816
    assert r.losses.defender == approx(0.65675)
    assert r.defenders[0].survivors == {"legionnaire": 34}


def test_catapults_suffer_the_catapult_morale() -> None:
    # 10 fire catapults + 100 legionnaires against an empty village: A = 4750, D = 10;
    # morale 0.803 (ratio >= 1); sigma(4750 x 0.803 / 10 = 381.4) = 0.99993;
    # 4 x 0.99993 x 10 = 39.997 points x 3**-0.3 (0.71922) = 28.767: 28.267 of damage
    # takes a level-10 building to 7 (10 + 9 + 8 = 27); without morale 39.498 -> 6
    attacker = Army("romans", {"legionnaire": 100, "fire_catapult": 10})
    assert battle.fight(attacker, [], target_level=10).target_after == 6
    r = battle.fight(attacker, [], target_level=10, attacker_population=900,
                     defender_population=300)
    assert r.catapult_morale == approx(0.71922)
    assert r.target_after == 7


def test_a_lone_attacker_needs_84_5_points_after_morale() -> None:
    # 1 Equites Imperatoris: A = 120; morale 0.667 (10000 against 100): 80.04 < 84.5 -> dies
    lone = Army("romans", {"equites_imperatoris": 1})
    assert battle.fight(lone, []).attacker.survivors == {"equites_imperatoris": 1}
    r = battle.fight(lone, [], attacker_population=10_000, defender_population=100)
    assert r.attacker.survivors == {"equites_imperatoris": 0}


def test_scouting_with_morale() -> None:
    # 5 pathfinders (175) against 3 scouts (60): loss (60/175)**1.5 = 0.20076 -> 4 survive.
    # Morale 0.803: (60 / 140.525)**1.5 = 0.27899 -> round(5 x 0.72101) = 4
    # Morale 0.667: (60 / 116.725)**1.5 = 0.36854 -> round(3.157) = 3
    scouts = Army("gauls", {"pathfinder": 5})
    seen = [Army("romans", {"equites_legati": 3})]
    r = battle.scout(scouts, seen, attacker_population=900, defender_population=300)
    assert (r.morale, r.loss) == (0.803, approx(0.27899))
    assert r.attacker.survivors == {"pathfinder": 4}
    r = battle.scout(scouts, seen, attacker_population=10_000, defender_population=100)
    assert r.loss == approx(0.36854)
    assert r.attacker.survivors == {"pathfinder": 3}


def test_morale_needs_both_populations() -> None:
    army = Army("gauls", {"swordsman": 1})
    with pytest.raises(InvalidRequest):
        battle.fight(army, [], attacker_population=900)
    with pytest.raises(InvalidRequest):
        battle.scout(army, [], defender_population=900)
    with pytest.raises(InvalidRequest):
        battle.fight(army, [], attacker_population=-1, defender_population=5)
