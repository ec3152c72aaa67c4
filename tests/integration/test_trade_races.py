"""Trade writes raced by 2 and 32 threads on PostgreSQL, through the SQL side and the server.

Every round starts from a stock set straight in the database with the clock standing still,
so the ledger is exact: each village's stock changes by exactly what the winning writes
cost and what was refunded. After every round: no negative stock, stock within storage,
busy merchants within what the marketplace gives, exactly the expected number of winners,
and every loser has the typed error.

The developed world: player N owns village N; tribes cycle romans, teutons, gauls.
"""

from __future__ import annotations

from typing import Any

import pytest

import travian_repo as tr
from travian_repo.domain.values import Resources, Shipment, TradeOffer
from travian_repo.rules import economy
from travian_repo.sql import schema
from tests.integration.race_arena import (  # noqa: F401 - arena, side, threads: fixtures
    Act, Arena, Outcome, arena, errors, one_winner, only_errors, side, threads, winners,
)

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["postgresql"])]

ROUNDS = 2
FULL = Resources(2000, 2000, 2000, 2000)
ACCEPTERS = (1, 3, 4, 5, 6)  # everyone but village 2, whose offers are raced for
TRIBES = {1: "romans", 2: "teutons", 3: "gauls", 4: "romans", 5: "teutons", 6: "gauls"}


def merchants(village_id: int, amount: int) -> int:
    return economy.merchants_needed(TRIBES[village_id], amount)


def offer_state_conflicts(outcomes: list[Outcome], *states: str) -> None:
    """Every loser got Conflict saying the offer is no longer open (not a lock timeout or
    a write that "kept colliding"), with the state it is in."""
    only_errors(outcomes, tr.Conflict)
    for exc in errors(outcomes):
        assert exc.details.get("state") in states, (str(exc), exc.details)


# ---- merchants and stock of one village, raced ---------------------------------------------

