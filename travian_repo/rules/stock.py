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
    caps = (warehouse_capacity, warehouse_capacity, warehouse_capacity, granary_capacity)
    rates = (production.wood, production.clay, production.iron, production.wheat)
    return tuple(  # type: ignore[return-value]
        min(float(cap), max(0.0, amount + rate * hours))
        for amount, rate, cap in zip(stored, rates, caps)
    )


def whole(stock: Stock) -> Resources:
    """The stock a player sees and may spend: whole units, rounded down."""
    return Resources(int(stock[0]), int(stock[1]), int(stock[2]), int(stock[3]))
