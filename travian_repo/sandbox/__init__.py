"""A local world for development and tests: world generation, the manual clock, the engine,
the v1 server and its serving, and upgrading a world's schema.

The public names load on first use: opening a SQL world imports ``sandbox.engine`` (its
catch-up), and that must not load world generation or Alembic along with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from travian_repo.sandbox.clock import Clock
    from travian_repo.sandbox.engine import AcceleratedClock, Engine, EngineThread
    from travian_repo.sandbox.worldgen import WorldSummary, create_world, player_tokens
    from travian_repo.sql.migrate import UpgradeResult, upgrade_world

_WHERE = {
    "AcceleratedClock": "travian_repo.sandbox.engine",
    "Clock": "travian_repo.sandbox.clock",
    "Engine": "travian_repo.sandbox.engine",
    "EngineThread": "travian_repo.sandbox.engine",
    "UpgradeResult": "travian_repo.sql.migrate",
    "WorldSummary": "travian_repo.sandbox.worldgen",
    "create_world": "travian_repo.sandbox.worldgen",
    "player_tokens": "travian_repo.sandbox.worldgen",
    "upgrade_world": "travian_repo.sql.migrate",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "AcceleratedClock",
    "Clock",
    "Engine",
    "EngineThread",
    "UpgradeResult",
    "WorldSummary",
    "create_world",
    "player_tokens",
    "upgrade_world",
]
