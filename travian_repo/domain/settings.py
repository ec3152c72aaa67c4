"""The world's settings as a value: what ``world.settings`` and ``GET /v1/world`` answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Settings:
    """A world's settings and the server's time when they were read.

    ``world_id``: the name clients send as ``X-World-Id``; ``world_uid``: the world's
    identity, made with it (worlds may share a name, never this); ``speed``: the server speed (times
    normal); ``map_radius``: coordinates run from -radius to +radius on both axes (the map
    wraps); ``tournament_square_bonus_percent``: troop speed bonus per level past 20
    squares; ``build_queue_limit``: orders a village's build queue holds; ``morale``: whether
    battles weigh the defender's population against the attacker's; ``server_time``:
    the world's clock at the read (a sandbox clock may stand still or run fast).
    """

    world_id: str
    world_uid: str
    speed: int
    map_radius: int
    tournament_square_bonus_percent: int
    build_queue_limit: int
    morale: bool
    server_time: datetime


__all__ = ["Settings"]
