"""Where a building may stand and which level its next order builds.

A village has 40 slots: 1-18 resource fields, 19-38 buildings, 39 the rally point and 40 the
wall. A slot's planned level is the highest of what stands there and what is queued for it;
the next order builds one level above that. Every function here takes plain values (a
:class:`VillageLayout` is anything with the four attributes below) and raises
``RuleViolation`` for a rule the order breaks, ``InvalidRequest`` for a slot the building
cannot stand in.
"""

from __future__ import annotations

from typing import Callable, Mapping, Protocol, Sequence

from travian_repo.domain.errors import InvalidRequest, RuleViolation
from travian_repo.domain.values import Building, BuildOrder
from travian_repo.rules import buildings

FIELD_SLOTS = range(1, 19)
BUILDING_SLOTS = range(19, 39)
RALLY_POINT_SLOT = 39
WALL_SLOT = 40
SLOTS = range(1, WALL_SLOT + 1)  # every slot of a village


class VillageLayout(Protocol):
    """What placement reads of a village: its owner's tribe, whether it is the capital, the
    buildings standing and the build orders queued."""

    @property
    def tribe(self) -> str: ...

    @property
    def is_capital(self) -> bool: ...

    @property
    def buildings(self) -> Sequence[Building]: ...

    @property
    def queue(self) -> Sequence[BuildOrder]: ...


def plan_build(
    village: VillageLayout, name: str, slot: int | None, queue_limit: int
) -> tuple[int, int]:
    """The slot and the level the next order for ``name`` builds, or the rule it breaks.

    Checked in this order: the tribe, a special condition, capital only or forbidden there,
    a full queue, a building it excludes, the slot (chosen when ``slot`` is None), the highest
    level, the prerequisites, and a second instance before the first is high enough.
    """
    spec = buildings.building_spec(name)
    name = spec.name
    if spec.tribes is not None and village.tribe not in spec.tribes:
        raise RuleViolation(f"{name} cannot be built by the {village.tribe}")
    if spec.special_condition:
        raise RuleViolation(f"{name} is not available in this world ({spec.special_condition})")
    if spec.capital_only and not village.is_capital:
        raise RuleViolation(f"{name} can only be built in a capital")
    if spec.forbidden_in_capital and village.is_capital:
        raise RuleViolation(f"{name} cannot be built in a capital")
    check_queue_room(village.queue, queue_limit)

    occupied = occupants(village.buildings, village.queue)
    rival = next((other for other in spec.excludes if other in occupied.values()), None)
    if rival is not None:
        raise RuleViolation(f"{name} cannot stand in a village that has a {rival}")

    # Each slot's planned level (as ``planned_level``), from one pass over each list: the
    # slot choice asks for many slots.
    built = {b.slot: b.level for b in village.buildings}
    queued: dict[int, int] = {}
    for o in village.queue:
        queued[o.slot] = max(queued.get(o.slot, 0), o.target_level)

    def planned(s: int) -> int:
        return max(built.get(s, 0), queued.get(s, 0))

    top = buildings.max_level(name, is_capital=village.is_capital)
    if slot is None:
        slot = choose_slot(name, occupied, planned, top)
    else:
        check_slot(name, slot, occupied)
    level = planned(slot) + 1
    if level > top:
        raise RuleViolation(f"{name} in slot {slot} is at its highest level ({top})")
    missing = buildings.missing_prerequisites(name, highest_levels(village.buildings))
    if missing:
        needs = ", ".join(f"{b} level {lv}" for b, lv in missing)
        raise RuleViolation(f"{name} needs {needs}")
    others = [b.level for b in village.buildings if b.name == name and b.slot != slot]
    required = spec.additional_instance_requires_level
    if level == 1 and others and required and max(others) < required:
        raise RuleViolation(f"another {name} needs the first one at level {required}")
    return slot, level


def check_queue_room(queue: Sequence[BuildOrder], queue_limit: int) -> None:
    if len(queue) >= queue_limit:
        raise RuleViolation(f"the build queue is full ({queue_limit} orders)")


def check_instant(queue: Sequence[BuildOrder], slot: int) -> None:
    """An instant build finishes its level now, so it cannot jump orders queued for its slot."""
    if any(o.slot == slot for o in queue):
        raise RuleViolation(f"slot {slot} has queued orders; it cannot finish now")


def highest_levels(standing: Sequence[Building]) -> dict[str, int]:
    """Building name -> the highest level of it standing (queued levels not counted)."""
    result: dict[str, int] = {}
    for b in standing:
        if b.level > result.get(b.name, 0):
            result[b.name] = b.level
    return result


def occupants(standing: Sequence[Building], queue: Sequence[BuildOrder]) -> dict[int, str]:
    """Slot -> the building standing there or queued to be built there."""
    result = {o.slot: o.building for o in queue}
    result.update({b.slot: b.name for b in standing})
    return result


def planned_level(standing: Sequence[Building], queue: Sequence[BuildOrder], slot: int) -> int:
    """The level ``slot`` reaches once its queued orders are done (0 when empty)."""
    built = next((b.level for b in standing if b.slot == slot), 0)
    return max([built, *(o.target_level for o in queue if o.slot == slot)])


def slots_for(name: str) -> range:
    """The slots ``name`` may stand in."""
    name = buildings.building_spec(name).name
    if name in buildings.RESOURCE_FIELDS:
        return FIELD_SLOTS
    if name == "rally_point":
        return range(RALLY_POINT_SLOT, RALLY_POINT_SLOT + 1)
    if name in buildings.WALLS.values():
        return range(WALL_SLOT, WALL_SLOT + 1)
    return BUILDING_SLOTS


def choose_slot(
    name: str, occupied: Mapping[int, str], planned: Callable[[int], int], top: int
) -> int:
    """The field of that kind with the lowest level; the building itself; or a free slot.

    A building allowed more than once (warehouse, cranny ...) grows its lowest instance
    below ``top`` first and takes a free slot only when every one is at the top.
    """
    slots = slots_for(name)
    own = [s for s in slots if occupied.get(s) == name]
    if name in buildings.RESOURCE_FIELDS or not buildings.building_spec(name).multiple_allowed:
        if own:
            return min(own, key=lambda s: (planned(s), s))
    else:
        below_top = [s for s in own if planned(s) < top]
        if below_top:
            return min(below_top, key=lambda s: (planned(s), s))
    free = [s for s in slots if s not in occupied]
    if not free:
        raise RuleViolation(f"no free building slot for {name}")
    return free[0]


def check_slot(name: str, slot: int, occupied: Mapping[int, str]) -> None:
    """``name`` may go into ``slot``: a slot of its kind, empty or holding ``name``, and not a
    second one of a building the village may have only once."""
    if slot not in slots_for(name):
        raise InvalidRequest(f"{name} cannot stand in slot {slot}")
    occupant = occupied.get(slot)
    if occupant is not None and occupant != name:
        raise RuleViolation(f"slot {slot} holds {occupant}, not {name}")
    if occupant is None and not buildings.building_spec(name).multiple_allowed:
        if name in occupied.values():
            raise RuleViolation(f"this village already has a {name}")


__all__ = [
    "BUILDING_SLOTS",
    "FIELD_SLOTS",
    "RALLY_POINT_SLOT",
    "SLOTS",
    "WALL_SLOT",
    "VillageLayout",
    "check_instant",
    "check_queue_room",
    "check_slot",
    "choose_slot",
    "highest_levels",
    "occupants",
    "plan_build",
    "planned_level",
    "slots_for",
]
