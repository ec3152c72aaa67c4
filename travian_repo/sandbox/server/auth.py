"""Who is asking, and about which world: the bearer token and the ``X-World-Id`` header.

- ``Authorization: Bearer <token>``: the player the token belongs to acts. An unknown or
  malformed token is ``401`` with a ``WWW-Authenticate: Bearer`` challenge. No header acts
  as nobody: the repositories answer public reads and refuse the rest (``Unauthorized``).
- ``X-World-Id``: the world's id. Missing: this server's world; empty: ``400
  invalid_request``; another world: ``409 conflict`` naming both ids.
"""

from __future__ import annotations

from flask import request

from travian_repo.domain.errors import Conflict, InvalidRequest
from travian_repo.sandbox.server.answers import Refused, unauthorized
from travian_repo.sql.database import Database

MAX_TOKEN_LENGTH = 256


def authenticate(database: Database) -> int | None:
    """The current request's player; None without an Authorization header.

    ``Refused`` (401) for a malformed header or an unknown token; ``BackendUnavailable`` when
    the token cannot be looked up.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if not header:
        return None
    if scheme.lower() != "bearer" or not token:
        raise Refused(unauthorized("the Authorization header must be 'Bearer <token>'"))
    if len(token) > MAX_TOKEN_LENGTH:
        raise Refused(unauthorized("unknown API token", invalid=True))
    player_id = database.player_for_token(token)
    if player_id is None:
        raise Refused(unauthorized("unknown API token", invalid=True))
    return player_id


def check_world(world_id: str) -> None:
    """The current request names ``world_id`` in ``X-World-Id``, or no world at all (then it
    means this server's own, as the original async client does)."""
    given = request.headers.get("X-World-Id")
    if given is None:
        return
    if not given.strip():
        raise InvalidRequest("an empty X-World-Id header (this server's world is "
                             f"{world_id!r})", details={"header": "X-World-Id"})
    if given != world_id:
        raise Conflict(
            f"X-World-Id {given[:64]!r} does not match this server's world {world_id!r}",
            details={"header": "X-World-Id", "given": given[:64], "expected": world_id},
        )


__all__ = ["MAX_TOKEN_LENGTH", "authenticate", "check_world"]