@pytest.mark.parametrize("op", ["create_offer", "send_resources", "mixed"])
def test_merchants_and_stock_of_one_village(arena: Arena, threads: int, op: str) -> None:
    """Threads of player 1 each put 500 wood on the market or on the road from village 1:
    exactly as many win as the free merchants and the stock allow, never more."""
    # (marketplace level, wood in stock) per round: the merchants bind, then the stock.
    rounds = [(1, 4000), (5, 500)] if threads == 2 else [(5, 4000), (5, 1500)]
    for level, wood in rounds:
        arena.clear_trade()
        arena.set_level(1, "marketplace", level)
        arena.set_stock(1, Resources(wood, 2000, 2000, 2000))
        arena.set_stock(2, FULL)

        def write(index: int, act: Act) -> Any:
            kind = op if op != "mixed" else ("create_offer", "send_resources")[index % 2]
            with act(1) as uow:
                if kind == "create_offer":
                    return uow.trade.create_offer(1, "wood", 500, "clay", 500)
                return uow.trade.send_resources(1, 2, {"wood": 500})

        outcomes = arena.race(threads, write)
        won = winners(outcomes)
        expected = min(threads, level // merchants(1, 500), wood // 500)
        assert len(won) == expected, (level, wood, outcomes)
        only_errors(outcomes, tr.RuleViolation, tr.InsufficientResources)
        arena.check_villages()
        assert arena.stock(1) == Resources(wood - 500 * len(won), 2000, 2000, 2000)
        assert arena.stock(2) == FULL  # nothing arrives while the clock stands still
        offers = arena.rows(schema.trade_offers)
        shipments = arena.rows(schema.shipments)
        assert sorted(o.id for o in offers) == sorted(w.id for w in won
                                                      if isinstance(w, TradeOffer))
        assert sorted(s.id for s in shipments) == sorted(w.id for w in won
                                                         if isinstance(w, Shipment))
        assert all(r.merchants == merchants(1, 500) for r in offers + shipments)
        assert all(o.state == "open" and o.offer_amount == 500 for o in offers)
        assert all(s.wood == 500 and s.from_village_id == 1 for s in shipments)


# ---- one offer, many takers ------------------------------------------------------------------

def _post_offer(arena: Arena) -> TradeOffer:
    """Village 2 offers 1000 iron for 800 wood (stock 2000 each before, so 1000 iron after)."""
    arena.clear_trade()
    for village in range(1, 7):
        arena.set_stock(village, FULL)
    with arena.setup(2) as uow:
        offer: TradeOffer = uow.trade.create_offer(2, "iron", 1000, "wood", 800)
    assert arena.stock(2) == Resources(2000, 2000, 1000, 2000)
    return offer


def _check_accepted_by(arena: Arena, offer: TradeOffer, winner: int) -> None:
    (stored,) = arena.rows(schema.trade_offers)
    assert stored.state == "accepted"
    shipments = sorted((s.from_village_id, s.to_village_id, s.wood, s.iron, s.merchants)
                       for s in arena.rows(schema.shipments))
    assert shipments == sorted([(winner, 2, 800, 0, merchants(winner, 800)),
                                (2, winner, 0, 1000, offer.merchants)])
    assert arena.stock(2) == Resources(2000, 2000, 1000, 2000)  # no refund
    for village in ACCEPTERS:
        paid = 800 if village == winner else 0
        assert arena.stock(village) == Resources(2000 - paid, 2000, 2000, 2000)


def test_one_offer_accepted_once(arena: Arena, threads: int) -> None:
    """Players 1, 3, 4, 5, 6 (several threads each) accept village 2's offer at once: one
    wins, one payment, one pair of shipments; everyone else gets Conflict."""
    for _ in range(ROUNDS):
        offer = _post_offer(arena)

        def accept(index: int, act: Act) -> Any:
            player = ACCEPTERS[index % len(ACCEPTERS)]
            with act(player) as uow:
                return uow.trade.accept_offer(player, offer.id)

        outcomes = arena.race(threads, accept)
        won = one_winner(outcomes)
        offer_state_conflicts(outcomes, "accepted")
        arena.check_villages()
        _check_accepted_by(arena, offer, won.from_village_id)


def test_one_offer_cancelled_once(arena: Arena, threads: int) -> None:
    """Threads of player 2 cancel the same offer: one wins, the goods come back once."""
    for _ in range(ROUNDS):
        offer = _post_offer(arena)

        def cancel(index: int, act: Act) -> Any:
            with act(2) as uow:
                return uow.trade.cancel_offer(2, offer.id)

        outcomes = arena.race(threads, cancel)
        won = one_winner(outcomes)
        assert won.id == offer.id
        offer_state_conflicts(outcomes, "cancelled")
        arena.check_villages()
        (stored,) = arena.rows(schema.trade_offers)
        assert stored.state == "cancelled"
        assert arena.rows(schema.shipments) == []
        assert arena.stock(2) == FULL  # refunded exactly once


def test_accept_and_cancel_race(arena: Arena, threads: int) -> None:
    """Half the threads cancel (player 2), half accept (the others): exactly one of all of
    them happens, and the ledger is that one's."""
    for _ in range(ROUNDS + 1):
        offer = _post_offer(arena)

        def act_on(index: int, act: Act) -> Any:
            if index % 2 == 0:
                with act(2) as uow:
                    return uow.trade.cancel_offer(2, offer.id)
            player = ACCEPTERS[(index // 2) % len(ACCEPTERS)]
            with act(player) as uow:
                return uow.trade.accept_offer(player, offer.id)

        outcomes = arena.race(threads, act_on)
        won = one_winner(outcomes)
        offer_state_conflicts(outcomes, "accepted", "cancelled")
        arena.check_villages()
        if isinstance(won, Shipment):
            _check_accepted_by(arena, offer, won.from_village_id)
        else:
            (stored,) = arena.rows(schema.trade_offers)
            assert stored.state == "cancelled" and arena.rows(schema.shipments) == []
            for village in range(1, 7):
                assert arena.stock(village) == FULL  # refund once, nobody paid


# ---- many offers, one taker's merchants --------------------------------------------------------

def test_accepts_share_the_takers_merchants(arena: Arena, threads: int) -> None:
    """Player 1 accepts a different offer in each thread (500 iron for 500 wood, from
    villages 2-6): the winners are as many as village 1's merchants and wood allow."""
    rounds = ([(1, 2000), (5, 500)] if threads == 2 else [(3, 2000), (5, 1000)])
    for level, wood in rounds:
        arena.clear_trade()
        for village in range(2, 7):
            arena.set_level(village, "marketplace", 20)
            arena.set_stock(village, Resources(2000, 2000, 4000, 2000))
        arena.set_level(1, "marketplace", level)
        arena.set_stock(1, Resources(wood, 2000, 2000, 2000))
        offers: list[TradeOffer] = []
        for index in range(threads):
            village = 2 + index % 5
            with arena.setup(village) as uow:
                offers.append(uow.trade.create_offer(village, "iron", 500, "wood", 500))
        before = {village: arena.stock(village) for village in range(2, 7)}

        def accept(index: int, act: Act) -> Any:
            with act(1) as uow:
                return uow.trade.accept_offer(1, offers[index].id)

        outcomes = arena.race(threads, accept)
        won = winners(outcomes)
        assert len(won) == min(threads, level // merchants(1, 500), wood // 500), outcomes
        only_errors(outcomes, tr.RuleViolation, tr.InsufficientResources)
        arena.check_villages()
        assert arena.stock(1) == Resources(wood - 500 * len(won), 2000, 2000, 2000)
        for village, stock in before.items():
            assert arena.stock(village) == stock
        accepted = [o for o in arena.rows(schema.trade_offers) if o.state == "accepted"]
        assert len(accepted) == len(won)
        shipments = arena.rows(schema.shipments)
        assert sorted((s.from_village_id, s.iron) for s in shipments if s.to_village_id == 1) \
            == sorted((o.village_id, 500) for o in accepted)
        assert sorted(s.id for s in shipments if s.from_village_id == 1) \
            == sorted(w.id for w in won)


# ---- one village, every kind of trade write at once --------------------------------------------

def test_cancel_offer_and_spend_on_one_village(arena: Arena, threads: int) -> None:
    """Threads of player 2 cancel its offer, make offers and send goods from village 2 at
    once (3 merchants, 1 held by the offer): the refund comes once, the merchants are never
    over-committed, and the stock is exactly what the winners spent and the refund gave."""
    for _ in range(ROUNDS):
        arena.set_level(2, "marketplace", 3)
        offer = _post_offer(arena)  # village 2: 1000 iron held, 1 merchant busy

        def write(index: int, act: Act) -> Any:
            with act(2) as uow:
                if index % 3 == 0:
                    return uow.trade.cancel_offer(2, offer.id)
                if index % 3 == 1:
                    return uow.trade.create_offer(2, "wood", 500, "clay", 500)
                return uow.trade.send_resources(2, 1, {"clay": 500})

        outcomes = arena.race(threads, write)
        cancels = [o for i, o in enumerate(outcomes) if i % 3 == 0]
        spends = [o for i, o in enumerate(outcomes) if i % 3 != 0]
        one_winner(cancels)
        offer_state_conflicts(cancels, "cancelled")
        only_errors(spends, tr.RuleViolation)
        won = winners(spends)
        # 2 merchants free at the start, one more once the cancel is through
        assert min(len(spends), 2) <= len(won) <= 3, outcomes
        arena.check_villages()
        offers = [w for w in won if isinstance(w, TradeOffer)]
        shipments = [w for w in won if isinstance(w, Shipment)]
        assert arena.stock(2) == Resources(2000 - 500 * len(offers),
                                           2000 - 500 * len(shipments), 2000, 2000)
        assert arena.stock(1) == FULL
        states = {o.id: o.state for o in arena.rows(schema.trade_offers)}
        assert states == {offer.id: "cancelled", **{o.id: "open" for o in offers}}
        assert sorted(s.id for s in arena.rows(schema.shipments)) == sorted(
            s.id for s in shipments)
