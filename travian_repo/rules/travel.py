"""Travel on the wrap-around (torus) map: coordinates, distances, travel times.

A map of radius R has coordinates -R..R on both axes (width 2R+1): 200 since T4.6,
400 on classic T4 worlds. Its edges wrap.
"""

from __future__ import annotations

import math

from travian_repo.rules.buildings import top_level
from travian_repo.rules.data_file import check_int, check_number, round_half_up, rules_data

# Disputed (see the data file's SOURCES): the tournament square speeds troops up beyond
# 20 fields by +20 %/level on the current official game, by +10 %/level in kirilloid's
# calculator and the T4.6 clone. travel_seconds defaults to the official value; callers
# pass the world's setting.
TOURNAMENT_SQUARE_BONUS_OFFICIAL = 20
TOURNAMENT_SQUARE_BONUS_CLASSIC = 10


def _radius(radius: object) -> int:
    return check_int(radius, "radius", minimum=1)


def in_map(x: int, y: int, *, radius: int) -> bool:
    r = _radius(radius)
    x = check_int(x, "x")
    y = check_int(y, "y")
    return -r <= x <= r and -r <= y <= r


def wrap_delta(a: int, b: int, *, radius: int) -> int:
    """The signed shortest difference a - b along one axis, in -R..R."""
    r = _radius(radius)
    a = check_int(a, "coordinate", minimum=-r, maximum=r)
    b = check_int(b, "coordinate", minimum=-r, maximum=r)
    width = 2 * r + 1
    return (a - b + width + r) % width - r


def distance(x1: int, y1: int, x2: int, y2: int, *, radius: int) -> float:
    """Straight-line distance in fields on the torus (not rounded)."""
    dx = wrap_delta(x1, x2, radius=radius)
    dy = wrap_delta(y1, y2, radius=radius)
    return math.hypot(dx, dy)


def troop_speed_factor(server_speed: int) -> int:
    """How much faster troops walk on a speed server (x3 and x5 walk only x2).

    Speeds missing from the table take the factor of the largest listed speed below
    them (x4 -> x2 like x3; x20 -> x4 like x10): the game never walks faster than listed.
    """
    speed = check_int(server_speed, "server_speed", minimum=1)
    table = rules_data()["travel"]["server_speed_factors"]
    factor = 1
    for listed, multiplier in zip(table["speeds"], table["troop_speed_multiplier"]):
        if int(listed) <= speed:
            factor = int(multiplier)
    return factor


def travel_seconds(
    dist: float,
    speed: float,
    *,
    server_speed: int = 1,
    tournament_square_level: int = 0,
    tournament_square_bonus_percent: int = TOURNAMENT_SQUARE_BONUS_OFFICIAL,
) -> int:
    """Seconds to cover ``dist`` fields at ``speed`` fields/hour (the slowest unit, at x1).

    The tournament square only speeds up the part beyond 20 fields. Merchants pass
    tournament_square_level=0. Rounded half up to whole seconds.
    """
    d = check_number(dist, "distance")
    v = check_number(speed, "speed", positive=True) * troop_speed_factor(server_speed)
    level = check_int(tournament_square_level, "tournament_square_level", minimum=0,
                      maximum=top_level("tournament_square"))
    bonus = check_int(tournament_square_bonus_percent, "tournament_square_bonus_percent",
                      minimum=0)
    threshold = float(rules_data()["travel"]["tournament_square"]["applies_beyond_fields"])
    if d <= threshold:
        hours = d / v
    else:
        hours = threshold / v + (d - threshold) / (v * (1 + bonus / 100 * level))
    return round_half_up(hours * 3600)


__all__ = [
    "TOURNAMENT_SQUARE_BONUS_CLASSIC",
    "TOURNAMENT_SQUARE_BONUS_OFFICIAL",
    "distance",
    "in_map",
    "travel_seconds",
    "troop_speed_factor",
    "wrap_delta",
]
