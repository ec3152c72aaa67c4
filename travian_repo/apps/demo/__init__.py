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

from travian_repo.apps.demo.game import (
    LEGEND,
    TURN_SECONDS,
    DemoResult,
    ProgressBar,
    format_table,
    run_demo,
    when,
)
from travian_repo.apps.demo.players import STRATEGIES, Npc
from travian_repo.apps.demo.sandboxes import (
    DEMO_DATABASE_FILE,
    DEMO_START,
    HttpSandbox,
    Sandbox,
    SqlSandbox,
    read_tokens,
)

__all__ = [
    "DEMO_DATABASE_FILE",
    "DEMO_START",
    "LEGEND",
    "STRATEGIES",
    "TURN_SECONDS",
    "DemoResult",
    "HttpSandbox",
    "Npc",
    "ProgressBar",
    "Sandbox",
    "SqlSandbox",
    "format_table",
    "read_tokens",
    "run_demo",
    "when",
]
