"""Who may be trained where, and who may go: training buildings, research, unit roles.

Plain values in (a tribe, unit name -> count, building name -> level), plain values or a
typed error out: ``InvalidRequest`` for a unit the tribe does not have or one that cannot be
trained, ``RuleViolation`` for a rule the order breaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Mapping, Sequence

from travian_repo.domain.errors import InvalidRequest, RuleViolation
from travian_repo.domain.values import ATTACK_KINDS
from travian_repo.rules import buildings, units
from travian_repo.rules.units import UnitSpec

# Stored movement kinds that are hostile: they may not target a village of the sender.
HOSTILE_KINDS = frozenset({*ATTACK_KINDS.values(), "scout"})
# Kinds a player sends (a "return" is made by the engine only).
SEND_KINDS = frozenset({*HOSTILE_KINDS, "reinforcement"})


def resolve_units(tribe: str, troops: Mapping[str, int]) -> dict[str, int]:
    """Unit name -> count with the names as the rules spell them (InvalidRequest for a name
    that is not a unit of ``tribe``); two spellings of one unit add up."""
    result: dict[str, int] = {}
    for name, count in troops.items():
        spec = units.unit_spec(tribe, name)
        result[spec.name] = result.get(spec.name, 0) + count
    return result


def check_roles(tribe: str, counts: Mapping[str, int], kind: str) -> None:
    """The rules on who may go: settlers stay home, a siege brings a ram, attacks are not
    made of scouts alone. ``kind`` is the stored movement kind."""
    roles = {name: units.unit_spec(tribe, name).role for name in counts}
    settlers = sorted(n for n, role in roles.items() if role == "settler")
    if settlers:
        what = "reinforce" if kind == "reinforcement" else "attack"
        raise RuleViolation(f"settlers cannot {what}: remove {', '.join(settlers)}")
    if kind == "siege" and "ram" not in roles.values():
        raise RuleViolation("a siege needs at least one ram")
    if kind in ATTACK_KINDS.values() and all(role == "scout" for role in roles.values()):
        raise RuleViolation("an attack of scouts only is scouting: use intel.send_scouts")


def check_target(kind: str, *, own_village: bool, village_id: int) -> None:
    """A hostile movement (attack, raid, siege, scouts) may not target the sender's own
    village ``village_id``; a reinforcement may."""
    if kind in HOSTILE_KINDS and own_village:
        what = "scout" if kind == "scout" else "attack"
        raise RuleViolation(f"village {village_id} is your own; you cannot {what} it")


def training_building(spec: UnitSpec, levels: Mapping[str, int]) -> str:
    """The building that trains ``spec`` in a village with ``levels`` (building name ->
    highest level), or the rule it breaks.

    The first of the unit's ``trained_in`` buildings standing at level 1 or more, and at the
    unit's ``min_trainer_level`` (settlers and chiefs need residence or palace 10). Research
    is not simulated: a unit counts as researched when its ``research_prerequisites`` stand.
    """
    if not spec.trained_in:
        raise InvalidRequest(f"{spec.name} cannot be trained")
    present = [b for b in spec.trained_in if levels.get(b, 0) >= 1]
    if not present:
        raise RuleViolation(
            f"{spec.name} is trained in {' or '.join(spec.trained_in)}; this village has none",
            details={"unit": spec.name, "buildings": list(spec.trained_in)},
        )
    missing = [(b, lv) for b, lv in spec.research_prerequisites if levels.get(b, 0) < lv]
    if missing:
        needs = ", ".join(f"{b} level {lv}" for b, lv in missing)
        raise RuleViolation(
            f"{spec.name} is not researched: it needs {needs}",
            details={"unit": spec.name, "missing": {b: lv for b, lv in missing}},
        )
    trainer_level = spec.min_trainer_level
    able = [b for b in present if levels[b] >= trainer_level]
    if not able:
        raise RuleViolation(
            f"{spec.name} needs a {' or '.join(spec.trained_in)} at level {trainer_level}",
            details={"unit": spec.name, "buildings": list(spec.trained_in),
                     "level": trainer_level},
        )
    return able[0]


@dataclass(frozen=True, slots=True)
class TrainingPlan:
    """One line of a training order: ``count`` of ``spec`` in ``building``, ``seconds_each``."""

    spec: UnitSpec
    count: int
    building: str
    seconds_each: int


def plan_training(
    tribe: str, troops: Mapping[str, int], levels: Mapping[str, int], *, server_speed: int
) -> list[TrainingPlan]:
    """The lines of a training order, unit by unit in name order, or the first rule broken.

    ``troops``: unit name -> count (any spelling the rules accept); ``levels``: building
    name -> highest level in the village. Each unit trains at its building's level.
    """
    counts = resolve_units(tribe, troops)
    plans: list[TrainingPlan] = []
    for name in sorted(counts):
        spec = units.unit_spec(tribe, name)
        building = training_building(spec, levels)
        seconds = units.training_time(
            tribe,
            spec.name,
            building_level=buildings.capped_level(building, levels[building]),
            server_speed=server_speed,
        )
        plans.append(TrainingPlan(spec, counts[name], building, seconds))
    return plans


@dataclass(frozen=True, slots=True)
class TrainingLine:
    """A planned line with its times: it starts when its building is free."""

    plan: TrainingPlan
    started_at: datetime
    completes_at: datetime


def schedule_training(
    plans: Sequence[TrainingPlan], busy_until: Mapping[str, datetime], now: datetime
) -> list[TrainingLine]:
    """Each training building works through its lines in turn: a line starts at the later of
    ``now`` and the end of that building's last line (``busy_until``: building name -> the
    latest completion already queued there) and takes count x seconds each."""
    latest = dict(busy_until)
    lines: list[TrainingLine] = []
    for plan in plans:
        starts = max(now, latest.get(plan.building, now))
        completes = starts + timedelta(seconds=plan.count * plan.seconds_each)
        latest[plan.building] = completes
        lines.append(TrainingLine(plan, starts, completes))
    return lines


__all__ = [
    "HOSTILE_KINDS",
    "SEND_KINDS",
    "TrainingLine",
    "TrainingPlan",
    "check_roles",
    "check_target",
    "plan_training",
    "resolve_units",
    "schedule_training",
    "training_building",
]
