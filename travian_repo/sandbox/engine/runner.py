"""The engine clock: everything that falls due in the world, processed in time order.

``Engine(database).run_until(when)`` finds what is due up to ``when`` -- builds completing,
units finishing training (one by one), movements arriving, shipments arriving and merchants
coming home -- and processes it in time order; at the same time by kind (builds, training,
troops coming home, reinforcements, scouts, attacks/raids/sieges, shipments, merchants),
then by id. Events are processed in small transactions of at most ``batch`` events (16 by
default; 1 gives one transaction per event); a run of units of one training line with
nothing else due in between is handled as one step and counts one event per unit.

Locking follows the repositories: every village an event changes is locked first (``SELECT
... FOR UPDATE`` on its resources row on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` takes the
whole database), a batch's villages in one statement, lowest id first, before anything is
read; an event that needs a village its batch did not lock waits for the next batch. Then
the event's own row is read again under lock and checked to still be due, and every change
of its state checks that it changed exactly that row. A player's write in between (a build
cancelled, reinforcements sent home) is therefore seen, and two engines on one database
never process an event twice.
An event happens at its due time: the villages' stock is settled to that time (or to their
last write, if a player wrote later) before it is changed.

Choices: a catapult target that is not given (or not standing) is the village's highest
building other than the wall (lowest slot on a tie), since the game's random target would
make runs unrepeatable; a building knocked to 0 is removed (a resource field stays at 0); a
build completing sets the level it was ordered for; troops never starve.
"""

from __future__ import annotations

import functools
import heapq
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy import Engine as SqlEngine

