"""The v1 routes, named after the repository method each one serves.

The table is derived from the operations' declarations (``@operation`` on the abstract
repository methods). The HTTP client builds its URLs from it and the sandbox server
registers its handlers from it, so the two cannot drift apart. Request bodies (JSON):

    villages.queue_building   POST   {"building": str, "slot": int|null, "instant": bool}
    military.train            POST   {"troops": {unit: count}}
    military.attack           POST   {"target_village_id": int, "troops": {...}, "attack_type": "normal"|"raid"|"siege"}
    military.reinforce        POST   {"target_village_id": int, "troops": {...}}
    trade.create_offer        POST   {"offer": {"resource": str, "amount": int}, "request": {"resource": str, "amount": int}}
    trade.send_resources      POST   {"target_village_id": int, "resources": {"wood": int, ...}}
    intel.send_scouts         POST   {"target_village_id": int, "scouts": int}
    diplomacy.send_message    POST   {"to": int, "subject": str, "body": str}
    diplomacy.create_alliance POST   {"name": str, "tag": str}
    diplomacy.invite          POST   {"player_id": int}
    trade.accept_offer        POST   {} (or no body)
    military.send_home        POST   {} (or no body)

GET parameters travel in the query string (``limit``, ``unread_only``, ``x``, ``y``); the
server also takes them from a GET's JSON object body (the original async client sends them
so). Writes answer 200 with the created value; they carry an ``Idempotency-Key`` header.
Every request carries ``Authorization: Bearer``; ``X-World-Id`` may be left out (the
server's own world).
"""

from __future__ import annotations

from dataclasses import dataclass

from travian_repo.repositories.base import declared_operations

PREFIX = "/v1"
# Beside the operations' table: the world's settings (public, no token needed).
WORLD_PATH = f"{PREFIX}/world"
# A sandbox's manual clock (servers started with --manual-clock only).
ADVANCE_PATH = f"{PREFIX}/sandbox/advance"


@dataclass(frozen=True)
class Route:
    operation: str  # "domain.method"
    method: str  # GET, POST, DELETE
    path: str  # under PREFIX, with {placeholders}

    @property
    def is_write(self) -> bool:
        return self.method != "GET"

    def url_path(self, **params: int | str) -> str:
        return PREFIX + self.path.format(**params)

    @property
    def flask_rule(self) -> str:
        """The path with Flask converters: ``/village/<int:village_id>``."""
        rule = self.path
        for name in (
            "village_id", "player_id", "alliance_id", "queue_position", "offer_id", "movement_id"
        ):
            rule = rule.replace("{" + name + "}", f"<int:{name}>")
        return PREFIX + rule.replace("{metric}", "<metric>")


# Every repository operation's route comes from its declaration; the session route serves
# connect() alone.
ROUTES: tuple[Route, ...] = tuple(
    Route(op.name, op.method, op.path) for op in declared_operations().values()
) + (Route("session.me", "GET", "/me"),)

BY_OPERATION: dict[str, Route] = {route.operation: route for route in ROUTES}


def route(operation: str) -> Route:
    return BY_OPERATION[operation]
