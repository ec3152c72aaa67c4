"""The demo: NPC players of different tribes and strategies play a world for some days.

Every NPC acts through the public API only (``NPCGameInterface`` and the repositories),
once per turn of game time; between turns the engine moves the world on (builds finish,
troops are trained, raids arrive and fight, merchants deliver, survivors come home). On an
embedded or PostgreSQL world the demo drives the engine itself with a :class:`Clock`;
through a running server (``api_url``) each NPC connects with its own token and the server's
sandbox route ``POST /v1/sandbox/advance`` moves the server's manual clock.

The strategies (by player id, cycling):

- ``economy``: keeps both build slots busy (storage when nearly full, else its poorest
  resource field) and accepts a market offer that evens out its stock (it has less of what
  is offered than of what is asked) or gives twice what it costs, keeping a reserve;
- ``raider``: trains its first unit and raids the weakest of its three nearest neighbours
  (the one it lost fewest raids to, then the smallest);
- ``trader``: offers 300 of its surplus for 150 of its scarcest resource; an offer nobody
  took in three hours is withdrawn and the next one asks for the next scarcest; accepts
  others' offers as ``economy`` does;
- ``diplomat``: messages its neighbours in turn, trains a few defenders, accepts offers as
  ``economy`` does.

Every player builds. Randomness comes from one ``random.Random`` per player, seeded from the
demo seed and the player id, and every decision reads the world, so the same seed on the same
world plays the same game on SQLite, on PostgreSQL and through the HTTP API.

Raids won and lost are read from the world at each raid's arrival: the engine is stopped at
that instant and the raider looks at its incoming movements; survivors are on their way home
(a ``return`` movement leaving the target at the arrival time) when the raid was won, nobody
is when it was lost (the attack report's ``won`` flag, seen through the public API).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Mapping, Protocol, TextIO

import travian_repo as tr
from travian_repo.domain.values import RESOURCE_NAMES, Movement, Resources, TradeOffer, Village
from travian_repo.npc import NPCGameInterface
from travian_repo.rules import distance, units

DEMO_START = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)
DEMO_DATABASE_FILE = "travian_demo.db"
TURN_SECONDS = 3600
STRATEGIES: tuple[str, ...] = ("economy", "raider", "trader", "diplomat")
DEFAULT_MAP_RADIUS = 200  # create_world's default; over HTTP the radius is not published

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

HEADER: tuple[str, ...] = ("player", "tribe", "strategy", "pop", "villages", "troops",
                           "raids won", "raids lost", "sent", "received")
LEGEND = (
    "pop = population; troops = at home + away (marching, returning); raids won / lost = own\n"
    "raids that came back with survivors / that nobody survived; sent / received = resources\n"
    "traded on the market (all four kinds added up).\n"
)


class Sandbox(Protocol):
    """Where the demo plays: the worlds the NPCs act in and the clock that moves them."""

    where: str

    def world_for(self, player_id: int) -> tr.World: ...

    def now(self) -> datetime: ...

    def advance_to(self, when: datetime) -> int:
        """Move the clock to ``when`` and run the engine up to it; the events processed."""
        ...

    def close(self) -> None: ...


class SqlSandbox:
    """A fresh world at a database URL; the demo's own clock and engine."""

    def __init__(self, url: str, *, players: int, seed: int, start: datetime = DEMO_START) -> None:
        from travian_repo.sandbox import Clock, Engine, create_world

        summary = create_world(url, players=players, seed=seed, start="developed",
                               replace=True, now=start)
        self.player_ids = sorted(summary.tokens)
        self.clock = Clock(start)
        self.world = tr.connect(url, clock=self.clock, cache=False)
        self.engine = Engine(self.world.database, clock=self.clock)
        self.map_radius = self.world.database.settings.map_radius
        self.where = _where(url)
        self.url = url

    def world_for(self, player_id: int) -> tr.World:
        return self.world

    def now(self) -> datetime:
        return self.clock()

    def advance_to(self, when: datetime) -> int:
        if when > self.clock():
            self.clock.set(when)
        return self.engine.run_until(self.clock())

    def close(self) -> None:
        self.engine.close()
        self.world.close()


