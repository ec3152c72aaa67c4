"""API tokens: minted here, stored only as hashes, looked up by hash.

A token is 160 random bits (``secrets.token_hex(20)``), so a plain SHA-256 is the right
hash: there is nothing to guess that a slow password hash would protect, and a lookup
stays one indexed equality. A stolen database yields hashes that cannot act as tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Iterable

from sqlalchemy import Connection, insert, select, update

from travian_repo.sql import schema

_tok = schema.api_tokens

TOKEN_BYTES = 20


def hash_token(token: str) -> str:
    """The stored form of a token: its SHA-256, 64 hex digits."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return secrets.token_hex(TOKEN_BYTES)


def token_row(player_id: int, token: str, now: datetime) -> dict[str, object]:
    """The api_tokens row for a freshly minted token (for bulk inserts)."""
    return {"token_hash": hash_token(token), "player_id": player_id, "created_at": now}


def mint(conn: Connection, player_ids: Iterable[int], now: datetime) -> dict[int, str]:
    """A fresh token for each player, replacing the one it had (which stops working).

    Runs in the caller's transaction; the plain tokens exist only in the answer.
    """
    minted: dict[int, str] = {}
    for player_id in player_ids:
        token = new_token()
        row = token_row(player_id, token, now)
        changed = conn.execute(
            update(_tok).where(_tok.c.player_id == player_id)
            .values(token_hash=row["token_hash"], created_at=now)
        ).rowcount
        if changed == 0:
            conn.execute(insert(_tok).values(**row))
        minted[player_id] = token
    return minted


def player_for_token(conn: Connection, token: str) -> int | None:
    """The player a token belongs to, or None for an unknown token."""
    found = conn.execute(
        select(_tok.c.player_id).where(_tok.c.token_hash == hash_token(token))
    ).scalar()
    return None if found is None else int(found)


__all__ = ["hash_token", "mint", "new_token", "player_for_token", "token_row"]
