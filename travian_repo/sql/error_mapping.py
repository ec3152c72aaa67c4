"""The one SQL error mapping: a SQLAlchemy error as a library error, and what kind of
failure it is (retryable, a dropped connection, a commit whose outcome is unknown)."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from travian_repo.domain.errors import BackendUnavailable, Conflict, TravianError

_PG_RETRYABLE = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def is_retryable(exc: sa_exc.DBAPIError) -> bool:
    return getattr(exc.orig, "pgcode", None) in _PG_RETRYABLE


def is_disconnect(exc: sa_exc.SQLAlchemyError) -> bool:
    """The connection is unusable (dropped, or invalidated by an earlier drop)."""
    if isinstance(exc, sa_exc.DBAPIError):
        return bool(exc.connection_invalidated) or (
            isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError))
            and getattr(exc.orig, "pgcode", None) is None
            and "locked" not in str(exc.orig) and "busy" not in str(exc.orig)
        )
    return isinstance(exc, (sa_exc.PendingRollbackError, sa_exc.ResourceClosedError))


def outcome_unknown(exc: sa_exc.SQLAlchemyError) -> bool:
    """COMMIT failed without an answer from the server: it may or may not have committed."""
    return isinstance(exc, sa_exc.DBAPIError) and is_disconnect(exc)


def translate(exc: sa_exc.SQLAlchemyError) -> Exception:
    """A database error as a library error (the one SQL error mapping)."""
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no free connection in time
        return BackendUnavailable(f"no free world database connection: {str(exc).splitlines()[0][:200]}")
    if not isinstance(exc, sa_exc.DBAPIError):
        if isinstance(exc, (sa_exc.PendingRollbackError, sa_exc.ResourceClosedError)):
            return BackendUnavailable(f"the world database connection was lost: {str(exc)[:200]}")
        return TravianError(f"database error: {str(exc).splitlines()[0][:300]}")
    orig = exc.orig
    text = str(orig).splitlines()[0][:300] if orig is not None and str(orig) else str(exc)[:300]
    if isinstance(exc, sa_exc.IntegrityError):
        return Conflict(f"the write conflicts with existing data: {text}")
    if exc.connection_invalidated or isinstance(exc, (sa_exc.InterfaceError,)):
        return BackendUnavailable(f"the world database connection failed: {text}")
    if isinstance(exc, sa_exc.OperationalError):
        if "locked" in text or "busy" in text:
            return Conflict(f"the world database is busy: {text}")
        return BackendUnavailable(f"the world database is unavailable: {text}")
    return TravianError(f"database error: {text}")


__all__ = ["is_disconnect", "is_retryable", "outcome_unknown", "translate"]
