"""Villages on the database: reads in one round trip, builds in one transaction."""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import Connection, bindparam, delete, insert

from travian_repo.domain import events
from travian_repo.domain.errors import Conflict, NotFound, RuleViolation
from travian_repo.domain.values import BuildOrder, Resources, Village
from travian_repo.repositories import validation as v
from travian_repo.repositories.base import VillageRepository
from travian_repo.rules import buildings as rules
from travian_repo.rules import build_queue, placement
from travian_repo.sql import prepared, schema
from travian_repo.sql.repository import SqlRepository
from travian_repo.sql.derived import apply_level
from travian_repo.sql.village_state import (
    AT,
    BY_ID,
    BY_PLAYER,
    load_village,
    load_villages,
    state_from_row,
    village_from,
)
from travian_repo.sql.village_writes import (
    add_stock,
    check_owner,
    keep_state,
    lock_village,
    move_order,
    paid_with,
    spend,
    spend_with,
)

_q = schema.build_queue
# A build order, built once (see spend_with).
_QUEUE = insert(_q).values(
    village_id=bindparam("stock_village"), queue_position=bindparam("p_position"),
    slot=bindparam("p_slot"), building_name=bindparam("p_building"),
    target_level=bindparam("p_level"), wood=bindparam("p_wood"), clay=bindparam("p_clay"),
    iron=bindparam("p_iron"), wheat=bindparam("p_wheat"),
    started_at=bindparam("p_starts", type_=schema.UTCDateTime()),
    completes_at=bindparam("p_completes", type_=schema.UTCDateTime()),
).returning(_q.c.id)
# Run by spend_with as a prepared statement on PostgreSQL.
prepared.prepare("tr_build_order", paid_with(_QUEUE))


class SqlVillageRepository(SqlRepository, VillageRepository):
    def get(self, village_id: int) -> Village:
        state = village_from(self._fetch(BY_ID, {"village_id": village_id}), village_id,
                             self.now)
        return state.to_village(private=state.player_id == self._actor)

    def get_many(self, village_ids: Sequence[int]) -> list[Village]:
        states = self._read(lambda conn: load_villages(conn, village_ids, self.now))
        missing = next((i for i in village_ids if i not in states), None)
        if missing is not None:
            raise NotFound(f"village {missing} does not exist")
        actor = self._actor
        return [states[i].to_village(private=states[i].player_id == actor) for i in village_ids]

    def list_by_player(self, player_id: int) -> list[Village]:
        rows = self._fetch(BY_PLAYER, {"player_id": player_id})
        now = self.now
        states = [state_from_row(row, now) for row in rows]
        if not states:
            self._read(lambda conn: self._require_player_exists(conn, player_id))
        private = player_id == self._actor
        return [s.to_village(private=private) for s in states]

    def at(self, x: int, y: int) -> Village | None:
        # Only this side knows the map's edge (over HTTP the server checks it).
        x, y = v.check_point(x, y, radius=self.settings.map_radius)
        row = self._fetch(AT, {"x": x, "y": y}).first()
        if row is None:
            return None
        state = state_from_row(row, self.now)
        return state.to_village(private=state.player_id == self._actor)

    def build_queue(self, village_id: int) -> list[BuildOrder]:

        def run(conn: Connection) -> list[BuildOrder]:
            state = load_village(conn, village_id, self.now)
            check_owner(state.player_id, self._actor_id("read the build queue"), village_id,
                        "read the build queue")
            return state.queue

        return self._read(run)

    def queue_building(
        self, village_id: int, building: str, *, slot: int | None = None, instant: bool = False
    ) -> BuildOrder:
        name = building  # checked by the declaration: the rules' spelling
        actor = self._actor_id("build")
        if instant and not self.settings.instant_builds:
            raise RuleViolation("instant builds are turned off in this world")

        def run(conn: Connection) -> BuildOrder:
            step = self._step()
            # With training_ends: the state this step leaves is the next step's (keep_state).
            state = lock_village(conn, village_id, actor, self.now, action="build",
                                 training=not instant, step=step)
            target_slot, target_level = placement.plan_build(
                state, name, slot, self.settings.build_queue_limit
            )
            cost = rules.building_cost(name, target_level)
            seconds = rules.build_time(
                name,
                target_level,
                main_building_level=state.level("main_building"),
                server_speed=self.settings.speed,
            )
            if instant:
                placement.check_instant(state.queue, target_slot)
                spend(conn, state, cost)
                apply_level(conn, state, target_slot, name, target_level)
                self._emit(events.BUILD_COMPLETED, actor, village_id=village_id, building=name,
                           level=target_level)
                return BuildOrder(0, village_id, 0, target_slot, name, target_level, cost,
                                  state.now, state.now)
            place = build_queue.next_place(state.queue, state.now, seconds)
            position, starts, completes = place.position, place.started_at, place.completes_at
            order_id = spend_with(conn, state, cost, _QUEUE, {
                "p_position": position, "p_slot": target_slot,
                "p_building": name, "p_level": target_level, "p_wood": cost.wood,
                "p_clay": cost.clay, "p_iron": cost.iron, "p_wheat": cost.wheat,
                "p_starts": starts, "p_completes": completes,
            }).first()[0]
            self._emit(events.BUILD_QUEUED, actor, village_id=village_id, position=position,
                       building=name, target_level=target_level,
                       completes_at=completes.isoformat())
            order = BuildOrder(order_id, village_id, position, target_slot, name, target_level,
                               cost, starts, completes)
            state.queue = [*state.queue, order]  # last: the highest position
            keep_state(conn, state, step)
            return order

        return self._write(run)

    def cancel_building(self, village_id: int, queue_position: int) -> BuildOrder:
        actor = self._actor_id("cancel a build")

        def run(conn: Connection) -> BuildOrder:
            state = lock_village(conn, village_id, actor, self.now, action="cancel a build")
            # Later levels of the same slot build on this one: they go too, each refunded.
            dropped = build_queue.cancelled(state.queue, queue_position)
            if not dropped:
                raise NotFound(f"village {village_id} has no build order at position {queue_position}")
            order = dropped[0]
            kept = [o for o in state.queue if o not in dropped]
            gone = conn.execute(delete(_q).where(_q.c.id.in_([o.id for o in dropped]))).rowcount
            if gone != len(dropped):  # only if something bypassed the village lock
                raise Conflict(f"build order at position {queue_position} changed under the "
                               "cancel; try again")
            refund = sum((o.cost for o in dropped), Resources())
            add_stock(conn, state, refund)
            # The rest of the queue closes up, lowest position first, each order into a freed
            # position (never two orders at one position).
            for o, place in build_queue.close_up(kept, state.now):
                move_order(conn, o.id, o.position, queue_position=place.position,
                           started_at=place.started_at, completes_at=place.completes_at)
            self._emit(events.BUILD_CANCELLED, actor, village_id=village_id,
                       position=queue_position)
            return order

        return self._write(run)
