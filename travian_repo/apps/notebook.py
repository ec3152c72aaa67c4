"""Notebook helpers: lists of domain values as tables in Jupyter.

Every domain value (``Village``, ``Player``, ``Movement`` ...) already renders as a table in
Jupyter (``_repr_html_``). The repositories return plain ``list``s, and stay plain lists:
these helpers show a list of values as one table, a row per value:

    from travian_repo import notebook
    notebook.enable()                          # every list of values shows as a table
    world.players.ranking(limit=5)             # -> a table of RankingEntry rows

    notebook.table(world.military.outgoing(1)) # one list, without enable()
    notebook.world_map(world)                  # the villages and movements, as SVG


``%load_ext travian_repo.notebook`` does what ``enable()`` does. Lists that are empty or
mix kinds keep their usual repr.
"""

from __future__ import annotations

import importlib
from typing import Any, Iterable

from travian_repo.apps.world_map import WorldMap, world_map
from travian_repo.domain.display import table_html, table_text


class Table(list):  # type: ignore[type-arg]
    """A list of values that shows as a table: HTML in Jupyter, text in a terminal
    (``print``, IPython); still a list."""

    def _repr_html_(self) -> str | None:
        return table_html(list(self))

    def __str__(self) -> str:
        return table_text(list(self)) or super().__repr__()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def table(values: Iterable[Any]) -> Table:
    """``values`` as a :class:`Table`: a list that Jupyter shows as one table."""
    return Table(values)


def _list_html(values: Any) -> str | None:
    return table_html(values)


def enable(ipython: Any = None) -> bool:
    """Show every list (and tuple) of domain values as a table in this IPython session.

    Returns False when not running under IPython (nothing to do)."""
    if ipython is None:
        try:
            ipython_module = importlib.import_module("IPython")
        except ImportError:
            return False
        ipython = ipython_module.get_ipython()
    if ipython is None:
        return False
    formatter = ipython.display_formatter.formatters["text/html"]
    formatter.for_type(list, _list_html)
    formatter.for_type(tuple, _list_html)
    return True


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext travian_repo.notebook``."""
    enable(ipython)


__all__ = ["Table", "WorldMap", "enable", "load_ipython_extension", "table", "world_map"]
