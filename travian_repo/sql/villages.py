"""Villages on the database: reads in one round trip, builds in one transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Callable

from sqlalchemy import Connection, delete, insert

from travian_repo.domain import events
from travian_repo.domain.errors import Conflict, InvalidRequest, NotFound, RuleViolation
from travian_repo.domain.values import BuildOrder, Resources, Village
from travian_repo.repositories import validation as v
from travian_repo.repositories.base import VillageRepository
from travian_repo.rules import buildings as rules
from travian_repo.sql import schema
from travian_repo.sql.base import SqlRepository
from travian_repo.sql.derived import apply_level
from travian_repo.sql.village_state import (
    VillageState,
    add_stock,
    check_owner,
    load_village,
    load_player_villages,
    load_village_at,
    lock_village,
    move_order,
    spend,
)

_q = schema.build_queue

FIELD_SLOTS = range(1, 19)
BUILDING_SLOTS = range(19, 39)
MAIN_BUILDING_SLOT = 26
RALLY_POINT_SLOT = 39
WALL_SLOT = 40


class SqlVillageRepository(SqlRepository, VillageRepository):
    def get(self, village_id: int) -> Village:
        village_id = v.check_id(village_id, "village_id")
        state = self._read(lambda conn: load_village(conn, village_id, self.now))
        return state.to_village(private=state.player_id == self._actor)

    def list_by_player(self, player_id: int) -> list[Village]:
        player_id = v.check_id(player_id, "player_id")

        def run(conn: Connection) -> list[VillageState]:
            states = load_player_villages(conn, player_id, self.now)
            if not states:
                self._require_player_exists(conn, player_id)
            return states

        private = player_id == self._actor
        return [s.to_village(private=private) for s in self._read(run)]

    def at(self, x: int, y: int) -> Village | None:
        radius = self.settings.map_radius
        x = v.check_int(x, "x", low=-radius, high=radius)
        y = v.check_int(y, "y", low=-radius, high=radius)
        state = self._read(lambda conn: load_village_at(conn, x, y, self.now))
        if state is None:
            return None
        return state.to_village(private=state.player_id == self._actor)

    def build_queue(self, village_id: int) -> list[BuildOrder]:
        village_id = v.check_id(village_id, "village_id")

        def run(conn: Connection) -> list[BuildOrder]:
            state = load_village(conn, village_id, self.now)
            check_owner(state.player_id, self._actor_id("read the build queue"), village_id,
                        "read the build queue")
            return state.queue

        return self._read(run)

    def queue_building(
        self, village_id: int, building: str, *, slot: int | None = None, instant: bool = False
    ) -> BuildOrder:
        village_id = v.check_id(village_id, "village_id")
        name = rules.building_spec(v.check_name(building, "building", max_length=40)).name
        if slot is not None:
            slot = v.check_int(slot, "slot", low=1, high=WALL_SLOT)
        instant = v.check_bool(instant, "instant")
        actor = self._actor_id("build")
        if instant and not self.settings.instant_builds:
            raise RuleViolation("instant builds are turned off in this world")

        def run(conn: Connection) -> BuildOrder:
            state = lock_village(conn, village_id, actor, self.now, action="build")
            target_slot, target_level = plan_build(state, name, slot, self.settings.build_queue_limit)
            cost = rules.building_cost(name, target_level)
            seconds = rules.build_time(
                name,
                target_level,
                main_building_level=state.level("main_building"),
                server_speed=self.settings.speed,
            )
            if instant and any(o.slot == target_slot for o in state.queue):
                raise RuleViolation(f"slot {target_slot} has queued orders; it cannot finish now")
            spend(conn, state, cost)
            if instant:
                apply_level(conn, state, target_slot, name, target_level)
                self._emit(events.BUILD_COMPLETED, actor, village_id=village_id, building=name,
                           level=target_level)
                return BuildOrder(0, village_id, 0, target_slot, name, target_level, cost,
                                  state.now, state.now)
            starts = max([state.now, *(o.completes_at for o in state.queue)])
            completes = starts + timedelta(seconds=seconds)
            position = max((o.position for o in state.queue), default=0) + 1
            order_id = conn.execute(
                insert(_q)
                .values(
                    village_id=village_id,
                    queue_position=position,
                    slot=target_slot,
                    building_name=name,
                    target_level=target_level,
                    wood=cost.wood,
                    clay=cost.clay,
                    iron=cost.iron,
                    wheat=cost.wheat,
                    started_at=starts,
                    completes_at=completes,
                )
                .returning(_q.c.id)
            ).scalar_one()
            self._emit(events.BUILD_QUEUED, actor, village_id=village_id, position=position,
                       building=name, target_level=target_level,
                       completes_at=completes.isoformat())
            return BuildOrder(order_id, village_id, position, target_slot, name, target_level,
                              cost, starts, completes)

        return self._write(run)

    def cancel_building(self, village_id: int, queue_position: int) -> BuildOrder:
        village_id = v.check_id(village_id, "village_id")
        queue_position = v.check_int(queue_position, "queue_position", low=1, high=1000)
        actor = self._actor_id("cancel a build")

        def run(conn: Connection) -> BuildOrder:
            state = lock_village(conn, village_id, actor, self.now, action="cancel a build")
            order = next((o for o in state.queue if o.position == queue_position), None)
            if order is None:
                raise NotFound(f"village {village_id} has no build order at position {queue_position}")
            # Later levels of the same slot build on this one: they go too, each refunded.
            dropped = [o for o in state.queue
                       if o.position == order.position
                       or (o.slot == order.slot and o.position > order.position)]
            kept = [o for o in state.queue if o not in dropped]
            gone = conn.execute(delete(_q).where(_q.c.id.in_([o.id for o in dropped]))).rowcount
            if gone != len(dropped):  # only if something bypassed the village lock
                raise Conflict(f"build order at position {queue_position} changed under the "
                               "cancel; try again")
            refund = sum((o.cost for o in dropped), Resources())
            add_stock(conn, state, refund)
            # The rest of the queue closes up: positions renumbered lowest first, each into a
            # freed position (never two orders at one position), times moved earlier.
            cursor = state.now
            for position, o in enumerate(kept, start=1):
                starts = o.started_at if o.started_at <= state.now else max(cursor, state.now)
                completes = starts + (o.completes_at - o.started_at)
                if (position, starts, completes) != (o.position, o.started_at, o.completes_at):
                    move_order(conn, o.id, o.position, queue_position=position,
                               started_at=starts, completes_at=completes)
                cursor = completes
            self._emit(events.BUILD_CANCELLED, actor, village_id=village_id,
                       position=queue_position)
            return order

        return self._write(run)



def plan_build(
    state: VillageState, name: str, slot: int | None, queue_limit: int
) -> tuple[int, int]:
    """The slot and the level the next order for ``name`` builds, or the rule it breaks."""
    spec = rules.building_spec(name)
    if spec.tribes is not None and state.tribe not in spec.tribes:
        raise RuleViolation(f"{name} cannot be built by the {state.tribe}")
    if spec.special_condition:
        raise RuleViolation(f"{name} is not available in this world ({spec.special_condition})")
    if spec.capital_only and not state.is_capital:
        raise RuleViolation(f"{name} can only be built in a capital")
    if spec.forbidden_in_capital and state.is_capital:
        raise RuleViolation(f"{name} cannot be built in a capital")
    if len(state.queue) >= queue_limit:
        raise RuleViolation(f"the build queue is full ({queue_limit} orders)")

    occupants = _occupants(state)
    rival = next((other for other in spec.excludes if other in occupants.values()), None)
    if rival is not None:
        raise RuleViolation(f"{name} cannot stand in a village that has a {rival}")

    def planned_level(s: int) -> int:
        built = next((b.level for b in state.buildings if b.slot == s), 0)
        return max([built, *(o.target_level for o in state.queue if o.slot == s)])

    top = rules.max_level(name, is_capital=state.is_capital)
    if slot is None:
        slot = _choose_slot(name, occupants, planned_level, top)
    else:
        _check_slot(name, slot, occupants)
    level = planned_level(slot) + 1
    if level > top:
        raise RuleViolation(f"{name} in slot {slot} is at its highest level ({top})")
    missing = rules.missing_prerequisites(name, state.levels())
    if missing:
        needs = ", ".join(f"{b} level {lv}" for b, lv in missing)
        raise RuleViolation(f"{name} needs {needs}")
    others = [b.level for b in state.buildings if b.name == name and b.slot != slot]
    required = spec.additional_instance_requires_level
    if level == 1 and others and required and max(others) < required:
        raise RuleViolation(f"another {name} needs the first one at level {required}")
    return slot, level


def _occupants(state: VillageState) -> dict[int, str]:
    """Slot -> the building standing there or queued to be built there."""
    result = {o.slot: o.building for o in state.queue}
    result.update({b.slot: b.name for b in state.buildings})
    return result


def _slots_for(name: str) -> range:
    if name in rules.RESOURCE_FIELDS:
        return FIELD_SLOTS
    if name == "rally_point":
        return range(RALLY_POINT_SLOT, RALLY_POINT_SLOT + 1)
    if name in rules.WALLS.values():
        return range(WALL_SLOT, WALL_SLOT + 1)
    return BUILDING_SLOTS


def _choose_slot(
    name: str, occupants: dict[int, str], planned_level: Callable[[int], int], top: int
) -> int:
    """The field of that kind with the lowest level; the building itself; or a free slot."""
    slots = _slots_for(name)
    own = [s for s in slots if occupants.get(s) == name]
    if name in rules.RESOURCE_FIELDS or not rules.building_spec(name).multiple_allowed:
        if own:
            return min(own, key=lambda s: (planned_level(s), s))
    else:
        below_top = [s for s in own if planned_level(s) < top]
        if below_top:
            return min(below_top, key=lambda s: (planned_level(s), s))
    free = [s for s in slots if s not in occupants]
    if not free:
        raise RuleViolation(f"no free building slot for {name}")
    return free[0]


def _check_slot(name: str, slot: int, occupants: dict[int, str]) -> None:
    if slot not in _slots_for(name):
        raise InvalidRequest(f"{name} cannot stand in slot {slot}")
    occupant = occupants.get(slot)
    if occupant is not None and occupant != name:
        raise RuleViolation(f"slot {slot} holds {occupant}, not {name}")
    if occupant is None and not rules.building_spec(name).multiple_allowed:
        if name in occupants.values():
            raise RuleViolation(f"this village already has a {name}")


