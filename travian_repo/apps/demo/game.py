"""The demo's game loop: turns of game time, raids resolved at their arrival, the final table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, TextIO

import travian_repo as tr
from travian_repo.apps.demo.players import Npc, Raid, meet, nearest, play_turn, resolve_raids
from travian_repo.apps.demo.sandboxes import DEFAULT_MAP_RADIUS, Sandbox

TURN_SECONDS = 3600

HEADER: tuple[str, ...] = ("player", "tribe", "strategy", "pop", "villages", "troops",
                           "raids won", "raids lost", "sent", "received")
LEGEND = (
    "pop = population; troops = at home + away (marching, returning); raids won / lost = own\n"
    "raids that came back with survivors / that nobody survived; sent / received = resources\n"
    "traded on the market (all four kinds added up).\n"
)


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
    cast = [meet(sandbox.world_for(pid), pid, index, seed)
            for index, pid in enumerate(sorted(player_ids))]
    for player in cast:
        player.neighbours = nearest([p.home for p in cast], player.home, map_radius)
    by_id = {p.player_id: p for p in cast}
    raids: list[Raid] = []
    events = 0
    for turn in range(turns):
        for player in cast:
            play_turn(player, turn, by_id, raids)
        turn_end = sandbox.now() + timedelta(seconds=turn_seconds)
        for stop in sorted({r.movement.arrives_at for r in raids if r.movement.arrives_at <= turn_end}):
            events += sandbox.advance_to(stop)
            raids = resolve_raids(raids, stop)
        events += sandbox.advance_to(turn_end)
        if progress is not None:
            progress(turn + 1, turns, sandbox.now())
    rows = [_row(sandbox.world_for(p.player_id), p) for p in cast]
    return DemoResult(rows=rows, players=cast, where=sandbox.where, started=started,
                      ended=sandbox.now(), turns=turns, events=events)


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


__all__ = ["HEADER", "LEGEND", "TURN_SECONDS", "DemoResult", "ProgressBar", "format_table",
           "run_demo", "when"]
