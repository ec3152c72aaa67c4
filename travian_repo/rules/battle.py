"""Battles: the classic Travian (T3/T4) combat formula as pure functions.

Source: the combat simulator of kirilloid/travian (``src/model/base/combat/{combat,fns,army}.ts``,
used unchanged for T4 by ``src/model/t4/combat/combat.ts``), which reproduces the game's
published formula; unit numbers come from ``data/t4_rules.json``, the wall's effect from its
``effect`` entries (``defense_bonus`` and ``base_defense_per_level``).

The steps, each a small function below:

1. **Attack points** (:func:`attack_points`): sum of ``attack x count``, infantry and cavalry
   kept apart.
2. **Defence points** (:func:`defence_points`, :func:`effective_defence`): every defending
   group (troops at home and reinforcements, each with its own tribe's numbers) adds
   ``def_infantry x count`` and ``def_cavalry x count``. The two are weighted by the
   attacker's mix: ``D = Di x (Ai/A) + Dc x (Ac/A)``, the shares rounded to 1e-4 as the
   simulator does. Then the village's base defence (10, kirilloid ``BASE_VILLAGE_DEF``) and
   the wall's flat defence (``base_defense_per_level x level``) are added, and the whole is
   multiplied by the wall bonus (``1 + defense_bonus(level)``, e.g. city wall ``1.030**L``):
   ``D' = (D + 10 + wall_flat) x wall_multiplier``.
3. **The "Mfactor"** (:func:`mfactor`): ``K = 2 x (1.8592 - N**0.015)`` with ``N`` the total
   number of units in the battle (attacker plus every defender), bounded to
   ``[1.2578, 1.5]`` and rounded to 0.0002 (kirilloid ``immensity``). Up to ~1000 units
   ``K`` is 1.5.
4. **Losses** with ``x = (A / D') ** K``:

   - normal attack and siege (:func:`normal_losses`): attacker loses ``min(1/x, 1)``,
     defender ``min(x, 1)`` -- the winner loses ``(loser/winner)**K``, the loser everything;
   - raid (:func:`raid_losses`): attacker loses ``1 / (1 + x)``, defender ``x / (1 + x)``
     (both sides lose a part; kirilloid ``raid``).

   A side's survivors per unit type are ``round(n x (1 - loss))`` (kirilloid
   ``applyLosses``), rounded half up; the dead are the rest.
   A lone attacking unit with less than 84.5 attack points dies (kirilloid
   ``loneAttackerDies``).
5. **Rams and catapults** (normal attacks and sieges only, never raids), kirilloid
   ``demolishPoints``/``demolish``: ``points = 4 x sigma(A/D') x count`` with
   ``sigma(r) = r**1.5 / 2`` for ``r <= 1`` and ``(2 - r**-1.5) / 2`` above; then levels fall
   one by one, level ``L`` costing ``L`` points, after taking 0.5 off (``damage = points -
   0.5; while damage >= L: damage -= L; L -= 1``). Simplifications (documented choices): no
   smithy upgrades or stonemason (factor 1), no "early ram" step lowering the wall *during* the
   battle (the battle uses the wall at its level before the fight), every catapult fires
   at the one target.
6. **Scouting** (:func:`scout_losses`): attacker scouting points ``35 x scouts`` against
   defender ``20 x scouts`` (kirilloid ``units.ts`` ``s: 35, ds: 20`` for every scout unit)
   times the wall multiplier (no base defence). Attacker scouts lose
   ``min((D/A)**1.5, 1)``; defending scouts lose nothing; the scouting succeeds when at
   least one scout survives.
7. **Bounty** (:func:`bounty`): survivors carry ``sum(carry x count)``; of each resource the
   cranny hides its capacity (gauls' 1.5 comes from ``economy.cranny_capacity``; against
   teuton attackers a cranny hides only 80 %, the T4 teuton bonus); the capacity is shared
   evenly over the resources, what one resource cannot fill going to the others.

Not simulated: morale (population ratio), heroes, smithy upgrades, residence/palace defence,
artefacts, traps.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from travian_repo.domain.values import Resources
from travian_repo.rules import units as unit_rules
from travian_repo.rules.buildings import WALLS
from travian_repo.rules.data_file import round_half_up, rules_data

BASE_VILLAGE_DEFENCE = 10  # kirilloid combat.ts BASE_VILLAGE_DEF (T3 onward, T4 unchanged)
MFACTOR_MIN = 1.2578
MFACTOR_MAX = 1.5
SCOUT_ATTACK = 35  # kirilloid base/units.ts ``s`` of every scout unit
SCOUT_DEFENCE = 20  # kirilloid base/units.ts ``ds``
LONE_ATTACKER_MIN_POINTS = 84.5
TEUTON_CRANNY_FACTOR = 0.8  # T4: crannies hide 80 % against teuton attackers

NORMAL = "normal"
RAID = "raid"


@dataclass(frozen=True)
class Army:
    """One group of troops: unit name -> count, with the tribe whose numbers they use."""

    tribe: str
    troops: Mapping[str, int]

    @property
    def size(self) -> int:
        return sum(self.troops.values())


@dataclass(frozen=True)
class Points:
    infantry: float = 0.0
    cavalry: float = 0.0

    @property
    def total(self) -> float:
        return self.infantry + self.cavalry


@dataclass(frozen=True)
class Wall:
    """A wall's effect at a level: flat defence added, then a multiplier on the total."""

    name: str | None = None
    level: int = 0
    flat: float = 0.0
    multiplier: float = 1.0


