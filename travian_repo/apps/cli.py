"""The ``travian-repo`` command line (also ``python -m travian_repo``).

    travian-repo demo [--players N] [--days D] [--seed S] [--database-url URL]
                      [--api-url URL --tokens FILE] [--quiet]
    travian-repo create-world --database-url URL [--players N] [--seed S] [--speed X]
                              [--start standard|developed] [--no-morale] [--replace]
    travian-repo tokens --database-url URL
    travian-repo upgrade-world --database-url URL
    travian-repo serve --database-url URL [--host H] [--port P] [--threads N] [--manual-clock]
                       [--rate-limit N] [--rate-burst N]

A user error (a bad URL, a database that is not a world, an argument out of range) prints
one line on stderr and exits with status 2; no traceback.

``serve`` also takes the connection guards ``--connection-limit N``, ``--header-timeout S``,
``--request-timeout S`` and ``--idle-timeout S`` (see ``travian_repo.sandbox.serving``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence, TextIO

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

import travian_repo as tr
from travian_repo.apps import demo
from travian_repo.sandbox import create_world, player_tokens, upgrade_world
from travian_repo.sql.engines import check_sqlite_file
from travian_repo.sandbox.limits import DEFAULT_RATE

PROG = "travian-repo"
USER_ERROR = 2


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
        description="Script a Travian world: create a local world, mint its tokens, upgrade "
        "it, serve it, or watch NPC players make their opening moves.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {tr.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo_cmd = commands.add_parser(
        "demo",
        help="NPC players play a world for some days (embedded SQLite by default)",
        description="Create a developed world (replacing any world at the URL), let NPC players "
        "of different tribes and strategies (economy, raider, trader, diplomat) play it for "
        "some days of game time through the library, the engine moving the world on between "
        "their turns, and print a table read back from the world. The same seed plays the "
        "same game, on SQLite, on PostgreSQL and through the HTTP API.",
    )
    demo_cmd.add_argument("--players", type=int, default=None,
                          help="number of players (default 6; with --api-url: every token)")
    demo_cmd.add_argument("--days", type=float, default=2, help="days of game time (default 2)")
    demo_cmd.add_argument("--seed", type=int, default=1, help="world and NPC seed (default 1)")
    demo_cmd.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help=f"where the world goes; it is replaced (default: sqlite:///{demo.DEMO_DATABASE_FILE} "
        "in the current directory; PostgreSQL: postgresql+psycopg2://user@host/db)",
    )
    demo_cmd.add_argument(
        "--api-url", default=None, metavar="URL",
        help="play through a server started with `serve --manual-clock` instead (its world "
        "is used as it is; the same table as a local run needs the same seed, created with "
        "create-world --start developed)")
    demo_cmd.add_argument("--tokens", default=None, metavar="FILE",
                          help="with --api-url: 'player_id token' lines (the output of "
                          "`tokens`; '-' reads stdin)")
    demo_cmd.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    demo_cmd.set_defaults(run=cmd_demo)

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
    create.add_argument("--no-morale", dest="morale", action="store_false",
                        help="battles without morale (the defender's population against the "
                        "attacker's; on by default)")
    create.add_argument("--replace", action="store_true",
                        help="replace a world already at the URL")
    create.set_defaults(run=cmd_create_world)

    tokens = commands.add_parser(
        "tokens",
        help="mint and print a fresh API token for each player",
        description="Print 'player_id token' lines for a sandbox world. The world keeps only "
        "hashes of its tokens, so these are freshly minted: the tokens printed or created "
        "before stop working.",
    )
    tokens.add_argument("--database-url", default=env_url, required=env_url is None,
                        metavar="URL", help=url_help)
    tokens.set_defaults(run=cmd_tokens)

    upgrade = commands.add_parser(
        "upgrade-world",
        help="upgrade a world of an older schema version in place",
        description="Bring the world at a database URL to this library's schema version "
        "(its migrations run in one transaction: a world whose data breaks a new rule is "
        "refused and left as it was). A world already current is left alone. API tokens "
        "issued before keep working. Stop servers and engines on the world first.",
    )
    upgrade.add_argument("--database-url", default=env_url, required=env_url is None,
                         metavar="URL", help=url_help)
    upgrade.set_defaults(run=cmd_upgrade_world)

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
    serve.add_argument("--connection-limit", type=int, default=100, metavar="N",
                       help="open connections at most (default 100); from three quarters of "
                       "it on, idle and slow connections are let go sooner")
    serve.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                       help="a request's headers must arrive within S seconds of its first "
                       "byte, or it is answered 408 (default 10)")
    serve.add_argument("--request-timeout", type=float, default=30.0, metavar="S",
                       help="the whole request, body included, within S seconds (default 30)")
    serve.add_argument("--idle-timeout", type=float, default=30.0, metavar="S",
                       help="close a keep-alive connection idle for S seconds (default 30)")
    serve.add_argument("--redis-url", default=os.environ.get("TRAVIAN_REDIS_URL") or None,
                       metavar="URL", help="publish events and share the cache through this Redis "
                       "(default: $TRAVIAN_REDIS_URL; none: in-process only)")
    serve.add_argument("--rate-limit", type=float, default=DEFAULT_RATE, metavar="N",
                       help="requests per second per API token, answered 429 past it; shared "
                       f"through Redis when given (default {DEFAULT_RATE:g}; 0: no limit)")
    serve.add_argument("--rate-burst", type=float, default=None, metavar="N",
                       help="requests a token may send at once before the rate applies "
                       "(default: five times --rate-limit)")
    serve.add_argument("--max-streams", type=int, default=32, metavar="N",
                       help="event streams (GET /v1/player/ID/events) open at once, on threads "
                       "of their own; one more is answered 503 (default 32)")
    serve.add_argument("--heartbeat", type=float, default=15.0, metavar="S",
                       help="an event stream sends a heartbeat comment every S seconds, at "
                       "most 30 (default 15)")
    serve.add_argument("--manual-clock", action="store_true",
                       help="sandbox: time stands still (from the world's creation) until a "
                       "client calls POST /v1/sandbox/advance {\"seconds\": N}, which moves "
                       "it and runs the engine; what `demo --api-url` needs")
    serve.add_argument("--speed", type=float, default=None, metavar="N",
                       help="the world's time goes N times real time (default 1: real time)")
    serve.add_argument("--no-engine", action="store_true",
                       help="run no engine thread (an engine of your own runs the world; "
                       "each request still processes what is due first)")
    serve.add_argument("--engine-workers", type=int, default=1, metavar="N",
                       help="N engine threads sharing the due events (default 1)")
    serve.set_defaults(run=cmd_serve)

    engine = commands.add_parser(
        "engine",
        help="run the engine without a server (N processes sharing the world)",
        description="Run the sandbox engine over a world without serving it: N processes "
        "share the due events (each skips the villages another holds) and process them in "
        "time order, until SIGINT or SIGTERM stops them between two batches. Run it anywhere "
        "that reaches the database, beside servers started with --no-engine.",
    )
    engine.add_argument("--database-url", default=env_url, required=env_url is None,
                        metavar="URL", help=url_help)
    engine.add_argument("--workers", type=int, default=1, metavar="N",
                        help="engine processes (default 1); more than one needs PostgreSQL")
    engine.add_argument("--speed", type=float, default=1.0, metavar="N",
                        help="the world's time goes N times real time from now (default 1)")
    engine.add_argument("--interval", type=float, default=1.0, metavar="S",
                        help="look for due events every S seconds (default 1)")
    engine.set_defaults(run=cmd_engine)
    return parser


def cmd_engine(args: argparse.Namespace, out: TextIO) -> int:
    from travian_repo.sandbox.engine.workers import run_workers

    if args.workers < 1 or not args.speed > 0 or not args.interval > 0:
        return _fail("--workers must be 1 or more, --speed and --interval positive")
    if args.workers > 1 and make_url(args.database_url).get_backend_name() != "postgresql":
        return _fail("--workers above 1 needs PostgreSQL (SQLite has one writer at a time)")
    check_sqlite_file(args.database_url)  # a missing file: say so, and create none

    def ready() -> None:
        out.write(f"Engine: {args.workers} worker(s) on {_shown_url(args.database_url)}, "
                  f"time x{args.speed:g} (SIGINT or SIGTERM stops)\n")
        out.flush()

    code = run_workers(args.database_url, workers=args.workers, speed=args.speed,
                       interval=args.interval, ready=ready)
    out.write("Engine stopped.\n" if code == 0 else "")
    return code


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from travian_repo.sandbox.server import serve
    except ImportError as exc:
        return _fail(f"serving needs Flask and waitress: pip install 'travian_repo[server]' ({exc})")
    manual = bool(args.manual_clock)
    out.write(f"Serving {make_url(args.database_url).render_as_string(hide_password=True)} "
              f"on http://{args.host}:{args.port}/v1/"
              + (" with a manual clock (POST /v1/sandbox/advance)" if manual else "")
              + " (Ctrl-C stops)\n")
    out.flush()
    if args.speed is not None and not args.speed > 0:
        return _fail("--speed must be a positive number")
    if args.engine_workers < 1:
        return _fail("--engine-workers must be 1 or more")
    _stop_on_sigterm()
    if args.rate_limit < 0 or (args.rate_burst is not None and not args.rate_burst >= 1):
        return _fail("--rate-limit must be 0 (no limit) or more, --rate-burst 1 or more")
    try:
        serve(args.database_url, host=args.host, port=args.port, threads=args.threads,
              redis_url=args.redis_url, manual_clock=manual, speed=args.speed,
              connection_limit=args.connection_limit, header_timeout=args.header_timeout,
              request_timeout=args.request_timeout, idle_timeout=args.idle_timeout,
              rate_limit=args.rate_limit or None, rate_burst=args.rate_burst,
              max_streams=args.max_streams, heartbeat_s=args.heartbeat,
              engine_workers=args.engine_workers, engine=not args.no_engine)
    except OSError as exc:  # the port is taken, or the host is not this machine's
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    return 0


def _stop_on_sigterm() -> None:
    """SIGTERM stops like Ctrl-C: the server and its engine end cleanly."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def cmd_create_world(args: argparse.Namespace, out: TextIO) -> int:
    try:
        summary = create_world(
            args.database_url,
            players=args.players,
            seed=args.seed,
            speed=args.speed,
            start=args.start,
            morale=args.morale,
            replace=args.replace,
        )
    except tr.Conflict as exc:
        hint = "" if args.replace or "tables" in exc.details else " (run again with --replace)"
        return _fail(f"Conflict: {exc}{hint}")
    out.write(
        f"Created world {summary.world_id!r} at {summary.url}: "
        f"{counted(summary.players, 'player')}, "
        f"{counted(summary.villages, 'village')} (seed {summary.seed}, speed x{args.speed}, "
        f"{args.start} start).\n"
        f"Their API tokens: {PROG} tokens --database-url {summary.url}\n"
    )
    return 0


