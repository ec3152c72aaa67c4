"""What a session keeps on its connection between statements (PostgreSQL), and the listener
that sends the SQL it queued in the round trip of the next statement (``pipeline``).

The keys live in the pooled connection's ``info``, so ``forget`` clears them whenever a
session takes a connection up or gives it back: never another session's leftovers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, event

from travian_repo.sql.listeners import count_own

# conn.info keys: SQL the session queued to go ahead of the connection's next statement;
# the queued BEGIN's outcome key (its text and parameters, see ``fold_outcome_key``); the
# villages whose write lock the open transaction holds (PostgreSQL; see ``held_locks``);
# the village state a write step left for the next (``village_writes.keep_state``).
AHEAD = "travian_ahead"
OUTCOME = "travian_outcome"
LOCKED = "travian_locked"
KEPT = "travian_kept"
_PER_TRANSACTION = (AHEAD, OUTCOME, LOCKED, KEPT)


def fold_outcome_key(conn: Connection) -> dict[str, Any] | None:
    """Take the outcome key's insert off the queued ``BEGIN``, for the caller's next
    statement to carry as a data-modifying CTE (one statement, not two); its parameters
    (``key_player``, ``key_value``, ``key_at``), or None when no insert is queued."""
    info = conn.info  # each access goes through the pool's proxy: once
    outcome = info.pop(OUTCOME, None)
    if outcome is None or info.get(AHEAD) is not outcome[0]:
        return None
    info[AHEAD] = "BEGIN"
    params = outcome[1]
    return {"key_player": params["player"], "key_value": params["key"], "key_at": params["now"]}


def held_locks(conn: Connection) -> set[int] | None:
    """The villages whose write lock the connection's open transaction already holds (a
    later step need not lock them again); None outside a session's PostgreSQL transaction."""
    held: set[int] | None = conn.info.get(LOCKED)
    return held


def forget(info: dict[Any, Any]) -> None:
    """Drop what a session kept on a connection (its ``info``) for its transaction."""
    for key in _PER_TRANSACTION:
        info.pop(key, None)


def pipeline(engine: Engine) -> None:
    """Send what a session queued (``AHEAD``) in the round trip of the next statement on
    the same connection (PostgreSQL: several statements in one simple query, run in order)."""
    if getattr(engine, "_travian_pipelined", False):
        return

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _send_ahead(conn: Connection, cursor: Any, statement: str, parameters: Any,
                    _context: Any, executemany: bool) -> tuple[str, Any]:
        ahead = conn.info.pop(AHEAD, None)
        if ahead is None:
            return statement, parameters
        if executemany:  # one statement run per parameter set: send it once, on its own
            cursor.execute(ahead)
            return statement, parameters
        return f"{ahead}; {statement}", parameters

    count_own(engine, "before_cursor_execute")
    engine._travian_pipelined = True  # type: ignore[attr-defined]


__all__ = ["AHEAD", "KEPT", "LOCKED", "OUTCOME", "fold_outcome_key", "forget", "held_locks",
           "pipeline"]
