"""The cache policy, kept as data: how long each read is cached, and what each write changes.

- ``DEFAULT_TTLS``: seconds per cached read operation, from each read's declaration
  (``ttl=`` of its ``@operation``); ``cache_ttls=`` overrides them.
- ``EVENT_INVALIDATES``: the entities a committed domain event changes (the SQL side's
  commit listener reads the events of the commit).
- ``WRITE_EVENTS``: the domain events an HTTP write stands for (the client cannot see the
  server's commit, so it re-creates its events from the call), turned into entities by the
  same ``EVENT_INVALIDATES``.

An entity is a string such as ``village:7``, ``villages_of:3``, ``mail:3``, ``market``,
``rank``; every cached entry depends on some of them and on ``WORLD`` (the world's epoch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from travian_repo.domain import events as ev
from travian_repo.repositories.base import declared_operations

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


# An HTTP write, as the events the server's commit recorded (the same events the SQL side
# emits), from its path parameters, its JSON body and the acting player.
_WriteEvents = Callable[[int | None, Mapping[str, Any], Mapping[str, Any], Any],
                        list[tuple[str, int | None, dict[str, Any]]]]


def _sent(kind: str) -> _WriteEvents:
    return lambda actor, path, body, result: [
        (kind, actor, {"from_village_id": path["village_id"],
                       "to_village_id": body["target_village_id"]})
    ]


WRITE_EVENTS: dict[str, _WriteEvents] = {
    "villages.queue_building": lambda actor, path, body, result: [
        (ev.BUILD_COMPLETED if body.get("instant") else ev.BUILD_QUEUED, actor,
         {"village_id": path["village_id"]})
    ],
    "villages.cancel_building": lambda actor, path, body, result: [
        (ev.BUILD_CANCELLED, actor, {"village_id": path["village_id"]})
    ],
    "military.train": lambda actor, path, body, result: [
        (ev.TRAINING_QUEUED, actor, {"village_id": path["village_id"]})
    ],
    "military.attack": _sent(ev.MOVEMENT_SENT),
    "military.reinforce": _sent(ev.MOVEMENT_SENT),
    "military.send_home": lambda actor, path, body, result: [
        (ev.MOVEMENT_SENT, actor, {"from_village_id": result["from_village_id"],
                                   "to_village_id": path["village_id"]})
    ],
    "intel.send_scouts": _sent(ev.MOVEMENT_SENT),
    "trade.create_offer": lambda actor, path, body, result: [
        (ev.OFFER_CREATED, actor, {"village_id": path["village_id"]})
    ],
    "trade.send_resources": _sent(ev.RESOURCES_SENT),
    # The offerer's village comes from the answer (the shipment goes to it); without an
    # answer (the call failed) the KeyError/TypeError makes it the whole world.
    "trade.accept_offer": lambda actor, path, body, result: [
        (ev.OFFER_ACCEPTED, actor, {"village_id": result["to_village_id"],
                                    "accepted_by_village_id": path["village_id"]})
    ],
    "trade.cancel_offer": lambda actor, path, body, result: [
        (ev.OFFER_CANCELLED, actor, {"village_id": path["village_id"]})
    ],
    "diplomacy.send_message": lambda actor, path, body, result: [
        (ev.MESSAGE_RECEIVED, body["to"], {})
    ],
    "diplomacy.create_alliance": lambda actor, path, body, result: [
        (ev.ALLIANCE_CREATED, path["player_id"], {})
    ],
    "diplomacy.invite": lambda actor, path, body, result: [
        (ev.ALLIANCE_INVITATION, body["player_id"], {})
    ],
}


def entities_of_write(
    operation: str, actor: int | None, path: Mapping[str, Any], body: Any, result: Any = None
) -> set[str]:
    make = WRITE_EVENTS.get(operation)
    if make is None:
        return {WORLD}
    try:
        found: set[str] = set()
        for kind, player, data in make(actor, path, body if isinstance(body, Mapping) else {},
                                       result):
            found |= entities_of_event(kind, player, data)
        return found
    except (KeyError, TypeError):
        return {WORLD}


__all__ = [
    "DEFAULT_TTLS",
    "EVENT_INVALIDATES",
    "WORLD",
    "WRITE_EVENTS",
    "entities_of_event",
    "entities_of_write",
]
