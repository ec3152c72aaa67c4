"""``%load_ext travian_repo.notebook`` and ``from travian_repo import notebook`` keep working:
the helpers live in ``travian_repo.apps.notebook``."""

from travian_repo.apps.notebook import (
    Table, WorldMap, enable, load_ipython_extension, table, world_map,
)

__all__ = ["Table", "WorldMap", "enable", "load_ipython_extension", "table", "world_map"]