@dataclass(frozen=True)
class Losses:
    """Fractions (0..1) of each side that die."""

    attacker: float
    defender: float


@dataclass(frozen=True)
class Casualties:
    survivors: dict[str, int]
    lost: dict[str, int]


@dataclass(frozen=True)
class BattleResult:
    kind: str
    attack: float  # attack points
    defence: float  # defence points after wall and base defence
    mfactor: float
    losses: Losses
    attacker: Casualties
    defenders: list[Casualties]
    wall_before: int
    wall_after: int
    target_before: int | None = None
    target_after: int | None = None

    @property
    def attacker_won(self) -> bool:
        return any(self.attacker.survivors.values())


@dataclass(frozen=True)
class ScoutResult:
    attack: float
    defence: float
    loss: float
    attacker: Casualties
    success: bool


def attack_points(army: Army) -> Points:
    """Attack of the army, infantry and cavalry apart (scouts attack with 0)."""
    infantry = cavalry = 0.0
    for name, count in army.troops.items():
        spec = unit_rules.unit_spec(army.tribe, name)
        if spec.category == "cavalry":
            cavalry += spec.attack * count
        else:
            infantry += spec.attack * count
    return Points(infantry, cavalry)


def defence_points(armies: Sequence[Army]) -> Points:
    """Defence against infantry and against cavalry of every defending group."""
    infantry = cavalry = 0.0
    for army in armies:
        for name, count in army.troops.items():
            spec = unit_rules.unit_spec(army.tribe, name)
            infantry += spec.def_infantry * count
            cavalry += spec.def_cavalry * count
    return Points(infantry, cavalry)


_BONUS = re.compile(r"^\s*([0-9.]+)\s*\*\*\s*level\s*-\s*1\s*$")


def wall(tribe: str, level: int) -> Wall:
    """The tribe's wall at ``level`` (its flat defence and multiplier from the data file)."""
    name = WALLS[unit_rules.check_tribe(tribe)]
    if level <= 0:
        return Wall(name, 0)
    effect = rules_data()["buildings"][name]["effect"]
    match = _BONUS.match(str(effect["defense_bonus"]))
    if match is None:  # pragma: no cover - the data file's form is fixed
        raise ValueError(f"cannot read the wall bonus {effect['defense_bonus']!r}")
    return Wall(
        name=name,
        level=level,
        flat=float(effect["base_defense_per_level"]) * level,
        multiplier=float(match.group(1)) ** level,
    )


def infantry_share(attack: Points) -> float:
    """The attacker's infantry share, rounded to 1e-4 (kirilloid ``adducedDef``)."""
    if attack.total <= 0:
        return 1.0
    return round(attack.infantry / attack.total, 4)


