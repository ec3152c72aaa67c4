"""The v1 routes, named after the repository method each one serves.

The table is derived from the operations' declarations (``@operation`` on the abstract
repository methods, ``repositories/base.py``): the path, and where each argument travels.
The HTTP client (``http/repositories.py``) builds its requests from it and the sandbox
server (``sandbox/server/handlers.py``) parses requests by it, so the two cannot drift
apart. An argument whose wire name is a ``{placeholder}`` of the path travels there; the
others travel in the query string (GET) or the JSON body (POST; a dotted wire name nests):

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
    trade.accept_offer        POST   {} (or no body: every argument is in the path)

An optional argument may be left out of the body or query string (its default applies).
GET parameters travel in the query string (``limit``, ``kind``, ``unread_only``, ``x``,
``y``); the server also takes them from a GET's JSON object body (the original async client
sends them so). Writes answer 200 with the created value; they carry an ``Idempotency-Key`` header.
Every request carries ``Authorization: Bearer``; ``X-World-Id`` may be left out (the
server's own world). ``python -m travian_repo.wire.openapi`` writes the whole table out as
``docs/openapi.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass

from travian_repo.repositories.base import declared_operations
from travian_repo.repositories.declaration import BODY, PATH, Operation

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
    declared: Operation | None = None  # None: the session route, which is no repository's

    @property
    def is_write(self) -> bool:
        return self.method != "GET"

    @property
    def takes_body(self) -> bool:
        """A POST with arguments in its body; the others take an empty body or ``{}``."""
        return self.declared is not None and bool(self.declared.located(BODY))

    def url_path(self, **params: int | str) -> str:
        return PREFIX + self.path.format(**params)

    @property
    def flask_rule(self) -> str:
        """The path with Flask converters: ``/village/<int:village_id>``."""
        rule = self.path
        for param in self.declared.located(PATH) if self.declared is not None else ():
            converter = "int:" if param.annotation is int else ""
            rule = rule.replace("{" + param.wire + "}", f"<{converter}{param.wire}>")
        return PREFIX + rule


# Every repository operation's route comes from its declaration; the session route serves
# connect() alone.
ROUTES: tuple[Route, ...] = tuple(
    Route(op.name, op.method, op.path, op) for op in declared_operations().values()
) + (Route("session.me", "GET", "/me"),)

BY_OPERATION: dict[str, Route] = {route.operation: route for route in ROUTES}


def route(operation: str) -> Route:
    return BY_OPERATION[operation]
