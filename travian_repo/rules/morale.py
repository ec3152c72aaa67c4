"""Morale: a bigger player attacking a smaller one fights with less (Travian 4).

``P_a`` and ``P_d`` are the attacking and the defending player's total populations (every
village), ``r`` the battle's attack/defence ratio before morale (the wall included):

- **Attack morale** (:func:`morale`): 1 when ``P_a <= P_d``; otherwise
  ``(P_a / max(P_d, 3)) ** (-0.2 x min(r, 1))`` rounded to 3 decimals, at least 0.667.
  It multiplies the attack points (so the defence counts up to 1.5 times). A weak attack
  (``r < 1``) suffers less of it.
- **Catapult morale** (:func:`catapult_morale`): ``(P_a / P_d) ** -0.3`` between 0.3333 and
  1, on the catapults' demolition points.

The defender's population counts as at least 3 in both.

Sources: kirilloid/travian (``fns.morale``, T3 ``cataMorale``) and the T4.6 clone
(``remorale``), which agree but for that floor (kirilloid: 3 for the attack morale, none for
the catapults; the clone: 1).
"""

from __future__ import annotations

from travian_repo.rules.data_file import check_int, round_half_up

MORALE_MIN = 0.667
MORALE_EXPONENT = -0.2
DEFENDER_POPULATION_FLOOR = 3
CATAPULT_MORALE_MIN = 0.3333
CATAPULT_MORALE_EXPONENT = -0.3


def _check(attacker_population: int, defender_population: int) -> tuple[int, int]:
    if (type(attacker_population) is int and type(defender_population) is int
            and attacker_population >= 0 and defender_population >= 0):
        return attacker_population, defender_population  # valid: no call to check them
    return (check_int(attacker_population, "attacker_population", minimum=0),
            check_int(defender_population, "defender_population", minimum=0))


def morale(attacker_population: int, defender_population: int, ratio: float = 1.0) -> float:
    """The factor on the attack points; ``ratio``: attack/defence before morale."""
    att, dfn = _check(attacker_population, defender_population)
    if att <= dfn:
        return 1.0
    exponent = MORALE_EXPONENT * min(max(ratio, 0.0), 1.0)
    value = (att / max(dfn, DEFENDER_POPULATION_FLOOR)) ** exponent
    return max(MORALE_MIN, min(1.0, round_half_up(value * 1000) / 1000))


def catapult_morale(attacker_population: int, defender_population: int) -> float:
    """The factor on the catapults' demolition points."""
    att, dfn = _check(attacker_population, defender_population)
    if att <= dfn:
        return 1.0
    value = float((att / max(dfn, DEFENDER_POPULATION_FLOOR)) ** CATAPULT_MORALE_EXPONENT)
    return max(CATAPULT_MORALE_MIN, min(1.0, value))


__all__ = ["MORALE_MIN", "catapult_morale", "morale"]