class HttpSandbox:
    """A world served by ``travian-repo serve --manual-clock``: one connection per player."""

    def __init__(self, api_url: str, tokens: Mapping[int, str], *, players: int | None = None,
                 timeout: float = 30.0) -> None:
        import requests

        if not tokens:
            raise tr.InvalidRequest("playing through the API needs the players' tokens")
        chosen = sorted(tokens)[: players or None]
        self.base = api_url.rstrip("/")
        if self.base.endswith("/v1"):
            self.base = self.base[: -len("/v1")]
        self.worlds: dict[int, tr.World] = {}
        try:
            for player_id in chosen:
                self.worlds[player_id] = tr.connect(api_url=self.base, token=tokens[player_id],
                                                    cache=False)
        except BaseException:
            self.close()
            raise
        self.player_ids = chosen
        self.map_radius = DEFAULT_MAP_RADIUS
        self.where = f"the world served at {self.base}/v1/"
        self._session = requests.Session()
        first = self.worlds[chosen[0]]
        self._headers = {"Authorization": f"Bearer {tokens[chosen[0]]}",
                         "X-World-Id": first.world_id}
        self._timeout = timeout
        self._now = self._advance(0.0)[1]

    def _advance(self, seconds: float) -> tuple[int, datetime]:
        answer = self._session.post(f"{self.base}/v1/sandbox/advance", json={"seconds": seconds},
                                    headers=self._headers, timeout=self._timeout)
        if answer.status_code == 404:
            raise tr.ConfigurationError(
                f"{self.base} has no sandbox clock: start the server with "
                "`travian-repo serve --manual-clock` to play the demo through it")
        if answer.status_code != 200:
            raise tr.TravianError(f"POST /v1/sandbox/advance answered {answer.status_code}: "
                                  f"{answer.text[:200]}")
        body = answer.json()
        return int(body["processed"]), datetime.fromisoformat(body["now"])

    def world_for(self, player_id: int) -> tr.World:
        return self.worlds[player_id]

    def now(self) -> datetime:
        return self._now

    def advance_to(self, when: datetime) -> int:
        seconds = max(0.0, (when - self._now).total_seconds())
        processed, self._now = self._advance(seconds)
        return processed

    def close(self) -> None:
        for world in self.worlds.values():
            world.close()
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()


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
class _Raid:
    raider: Npc
    movement: Movement


@dataclass
class DemoResult:
    """What the demo reports: the final table (read from the world) and the players."""

    rows: list[list[str]]
    players: list[Npc]
    where: str
    started: datetime
    ended: datetime
    turns: int
    events: int

    def table(self) -> str:
        return format_table([list(HEADER), *self.rows])


def run_demo(
    sandbox: Sandbox,
    player_ids: list[int],
    *,
    days: float = 2,
    seed: int = 1,
    turn_seconds: int = TURN_SECONDS,
    map_radius: int = DEFAULT_MAP_RADIUS,
    progress: Callable[[int, int, datetime], None] | None = None,
) -> DemoResult:
    """Play ``days`` of game time in turns of ``turn_seconds``; the final table."""
    if days < 0:
        raise tr.InvalidRequest(f"days must not be negative, got {days}")
    turns = int(round(days * 86400 / turn_seconds))
    started = sandbox.now()
    cast = [_meet(sandbox.world_for(pid), pid, index, seed)
            for index, pid in enumerate(sorted(player_ids))]
    for player in cast:
        player.neighbours = _nearest([p.home for p in cast], player.home, map_radius)
    by_id = {p.player_id: p for p in cast}
    raids: list[_Raid] = []
    events = 0
    for turn in range(turns):
        for player in cast:
            _play(player, turn, by_id, raids)
        turn_end = sandbox.now() + timedelta(seconds=turn_seconds)
        for stop in sorted({r.movement.arrives_at for r in raids if r.movement.arrives_at <= turn_end}):
            events += sandbox.advance_to(stop)
            raids = _resolve_raids(raids, stop)
        events += sandbox.advance_to(turn_end)
        if progress is not None:
            progress(turn + 1, turns, sandbox.now())
    rows = [_row(sandbox.world_for(p.player_id), p) for p in cast]
    return DemoResult(rows=rows, players=cast, where=sandbox.where, started=started,
                      ended=sandbox.now(), turns=turns, events=events)


