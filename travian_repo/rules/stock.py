"""Stock over time: what the engine says a village holds now."""

from __future__ import annotations

from travian_repo.domain.values import Resources

Stock = tuple[float, float, float, float]


def settle_stock(
    stored: Stock,
    production: Resources,
    *,
    warehouse_capacity: int,
    granary_capacity: int,
    elapsed_seconds: float,
) -> Stock:
    """stored + production x elapsed, capped by storage and never below zero.

    A stock already above its cap (storage lost since) is cut to the cap, as in the game.
    """
    hours = max(0.0, elapsed_seconds) / 3600.0
    wood, clay, iron, wheat = stored
    ware, gran = float(warehouse_capacity), float(granary_capacity)
    # Unrolled (the engine settles a stock per event): each is min(cap, max(0, s + r x h)).
    return (min(ware, max(0.0, wood + production.wood * hours)),
            min(ware, max(0.0, clay + production.clay * hours)),
            min(ware, max(0.0, iron + production.iron * hours)),
            min(gran, max(0.0, wheat + production.wheat * hours)))


def whole(stock: Stock) -> Resources:
    """The stock a player sees and may spend: whole units, rounded down."""
    return Resources(int(stock[0]), int(stock[1]), int(stock[2]), int(stock[3]))
