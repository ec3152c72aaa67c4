"""The library's own listeners on an engine's statement execution, counted, so a read can
tell whether anybody else listens (``quiet``).

A read that skips the SQLAlchemy Connection (``prepared.run_direct``) fires none of these
events; it may do so only when the library's own listeners are all there are (it does their
work itself) and no statement log is on.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine

# The events a direct read does not fire: the engine's, and its dialect's (where
# SQLAlchemy keeps a listener on the engine's ``handle_error``).
EVENTS = ("before_cursor_execute", "after_cursor_execute", "engine_connect")
DIALECT_EVENTS = ("handle_error", "do_execute")
_OWN = "_travian_own_listeners"


def count_own(engine: Engine, event: str) -> None:
    """Note one more listener of the library's own on ``event`` of ``engine``."""
    own: dict[str, int] = engine.__dict__.setdefault(_OWN, {})
    own[event] = own.get(event, 0) + 1


def quiet(engine: Engine) -> bool:
    """True when nobody but the library listens to ``engine``'s statement execution (on the
    engine, its class or the Connection class) and its statements are not logged."""
    own: dict[str, int] = engine.__dict__.get(_OWN, _NONE)
    dispatch: Any = engine.dispatch
    for event in EVENTS:
        if len(getattr(dispatch, event)) != own.get(event, 0):
            return False
    dispatch = engine.dialect.dispatch
    for event in DIALECT_EVENTS:
        if len(getattr(dispatch, event)) != own.get(event, 0):
            return False
    return not engine.logger.isEnabledFor(logging.INFO)


_NONE: dict[str, int] = {}

__all__ = ["DIALECT_EVENTS", "EVENTS", "count_own", "quiet"]