from travian_repo.domain import events
from travian_repo.domain.errors import Conflict, NotFound
from travian_repo.domain.values import Building, Resources
from travian_repo.rules import battle
from travian_repo.rules import economy as economy_rules
from travian_repo.rules import units as unit_rules
from travian_repo.rules.buildings import RESOURCE_FIELDS, WALLS
from travian_repo.sql import schema
from travian_repo.sql.database import Database, SqlSession, make_engine, utc_now
from travian_repo.sql.economy import apply_level, refresh
from travian_repo.sql.schema import as_utc
from travian_repo.sql.village_state import (
    VILLAGE_SELECT, VillageState, close_up_queue, lock_in_order, state_from_row, store, take_lock,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

_v = schema.villages
_b = schema.village_buildings
_t = schema.troops
_m = schema.movements
_s = schema.shipments
_q = schema.build_queue
_tq = schema.training_queue
_to = schema.training_orders
_rep = schema.reports

# Same time: builds, training, then arrivals (home first), shipments, merchants.
ORDER: Mapping[str, int] = {
    "build": 0,
    "train": 1,
    "return": 2,
    "reinforcement": 3,
    "scout": 4,
    "attack": 5,
    "raid": 5,
    "siege": 5,
    "deliver": 6,
    "merchants": 7,
}
HOSTILE = frozenset({"attack", "raid", "siege"})

_BY_ID = VILLAGE_SELECT.where(_v.c.id == bindparam("village_id"))


@dataclass(frozen=True, order=True)
class Due:
    """One thing due: ordered by time, kind order, then id."""

    at: datetime
    order: int
    id: int
    kind: str = field(compare=False)
    # The villages involved, as read when it was found (rechecked under lock): the build's
    # or line's village; a movement's or shipment's source and target.
    source: int = field(compare=False, default=0)
    target: int = field(compare=False, default=0)

    @classmethod
    def of(cls, kind: str, at: datetime, id_: int, source: int = 0, target: int = 0) -> Due:
        return cls(as_utc(at), ORDER[kind], int(id_), kind, int(source), int(target))


@dataclass
class _Group:
    """A defending group: the village's own troops at home, or a stationed movement's."""

    player_id: int
    village_id: int  # the troops' home
    tribe: str
    troops: dict[str, int]
    movement_id: int | None = None

    def payload(self, lost: Mapping[str, int] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = dict(player_id=self.player_id, village_id=self.village_id,
                                    tribe=self.tribe, troops=self.troops)
        if lost is not None:
            data["lost"] = {u: n for u, n in lost.items() if n}
        return data


class _Later(Exception):
    """The event needs a village its batch did not lock; it waits for the next batch."""


def _villages(due: Due) -> set[int]:
    """The villages an event changes (a hostile arrival also the homes of troops stationed
    in its target, found under lock)."""
    if due.kind in ("build", "train"):
        return {due.source}
    if due.kind == "deliver":
        return {due.target}
    if due.kind == "merchants":
        return set()
    return {due.source, due.target}


def _peek(heap: list[Due], count: int) -> list[Due]:
    """The ``count`` first events of the heap, which is left as it was (O(count log n))."""
    ahead = [heapq.heappop(heap) for _ in range(min(count, len(heap)))]
    for due in ahead:
        heapq.heappush(heap, due)
    return ahead


def _stationed_homes(targets: list[int]) -> Any:
    return (select(_m.c.from_village_id).distinct()
            .where(_m.c.to_village_id.in_(targets), _m.c.state == "stationed"))


@dataclass
class _Outcome:
    count: int = 0
    follow: list[Due] = field(default_factory=list)


class Engine:
    """Processes what is due in a world database. See the module docstring.

    ``database``: a :class:`Database` (its commit listeners, e.g. a World's event bus, see
    every event), an SQLAlchemy engine, or a database URL (an engine of the engine's own,
    closed by :meth:`close`). ``clock``: what :meth:`run_due` runs up to (default: the
    database's clock).
    """

    def __init__(self, database: Database | SqlEngine | str, *, clock: Clock | None = None,
                 batch: int = 16) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.batch = batch
        self._owns = False
        if isinstance(database, Database):
            self.database = database
        elif isinstance(database, str):
            self.database = Database(make_engine(database), clock=clock)
            self._owns = True
        else:
            self.database = Database(database, clock=clock)
        self.clock: Clock = clock or self.database.clock
        self._run_lock = threading.Lock()
        self._held: set[int] = set()  # the villages the running batch has locked
        self._session: SqlSession | None = None

    # -- public ---------------------------------------------------------------------------

    def run_due(self) -> int:
        """Process everything due up to the clock's now."""
        return self.run_until(self.clock())

    def run_until(self, when: datetime) -> int:
        """Process everything due up to ``when`` in time order; the number of events."""
        if when.tzinfo is None:
            raise ValueError("run_until needs an aware datetime")
        when = when.astimezone(timezone.utc)
        processed = 0
        with self._run_lock:
            session = self._session = self.database.session()
            try:
                while True:
                    heap = session.read(lambda conn: self._collect(conn, when))
                    if not heap:
                        break
                    heapq.heapify(heap)
                    done_this_round = 0
                    while heap:
                        count, heap = session.write(
                            functools.partial(self._process_batch, heap=heap, when=when)
                        )
                        session.commit()
                        done_this_round += count
                    processed += done_this_round
                    if done_this_round == 0:  # all stale (a concurrent engine took them)
                        break
            finally:
                self._session = None
                session.close()
        return processed

    def overdue(self, when: datetime | None = None) -> int:
        """How many events are due at ``when`` (default: the clock's now) and not processed."""
        at = (when or self.clock()).astimezone(timezone.utc)
        session = self.database.session()
        try:
            return len(session.read(lambda conn: self._collect(conn, at)))
        finally:
            session.close()

    def close(self) -> None:
        if self._owns:
            self.database.dispose()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- finding what is due ----------------------------------------------------------------

    def _collect(self, conn: Connection, when: datetime) -> list[Due]:
        due: list[Due] = []
        builds = conn.execute(
            select(_q.c.id, _q.c.completes_at, _q.c.village_id).where(_q.c.completes_at <= when)
        )
        for id_, at, village in builds:
            due.append(Due.of("build", at, id_, village))
        lines = conn.execute(
            select(_tq.c.id, _tq.c.started_at, _tq.c.seconds_each, _tq.c.trained, _tq.c.village_id)
            .where(_tq.c.trained < _tq.c.count, _tq.c.started_at <= when)
        )
        for id_, started, seconds, trained, village in lines:
            at = as_utc(started) + timedelta(seconds=seconds * (trained + 1))
            if at <= when:
                due.append(Due.of("train", at, id_, village))
        moving = conn.execute(
            select(_m.c.id, _m.c.kind, _m.c.arrives_at, _m.c.from_village_id, _m.c.to_village_id)
            .where(_m.c.state == "underway", _m.c.arrives_at <= when)
        )
        for id_, kind, at, source, target in moving:
            due.append(Due.of(kind, at, id_, source, target))
        shipped = conn.execute(
            select(_s.c.id, _s.c.arrives_at, _s.c.from_village_id, _s.c.to_village_id)
            .where(_s.c.state == "underway", _s.c.arrives_at <= when)
        )
        for id_, at, source, target in shipped:
            due.append(Due.of("deliver", at, id_, source, target))
        for id_, at in conn.execute(
            select(_s.c.id, _s.c.returns_at).where(_s.c.state == "returning", _s.c.returns_at <= when)
        ):
            due.append(Due.of("merchants", at, id_))
        return due

    def _process_batch(self, conn: Connection, *, heap: list[Due], when: datetime
                       ) -> tuple[int, list[Due]]:
        """Up to ``batch`` events in time order, in one transaction. When the step fails the
        heap is put back as it was, so a step run again (serialization failure) starts from
        the same events."""
        count = 0
        popped: list[Due] = []
        pushed: list[Due] = []
        try:
            # The villages of the next events, locked up front in one statement, lowest id
            # first: an event needing another village waits for the next batch, so a batch
            # never takes a lock out of order (no deadlock with players or another engine).
            self._held = self._lock_ahead(conn, _peek(heap, self.batch))
            for _ in range(self.batch):
                if not heap:
                    break
                if popped and not _villages(heap[0]) <= self._held:
                    break
                due = heapq.heappop(heap)
                popped.append(due)
                try:
                    outcome = self._process(conn, due=due, when=when,
                                            after=heap[0] if heap else None,
                                            first=len(popped) == 1)
                except _Later:  # raised before the event wrote anything
                    popped.pop()
                    heapq.heappush(heap, due)
                    break
                count += outcome.count
                for follow in outcome.follow:
                    heapq.heappush(heap, follow)
                    pushed.append(follow)
        except BaseException:
            for follow in pushed:
                heap.remove(follow)
            heap.extend(popped)
            heapq.heapify(heap)
            raise
        return count, heap

    def _lock_ahead(self, conn: Connection, ahead: list[Due]) -> set[int]:
        ids: set[int] = set()
        for due in ahead:
            ids |= _villages(due)
        targets = sorted({due.target for due in ahead if due.kind in HOSTILE})
        if targets:
            ids.update(int(r[0]) for r in conn.execute(_stationed_homes(targets)))
        lock_in_order(conn, ids)
        return ids

    def _need(self, conn: Connection, ids: set[int], first: bool) -> None:
        """Villages an event needs beyond those its batch locked: the next batch takes
        them in order (``_Later``), unless this is the batch's first event (its stations
        changed since the batch began: then they are locked here)."""
        missing = ids - self._held
        if missing:
            if not first:
                raise _Later()
            lock_in_order(conn, missing)
            self._held |= missing

    def _process(self, conn: Connection, *, due: Due, when: datetime, after: Due | None,
                 first: bool = True) -> _Outcome:
        if due.kind == "build":
            return self._build(conn, due, when)
        if due.kind == "train":
            return self._train(conn, due, when, after)
        if due.kind == "deliver":
            return self._deliver(conn, due, when)
        if due.kind == "merchants":
            return self._merchants(conn, due, when)
        return self._arrive(conn, due, when, first)

    # -- builds and training ----------------------------------------------------------------

    def _build(self, conn: Connection, due: Due, when: datetime) -> _Outcome:
        state = _lock(conn, due.source, due.at)
        order = conn.execute(
            select(_q).where(_q.c.id == due.id, _q.c.completes_at <= when).with_for_update()
        ).first()  # None: cancelled meanwhile
        if order is None:
            return _Outcome()
        apply_level(conn, state, order.slot, order.building_name, order.target_level)
        _changed(conn.execute(delete(_q).where(_q.c.id == order.id)), f"build order {order.id}")
        close_up_queue(conn, state.id)
        self._emit(conn, events.BUILD_COMPLETED, state.player_id, village_id=state.id,
                   building=order.building_name, level=order.target_level)
        return _Outcome(1)

    def _train(self, conn: Connection, due: Due, when: datetime, after: Due | None) -> _Outcome:
        state = _lock(conn, due.source, due.at)
        line = conn.execute(select(_tq).where(_tq.c.id == due.id).with_for_update()).first()
        if line is None:
            return _Outcome()
        started = as_utc(line.started_at)

        def unit_time(k: int) -> datetime:  # the k-th unit (1-based) is ready
            return started + timedelta(seconds=line.seconds_each * k)

        done = line.trained
        while done < line.count:
            at = unit_time(done + 1)
            if at > when or (after is not None and Due.of("train", at, line.id) > after):
                break
            done += 1
        new = done - line.trained
        if new == 0:
            return _Outcome()
        _add_troops(conn, state.id, {line.unit: new})
        if done >= line.count:
            _changed(conn.execute(delete(_tq).where(_tq.c.id == line.id, _tq.c.trained == line.trained)),
                     f"training line {line.id}")
            left = conn.execute(select(_tq.c.id).where(_tq.c.order_id == line.order_id).limit(1)).first()
            if left is None:
                _changed(conn.execute(delete(_to).where(_to.c.id == line.order_id)),
                         f"training order {line.order_id}")
        else:
            _changed(conn.execute(update(_tq).where(_tq.c.id == line.id, _tq.c.trained == line.trained)
                                  .values(trained=done)), f"training line {line.id}")
        state.now = max(state.now, unit_time(done))
        _upkeep_changed(conn, state, unit_rules.upkeep(state.tribe, {line.unit: new}))
        self._emit(conn, events.TROOPS_TRAINED, state.player_id, village_id=state.id,
                   unit=line.unit, count=new)
        follow = []
        if done < line.count and unit_time(done + 1) <= when:
            follow.append(Due.of("train", unit_time(done + 1), line.id, state.id))
        return _Outcome(new, follow)

    # -- shipments --------------------------------------------------------------------------

    def _deliver(self, conn: Connection, due: Due, when: datetime) -> _Outcome:
        state = _lock(conn, due.target, due.at)
        row = conn.execute(
            select(_s)
            .where(_s.c.id == due.id, _s.c.state == "underway", _s.c.arrives_at <= when)
            .with_for_update()
        ).first()
        if row is None:
            return _Outcome()
        _add_stock(conn, state, Resources(row.wood, row.clay, row.iron, row.wheat))
        _set_state(conn, _s, row.id, "underway", state="returning")
        sender = conn.execute(select(_v.c.player_id).where(_v.c.id == due.source)).scalar_one()
        data = dict(shipment_id=int(row.id), from_village_id=int(row.from_village_id),
                    to_village_id=int(row.to_village_id))
        self._emit(conn, events.RESOURCES_ARRIVED, state.player_id, **data)
        if int(sender) != state.player_id:
            self._emit(conn, events.RESOURCES_ARRIVED, int(sender), **data)
        follow = []
        if as_utc(row.returns_at) <= when:
            follow.append(Due.of("merchants", row.returns_at, row.id))
        return _Outcome(1, follow)

    def _merchants(self, conn: Connection, due: Due, when: datetime) -> _Outcome:
        changed = conn.execute(
            update(_s)
            .where(_s.c.id == due.id, _s.c.state == "returning", _s.c.returns_at <= when)
            .values(state="done")
        ).rowcount
        return _Outcome(1 if changed == 1 else 0)

    # -- movements --------------------------------------------------------------------------

    def _arrive(self, conn: Connection, due: Due, when: datetime, first: bool) -> _Outcome:
        ids = {due.source, due.target}
        if due.kind in HOSTILE:  # the homes of troops standing in the target may lose some
            # Read with the target locked: no reinforcement can be stationed there meanwhile.
            ids.update(int(r[0]) for r in conn.execute(_stationed_homes([due.target])))
        self._need(conn, ids, first)
        states = {vid: _lock(conn, vid, due.at) for vid in sorted(ids)}
        mv = conn.execute(
            select(_m)
            .where(_m.c.id == due.id, _m.c.state == "underway", _m.c.arrives_at <= when)
            .with_for_update()
        ).first()
        if mv is None:
            return _Outcome()
        at = as_utc(mv.arrives_at)
        arrived = dict(movement_id=int(mv.id), kind=str(mv.kind),
                       from_village_id=int(mv.from_village_id),
                       to_village_id=int(mv.to_village_id))
        if mv.kind == "return":
            home = states[int(mv.to_village_id)]
            _add_troops(conn, home.id, _counts(mv.troops))
            loot = Resources(mv.wood, mv.clay, mv.iron, mv.wheat)
            if loot.total:
                _add_stock(conn, home, loot)
            _set_state(conn, _m, mv.id, "underway", state="done")
            self._emit(conn, events.MOVEMENT_ARRIVED, int(mv.player_id), **arrived)
            return _Outcome(1)
        if mv.kind == "reinforcement":
            _set_state(conn, _m, mv.id, "underway", state="stationed")
            target = states[int(mv.to_village_id)]
            self._emit(conn, events.MOVEMENT_ARRIVED, int(mv.player_id), **arrived)
            if target.player_id != int(mv.player_id):
                self._emit(conn, events.MOVEMENT_ARRIVED, target.player_id, **arrived)
            return _Outcome(1)
        if mv.kind == "scout":
            self._scout(conn, mv, states, at)
        else:
            self._battle(conn, mv, states, at)
        self._emit(conn, events.MOVEMENT_ARRIVED, int(mv.player_id), **arrived)
        return _Outcome(1)

    def _stationed(self, conn: Connection, village_id: int) -> list[Any]:
        return list(conn.execute(
            select(_m.c.id, _m.c.player_id, _m.c.from_village_id, _m.c.troops)
            .where(_m.c.to_village_id == village_id, _m.c.state == "stationed")
            .order_by(_m.c.id)
            .with_for_update()
        ))

    def _defenders(
        self, conn: Connection, target: VillageState, states: dict[int, VillageState]
    ) -> tuple[list[_Group], list[battle.Army]]:
        """The groups defending ``target``: its own troops at home, then each stationed
        movement (their home villages locked, in ``states``)."""
        stationed = self._stationed(conn, target.id)
        for row in stationed:  # read with the target locked, so none is new; a guard only
            home_id = int(row.from_village_id)
            if home_id not in states:
                states[home_id] = _lock(conn, home_id, target.now)
        groups = [_Group(target.player_id, target.id, target.tribe, _home_troops(conn, target.id))]
        for row in stationed:
            home = states[int(row.from_village_id)]
            groups.append(_Group(int(row.player_id), home.id, home.tribe, _counts(row.troops),
                                 int(row.id)))
        return groups, [battle.Army(g.tribe, g.troops) for g in groups]

    def _battle(self, conn: Connection, mv: Any, states: dict[int, VillageState], at: datetime
                ) -> None:
        home = states[int(mv.from_village_id)]
        target = states[int(mv.to_village_id)]
        sent = _counts(mv.troops)
        groups, armies = self._defenders(conn, target, states)
        wall_name = WALLS[target.tribe]
        wall_slot = next((b.slot for b in target.buildings if b.name == wall_name and b.level), None)
        wall_level = target.level(wall_name)
        aimed = _catapult_target(target, mv.catapult_target, wall_name)
        result = battle.fight(
            battle.Army(home.tribe, sent),
            armies,
            kind=battle.RAID if mv.kind == "raid" else battle.NORMAL,
            wall_effect=battle.wall(target.tribe, wall_level),
            target_level=aimed.level if aimed else None,
        )

        # Defenders' losses: troops at home, then each stationed group.
        eaten: dict[int, int] = {}  # village -> wheat per hour its dead troops no longer eat
        for group, cas in zip(groups, result.defenders):
            if not any(cas.lost.values()):
                continue
            eaten[group.village_id] = eaten.get(group.village_id, 0) + unit_rules.upkeep(
                group.tribe, cas.lost)
            if group.movement_id is None:
                _remove_troops(conn, target.id, cas.lost)
            else:
                alive = {u: n for u, n in cas.survivors.items() if n}
                values: dict[str, Any] = {"troops": alive} if alive else {"state": "done"}
                _set_state(conn, _m, group.movement_id, "stationed", **values)

        # Wall and building damage (a full refresh of the target: population, production).
        damaged = False
        if wall_slot is not None and result.wall_after != wall_level:
            _set_level(conn, target, wall_slot, wall_name, result.wall_after)
            damaged = True
        building: dict[str, Any] | None = None
        if aimed is not None and result.target_after is not None:
            building = dict(name=aimed.name, slot=aimed.slot, before=aimed.level,
                            after=result.target_after)
            if result.target_after != aimed.level:
                _set_level(conn, target, aimed.slot, aimed.name, result.target_after)
                damaged = True

        # Bounty, carried home by the survivors.
        survivors = {u: n for u, n in result.attacker.survivors.items() if n}
        loot = Resources()
        capacity = 0
        if survivors:
            capacity = battle.carry_capacity(battle.Army(home.tribe, survivors))
            hidden = battle.hidden_by_cranny(
                economy_rules.cranny_capacity(
                    [b.level for b in target.buildings if b.name == "cranny"], tribe=target.tribe
                ),
                attacker_tribe=home.tribe,
            )
            loot = battle.bounty(capacity, target.available, hidden).taken
            if loot.total:
                store(conn, target, tuple(s - n for s, n in zip(target.stock, loot)))  # type: ignore[arg-type]
            _send_back(conn, mv, survivors, loot, at)
        _set_state(conn, _m, mv.id, "underway", state="done")

        lost = {u: n for u, n in result.attacker.lost.items() if n}
        # Upkeep of every village whose troops died (a damaged target was refreshed whole,
        # after its troops' losses were written).
        eaten[home.id] = eaten.get(home.id, 0) + unit_rules.upkeep(home.tribe, lost)
        for vid, wheat in sorted(eaten.items()):
            if wheat and not (damaged and vid == target.id):
                _upkeep_changed(conn, states[vid], -wheat)
        defenders_payload = [g.payload(c.lost) for g, c in zip(groups, result.defenders)]
        common: dict[str, Any] = dict(
            kind=str(mv.kind),
            movement_id=int(mv.id),
            at=at.isoformat(),
            attacker=dict(player_id=int(mv.player_id), village_id=home.id, tribe=home.tribe,
                          troops=sent, lost=lost, survivors=survivors),
            target_village_id=target.id,
            target_player_id=target.player_id,
            won=bool(survivors),
            attack_points=round(result.attack, 2),
            defence_points=round(result.defence, 2),
            mfactor=result.mfactor,
            losses=dict(attacker=round(result.losses.attacker, 6),
                        defender=round(result.losses.defender, 6)),
            wall=dict(building=wall_name, before=wall_level, after=result.wall_after),
            building=building,
            bounty=_res(loot),
            carry=capacity,
        )
        # The attacker sees the defence only when someone came back to tell.
        seen = defenders_payload if survivors else []
        verb = {"raid": "raids", "siege": "besieges"}.get(str(mv.kind), "attacks")
        subject = f"{home.name} {verb} {target.name}"
        _report(self, conn, int(mv.player_id), "attack", subject, target.id,
                dict(common, role="attacker", defenders=seen), at)
        for player in sorted({g.player_id for g in groups} | {target.player_id}):
            _report(self, conn, player, "defense", subject, target.id,
                    dict(common, role="defender", defenders=defenders_payload), at)

    def _scout(self, conn: Connection, mv: Any, states: dict[int, VillageState], at: datetime
               ) -> None:
        home = states[int(mv.from_village_id)]
        target = states[int(mv.to_village_id)]
        sent = _counts(mv.troops)
        groups, armies = self._defenders(conn, target, states)
        wall_name = WALLS[target.tribe]
        wall_level = target.level(wall_name)
        result = battle.scout(battle.Army(home.tribe, sent), armies,
                              battle.wall(target.tribe, wall_level))
        survivors = {u: n for u, n in result.attacker.survivors.items() if n}
        lost = {u: n for u, n in result.attacker.lost.items() if n}
        if survivors:
            _send_back(conn, mv, survivors, Resources(), at)
        _set_state(conn, _m, mv.id, "underway", state="done")
        if lost:
            _upkeep_changed(conn, home, -unit_rules.upkeep(home.tribe, lost))
        payload: dict[str, Any] = dict(
            kind="scout",
            movement_id=int(mv.id),
            at=at.isoformat(),
            success=result.success,
            attacker=dict(player_id=int(mv.player_id), village_id=home.id, tribe=home.tribe,
                          troops=sent, lost=lost, survivors=survivors),
            target_village_id=target.id,
            target_player_id=target.player_id,
            scout_points=result.attack,
            defence_points=round(result.defence, 2),
        )
        if result.success:
            troops: dict[str, int] = {}
            for g in groups:
                for unit, n in g.troops.items():
                    troops[unit] = troops.get(unit, 0) + n
            payload.update(
                resources=_res(target.available),
                troops=troops,
                defenders=[g.payload() for g in groups],
                wall=dict(building=wall_name, level=wall_level),
                cranny=economy_rules.cranny_capacity(
                    [b.level for b in target.buildings if b.name == "cranny"], tribe=target.tribe
                ),
            )
        subject = f"{home.name} scouts {target.name}"
        _report(self, conn, int(mv.player_id), "scout", subject, target.id, payload, at)
        if any(battle.scouts_of(a) for a in armies):  # the defender notices with scouts of its own
            _report(self, conn, target.player_id, "scouted", subject, target.id,
                    dict(kind="scout", movement_id=int(mv.id), at=at.isoformat(),
                         success=result.success, attacker_player_id=int(mv.player_id),
                         attacker_village_id=home.id, scouts=sum(sent.values()),
                         killed=sum(lost.values())), at)

    def _emit(self, conn: Connection, event: str, player_id: int, /, **data: Any) -> None:
        """Record a domain event on the session running the step (published on commit)."""
        assert self._session is not None, "events are emitted inside run_until only"
        self._session.emit(event, player_id, **data)


# -- helpers ------------------------------------------------------------------------------


def _lock(conn: Connection, village_id: int, at: datetime) -> VillageState:
    """Lock a village (whoever owns it) and settle its stock to ``at`` (or its last write)."""
    take_lock(conn, village_id)  # the lock first, then the read (see sql.village_state)
    row = conn.execute(_BY_ID, {"village_id": village_id}).first()
    if row is None:
        raise NotFound(f"village {village_id} does not exist")
    return state_from_row(row, max(at, as_utc(row.updated_at)))


def _changed(result: Any, what: str) -> None:
    """A step's delete or update of its own row changed exactly that row, or Conflict (only
    if something bypassed the locks; the step rolls back)."""
    if result.rowcount != 1:
        raise Conflict(f"{what} changed under the engine; the step was undone")


def _set_state(conn: Connection, table: Any, row_id: int, was: str, **values: Any) -> None:
    """Move a movement or shipment on from state ``was`` (checked: exactly one row)."""
    _changed(conn.execute(update(table).where(table.c.id == row_id, table.c.state == was)
                          .values(**values)), f"{table.name} {row_id} ({was})")


def _upkeep_changed(conn: Connection, state: VillageState, wheat_per_hour: int) -> None:
    """Troops eating ``wheat_per_hour`` more (less when negative) from now on.

    Net wheat production is gross production minus population minus troop upkeep, so a
    change of troops moves it by exactly their upkeep; the stock is banked at the old rate
    first. (``economy.refresh`` recomputes everything; this is the same result in two
    statements, for the engine's most frequent events.)
    """
    if not wheat_per_hour:
        return
    store(conn, state, state.stock)
    r = schema.village_resources
    conn.execute(
        update(r)
        .where(r.c.village_id == state.id)
        .values(wheat_production=r.c.wheat_production - wheat_per_hour)
    )
    p = state.production
    state.production = Resources(p.wood, p.clay, p.iron, p.wheat - wheat_per_hour)


def _counts(troops: Mapping[str, Any] | None) -> dict[str, int]:
    return {str(u): int(n) for u, n in sorted((troops or {}).items()) if int(n) > 0}


def _res(r: Resources) -> dict[str, int]:
    return dict(wood=r.wood, clay=r.clay, iron=r.iron, wheat=r.wheat)


def _home_troops(conn: Connection, village_id: int) -> dict[str, int]:
    return {
        str(u): int(n)
        for u, n in conn.execute(
            select(_t.c.unit, _t.c.count)
            .where(_t.c.village_id == village_id, _t.c.count > 0)
            .order_by(_t.c.unit)
        )
    }


def _add_troops(conn: Connection, village_id: int, troops: Mapping[str, int]) -> None:
    for unit, count in sorted(troops.items()):
        if count <= 0:
            continue
        changed = conn.execute(
            update(_t)
            .where(_t.c.village_id == village_id, _t.c.unit == unit)
            .values(count=_t.c.count + count)
        ).rowcount
        if changed == 0:
            conn.execute(insert(_t).values(village_id=village_id, unit=unit, count=count))


def _remove_troops(conn: Connection, village_id: int, troops: Mapping[str, int]) -> None:
    for unit, count in sorted(troops.items()):
        if count > 0:
            _changed(conn.execute(
                update(_t)
                .where(_t.c.village_id == village_id, _t.c.unit == unit, _t.c.count >= count)
                .values(count=_t.c.count - count)
            ), f"village {village_id}'s {unit}")
    conn.execute(delete(_t).where(_t.c.village_id == village_id, _t.c.count <= 0))


def _add_stock(conn: Connection, state: VillageState, amount: Resources) -> None:
    """Add resources, capped by storage (never lowering a stock already above its cap)."""
    caps = (state.warehouse_capacity,) * 3 + (state.granary_capacity,)
    stock = tuple(max(s, min(float(cap), s + a)) for s, a, cap in zip(state.stock, amount, caps))
    store(conn, state, stock)  # type: ignore[arg-type]


def _set_level(conn: Connection, state: VillageState, slot: int, name: str, level: int) -> None:
    """A building's level after damage; at 0 a building goes (a field stays, at 0)."""
    if level > 0 or name in RESOURCE_FIELDS:
        apply_level(conn, state, slot, name, level)
        return
    _changed(conn.execute(delete(_b).where(_b.c.village_id == state.id, _b.c.slot == slot)),
             f"village {state.id} slot {slot}")
    state.buildings = [b for b in state.buildings if b.slot != slot]
    refresh(conn, state)


def _catapult_target(state: VillageState, wanted: str | None, wall_name: str) -> Building | None:
    standing = [b for b in state.buildings if b.level > 0 and b.name != wall_name]
    named = [b for b in standing if wanted and b.name == wanted]
    pool = named or standing
    return max(pool, key=lambda b: (b.level, -b.slot), default=None)


def _send_back(conn: Connection, mv: Any, troops: Mapping[str, int], loot: Resources,
               at: datetime) -> None:
    """The survivors' way home: a ``return`` movement taking as long as the way out."""
    trip = as_utc(mv.arrives_at) - as_utc(mv.departed_at)
    conn.execute(
        insert(_m).values(
            kind="return", player_id=mv.player_id, from_village_id=mv.to_village_id,
            to_village_id=mv.from_village_id, troops=dict(sorted(troops.items())),
            wood=loot.wood, clay=loot.clay, iron=loot.iron, wheat=loot.wheat,
            state="underway", departed_at=at, arrives_at=at + trip,
        )
    )


def _report(engine: Engine, conn: Connection, player_id: int, kind: str, subject: str,
            village_id: int, payload: dict[str, Any], at: datetime) -> None:
    report_id = conn.execute(
        insert(_rep)
        .values(player_id=player_id, kind=kind, subject=subject[:200], village_id=village_id,
                payload=payload, read=False, created_at=at)
        .returning(_rep.c.id)
    ).scalar_one()
    engine._emit(conn, events.REPORT_CREATED, player_id, report_id=int(report_id), kind=kind,
                 village_id=village_id)


# -- running by itself ----------------------------------------------------------------------


class AcceleratedClock:
    """World time running ``speed`` times real time from ``start`` (default: now).

    Give the same instance to the server's ``Database``/``connect(clock=...)`` and to the
    :class:`EngineThread`, so players' actions and the engine agree on the time.
    """

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        if start is not None and start.tzinfo is None:
            raise ValueError("AcceleratedClock needs an aware datetime")
        self.speed = float(speed)
        self.start = (start or utc_now()).astimezone(timezone.utc)
        self._origin = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._origin) * self.speed)

    def __repr__(self) -> str:
        return f"AcceleratedClock(speed={self.speed}, now={self().isoformat()})"


class EngineThread:
    """Runs ``Engine.run_due()`` every ``interval`` seconds in a daemon thread.

    ``clock`` defaults to the real time (``speed`` 1) or an :class:`AcceleratedClock` of
    ``speed``. Use as a context manager, or ``start()`` / ``stop()``. A failing round is
    logged and tried again at the next tick.
    """

    def __init__(
        self,
        database: Database | SqlEngine | str,
        *,
        clock: Clock | None = None,
        speed: float = 1.0,
        interval: float = 1.0,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        if clock is None:
            clock = AcceleratedClock(speed) if speed != 1.0 else utc_now
        self.clock: Clock = clock
        self.engine = Engine(database, clock=clock)
        self.interval = float(interval)
        self.processed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> EngineThread:
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="travian-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.engine.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.processed += self.engine.run_due()
            except Exception:  # noqa: BLE001 - keep the world running; the next tick retries
                log.exception("the engine failed a round; trying again in %.1f s", self.interval)
            self._stop.wait(self.interval)

    def __enter__(self) -> EngineThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
