"""The engine clock: everything that falls due in the world, processed in time order."""

from travian_repo.sandbox.engine.runner import (
    HOSTILE, ORDER, AcceleratedClock, Due, Engine, EngineThread,
)

__all__ = ["HOSTILE", "ORDER", "AcceleratedClock", "Due", "Engine", "EngineThread"]
