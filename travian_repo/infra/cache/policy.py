"""The cache policy, kept as data: how long each read is cached, and what each write changes.

- ``DEFAULT_TTLS``: seconds per cached read operation, from each read's declaration
  (``ttl=`` of its ``@operation``); ``cache_ttls=`` overrides them.
- ``EVENT_INVALIDATES``: the entities a committed domain event changes (the SQL side's
  commit listener reads the events of the commit).
- ``entities_of_write``: what an HTTP write changed (the client cannot see the server's
  commit and its events), from the write's declaration (``invalidates=`` of its
  ``@operation``), which names the same entities its events do.

An entity is a string such as ``village:7``, ``villages_of:3``, ``mail:3``, ``market``,
``rank``; every cached entry depends on some of them and on ``WORLD`` (the world's epoch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from travian_repo.domain import events as ev
from travian_repo.repositories.base import declared_operations
from travian_repo.repositories.declaration import Operation

# Seconds, from the declarations (military.troops gets the village's TTL there).
DEFAULT_TTLS: dict[str, float] = {
    op.name: op.ttl for op in declared_operations().values() if op.ttl is not None
}


WORLD = "world"  # the entity every entry depends on: the world's epoch

# ---------------------------------------------------------------------------------------------
# What a committed write changed: the one mapping from domain events to entities.
# Templates are formatted with the event's data plus ``player`` (the event's player).
# A kind not listed here (or an event missing a field) invalidates the whole world.

EVENT_INVALIDATES: dict[str, tuple[str, ...]] = {
    ev.BUILD_QUEUED: ("village:{village_id}", "villages_of:{player}"),
    ev.BUILD_CANCELLED: ("village:{village_id}", "villages_of:{player}"),
    ev.BUILD_COMPLETED: ("village:{village_id}", "villages_of:{player}", "player:{player}", "rank"),
    ev.TRAINING_QUEUED: ("village:{village_id}", "villages_of:{player}"),
    ev.TROOPS_TRAINED: ("village:{village_id}", "villages_of:{player}"),
    ev.MOVEMENT_SENT: ("village:{from_village_id}", "village:{to_village_id}", "villages_of:{player}"),
    ev.ATTACK_INCOMING: ("village:{to_village_id}",),
    ev.REINFORCEMENT_INCOMING: ("village:{to_village_id}",),
    # An arrival may plunder, kill, conquer: both villages, the player told, the rankings.
    ev.MOVEMENT_ARRIVED: ("village:{from_village_id}", "village:{to_village_id}",
                          "villages_of:{player}", "player:{player}", "rank"),
    ev.OFFER_CREATED: ("village:{village_id}", "villages_of:{player}", "market"),
    # Emitted to both players: each one's own villages list is invalidated by its event.
    ev.OFFER_ACCEPTED: ("village:{village_id}", "village:{accepted_by_village_id}",
                        "villages_of:{player}", "market"),
    ev.OFFER_CANCELLED: ("village:{village_id}", "villages_of:{player}", "market"),
    ev.RESOURCES_SENT: ("village:{from_village_id}", "village:{to_village_id}", "villages_of:{player}"),
    ev.RESOURCES_INCOMING: ("village:{to_village_id}",),
    ev.RESOURCES_ARRIVED: ("village:{from_village_id}", "village:{to_village_id}", "villages_of:{player}"),
    ev.MESSAGE_RECEIVED: ("mail:{player}",),
    ev.MESSAGE_READ: ("mail:{player}",),
    ev.REPORT_CREATED: ("reports:{player}",),
    ev.ALLIANCE_CREATED: ("player:{player}", "rank"),
    ev.ALLIANCE_INVITATION: ("player:{player}",),
    ev.EVENTS_LOST: (),  # the event stream's notice, never committed: changes nothing
}


def entities_of_event(kind: str, player_id: int | None, data: Mapping[str, Any]) -> set[str]:
    templates = EVENT_INVALIDATES.get(kind)
    if templates is None:
        return {WORLD}
    try:
        return {t.format(player=player_id, **data) for t in templates}
    except (KeyError, IndexError, AttributeError):
        return {WORLD}


def entities_of_write(
    declared: Operation, actor: int | None, values: Sequence[Any], result: Any = None
) -> set[str]:
    """What an HTTP write changed, from its declaration's ``invalidates=``: the templates
    formatted with the call's (checked) arguments in parameter order, ``actor`` and
    ``result`` (the decoded answer; None when the call failed, so a template that needs it
    makes the whole world stale)."""
    if not declared.invalidates:
        return {WORLD}
    by_name = {p.name: value for p, value in zip(declared.params, values)}
    try:
        return {
            inv.template.format(actor=actor, result=result, **by_name)
            for inv in declared.invalidates
            if inv.when is None or by_name[inv.when]
        }
    except (KeyError, IndexError, AttributeError):
        return {WORLD}


__all__ = [
    "DEFAULT_TTLS",
    "EVENT_INVALIDATES",
    "WORLD",
    "entities_of_event",
    "entities_of_write",
]
