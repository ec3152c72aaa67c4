"""Walls and siege weapons: a wall's effect at a level, its durability against rams, the
rams' early strike that lowers the wall for the battle, and the damage rams and catapults do
after it. Pure functions; :mod:`travian_repo.rules.battle` puts them together.

- **Wall** (:func:`wall`): a flat defence ``base_defense_per_level x level`` (data file)
  added to the defence, and a multiplier ``round(base**level, 3)`` on the total: city wall
  (Romans) 1.030, palisade (Gauls) 1.025, earth wall (Teutons) 1.020 per level; a level-3
  city wall multiplies by 1.093.
- **Durability** against rams (Travian support, "Walls and Rams"): city wall 1, palisade 2,
  earth wall 5. The rams' points are divided by it, early and after the battle.
- **Demolition** (:func:`demolish_points`, :func:`demolish`): ``points = 4 x sigma(r) x
  count`` with ``r`` the battle's attack/defence ratio and ``sigma(r) = r**1.5 / 2`` up to
  1, ``(2 - r**-1.5) / 2`` above; 0.5 is taken off, the rest divided by the durability, and
  levels fall one by one, level ``L`` costing ``L``.
- **Early ramming** (:func:`wall_during`): before the fight the rams strike with the
  points of the ratio at the full wall (0.5 taken off); bringing a wall at level ``L`` down
  by ``d`` levels costs :func:`early_ram_costs` ``[d - 1]`` times the durability (rounded
  down). The first half of the levels cost ``d x (2L + 1) - 2d**2``, the next one
  ``L(L+1)/2 + 20`` and each further one 51, 53.5, 56 ... more. The battle is fought at the
  level left; the wall's flat defence stays that of the full wall, only its multiplier
  falls (the rule of the public T4.6 clone).

Not simulated: smithy upgrades of rams and catapults, the stonemason, artefacts.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from travian_repo.rules import units as unit_rules
from travian_repo.rules.buildings import WALLS
from travian_repo.rules.data_file import round_half_up, rules_data

# Travian support, "Walls and Rams": how much harder each wall is for rams.
WALL_DURABILITY: dict[str, int] = {"city_wall": 1, "palisade": 2, "earth_wall": 5}
EARLY_RAM_STEP = 20  # the jump past the first half of the levels
EARLY_RAM_FIRST = 51  # what the level after it costs more, growing by EARLY_RAM_GROWTH
EARLY_RAM_GROWTH = 2.5
DEMOLITION_OFFSET = 0.5  # points the rams and catapults lose before doing any damage


@dataclass(frozen=True)
class Wall:
    """A wall's effect at a level: flat defence added, then a multiplier on the total;
    ``durability`` divides the rams' points (1: no wall, or a city wall)."""

    name: str | None = None
    level: int = 0
    flat: float = 0.0
    multiplier: float = 1.0
    durability: int = 1


def _bonus_base(name: str) -> float:
    """The per-level multiplier of a wall (``1.030**level - 1`` in the data file -> 1.03)."""
    text = str(rules_data()["buildings"][name]["effect"]["defense_bonus"])
    head, sep, tail = text.partition("**")
    if not sep or tail.replace(" ", "") != "level-1":  # pragma: no cover - the form is fixed
        raise ValueError(f"cannot read the wall bonus {text!r}")
    return float(head)


def wall_multiplier(name: str, level: int) -> float:
    """``round(base**level, 3)``, half up (1.0 at level 0)."""
    if level <= 0:
        return 1.0
    return round_half_up(_bonus_base(name) ** level * 1000) / 1000


def wall(tribe: str, level: int) -> Wall:
    """The tribe's wall at ``level`` (its flat defence, multiplier and durability)."""
    if type(tribe) is str and type(level) is int:  # a value: every battle's wall is kept
        return _wall(tribe, level)
    return _make_wall(tribe, level)


@functools.lru_cache(maxsize=1024)
def _wall(tribe: str, level: int) -> Wall:
    return _make_wall(tribe, level)


def _make_wall(tribe: str, level: int) -> Wall:
    name = WALLS[unit_rules.check_tribe(tribe)]
    durability = WALL_DURABILITY[name]
    if level <= 0:
        return Wall(name, 0, durability=durability)
    effect = rules_data()["buildings"][name]["effect"]
    return Wall(
        name=name,
        level=level,
        flat=float(effect["base_defense_per_level"]) * level,
        multiplier=wall_multiplier(name, level),
        durability=durability,
    )


def lowered(full: Wall, level: int) -> Wall:
    """``full`` fought at ``level``: the multiplier of that level, the flat defence and the
    durability of the full wall."""
    if level == full.level or full.name is None:
        return full
    return Wall(full.name, level, full.flat, wall_multiplier(full.name, level),
                full.durability)


def sigma(ratio: float) -> float:
    """The demolition strength of an attack/defence ratio (``sigma(ratio**1.5)`` of the
    clone, kirilloid ``sigma``)."""
    return float((2 - ratio ** -1.5) / 2 if ratio > 1 else ratio ** 1.5 / 2)


def demolish_points(count: int, ratio: float) -> float:
    """``4 x sigma(ratio) x count`` (no smithy upgrades, no stonemason)."""
    return 4 * sigma(ratio) * count if count > 0 else 0.0


def demolish(level: int, points: float, durability: int = 1) -> int:
    """The level left: 0.5 is taken off the points, the rest divided by ``durability``,
    then each level ``L`` costs ``L`` points."""
    damage = (points - DEMOLITION_OFFSET) / durability
    while level > 0 and damage >= level:
        damage -= level
        level -= 1
    return level


def early_ram_costs(level: int) -> list[float]:
    """Points the rams need to lower a wall at ``level`` by 1, 2 ... ``level`` levels
    before the battle (durability 1)."""
    half = level // 2
    costs: list[float] = []
    for down in range(1, level + 1):
        if down <= half:
            costs.append(down * (2 * level + 1) - 2 * down * down)
        else:
            k = down - half - 1  # levels past the jump
            costs.append(level * (level + 1) / 2 + EARLY_RAM_STEP + EARLY_RAM_FIRST * k
                         + EARLY_RAM_GROWTH * k * (k - 1) / 2)
    return costs


def wall_during(level: int, rams: int, ratio: float, durability: int = 1) -> int:
    """The wall level the battle is fought at: what ``rams`` striking first, at the
    attack/defence ``ratio`` of the full wall, leave of a wall at ``level``."""
    if level <= 0 or rams <= 0:
        return level
    points = demolish_points(rams, ratio) - DEMOLITION_OFFSET
    fallen = 0
    for cost in early_ram_costs(level):
        if points < math.floor(cost * durability):
            break
        fallen += 1
    return level - fallen


__all__ = [
    "WALL_DURABILITY",
    "Wall",
    "demolish",
    "demolish_points",
    "early_ram_costs",
    "lowered",
    "sigma",
    "wall",
    "wall_during",
    "wall_multiplier",
]
