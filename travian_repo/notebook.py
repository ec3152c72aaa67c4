"""``%load_ext travian_repo.notebook`` and ``from travian_repo import notebook`` keep working:
the helpers live in ``travian_repo.apps.notebook``."""

from travian_repo.apps.notebook import Table, enable, load_ipython_extension, table

__all__ = ["Table", "enable", "load_ipython_extension", "table"]
