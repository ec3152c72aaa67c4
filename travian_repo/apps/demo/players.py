"""The demo's NPC players: one strategy each, one turn at a time, through the public API."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Mapping

import travian_repo as tr
from travian_repo.domain.values import RESOURCE_NAMES, Movement, Resources, TradeOffer, Village
from travian_repo.npc import NPCGameInterface
from travian_repo.rules import distance, units

STRATEGIES: tuple[str, ...] = ("economy", "raider", "trader", "diplomat")

FIELD_OF: Mapping[str, str] = {
    "wood": "woodcutter", "clay": "clay_pit", "iron": "iron_mine", "wheat": "cropland",
}
STORAGE_FULL = 0.85  # build storage when the fullest resource passes this share of its cap
OFFER_AMOUNT = 300
ASK_AMOUNT = 150  # offers are 2:1, the most the market allows: surplus is cheap
ACCEPT_RESERVE = 200  # what an accepter keeps of the resource it pays with
OFFER_PATIENCE = 3  # turns before an untaken offer is withdrawn
RAID_MIN = 8  # units at home before a raider goes out
RAID_KEEP = 2  # units a raider leaves at home
MESSAGE_EVERY = 6  # turns between a diplomat's messages


@dataclass
class Npc:
    """One NPC player and what it did."""

    npc: NPCGameInterface
    name: str
    tribe: str
    strategy: str
    rng: random.Random
    home: Village
    neighbours: list[Village] = field(default_factory=list)
    raids_won: int = 0
    raids_lost: int = 0
    sent: int = 0
    received: int = 0
    trained: int = 0  # units ordered (those accepted by the game)
    accepted: int = 0
    refused: int = 0
    open_offer: tuple[int, int] | None = None  # (offer id, turn posted)
    messages: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    defeats: Counter[int] = field(default_factory=Counter)  # raids lost, by target village
    asks: int = 0  # offers withdrawn: each asks for the next scarcest resource

    @property
    def player_id(self) -> int:
        return self.npc.player_id


@dataclass
class Raid:
    raider: Npc
    movement: Movement


def meet(world: tr.World, player_id: int, index: int, seed: int) -> Npc:
    npc = world.npc(player_id)
    villages = npc.initialize()
    with world.unit_of_work(player_id) as uow:
        player = uow.players.get(player_id)
    return Npc(npc=npc, name=player.name, tribe=player.tribe,
               strategy=STRATEGIES[index % len(STRATEGIES)],
               rng=random.Random(f"{seed}:{player_id}"), home=villages[0])


def nearest(villages: list[Village], home: Village, radius: int) -> list[Village]:
    others = [v for v in villages if v.player_id != home.player_id]
    return sorted(others, key=lambda v: (distance(home.x, home.y, v.x, v.y, radius=radius), v.id))[:3]


def play_turn(p: Npc, turn: int, by_id: dict[int, Npc], raids: list[Raid]) -> None:
    p.home = p.npc.initialize()[0]
    _grow(p)
    if p.strategy == "raider":
        _raid(p, raids)
    elif p.strategy == "trader":
        _offer(p, turn)
        _accept(p, by_id)
    elif p.strategy == "economy":
        _grow(p)  # the second build slot
        _accept(p, by_id)
    else:
        _diplomacy(p, turn)
        _accept(p, by_id)


def _count(p: Npc, ok: bool) -> bool:
    if ok:
        p.accepted += 1
    else:
        p.refused += 1
        error = p.npc.last_error
        p.refusals[f"{error.code}: {error}" if error is not None else "refused"] += 1
    return ok


def _grow(p: Npc) -> None:
    home = p.home
    queue = home.build_queue or ()
    if len(queue) >= 2:
        return
    stock = home.resources or Resources()
    production = home.production or Resources()
    warehouse = home.warehouse_capacity or 1
    granary = home.granary_capacity or 1
    queued = {o.building for o in queue}
    if max(stock.wood, stock.clay, stock.iron) >= STORAGE_FULL * warehouse and "warehouse" not in queued:
        choice = "warehouse"
    elif stock.wheat >= STORAGE_FULL * granary and "granary" not in queued:
        choice = "granary"
    else:
        rates = {name: getattr(production, name) for name in RESOURCE_NAMES}
        rates["wheat"] = rates["wheat"] * 2 if rates["wheat"] > 20 else 0  # feed the troops first
        poorest = min(RESOURCE_NAMES, key=lambda name: (rates[name], p.rng.random()))
        choice = FIELD_OF[poorest]
    if _count(p, p.npc.build_in_village(home.id, choice)):
        p.home = p.npc.initialize()[0]


def _train(p: Npc, unit: str, low: int, high: int) -> None:
    count = p.rng.randint(low, high)
    if _count(p, p.npc.train_army(p.home.id, unit, count)):
        p.trained += count


def _best_unit(village: Village, tribe: str, strength: Callable[[units.UnitSpec], int]) -> str:
    """The strongest barracks infantry the village can train (its buildings allow it)."""
    trainable = [u for u in units.units_of(tribe)
                 if u.role == "regular" and "barracks" in u.trained_in
                 and all(village.level(b) >= level for b, level in u.research_prerequisites)]
    return max(trainable, key=strength).name if trainable else units.units_of(tribe)[0].name


def _raid(p: Npc, raids: list[Raid]) -> None:
    first = _best_unit(p.home, p.tribe, lambda u: u.attack)
    _train(p, first, 3, 8)
    with p.npc.world.unit_of_work(p.player_id) as uow:
        at_home = uow.military.troops(p.home.id).get(first)
        # the weakest of the nearest: lowest population now, then nearest
        targets = [uow.villages.get(v.id) for v in p.neighbours]
    # after each lost raid, wait for a bigger army
    if at_home < RAID_MIN + 4 * sum(p.defeats.values()) or not targets:
        return
    order = {v.id: i for i, v in enumerate(p.neighbours)}
    target = min(targets, key=lambda v: (p.defeats[v.id], v.population, order[v.id]))
    sent = at_home - RAID_KEEP
    if _count(p, p.npc.launch_raid(p.home.id, target.x, target.y, {first: sent})):
        movement = p.npc.last_result
        assert isinstance(movement, Movement)
        raids.append(Raid(p, movement))


def _won(raid: Raid, won: bool) -> None:
    if won:
        raid.raider.raids_won += 1
    else:
        raid.raider.raids_lost += 1
        raid.raider.defeats[raid.movement.to_village_id] += 1


def resolve_raids(raids: list[Raid], at: datetime) -> list[Raid]:
    """Raids arriving at ``at`` (just processed): won when survivors are on their way home."""
    pending = [r for r in raids if r.movement.arrives_at > at]
    arrived = [r for r in raids if r.movement.arrives_at <= at]
    seen: dict[tuple[int, int], list[Movement]] = {}
    for raid in arrived:
        mv = raid.movement
        key = (raid.raider.player_id, mv.from_village_id)
        if key not in seen:
            with raid.raider.npc.world.unit_of_work(raid.raider.player_id) as uow:
                seen[key] = uow.military.incoming(mv.from_village_id)
        returns = seen[key]
        back = next((r for r in returns if r.kind == "return"
                     and r.from_village_id == mv.to_village_id and r.departed_at == mv.arrives_at),
                    None)
        if back is not None:
            returns.remove(back)  # two raids arriving together: one return each
        _won(raid, back is not None)
    return pending


def _offer(p: Npc, turn: int) -> None:
    if p.open_offer is not None:
        offer_id, posted = p.open_offer
        if turn - posted < OFFER_PATIENCE:
            return
        p.open_offer = None
        if not p.npc.act(lambda uow: uow.trade.cancel_offer(p.home.id, offer_id)):
            return  # taken meanwhile (counted by whoever accepted it)
        p.accepted += 1
        p.asks += 1
    stock = p.home.resources or Resources()
    by_need = sorted(RESOURCE_NAMES, key=lambda name: (getattr(stock, name), name))
    surplus, scarce = by_need[-1], by_need[p.asks % (len(by_need) - 1)]
    if surplus == scarce or getattr(stock, surplus) < OFFER_AMOUNT + ACCEPT_RESERVE:
        return
    if _count(p, p.npc.act(lambda uow: uow.trade.create_offer(
            p.home.id, surplus, OFFER_AMOUNT, scarce, ASK_AMOUNT))):
        offer = p.npc.last_result
        assert isinstance(offer, TradeOffer)
        p.open_offer = (offer.id, turn)


def _accept(p: Npc, by_id: dict[int, Npc]) -> None:
    with p.npc.world.unit_of_work(p.player_id) as uow:
        market = uow.trade.offers(p.home.id)
    stock = p.home.resources or Resources()
    for offer in market:
        wanted = (getattr(stock, offer.offer_resource) < getattr(stock, offer.request_resource)
                  or offer.offer_amount >= 2 * offer.request_amount)
        if not wanted or offer.player_id not in by_id:
            continue
        if getattr(stock, offer.request_resource) < offer.request_amount + ACCEPT_RESERVE:
            continue
        if _count(p, p.npc.act(lambda uow: uow.trade.accept_offer(p.home.id, offer.id))):
            offerer = by_id[offer.player_id]
            offerer.sent += offer.offer_amount
            offerer.received += offer.request_amount
            p.sent += offer.request_amount
            p.received += offer.offer_amount
            if offerer.open_offer is not None and offerer.open_offer[0] == offer.id:
                offerer.open_offer = None
        return  # one try a turn


def _diplomacy(p: Npc, turn: int) -> None:
    if turn % 4 == 1:
        _train(p, _best_unit(p.home, p.tribe, lambda u: u.def_infantry + u.def_cavalry), 1, 3)
    if turn % MESSAGE_EVERY != 0 or not p.neighbours:
        return
    to = p.neighbours[p.messages % len(p.neighbours)]
    p.messages += 1
    _count(p, p.npc.send_diplomatic_message(
        to.player_id, f"Greetings from {p.name}",
        f"{p.name} of the {p.tribe} at ({p.home.x}|{p.home.y}) wishes you peace and good trade "
        f"(letter {p.messages})."))


__all__ = ["STRATEGIES", "Npc", "Raid", "meet", "nearest", "play_turn", "resolve_raids"]
