"""The battle calculator: the classic Travian 4 combat formula as pure functions.

This is what the sandbox engine fights with, and what an NPC calls to simulate an attack
before sending it (``fight`` for attacks, sieges and raids, ``scout`` for scouting)::

    from travian_repo.rules import battle

    result = battle.fight(
        battle.Army("teutons", {"clubswinger": 300, "ram": 15}),
        [battle.Army("romans", {"legionnaire": 120})],
        wall_effect=battle.wall("romans", 4),
        attacker_population=900, defender_population=300,
    )
    result.attacker.survivors  # {'clubswinger': 218, 'ram': 11}
    result.morale, result.wall_during, result.wall_after  # (0.803, 1, 0)

Source: the combat simulator of kirilloid/travian (``src/model/base/combat``, used for T4)
and the public TravianT4.6 clone (``BattleSetter``) for the wall, the rams and morale; unit
numbers come from ``data/t4_rules.json``. Walls, rams and catapults are in
:mod:`travian_repo.rules.siege`, morale in :mod:`travian_repo.rules.morale`.

The steps, each a small function below:

1. **Attack points** (:func:`attack_points`): sum of ``attack x count``, infantry and cavalry
   kept apart.
2. **Defence points** (:func:`defence_points`, :func:`effective_defence`): every defending
   group (troops at home and reinforcements, each with its own tribe's numbers) adds
   ``def_infantry x count`` and ``def_cavalry x count``. The two are weighted by the
   attacker's mix: ``D = Di x (Ai/A) + Dc x (Ac/A)``, the shares rounded to 1e-4 as the
   simulator does. Then the village's base defence (10, kirilloid ``BASE_VILLAGE_DEF``) and
   the wall's flat defence (``base_defense_per_level x level``) are added, and the whole is
   multiplied by the wall's multiplier (``round(1.030**L, 3)`` for a city wall):
   ``D' = (D + 10 + wall_flat) x wall_multiplier``.
3. **Morale** (only when both players' populations are given): the attack points are
   multiplied by :func:`~travian_repo.rules.morale.morale` of the ratio ``A / D'``.
4. **Rams strike first** (normal attacks and sieges): the wall is lowered to
   :func:`~travian_repo.rules.siege.wall_during` with the ratio at the full wall; ``D'``
   and the morale are computed again with that wall's multiplier, and the rest of the
   battle uses them.
5. **The "Mfactor"** (:func:`mfactor`): ``K = 2 x (1.8592 - N**0.015)`` with ``N`` the total
   number of units in the battle (attacker plus every defender), bounded to
   ``[1.2578, 1.5]`` and rounded to 0.0002 (kirilloid ``immensity``). Up to ~1000 units
   ``K`` is 1.5.
6. **Losses** with ``x = (A x morale / D') ** K``:

   - normal attack and siege (:func:`normal_losses`): attacker loses ``min(1/x, 1)``,
     defender ``min(x, 1)`` -- the winner loses ``(loser/winner)**K``, the loser everything;
   - raid (:func:`raid_losses`): attacker loses ``1 / (1 + x)``, defender ``x / (1 + x)``
     (both sides lose a part; kirilloid ``raid``).

   A side's survivors per unit type are ``round(n x (1 - loss))`` (kirilloid
   ``applyLosses``), rounded half up; the dead are the rest.
   A lone attacking unit with less than 84.5 attack points (after morale) dies (kirilloid
   ``loneAttackerDies``).
7. **Rams and catapults** after the battle (normal attacks and sieges only, never raids):
   :func:`~travian_repo.rules.siege.demolish_points` of the battle's ratio; the rams'
   damage the full wall (divided by its durability), the catapults' the target (times the
   catapult morale). Every catapult fires at the one target.
8. **Scouting** (:func:`scout_losses`): attacker scouting points ``35 x scouts`` (times the
   morale at ratio 1) against defender ``20 x scouts`` (kirilloid ``units.ts`` ``s: 35, ds:
   20`` for every scout unit) times the wall multiplier (no base defence). Attacker scouts
   lose ``min((D/A)**1.5, 1)``; defending scouts lose nothing; the scouting succeeds when at
   least one scout survives.
9. **Bounty** (:func:`bounty`): survivors carry ``sum(carry x count)``; of each resource the
   cranny hides its capacity (gauls' 1.5 comes from ``economy.cranny_capacity``; against
   teuton attackers a cranny hides only 80 %, the T4 teuton bonus); the capacity is shared
   evenly over the resources, what one resource cannot fill going to the others.

Not simulated: heroes, smithy upgrades, the stonemason, residence/palace defence,
artefacts, traps. docs/rules.md lists every choice that differs from a public calculator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from travian_repo.domain.errors import InvalidRequest
from travian_repo.domain.values import Resources
from travian_repo.rules import units as unit_rules
from travian_repo.rules.data_file import round_half_up
from travian_repo.rules.morale import catapult_morale, morale
from travian_repo.rules.siege import (
    WALL_DURABILITY,
    Wall,
    demolish,
    demolish_points,
    early_ram_costs,
    lowered,
    sigma,
    wall,
    wall_during,
    wall_multiplier,
)

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
    """What a battle did. ``attack``: the attacking army's points (before morale);
    ``defence``: the defence points the battle was fought against (the wall at
    ``wall_during``, base defence included); ``morale``: the factor on the attack (1.0
    without populations); ``ratio``: ``attack x morale / defence``. Wall levels: before the
    attack, during the battle (after the rams' early strike), after it. Catapult target:
    ``target_before``/``target_after`` (None: no target)."""

    kind: str
    attack: float
    defence: float
    mfactor: float
    losses: Losses
    attacker: Casualties
    defenders: list[Casualties]
    wall_before: int
    wall_after: int
    target_before: int | None = None
    target_after: int | None = None
    morale: float = 1.0
    wall_during: int | None = None  # fight() always sets it
    catapult_morale: float = 1.0

    @property
    def attacker_won(self) -> bool:
        return any(self.attacker.survivors.values())

    @property
    def ratio(self) -> float:
        return self.attack * self.morale / self.defence if self.defence > 0 else math.inf


@dataclass(frozen=True)
class ScoutResult:
    """A scouting: ``attack`` the scouts' points (before morale), ``defence`` the defending
    scouts' points with the wall, ``loss`` the fraction of scouts lost."""

    attack: float
    defence: float
    loss: float
    attacker: Casualties
    success: bool
    morale: float = 1.0


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


def _count_role(army: Army, role: str) -> int:
    return sum(
        n for name, n in army.troops.items() if unit_rules.unit_spec(army.tribe, name).role == role
    )


def populations(attacker_population: int | None, defender_population: int | None
                ) -> tuple[int, int] | None:
    """Both populations (morale applies) or neither (it does not); one alone is an error."""
    if attacker_population is None and defender_population is None:
        return None
    if attacker_population is None or defender_population is None:
        raise InvalidRequest(
            "morale needs both attacker_population and defender_population (or neither)",
            details={"field": "attacker_population" if attacker_population is None
                     else "defender_population"},
        )
    morale(attacker_population, defender_population)  # the one check of both values
    return attacker_population, defender_population


def _fought(off: Points, defence: Points, wall_effect: Wall,
            pops: tuple[int, int] | None) -> tuple[float, float]:
    """The defence behind ``wall_effect`` and the morale against it."""
    dfn = effective_defence(off, defence, wall_effect)
    factor = morale(pops[0], pops[1], off.total / dfn) if pops else 1.0
    return dfn, factor


def fight(
    attacker: Army,
    defenders: Sequence[Army],
    *,
    kind: str = NORMAL,
    wall_effect: Wall | None = None,
    target_level: int | None = None,
    attacker_population: int | None = None,
    defender_population: int | None = None,
) -> BattleResult:
    """One battle. ``kind``: ``normal`` (attacks and sieges) or ``raid``. ``wall_effect``:
    the defender's wall (:func:`wall`; None: no wall). ``target_level``: the level of the
    catapults' target building (None: no target). ``attacker_population`` and
    ``defender_population``: the two players' total populations; morale applies only when
    both are given."""
    if kind not in (NORMAL, RAID):
        raise ValueError(f"battle kind must be {NORMAL!r} or {RAID!r}, got {kind!r}")
    pops = populations(attacker_population, defender_population)
    full = wall_effect or Wall()
    off = attack_points(attacker)
    defence = defence_points(defenders)
    dfn, factor = _fought(off, defence, full, pops)
    during = full
    rams = _count_role(attacker, "ram") if kind == NORMAL else 0
    if rams and full.level:
        level = wall_during(full.level, rams, off.total * factor / dfn, full.durability)
        if level != full.level:
            during = lowered(full, level)
            dfn, factor = _fought(off, defence, during, pops)
    attack = off.total * factor
    k = mfactor(attacker.size + sum(d.size for d in defenders))
    losses = (raid_losses if kind == RAID else normal_losses)(attack, dfn, k)
    lone = morale(*pops) if pops else 1.0  # the lone attacker's morale: at ratio 1
    if attacker.size == 1 and off.total * lone < LONE_ATTACKER_MIN_POINTS:
        losses = Losses(1.0, losses.defender)
    ratio = attack / dfn
    wall_after = full.level
    target_after = target_level
    cata_factor = catapult_morale(*pops) if pops else 1.0
    if kind == NORMAL:
        if rams and full.level:
            wall_after = demolish(full.level, demolish_points(rams, ratio), full.durability)
        catapults = _count_role(attacker, "catapult")
        if catapults and target_level:
            target_after = demolish(target_level,
                                    demolish_points(catapults, ratio) * cata_factor)
    return BattleResult(
        kind=kind,
        attack=off.total,
        defence=dfn,
        mfactor=k,
        losses=losses,
        attacker=casualties(attacker.troops, losses.attacker),
        defenders=[casualties(d.troops, losses.defender) for d in defenders],
        wall_before=full.level,
        wall_after=wall_after,
        target_before=target_level,
        target_after=target_after,
        morale=factor,
        wall_during=during.level,
        catapult_morale=cata_factor,
    )


def scouts_of(army: Army) -> int:
    return _count_role(army, "scout")


def scout_losses(attacking_scouts: int, defending_scouts: int, wall_effect: Wall | None = None,
                 morale_factor: float = 1.0) -> float:
    """Fraction of the attacking scouts lost: ``min((D/A)**1.5, 1)``, ``A`` times the
    morale."""
    if attacking_scouts <= 0:
        return 1.0
    multiplier = (wall_effect or Wall()).multiplier
    attack = SCOUT_ATTACK * attacking_scouts * morale_factor
    defence = SCOUT_DEFENCE * defending_scouts * multiplier
    return min(float((defence / attack) ** 1.5), 1.0)


def scout(attacker: Army, defenders: Sequence[Army], wall_effect: Wall | None = None, *,
          attacker_population: int | None = None, defender_population: int | None = None,
          ) -> ScoutResult:
    """A scouting: the attacker's scouts against every defending scout (morale, at ratio 1,
    only when both populations are given)."""
    pops = populations(attacker_population, defender_population)
    factor = morale(*pops) if pops else 1.0
    sent = scouts_of(attacker)
    defending = sum(scouts_of(d) for d in defenders)
    loss = scout_losses(sent, defending, wall_effect, factor)
    result = casualties(attacker.troops, loss)
    return ScoutResult(
        attack=float(SCOUT_ATTACK * sent),
        defence=SCOUT_DEFENCE * defending * (wall_effect or Wall()).multiplier,
        loss=loss,
        attacker=result,
        success=any(result.survivors.values()),
        morale=factor,
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
    "WALL_DURABILITY",
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
    "catapult_morale",
    "defence_points",
    "demolish",
    "demolish_points",
    "early_ram_costs",
    "effective_defence",
    "fight",
    "hidden_by_cranny",
    "infantry_share",
    "lowered",
    "mfactor",
    "morale",
    "normal_losses",
    "populations",
    "raid_losses",
    "scout",
    "scout_losses",
    "sigma",
    "wall",
    "wall_during",
    "wall_multiplier",
]
