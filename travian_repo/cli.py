"""The ``travian-repo`` command line (also ``python -m travian_repo``).

    travian-repo demo [--players N] [--seed S] [--turns T] [--database-url URL]
    travian-repo create-world --database-url URL [--players N] [--seed S] [--speed X]
                              [--start standard|developed] [--replace]
    travian-repo tokens --database-url URL
    travian-repo serve --database-url URL [--host H] [--port P] [--threads N]

A user error (a bad URL, a database that is not a world, an argument out of range) prints
one line on stderr and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Sequence, TextIO

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

import travian_repo as tr
from travian_repo.domain.values import BuildOrder, Message, Movement, TrainingOrder, Village
from travian_repo.npc import NPCGameInterface
from travian_repo.rules import RESOURCE_FIELDS, distance, units
from travian_repo.sandbox import Clock, create_world, player_tokens

PROG = "travian-repo"
USER_ERROR = 2

DEMO_DATABASE_FILE = "travian_demo.db"
DEMO_START = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)
DEMO_TURN_SECONDS = 600
DEMO_ACTIONS_PER_TURN = 2
DEMO_ACTIONS = ("build", "train", "scout", "message", "raid")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else USER_ERROR
    command: Callable[[argparse.Namespace, TextIO], int] = args.run
    try:
        return command(args, sys.stdout)
    except tr.TravianError as exc:
        return _fail(f"{type(exc).__name__}: {exc}")
    except sa_exc.ArgumentError as exc:  # an unparsable URL or an unknown driver
        return _fail(f"bad database URL: {exc}")
    except sa_exc.DBAPIError as exc:
        return _fail(f"cannot use the database: {_first_line(exc.orig or exc)}")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `travian-repo tokens | head -1`
        sys.stderr.close()
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Script a Travian world: create a local world, list its tokens, or watch "
        "NPC players make their opening moves.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="NPC players make their opening moves in an embedded SQLite world",
        description="Create a world (replacing any world at the URL), let every player make "
        "opening moves as an NPC through the library, and print what happened. The same "
        "seed plays the same game.",
    )
    demo.add_argument("--players", type=int, default=6, help="number of players (default 6)")
    demo.add_argument("--seed", type=int, default=1, help="world and NPC seed (default 1)")
    demo.add_argument("--turns", type=int, default=3, help="turns of 10 minutes (default 3)")
    demo.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help=f"where the world goes; it is replaced (default: sqlite:///{DEMO_DATABASE_FILE} "
        "in the current directory)",
    )
    demo.set_defaults(run=cmd_demo)

    env_url = os.environ.get("TRAVIAN_DATABASE_URL") or None
    url_help = "the world database, e.g. sqlite:///world.db or postgresql+psycopg2://user@host/db"
    if env_url:
        url_help += " (default: $TRAVIAN_DATABASE_URL)"

    create = commands.add_parser(
        "create-world",
        help="create a sandbox world at a database URL",
        description="Create the schema and fill a world; the same seed gives the same world.",
    )
    create.add_argument("--database-url", default=env_url, required=env_url is None,
                        metavar="URL", help=url_help)
    create.add_argument("--players", type=int, default=12, help="number of players (default 12)")
    create.add_argument("--seed", type=int, default=1, help="map and names seed (default 1)")
    create.add_argument("--speed", type=int, default=1, help="server speed (default 1)")
    create.add_argument("--start", choices=("standard", "developed"), default="standard",
                        help="standard: 18 fields at 0 and 750 of each resource; developed: "
                        "fields at 3, military buildings, some troops (default standard)")
    create.add_argument("--replace", action="store_true",
                        help="replace a world already at the URL")
    create.set_defaults(run=cmd_create_world)

    tokens = commands.add_parser(
        "tokens",
        help="print each player's API token",
        description="Print 'player_id token' lines for a sandbox world.",
    )
    tokens.add_argument("--database-url", default=env_url, required=env_url is None,
                        metavar="URL", help=url_help)
    tokens.set_defaults(run=cmd_tokens)

    serve = commands.add_parser(
        "serve",
        help="serve the v1 HTTP API of a world (needs the 'server' extra)",
        description="Serve /v1/ over the world's database with waitress; each player's "
        "bearer token comes from `tokens`.",
    )
    serve.add_argument("--database-url", default=env_url, required=env_url is None,
                       metavar="URL", help=url_help)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    serve.add_argument("--redis-url", default=os.environ.get("TRAVIAN_REDIS_URL") or None,
                       metavar="URL", help="publish events and share the cache through this Redis "
                       "(default: $TRAVIAN_REDIS_URL; none: in-process only)")
    serve.set_defaults(run=cmd_serve)
    return parser


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from travian_repo.sandbox.server import serve
    except ImportError as exc:
        return _fail(f"serving needs Flask and waitress: pip install 'travian_repo[server]' ({exc})")
    out.write(f"Serving {make_url(args.database_url).render_as_string(hide_password=True)} "
              f"on http://{args.host}:{args.port}/v1/ (Ctrl-C stops)\n")
    out.flush()
    serve(args.database_url, host=args.host, port=args.port, threads=args.threads,
          redis_url=args.redis_url)
    return 0


def cmd_create_world(args: argparse.Namespace, out: TextIO) -> int:
    try:
        summary = create_world(
            args.database_url,
            players=args.players,
            seed=args.seed,
            speed=args.speed,
            start=args.start,
            replace=args.replace,
        )
    except tr.Conflict as exc:
        return _fail(f"Conflict: {exc} (run again with --replace)")
    out.write(
        f"Created world {summary.world_id!r} at {summary.url}: {summary.players} players, "
        f"{summary.villages} villages (seed {summary.seed}, speed x{args.speed}, "
        f"{args.start} start).\n"
        f"Their API tokens: {PROG} tokens --database-url {summary.url}\n"
    )
    return 0


def cmd_tokens(args: argparse.Namespace, out: TextIO) -> int:
    for player_id, token in player_tokens(args.database_url).items():
        out.write(f"{player_id} {token}\n")
    return 0


# --- the demo -------------------------------------------------------------------------------


@dataclass
class _Player:
    """One NPC in the demo and what became of its actions."""

    npc: NPCGameInterface
    name: str
    tribe: str
    home: Village
    neighbour: Village | None = None
    accepted: int = 0
    refusals: Counter[str] = field(default_factory=Counter)


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    url = args.database_url or f"sqlite:///{DEMO_DATABASE_FILE}"
    if args.turns < 0 or args.turns > 1000:
        raise tr.InvalidRequest(f"turns must be from 0 to 1000, got {args.turns}")
    run_demo(url, players=args.players, seed=args.seed, turns=args.turns, out=out)
    return 0


def run_demo(url: str, *, players: int, seed: int, turns: int, out: TextIO) -> None:
    """Create a world at ``url`` and let every player make ``turns`` turns of NPC moves.

    Everything printed is read back from the world; the same arguments print the same text.
    """
    clock = Clock(DEMO_START)
    summary = create_world(url, players=players, seed=seed, start="developed", replace=True,
                           now=clock())
    rng = random.Random(seed)
    with tr.connect(url, clock=clock) as world:
        radius = world.database.settings.map_radius
        cast = _meet_players(world, sorted(summary.tokens))
        for player in cast:
            player.neighbour = _nearest(player.home, [p.home for p in cast], radius)
        names = {p.npc.player_id: p.name for p in cast}

        out.write(
            f"{PROG} demo: {players} NPC players (seed {seed}) on a developed world created "
            f"{_when(clock())} UTC; {turns} turns of {DEMO_TURN_SECONDS // 60} minutes, "
            f"{DEMO_ACTIONS_PER_TURN} moves per player per turn.\n"
        )
        for turn in range(1, turns + 1):
            if turn > 1:
                clock.advance(DEMO_TURN_SECONDS)
            out.write(f"\nTurn {turn} ({_when(clock())} UTC)\n")
            for player in cast:
                _play_turn(world, player, rng, names, out)

        out.write(f"\nAfter {turns} turns ({_when(clock())} UTC), read back from the world:\n")
        _write_table(out, _summary_rows(world, cast))
        out.write(
            "pop = population; wood..wheat = stock now; builds = orders in the build queue; "
            "troops = at home;\nout = own movements under way; ok / no = moves accepted / "
            "refused by the game.\n"
        )
    out.write(
        "\nNothing completes yet: builds, training and marches wait in their queues with the "
        "times shown (the engine that moves the world on comes in a later version).\n"
        f"The world is in {_where(url)}; its players' tokens: "
        f"{PROG} tokens --database-url {_shown_url(url)}\n"
    )


def _meet_players(world: tr.World, player_ids: list[int]) -> list[_Player]:
    cast: list[_Player] = []
    for player_id in player_ids:
        npc: NPCGameInterface = world.npc(player_id)
        villages = npc.initialize()
        profile = world.players.get(player_id)
        cast.append(_Player(npc=npc, name=profile.name, tribe=profile.tribe, home=villages[0]))
    return cast


def _nearest(home: Village, villages: list[Village], radius: int) -> Village | None:
    others = [v for v in villages if v.player_id != home.player_id]
    if not others:
        return None
    return min(others, key=lambda v: (distance(home.x, home.y, v.x, v.y, radius=radius), v.id))


def _play_turn(
    world: tr.World, player: _Player, rng: random.Random, names: dict[int, str], out: TextIO
) -> None:
    npc = player.npc
    player.home = npc.initialize()[0]
    home = player.home
    first_unit = units.units_of(player.tribe)[0].name
    scout = units.scout_unit(player.tribe).name
    with world.unit_of_work(npc.player_id) as uow:
        at_home = uow.military.troops(home.id)
    choices = ["build", "train", "scout", "message"]
    if at_home.get(first_unit) and player.neighbour is not None:
        choices.append("raid")
    for action in rng.sample(choices, k=min(DEMO_ACTIONS_PER_TURN, len(choices))):
        target = player.neighbour
        if action == "build":
            field_name = _lowest_field(home)
            what = f"upgrade {field_name}"
            ok = npc.build_in_village(home.id, field_name)
        elif action == "train":
            count = rng.randint(2, 5)
            what = f"train {count} {first_unit}"
            ok = npc.train_army(home.id, first_unit, count)
        elif target is None:
            continue  # a world of one: nobody to scout, message or raid
        elif action == "scout":
            count = rng.randint(1, 2)
            what = f"scout {names[target.player_id]} with {count} {scout}"
            ok = npc.act(lambda uow: uow.intel.send_scouts(home.id, target.id, count))
        elif action == "message":
            what = f"message {names[target.player_id]}"
            ok = npc.send_diplomatic_message(
                target.player_id,
                f"Greetings from {player.name}",
                f"{player.name} of the {player.tribe} at ({home.x}|{home.y}) wishes you a "
                "peaceful start.",
            )
        else:
            count = min(at_home.get(first_unit), rng.randint(3, 8))
            what = f"raid {names[target.player_id]} ({target.x}|{target.y}) with {count} {first_unit}"
            ok = npc.launch_raid(home.id, target.x, target.y, {first_unit: count})
        if ok:
            player.accepted += 1
            outcome = f"ok: {_describe(npc.last_result, names)}"
        else:
            error = npc.last_error
            reason = f"{error.code}: {error}" if error is not None else "refused"
            player.refusals[reason] += 1
            outcome = f"refused ({reason})"
        out.write(f"  {player.name:<12} {what:<44} -> {outcome}\n")


def _lowest_field(village: Village) -> str:
    """The resource field with the lowest level once the queued orders are done."""
    planned = {b.slot: (b.level, b.name) for b in village.buildings or () if b.name in RESOURCE_FIELDS}
    for order in village.build_queue or ():
        if order.slot in planned:
            planned[order.slot] = (max(planned[order.slot][0], order.target_level), order.building)
    if not planned:
        return "woodcutter"
    slot = min(planned, key=lambda s: (planned[s][0], s))
    return planned[slot][1]


def _describe(result: object, names: dict[int, str]) -> str:
    if isinstance(result, BuildOrder):
        return (f"{result.building} level {result.target_level} (slot {result.slot}) "
                f"ready {_when(result.completes_at)}")
    if isinstance(result, TrainingOrder):
        return f"trained by {_when(result.completes_at)}"
    if isinstance(result, Movement):
        return f"{result.kind} arrives {_when(result.arrives_at)}"
    if isinstance(result, Message):
        return f"message #{result.id} sent to {names.get(result.to_player_id, result.to_player_id)}"
    return "done"


def _summary_rows(world: tr.World, cast: list[_Player]) -> list[list[str]]:
    rows = [["player", "tribe", "pop", "wood", "clay", "iron", "wheat", "builds",
             "troops", "out", "ok", "no", "most common refusal"]]
    for player in cast:
        player_id = player.npc.player_id
        with world.unit_of_work(player_id) as uow:
            profile = uow.players.get(player_id)
            villages = uow.villages.list_by_player(player_id)
            stock = sum((v.resources or tr.Resources() for v in villages), tr.Resources())
            builds = sum(len(v.build_queue or ()) for v in villages)
            troops = sum(uow.military.troops(v.id).total for v in villages)
            outgoing = sum(len(uow.military.outgoing(v.id)) for v in villages)
        top = player.refusals.most_common(1)
        refusal = f"{top[0][1]}x {top[0][0]}" if top else "-"
        rows.append([profile.name, profile.tribe, str(profile.population), str(stock.wood),
                     str(stock.clay), str(stock.iron), str(stock.wheat), str(builds),
                     str(troops), str(outgoing), str(player.accepted),
                     str(sum(player.refusals.values())), refusal])
    return rows


def _write_table(out: TextIO, rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    text_columns = {0, 1, len(widths) - 1}
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(widths[i]) if i in text_columns else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        out.write("  ".join(cells).rstrip() + "\n")
        if index == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


def _when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def _shown_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _where(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return os.path.abspath(parsed.database or "")
    return _shown_url(url)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _fail(message: str) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    return USER_ERROR


__all__ = ["build_parser", "main", "run_demo"]