def effective_defence(attack: Points, defence: Points, wall_effect: Wall) -> float:
    """``(Di x inf_share + Dc x cav_share + 10 + wall flat) x wall multiplier``."""
    share = infantry_share(attack)
    cavalry_share = round(1.0 - share, 4) if attack.total > 0 else 0.0
    mixed = defence.infantry * share + defence.cavalry * cavalry_share
    return (mixed + BASE_VILLAGE_DEFENCE + wall_effect.flat) * wall_effect.multiplier


def mfactor(total_units: int) -> float:
    """``K = 2 x (1.8592 - N**0.015)``, bounded to [1.2578, 1.5], rounded to 0.0002."""
    raw = 3.7184 - 2 * math.pow(max(total_units, 1), 0.015)
    bounded = min(MFACTOR_MAX, max(MFACTOR_MIN, raw))
    return round(round(bounded / 0.0002) * 0.0002, 4)


def normal_losses(attack: float, defence: float, k: float) -> Losses:
    """Normal attack (and siege): the loser loses all, the winner ``(loser/winner)**K``."""
    if attack <= 0:
        return Losses(1.0, 0.0)
    x = float((attack / defence) ** k)
    return Losses(attacker=min(1.0 / x, 1.0), defender=min(x, 1.0))


def raid_losses(attack: float, defence: float, k: float) -> Losses:
    """Raid: attacker ``1 / (1 + x)``, defender ``x / (1 + x)``, ``x = (A/D)**K``."""
    if attack <= 0:
        return Losses(1.0, 0.0)
    x = float((attack / defence) ** k)
    return Losses(attacker=1.0 / (1.0 + x), defender=x / (1.0 + x))


def casualties(troops: Mapping[str, int], loss: float) -> Casualties:
    """Survivors ``round(n x (1 - loss))`` per unit (half up); the rest are lost."""
    survivors: dict[str, int] = {}
    lost: dict[str, int] = {}
    for name, count in sorted(troops.items()):
        alive = min(count, max(0, round_half_up(count * (1.0 - loss))))
        survivors[name] = alive
        lost[name] = count - alive
    return Casualties(survivors, lost)


def sigma(ratio: float) -> float:
    """kirilloid ``sigma``: the demolition strength of a points ratio."""
    return float((2 - ratio ** -1.5) / 2 if ratio > 1 else ratio ** 1.5 / 2)


def demolish_points(count: int, ratio: float) -> float:
    """``4 x sigma(A/D) x count`` (no upgrades, no stonemason)."""
    return 4 * sigma(ratio) * count if count > 0 else 0.0


def demolish(level: int, points: float) -> int:
    """The level left: 0.5 is taken off, then each level ``L`` costs ``L`` points."""
    damage = points - 0.5
    while level > 0 and damage >= level:
        damage -= level
        level -= 1
    return level


def _count_role(army: Army, role: str) -> int:
    return sum(
        n for name, n in army.troops.items() if unit_rules.unit_spec(army.tribe, name).role == role
    )


def fight(
    attacker: Army,
    defenders: Sequence[Army],
    *,
    kind: str = NORMAL,
    wall_effect: Wall | None = None,
    target_level: int | None = None,
) -> BattleResult:
    """One battle. ``kind``: ``normal`` (attacks and sieges) or ``raid``. ``target_level``:
    the level of the catapults' target building (None: no target)."""
    if kind not in (NORMAL, RAID):
        raise ValueError(f"battle kind must be {NORMAL!r} or {RAID!r}, got {kind!r}")
    wall_effect = wall_effect or Wall()
    off = attack_points(attacker)
    dfn = effective_defence(off, defence_points(defenders), wall_effect)
    k = mfactor(attacker.size + sum(d.size for d in defenders))
    losses = (raid_losses if kind == RAID else normal_losses)(off.total, dfn, k)
    if attacker.size == 1 and off.total < LONE_ATTACKER_MIN_POINTS:
        losses = Losses(1.0, losses.defender)
    ratio = off.total / dfn
    wall_after = wall_effect.level
    target_after = target_level
    if kind == NORMAL:
        rams = _count_role(attacker, "ram")
        if rams and wall_effect.level:
            wall_after = demolish(wall_effect.level, demolish_points(rams, ratio))
        catapults = _count_role(attacker, "catapult")
        if catapults and target_level:
            target_after = demolish(target_level, demolish_points(catapults, ratio))
    return BattleResult(
        kind=kind,
        attack=off.total,
        defence=dfn,
        mfactor=k,
        losses=losses,
        attacker=casualties(attacker.troops, losses.attacker),
        defenders=[casualties(d.troops, losses.defender) for d in defenders],
        wall_before=wall_effect.level,
        wall_after=wall_after,
        target_before=target_level,
        target_after=target_after,
    )