def cmd_upgrade_world(args: argparse.Namespace, out: TextIO) -> int:
    result = upgrade_world(args.database_url)
    if result.changed:
        out.write(f"Upgraded the world at {result.url} from schema version "
                  f"{result.from_version} to {result.to_version}.\n")
    else:
        out.write(f"The world at {result.url} is at schema version {result.to_version} "
                  "already; nothing to do.\n")
    return 0


def cmd_tokens(args: argparse.Namespace, out: TextIO) -> int:
    for player_id, token in player_tokens(args.database_url).items():
        out.write(f"{player_id} {token}\n")
    return 0


# --- the demo (the game itself is travian_repo.apps.demo) ----------------------------------------


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    if args.days < 0 or args.days > 366:
        raise tr.InvalidRequest(f"days must be from 0 to 366, got {args.days}")
    if args.players is not None and args.players < 1:
        raise tr.InvalidRequest(f"players must be at least 1, got {args.players}")
    show = sys.stderr.isatty() and not args.quiet
    progress = demo.ProgressBar(sys.stderr) if show else None
    sandbox: demo.SqlSandbox | demo.HttpSandbox
    if args.api_url:
        if args.database_url:
            raise tr.InvalidRequest("give --database-url or --api-url, not both")
        if not args.tokens:
            raise tr.InvalidRequest("--api-url needs --tokens FILE (the output of "
                                    f"`{PROG} tokens --database-url URL`, '-' for stdin)")
        tokens = _read_tokens(args.tokens)
        sandbox = demo.HttpSandbox(args.api_url, tokens, players=args.players)
        world_line = f"the world served at {sandbox.base}/v1/"
    else:
        url = args.database_url or f"sqlite:///{demo.DEMO_DATABASE_FILE}"
        players = 6 if args.players is None else args.players
        sandbox = demo.SqlSandbox(url, players=players, seed=args.seed)
        world_line = f"a new developed world (seed {args.seed}) in {sandbox.where}"
    try:
        out.write(
            f"{PROG} demo: {counted(len(sandbox.player_ids), 'NPC player')} on {world_line};\n"
            f"{counted(args.days, 'day')} of game time from {demo.when(sandbox.now())} UTC "
            "in turns of one hour, the engine moving the world on between turns.\n\n"
        )
        out.flush()
        result = demo.run_demo(sandbox, sandbox.player_ids, days=args.days, seed=args.seed,
                               map_radius=sandbox.map_radius, progress=progress)
    finally:
        sandbox.close()
    out.write(f"After {counted(result.turns, 'turn')} ({demo.when(result.ended)} UTC; "
              f"{counted(result.events, 'event')} processed by the engine), "
              "read back from the world:\n\n")
    out.write(result.table())
    out.write("\n" + demo.LEGEND)
    if args.api_url:
        out.write(f"\nThe world stays on the server: {result.where}.\n")
    else:
        out.write(f"\nThe world is in {result.where}; its players' tokens: "
                  f"{PROG} tokens --database-url {_shown_url(url)}\n")
    return 0


def counted(number: float, noun: str) -> str:
    """``1 day``, ``2 days``, ``0.5 days``: the number and its noun, plural unless it is 1."""
    return f"{number:g} {noun}" if number == 1 else f"{number:g} {noun}s"


def _read_tokens(path: str) -> dict[int, str]:
    if path == "-":
        return demo.read_tokens(sys.stdin)
    try:
        with open(path, encoding="utf-8") as handle:
            return demo.read_tokens(handle)
    except OSError as exc:
        raise tr.InvalidRequest(f"cannot read the tokens file {path!r}: {exc.strerror}") from None


def _shown_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _fail(message: str) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    return USER_ERROR


__all__ = ["build_parser", "main"]
