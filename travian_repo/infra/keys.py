"""The names of everything the library keeps in Redis, built in one place.

Every key and channel starts with ``KEY_PREFIX`` and the world id, so worlds sharing one
Redis never see each other's data and ``SCAN travian_repo:*`` finds all of it. The segment
after the prefix is the layout's version: bump it when what is stored under a name changes
meaning, and old data is simply never read again.
"""

from __future__ import annotations

KEY_PREFIX = "travian_repo"

# Bump when the cache's envelope or any cached value's encoding changes: old entries become
# misses.
CACHE_FORMAT_VERSION = 1

# The layout version of the rate limit buckets and the event channels.
_LAYOUT = "v1"


def cache_prefix(world_id: str) -> str:
    """What every cache entry and generation of ``world_id`` starts with (ends with ``:``)."""
    return f"{KEY_PREFIX}:{CACHE_FORMAT_VERSION}:{world_id}:"


def rate_limit_key(world_id: str) -> str:
    """The hash holding the shared rate limit buckets of ``world_id``."""
    return f"{KEY_PREFIX}:{_LAYOUT}:{world_id}:ratelimit"


def server_rate_limit_prefix(world_id: str) -> str:
    """What the server's per-caller rate limit buckets of ``world_id`` start with (the
    caller's name follows)."""
    return f"{KEY_PREFIX}:{_LAYOUT}:{world_id}:server_ratelimit:"


def events_channel(world_id: str, player_id: int) -> str:
    """The pub/sub channel of one player's events in ``world_id``."""
    return f"{KEY_PREFIX}:{_LAYOUT}:{world_id}:events:{player_id}"


def events_log_key(world_id: str, player_id: int) -> str:
    """The stream (``XADD``) holding one player's recent events in ``world_id``."""
    return f"{KEY_PREFIX}:{_LAYOUT}:{world_id}:eventlog:{player_id}"


__all__ = [
    "CACHE_FORMAT_VERSION",
    "KEY_PREFIX",
    "cache_prefix",
    "events_channel",
    "events_log_key",
    "rate_limit_key",
    "server_rate_limit_prefix",
]