# --- the players ----------------------------------------------------------------------------


def _meet(world: tr.World, player_id: int, index: int, seed: int) -> Npc:
    npc = world.npc(player_id)
    villages = npc.initialize()
    with world.unit_of_work(player_id) as uow:
        player = uow.players.get(player_id)
    return Npc(npc=npc, name=player.name, tribe=player.tribe,
               strategy=STRATEGIES[index % len(STRATEGIES)],
               rng=random.Random(f"{seed}:{player_id}"), home=villages[0])


def _nearest(villages: list[Village], home: Village, radius: int) -> list[Village]:
    others = [v for v in villages if v.player_id != home.player_id]
    return sorted(others, key=lambda v: (distance(home.x, home.y, v.x, v.y, radius=radius), v.id))[:3]


def _play(p: Npc, turn: int, by_id: dict[int, Npc], raids: list[_Raid]) -> None:
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


def _raid(p: Npc, raids: list[_Raid]) -> None:
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
        raids.append(_Raid(p, movement))


def _won(raid: _Raid, won: bool) -> None:
    if won:
        raid.raider.raids_won += 1
    else:
        raid.raider.raids_lost += 1
        raid.raider.defeats[raid.movement.to_village_id] += 1


def _resolve_raids(raids: list[_Raid], at: datetime) -> list[_Raid]:
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


# --- the table ------------------------------------------------------------------------------


def _row(world: tr.World, p: Npc) -> list[str]:
    with world.unit_of_work(p.player_id) as uow:
        player = uow.players.get(p.player_id)
        villages = uow.villages.list_by_player(p.player_id)
        mine = {v.id for v in villages}
        troops = 0
        for village in villages:
            troops += uow.military.troops(village.id).total
            troops += sum(m.troops.total for m in uow.military.outgoing(village.id))
            troops += sum(m.troops.total for m in uow.military.incoming(village.id)
                          if m.kind == "return" and m.to_village_id in mine)
    return [player.name, player.tribe, p.strategy, str(player.population), str(len(villages)),
            str(troops), str(p.raids_won), str(p.raids_lost), str(p.sent), str(p.received)]


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    text_columns = {0, 1, 2}
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(widths[i]) if i in text_columns else cell.rjust(widths[i])
                 for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def parse_table(text: str) -> list[list[str]]:
    """The rows of a table printed by :func:`format_table` (for tests and scripts)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("player "))
    widths = [len(cell) for cell in lines[start + 1].split("  ")]
    rows = []
    for line in lines[start + 2:]:
        if not line.strip():
            break
        cells, at = [], 0
        for width in widths:
            cells.append(line[at:at + width].strip())
            at += width + 2
        rows.append(cells)
    return rows


# --- progress -------------------------------------------------------------------------------


class ProgressBar:
    """``[#####.....] 12/48 turns  2026-01-01 20:00 UTC`` on one line of a terminal."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width

    def __call__(self, done: int, total: int, now: datetime) -> None:
        filled = self.width * done // max(total, 1)
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} turns"
                          f"  {when(now)} UTC")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def _where(url: str) -> str:
    import os

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return os.path.abspath(parsed.database or "")
    return parsed.render_as_string(hide_password=True)


def read_tokens(lines: Iterable[str]) -> dict[int, str]:
    """``player_id token`` lines (the output of ``travian-repo tokens``) as a dict."""
    tokens: dict[int, str] = {}
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.replace("=", " ").split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise tr.InvalidRequest(f"tokens line {number}: expected 'player_id token', got "
                                    f"{text[:40]!r}")
        tokens[int(parts[0])] = parts[1]
    return tokens


__all__ = [
    "DEMO_DATABASE_FILE",
    "DEMO_START",
    "DemoResult",
    "HttpSandbox",
    "Npc",
    "ProgressBar",
    "STRATEGIES",
    "Sandbox",
    "SqlSandbox",
    "TURN_SECONDS",
    "format_table",
    "parse_table",
    "read_tokens",
    "run_demo",
]
