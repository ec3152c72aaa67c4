"""A local world for development and tests: generation (and, later, the engine and server)."""

from travian_repo.sandbox.clock import Clock
from travian_repo.sandbox.engine import AcceleratedClock, Engine, EngineThread
from travian_repo.sandbox.worldgen import WorldSummary, create_world, player_tokens
from travian_repo.sql.migrate import UpgradeResult, upgrade_world

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