def scouts_of(army: Army) -> int:
    return _count_role(army, "scout")


def scout_losses(attacking_scouts: int, defending_scouts: int, wall_effect: Wall | None = None
                 ) -> float:
    """Fraction of the attacking scouts lost: ``min((D/A)**1.5, 1)``."""
    if attacking_scouts <= 0:
        return 1.0
    multiplier = (wall_effect or Wall()).multiplier
    attack = SCOUT_ATTACK * attacking_scouts
    defence = SCOUT_DEFENCE * defending_scouts * multiplier
    return min(float((defence / attack) ** 1.5), 1.0)


def scout(attacker: Army, defenders: Sequence[Army], wall_effect: Wall | None = None
          ) -> ScoutResult:
    """A scouting: the attacker's scouts against every defending scout."""
    sent = scouts_of(attacker)
    defending = sum(scouts_of(d) for d in defenders)
    loss = scout_losses(sent, defending, wall_effect)
    result = casualties(attacker.troops, loss)
    return ScoutResult(
        attack=float(SCOUT_ATTACK * sent),
        defence=SCOUT_DEFENCE * defending * (wall_effect or Wall()).multiplier,
        loss=loss,
        attacker=result,
        success=any(result.survivors.values()),
    )


def carry_capacity(army: Army) -> int:
    return unit_rules.carry_capacity(army.tribe, army.troops)


def hidden_by_cranny(cranny_capacity: int, *, attacker_tribe: str) -> int:
    """What the cranny hides of each resource from this attacker (teutons: 80 %)."""
    if unit_rules.check_tribe(attacker_tribe) == "teutons":
        return math.floor(cranny_capacity * TEUTON_CRANNY_FACTOR)
    return cranny_capacity


@dataclass(frozen=True)
class Bounty:
    taken: Resources
    capacity: int
    hidden: int = 0
    lootable: Resources = field(default_factory=Resources)


def bounty(capacity: int, stock: Resources, hidden: int) -> Bounty:
    """Take up to ``capacity`` evenly from what is above ``hidden`` in each resource.

    Evenly: each round every resource with something left gets an equal share of the
    capacity left (the remainder going to the first ones in wood, clay, iron, wheat order),
    limited by what it has; what a resource cannot fill goes round again to the others.
    """
    lootable = [max(0, amount - hidden) for amount in stock]
    taken = [0, 0, 0, 0]
    left = max(0, capacity)
    while left > 0:
        open_ = [i for i in range(4) if taken[i] < lootable[i]]
        if not open_:
            break
        share, extra = divmod(left, len(open_))
        for rank, i in enumerate(open_):
            want = share + (1 if rank < extra else 0)
            got = min(want, lootable[i] - taken[i])
            taken[i] += got
            left -= got
    return Bounty(Resources(*taken), capacity, hidden, Resources(*lootable))


__all__ = [
    "BASE_VILLAGE_DEFENCE",
    "Army",
    "BattleResult",
    "Bounty",
    "Casualties",
    "Losses",
    "NORMAL",
    "Points",
    "RAID",
    "ScoutResult",
    "Wall",
    "attack_points",
    "bounty",
    "carry_capacity",
    "casualties",
    "defence_points",
    "demolish",
    "demolish_points",
    "effective_defence",
    "fight",
    "hidden_by_cranny",
    "infantry_share",
    "mfactor",
    "normal_losses",
    "raid_losses",
    "scout",
    "scout_losses",
    "sigma",
    "wall",
]
