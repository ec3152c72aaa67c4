"""Troops on the database: troops at home, training, and troops sent out (attacks, raids,
sieges, reinforcements and, through ``send_troops``, the intel repository's scouts).

Every write follows one pattern: the arguments are checked before any I/O; then one write
step locks the source village, checks every rule, and only then updates and inserts. An
error therefore leaves nothing behind (and the session rolls the step back in any case).
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from sqlalchemy import (Connection, and_, bindparam, insert, literal_column, select, union_all,
                        update)
from sqlalchemy.sql.dml import Insert

from travian_repo.domain import events
from travian_repo.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RuleViolation,
)
from travian_repo.domain.values import Movement, Resources, TrainingOrder, Troops, movement_kind
from travian_repo.repositories.base import MilitaryRepository
from travian_repo.rules import buildings, travel
from travian_repo.rules import units as unit_rules
from travian_repo.rules.military import (
    SEND_KINDS,
    check_roles,
    check_target,
    plan_training,
    resolve_units,
    schedule_training,
)
from travian_repo.sql import prepared, schema
from travian_repo.sql.repository import SqlRepository
from travian_repo.sql.database import WorldSettings
from travian_repo.sql.schema import as_utc
from travian_repo.sql.troops import home_troops, insert_movement, remove_troops
from travian_repo.sql.village_state import VillageState
from travian_repo.sql.village_writes import check_owner, lock_village, paid_with, spend_with

_v = schema.villages
_t = schema.troops
_m = schema.movements
_to = schema.training_orders
_tq = schema.training_queue

_MOVEMENT_COLUMNS = (
    _m.c.id,
    _m.c.kind,
    _m.c.from_village_id,
    _m.c.to_village_id,
    _m.c.troops,
    _m.c.departed_at,
    _m.c.arrives_at,
)


class SqlMilitaryRepository(SqlRepository, MilitaryRepository):
    """Troops, training and movements straight on the world database."""

    def troops(self, village_id: int) -> Troops:
        """Troops standing at home in the village (owner only), units with a count of 0 left out.

        Troops in training, under way, or standing in another village are not at home.
        Errors: InvalidRequest (bad id), Forbidden (not the acting player's village, or acting
        as nobody), NotFound (no such village). One query (the village joined to its troops).
        """
        actor = self._actor_id("read troops")

        def run(conn: Connection) -> Troops:
            rows = conn.execute(
                select(_v.c.player_id, _t.c.unit, _t.c.count.label("n"))
                .select_from(
                    _v.outerjoin(_t, and_(_t.c.village_id == _v.c.id, _t.c.count > 0))
                )
                .where(_v.c.id == village_id)
            ).all()
            if not rows:
                raise NotFound(f"village {village_id} does not exist")
            check_owner(int(rows[0].player_id), actor, village_id, "read troops")
            return Troops({r.unit: int(r.n) for r in rows if r.unit is not None})

        return self._read(run)

    def train(self, village_id: int, troops: Mapping[str, int]) -> TrainingOrder:
        """Spend the cost and queue ``troops`` (unit name -> count) in their training buildings.

        Errors, in this order, before anything is written: InvalidRequest for bad arguments
        (id, a mapping of name -> int count 1..validation.MAX_COUNT); Forbidden / NotFound for
        the village; InvalidRequest when any name is not a unit of the village's tribe (names
        are normalized, so ``"Equites Legati"`` is ``equites_legati``, and two spellings of a
        unit add up); then, unit by unit in name order:

        - a unit with no cost or no training building cannot be trained (InvalidRequest);
        - the training building is the first of the unit's ``trained_in`` buildings standing
          in the village at level 1 or more (RuleViolation naming them otherwise); settlers
          and chiefs need that building (residence or palace) at the unit's
          ``min_trainer_level`` (RuleViolation);
        - research is not simulated: a unit counts as researched when its
          ``research_prerequisites`` buildings stand at their levels (RuleViolation listing
          what is missing otherwise);
        - the total cost (unit cost x count, summed) must be in stock, or
          InsufficientResources with ``required`` and ``available``.

        Each training building works through its lines in turn: a line starts at the later of
        now and the completion of the village's last line in the same building, and takes
        count x seconds each (the rules' training time at that building's level and the world
        speed). One ``training_orders`` row (with the total cost) and one ``training_queue``
        line per unit are inserted. The order's ``started_at`` is its earliest line start and
        ``completes_at`` its latest line completion. Trained units are not at home until the
        engine delivers them.
        """
        requested = dict(troops)
        actor = self._actor_id("train troops")

        def run(conn: Connection) -> TrainingOrder:
            now = self.now
            state = lock_village(conn, village_id, actor, now, action="train troops",
                                 training=True, step=self._step())
            plans = plan_training(state.tribe, requested, state.levels(),
                                  server_speed=self.settings.speed)
            cost = sum((p.spec.cost * p.count for p in plans), Resources())
            lines: list[dict[str, Any]] = [
                dict(unit=line.plan.spec.name, count=line.plan.count, trained=0,
                     building_name=line.plan.building, seconds_each=line.plan.seconds_each,
                     started_at=line.started_at, completes_at=line.completes_at)
                for line in schedule_training(plans, state.training_ends, now)
            ]

            order_id = queue_training(conn, state, cost, lines)  # InsufficientResources first
            first = min(as_utc(line["started_at"]) + timedelta(seconds=line["seconds_each"])
                        for line in lines)
            self._emit(events.TRAINING_QUEUED, actor, village_id=village_id, order_id=order_id,
                       next_at=first.isoformat())
            return TrainingOrder(
                id=order_id,
                village_id=village_id,
                troops=Troops({line["unit"]: line["count"] for line in lines}),
                cost=cost,
                started_at=min(line["started_at"] for line in lines),
                completes_at=max(line["completes_at"] for line in lines),
            )

        return self._write(run)

    def attack(
        self,
        from_village_id: int,
        to_village_id: int,
        troops: Mapping[str, int],
        *,
        kind: str = "normal",
    ) -> Movement:
        """Send troops from a village of the acting player to attack another player's village.

        ``kind``: ``normal`` (stored and returned as movement kind ``attack``), ``raid``
        (``raid``) or ``siege`` (``siege``). The troops leave home now and arrive after the
        rules' travel time: the distance on the wrapping map, the slowest unit's speed, the
        world speed and the source's tournament square.

        Errors, in this order: InvalidRequest (bad ids, troops or kind; the same village as
        source and target); Forbidden / NotFound for the source village; NotFound for the
        target; RuleViolation when the target is the sender's own village; InvalidRequest for
        a unit not of the sender's tribe; RuleViolation for settlers (they cannot attack), a
        siege without a ram, an attack of scouts only (use ``intel.send_scouts``); and
        RuleViolation "not enough troops" with ``details`` ``requested`` / ``available`` /
        ``missing`` (unit -> count) when the troops are not at home.
        """
        stored_kind = movement_kind(kind)
        actor = self._actor_id("send an attack")
        return self._write(
            lambda conn: send_troops(
                conn, actor=actor, now=self.now, settings=self.settings,
                from_village_id=from_village_id, to_village_id=to_village_id,
                kind=stored_kind, troops=dict(troops), emit=self._emit,
            )
        )

    def reinforce(
        self, from_village_id: int, to_village_id: int, troops: Mapping[str, int]
    ) -> Movement:
        """Send troops to stand in another village (any player's, the sender's own included).

        Movement kind ``reinforcement``. Same checks and errors as ``attack`` except that the
        target may be the sender's own village and scouts alone may go; settlers may not
        reinforce (RuleViolation).
        """
        requested = dict(troops)
        actor = self._actor_id("send reinforcements")
        return self._write(
            lambda conn: send_troops(
                conn, actor=actor, now=self.now, settings=self.settings,
                from_village_id=from_village_id, to_village_id=to_village_id,
                kind="reinforcement", troops=requested, emit=self._emit,
            )
        )

    def incoming(self, village_id: int) -> list[Movement]:
        """Movements under way to the village (its owner only), soonest arrival first
        (``arrives_at``, then ``id``); returns home included. One query.

        Errors: InvalidRequest (bad id), Forbidden (not the acting player's village),
        NotFound (no such village).
        """
        return self._movements(village_id, incoming=True)

    def outgoing(self, village_id: int) -> list[Movement]:
        """Movements under way from the village (its owner only), soonest arrival first
        (``arrives_at``, then ``id``); troops coming home (kind ``return``) are not outgoing.
        One query.

        Errors: InvalidRequest (bad id), Forbidden (not the acting player's village),
        NotFound (no such village).
        """
        return self._movements(village_id, incoming=False)

    def _movements(self, village_id: int, *, incoming: bool) -> list[Movement]:
        action = "read incoming movements" if incoming else "read outgoing movements"
        actor = self._actor_id(action)
        if incoming:
            on = and_(_m.c.to_village_id == _v.c.id, _m.c.state == "underway")
        else:
            on = and_(
                _m.c.from_village_id == _v.c.id, _m.c.state == "underway", _m.c.kind != "return"
            )

        def run(conn: Connection) -> list[Movement]:
            rows = conn.execute(
                select(_v.c.player_id, *_MOVEMENT_COLUMNS)
                .select_from(_v.outerjoin(_m, on))
                .where(_v.c.id == village_id)
                .order_by(_m.c.arrives_at, _m.c.id)
            ).all()
            if not rows:
                raise NotFound(f"village {village_id} does not exist")
            check_owner(int(rows[0].player_id), actor, village_id, action)
            return [movement_from_row(r) for r in rows if r.id is not None]

        return self._read(run)

    def send_home(self, village_id: int, movement_id: int) -> Movement:
        """Recall reinforcements: the owner calls troops stationed elsewhere back home.

        ``village_id`` is the troops' home village (the acting player's), ``movement_id``
        the ``reinforcement`` movement that stationed them (state ``stationed``). That
        movement becomes ``done`` and a ``return`` movement from the station to home is
        created, leaving now and arriving after the travel time back (the distance, the
        slowest unit, the world speed, the home village's tournament square). Only the
        owner recalls: the host village's owner cannot send someone else's troops away.

        Errors, in this order, nothing written: InvalidRequest (bad ids); NotFound /
        Forbidden for the village; NotFound (no such movement); Forbidden (someone else's
        troops); NotFound (troops of another of the player's villages); Conflict (not a
        stationed reinforcement: still under way, recalled already, or another kind).
        """
        action = "send reinforcements home"
        actor = self._actor_id(action)
        settings = self.settings

        def run(conn: Connection) -> Movement:
            now = self.now
            home = lock_village(conn, village_id, actor, now, action=action)
            row = conn.execute(
                select(_m.c.player_id, _m.c.state, *_MOVEMENT_COLUMNS)
                .where(_m.c.id == movement_id)
                .with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"movement {movement_id} does not exist")
            if int(row.player_id) != actor:
                raise Forbidden(f"movement {movement_id} is player {row.player_id}'s troops, "
                                f"not yours (player {actor}); only their owner sends them home")
            if int(row.from_village_id) != village_id or row.kind == "return":
                raise NotFound(f"village {village_id} has no reinforcement {movement_id}")
            if row.kind != "reinforcement" or row.state != "stationed":
                what = "reinforcement" if row.kind == "reinforcement" else row.kind
                raise Conflict(
                    f"movement {movement_id} ({what}, {row.state}) is not stationed "
                    "reinforcements; only those can be sent home",
                    details={"movement_id": movement_id, "kind": str(row.kind),
                             "state": str(row.state)},
                )
            station = conn.execute(
                select(_v.c.player_id, _v.c.x, _v.c.y).where(_v.c.id == row.to_village_id)
            ).one()
            counts = {str(u): int(n) for u, n in (row.troops or {}).items() if int(n) > 0}
            if not counts:  # the engine closes a wiped-out station; never left "stationed"
                raise Conflict(f"movement {movement_id} has no troops left to send home")
            seconds = travel.travel_seconds(
                travel.distance(station.x, station.y, home.x, home.y,
                                radius=settings.map_radius),
                unit_rules.slowest_speed(home.tribe, counts),
                server_speed=settings.speed,
                tournament_square_level=buildings.capped_level(
                    "tournament_square", home.level("tournament_square")),
                tournament_square_bonus_percent=settings.tournament_square_bonus_percent,
            )
            done = conn.execute(
                update(_m).where(_m.c.id == movement_id, _m.c.state == "stationed")
                .values(state="done")
            ).rowcount
            if done != 1:  # pragma: no cover - only if something bypassed the row lock
                raise Conflict(f"movement {movement_id} is no longer stationed")
            arrives = now + timedelta(seconds=seconds)
            stored = dict(sorted(counts.items()))
            return_id = insert_movement(
                conn, kind="return", player_id=actor, from_village_id=int(row.to_village_id),
                to_village_id=village_id, troops=stored, departed_at=now, arrives_at=arrives,
            )
            moved = dict(movement_id=return_id, kind="return",
                         from_village_id=int(row.to_village_id), to_village_id=village_id,
                         arrives_at=arrives.isoformat())
            self._emit(events.MOVEMENT_SENT, actor, **moved)
            return Movement(return_id, "return", int(row.to_village_id), village_id,
                            Troops(stored), now, arrives)

        return self._write(run)


_LINE = ("unit", "count", "building_name", "seconds_each", "started_at", "completes_at")
# A training order, built once (see spend_with).
_ORDER = insert(_to).values(
    village_id=bindparam("stock_village"), wood=bindparam("p_wood"), clay=bindparam("p_clay"),
    iron=bindparam("p_iron"), wheat=bindparam("p_wheat"),
    created_at=bindparam("stock_at", type_=schema.UTCDateTime()),
).returning(_to.c.id)


@functools.cache
def _order_with_lines(count: int) -> Insert:
    """PostgreSQL: a training order and its ``count`` lines in one statement (the order a
    CTE the lines are selected from), built once per line count."""
    made = _ORDER.cte("made")
    rows = [select(made.c.id, bindparam("stock_village", type_=_tq.c.village_id.type),
                   literal_column("0"),  # trained
                   *(bindparam(f"p{i}_{name}", type_=_tq.c[name].type) for name in _LINE))
            for i in range(count)]
    return insert(_tq).from_select(
        ["order_id", "village_id", "trained", *_LINE], rows[0] if count == 1 else union_all(*rows)
    ).returning(_tq.c.order_id)


# The usual order (one unit type), run by spend_with as a prepared statement on PostgreSQL.
prepared.prepare("tr_training_order", paid_with(_order_with_lines(1)))


def queue_training(
    conn: Connection, state: VillageState, cost: Resources, lines: list[dict[str, Any]]
) -> int:
    """Spend ``cost`` and insert the training order with its lines; the order's id."""
    params = {"p_wood": cost.wood, "p_clay": cost.clay, "p_iron": cost.iron,
              "p_wheat": cost.wheat}
    if conn.dialect.name != "postgresql":
        order_id = int(spend_with(conn, state, cost, _ORDER, params).first()[0])
        conn.execute(insert(_tq), [dict(line, order_id=order_id, village_id=state.id)
                                   for line in lines])
        return order_id
    for i, line in enumerate(lines):
        params.update({f"p{i}_{name}": line[name] for name in _LINE})
    statement = _order_with_lines(len(lines))
    return int(spend_with(conn, state, cost, statement, params).first()[0])


def send_troops(
    conn: Connection,
    *,
    actor: int,
    now: datetime,
    settings: WorldSettings,
    from_village_id: int,
    to_village_id: int,
    kind: str,
    emit: Callable[..., None],
    troops: Mapping[str, int] | None = None,
    scouts: int = 0,
) -> Movement:
    """Send troops out of a village: the one implementation behind attack, raid, siege,
    reinforcement and scouting. Runs inside a write step; raises before its first write.

    ``kind`` is the stored movement kind. For ``"scout"`` pass ``scouts`` (a count of the
    tribe's scout unit) instead of ``troops``. The arguments are already validated (ids,
    counts, source != target).
    """
    if kind not in SEND_KINDS:  # pragma: no cover - a programming error, not user input
        raise ValueError(f"send_troops cannot send kind {kind!r}")
    action = {"reinforcement": "send reinforcements", "scout": "send scouts"}.get(
        kind, "send an attack"
    )
    state = lock_village(conn, from_village_id, actor, now, action=action)
    target = conn.execute(
        select(_v.c.player_id, _v.c.x, _v.c.y).where(_v.c.id == to_village_id)
    ).first()
    if target is None:
        raise NotFound(f"village {to_village_id} does not exist")
    check_target(kind, own_village=target.player_id == actor, village_id=to_village_id)

    if kind == "scout":
        counts = {unit_rules.scout_unit(state.tribe).name: scouts}
    else:
        counts = resolve_units(state.tribe, troops or {})
    check_roles(state.tribe, counts, kind)

    home = home_troops(conn, from_village_id)
    missing = {u: n - home.get(u, 0) for u, n in counts.items() if n > home.get(u, 0)}
    if missing:
        listed = ", ".join(f"{n} {u} (have {home.get(u, 0)})" for u, n in sorted(counts.items())
                           if u in missing)
        raise RuleViolation(
            f"not enough troops in village {from_village_id}: asked for {listed}",
            details={
                "requested": dict(sorted(counts.items())),
                "available": {u: home.get(u, 0) for u in sorted(counts)},
                "missing": dict(sorted(missing.items())),
            },
        )

    seconds = travel.travel_seconds(
        travel.distance(state.x, state.y, target.x, target.y, radius=settings.map_radius),
        unit_rules.slowest_speed(state.tribe, counts),
        server_speed=settings.speed,
        tournament_square_level=buildings.capped_level(
            "tournament_square", state.level("tournament_square")),
        tournament_square_bonus_percent=settings.tournament_square_bonus_percent,
    )

    # The writes: troops leave home (guarded, so a count never goes below 0), then the movement.
    remove_troops(
        conn, from_village_id, counts,
        short=lambda unit: RuleViolation(f"not enough {unit} in village {from_village_id}"),
    )
    arrives = now + timedelta(seconds=seconds)
    stored = dict(sorted(counts.items()))
    movement_id = insert_movement(
        conn, kind=kind, player_id=actor, from_village_id=from_village_id,
        to_village_id=to_village_id, troops=stored, departed_at=now, arrives_at=arrives,
    )
    moved = dict(movement_id=movement_id, kind=kind, from_village_id=from_village_id,
                 to_village_id=to_village_id, arrives_at=arrives.isoformat())
    emit(events.MOVEMENT_SENT, actor, **moved)
    if target.player_id != actor:
        incoming = events.REINFORCEMENT_INCOMING if kind == "reinforcement" else events.ATTACK_INCOMING
        emit(incoming, int(target.player_id), **moved)
    return Movement(movement_id, kind, from_village_id, to_village_id, Troops(stored), now,
                    arrives)


def movement_from_row(row: Any) -> Movement:
    return Movement(
        id=int(row.id),
        kind=str(row.kind),
        from_village_id=int(row.from_village_id),
        to_village_id=int(row.to_village_id),
        troops=Troops({str(u): int(n) for u, n in (row.troops or {}).items()}),
        departed_at=as_utc(row.departed_at),
        arrives_at=as_utc(row.arrives_at),
    )


__all__ = [
    "SqlMilitaryRepository",
    "movement_from_row",
    "resolve_units",
    "send_troops",
]
