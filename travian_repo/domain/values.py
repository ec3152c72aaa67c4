"""Domain values: frozen dataclasses that every backend returns alike.

Times are timezone-aware UTC datetimes. "wheat" is the stored name for Travian's crop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar, Iterator, Mapping, TypeVar, overload

from travian_repo.domain import display
from travian_repo.domain.display import table_html

T = TypeVar("T")

RESOURCE_NAMES: tuple[str, ...] = ("wood", "clay", "iron", "wheat")

# What tells the time: called with no argument, it returns an aware UTC datetime. Every
# clock parameter takes one (``datetime.now``-like functions, ``sandbox.Clock``, ...).
ClockFn = Callable[[], datetime]

# Movement kinds as stored and returned; ``military.attack(kind=...)`` takes the attack names.
ATTACK_KINDS: Mapping[str, str] = {"normal": "attack", "raid": "raid", "siege": "siege"}
MOVEMENT_KINDS: tuple[str, ...] = ("attack", "raid", "siege", "reinforcement", "scout", "return")


def movement_kind(attack_kind: str) -> str:
    """The movement kind stored and returned for an attack kind of ``military.attack``:
    ``normal`` is the movement kind ``attack``; ``raid`` and ``siege`` keep their names."""
    return ATTACK_KINDS[attack_kind]


class _HtmlRepr:
    """What every value shares: a one-line repr with readable times, and a table in
    Jupyter (``travian_repo.domain.display``)."""

    def __repr__(self) -> str:
        return display.value_repr(self)

    def _repr_html_(self) -> str:
        return display.value_html(self)


@dataclass(frozen=True, slots=True)
class Resources(_HtmlRepr):
    wood: int = 0
    clay: int = 0
    iron: int = 0
    wheat: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.wood + other.wood,
            self.clay + other.clay,
            self.iron + other.iron,
            self.wheat + other.wheat,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.wood - other.wood,
            self.clay - other.clay,
            self.iron - other.iron,
            self.wheat - other.wheat,
        )

    def __mul__(self, factor: int) -> Resources:
        return Resources(
            self.wood * factor, self.clay * factor, self.iron * factor, self.wheat * factor
        )

    __rmul__ = __mul__

    def covers(self, other: Resources) -> bool:
        """True when every amount here is at least the other's."""
        return (
            self.wood >= other.wood
            and self.clay >= other.clay
            and self.iron >= other.iron
            and self.wheat >= other.wheat
        )

    @property
    def total(self) -> int:
        return self.wood + self.clay + self.iron + self.wheat

    def as_dict(self) -> dict[str, int]:
        return {"wood": self.wood, "clay": self.clay, "iron": self.iron, "wheat": self.wheat}

    def __iter__(self) -> Iterator[int]:
        return iter((self.wood, self.clay, self.iron, self.wheat))

    def __str__(self) -> str:
        return f"wood {self.wood}, clay {self.clay}, iron {self.iron}, wheat {self.wheat}"


class Troops(Mapping[str, int]):
    """A read-only mapping unit name -> count; units with a count of 0 are left out."""

    __slots__ = ("_counts",)

    def __init__(self, counts: Mapping[str, int] | None = None, **kwargs: int) -> None:
        merged = dict(counts or {})
        merged.update(kwargs)
        self._counts: dict[str, int] = {k: int(v) for k, v in sorted(merged.items()) if v}

    def __getitem__(self, unit: str) -> int:
        return self._counts[unit]

    @overload
    def get(self, unit: str) -> int: ...

    @overload
    def get(self, unit: str, default: T) -> int | T: ...

    def get(self, unit: str, default: Any = 0) -> Any:
        """The count of ``unit``: 0 (or ``default``) when there is none."""
        return self._counts.get(unit, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Troops):
            return self._counts == other._counts
        if isinstance(other, Mapping):
            return self._counts == {k: v for k, v in other.items() if v}
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._counts.items()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self._counts.items())
        return f"Troops({inner})"

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(self._counts)

    def _repr_html_(self) -> str:
        """A column per unit, its count below."""
        return f"<table><caption>Troops</caption><tr><td>{display.cell_html(self)}</td></tr></table>"


@dataclass(frozen=True, slots=True, repr=False)
class Building(_HtmlRepr):
    slot: int
    name: str
    level: int


@dataclass(frozen=True, slots=True, repr=False)
class BuildOrder(_HtmlRepr):
    id: int
    village_id: int
    position: int
    slot: int
    building: str
    target_level: int
    cost: Resources
    started_at: datetime
    completes_at: datetime


@dataclass(frozen=True, slots=True, repr=False)
class Village(_HtmlRepr):
    """A village. For anyone but its owner the private fields are None."""

    PRIVATE_FIELDS: ClassVar[tuple[str, ...]] = (
        "resources",
        "production",
        "warehouse_capacity",
        "granary_capacity",
        "buildings",
        "build_queue",
    )

    id: int
    name: str
    player_id: int
    x: int
    y: int
    population: int
    is_capital: bool
    tribe: str
    resources: Resources | None = None
    production: Resources | None = None
    warehouse_capacity: int | None = None
    granary_capacity: int | None = None
    buildings: tuple[Building, ...] | None = None
    build_queue: tuple[BuildOrder, ...] | None = None

    @property
    def is_private_view(self) -> bool:
        """True when this value carries the owner's private state."""
        return self.resources is not None

    def level(self, building: str) -> int:
        """Highest level of ``building`` in this village (0 if absent or not visible)."""
        return max((b.level for b in self.buildings or () if b.name == building), default=0)

    def public(self) -> Village:
        """The public face of this village (private fields set to None)."""
        return Village(
            self.id, self.name, self.player_id, self.x, self.y, self.population,
            self.is_capital, self.tribe,
        )

    def __repr__(self) -> str:
        """One short line: where it is and whose; the owner's view adds what it holds (its
        stock and the rest show in the table, ``_repr_html_``)."""
        text = (f"Village(id={self.id}, name={self.name!r}, player_id={self.player_id}, "
                f"x={self.x}, y={self.y}, tribe={self.tribe!r}, population={self.population}")
        if self.is_capital:
            text += ", capital"
        if not self.is_private_view:
            return text + ", public view)"
        return (text + f", {display.short(self.buildings)}, "
                f"{len(self.build_queue or ())} in the build queue)")


@dataclass(frozen=True, slots=True, repr=False)
class TrainingOrder(_HtmlRepr):
    id: int
    village_id: int
    troops: Troops
    cost: Resources
    started_at: datetime
    completes_at: datetime


@dataclass(frozen=True, slots=True, repr=False)
class Movement(_HtmlRepr):
    id: int
    kind: str
    from_village_id: int
    to_village_id: int
    troops: Troops
    departed_at: datetime
    arrives_at: datetime


@dataclass(frozen=True, slots=True, repr=False)
class TradeOffer(_HtmlRepr):
    id: int
    village_id: int
    player_id: int
    offer_resource: str
    offer_amount: int
    request_resource: str
    request_amount: int
    merchants: int
    created_at: datetime


@dataclass(frozen=True, slots=True, repr=False)
class Shipment(_HtmlRepr):
    id: int
    from_village_id: int
    to_village_id: int
    resources: Resources
    merchants: int
    departed_at: datetime
    arrives_at: datetime


# Report kinds as stored and returned: a battle seen by its attacker ("attack") or by a
# defending player ("defense"), a scouting seen by the scout ("scout") or by the scouted
# village's owner when its own scouts noticed ("scouted"), merchants delivering seen by the
# sender and the recipient ("trade").
REPORT_KINDS: tuple[str, ...] = ("attack", "defense", "scout", "scouted", "trade")


@dataclass(frozen=True, slots=True, repr=False)
class BattleSide(_HtmlRepr):
    """One army of a battle: whose, from where, what it brought, lost and kept."""

    player_id: int
    village_id: int  # the troops' home village
    tribe: str
    troops: Troops  # before the battle
    lost: Troops
    survivors: Troops


@dataclass(frozen=True, slots=True, repr=False)
class LevelChange(_HtmlRepr):
    """A building's level before and after a battle (the wall, or the catapults' target)."""

    building: str
    before: int
    after: int


@dataclass(frozen=True, slots=True, repr=False)
class BattleReport(_HtmlRepr):
    """What a battle report tells, typed (``Report.battle`` of an attack or defense report).

    ``attacker_won``: some attackers survived. ``defenders`` is every defending army (the
    target village's own troops first, then each reinforcement stationed there); the
    attacker's report leaves it empty when no attacker came back to tell. ``bounty`` is what
    the survivors carry home (of ``carry``, their capacity). ``wall`` is the target's wall
    (level 0 before and after when it has none). ``target`` is the catapults' aim (the
    building named in the attack, else the village's highest but the wall), its level the
    same after when no catapult hit it; None when no building stands.
    """

    movement_kind: str  # attack, raid or siege
    role: str  # attacker or defender: whose report this is
    movement_id: int
    attacker: BattleSide
    defenders: tuple[BattleSide, ...]
    target_village_id: int
    target_player_id: int
    attacker_won: bool
    bounty: Resources
    carry: int
    wall: LevelChange
    target: LevelChange | None = None


@dataclass(frozen=True, slots=True, repr=False)
class Report(_HtmlRepr):
    """A report of its player. ``payload`` is the report as stored (every kind has its
    own keys); ``battle`` is the typed battle of an ``attack`` or ``defense`` report,
    None for other kinds."""

    id: int
    player_id: int
    kind: str
    subject: str
    village_id: int | None
    created_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict, hash=False)
    read: bool = False
    battle: BattleReport | None = None


@dataclass(frozen=True, slots=True, repr=False)
class Message(_HtmlRepr):
    id: int
    from_player_id: int
    to_player_id: int
    subject: str
    body: str
    sent_at: datetime
    read: bool = False


@dataclass(frozen=True, slots=True, repr=False)
class Alliance(_HtmlRepr):
    id: int
    name: str
    tag: str
    founder_id: int
    created_at: datetime


@dataclass(frozen=True, slots=True, repr=False)
class Invitation(_HtmlRepr):
    id: int
    alliance_id: int
    player_id: int
    invited_by: int
    created_at: datetime
    status: str = "pending"


@dataclass(frozen=True, slots=True, repr=False)
class Player(_HtmlRepr):
    id: int
    name: str
    tribe: str
    alliance_id: int | None
    alliance_tag: str | None
    population: int
    villages: int
    rank: int


@dataclass(frozen=True, slots=True, repr=False)
class RankingEntry(_HtmlRepr):
    rank: int
    player_id: int
    name: str
    tribe: str
    alliance_tag: str | None
    value: int


@dataclass(frozen=True, slots=True, repr=False)
class Event(_HtmlRepr):
    kind: str
    player_id: int
    occurred_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict, hash=False)


__all__ = [
    "ATTACK_KINDS",
    "MOVEMENT_KINDS",
    "REPORT_KINDS",
    "RESOURCE_NAMES",
    "Alliance",
    "BattleReport",
    "BattleSide",
    "BuildOrder",
    "Building",
    "ClockFn",
    "Event",
    "Invitation",
    "LevelChange",
    "Message",
    "Movement",
    "Player",
    "RankingEntry",
    "Report",
    "Resources",
    "Shipment",
    "TradeOffer",
    "TrainingOrder",
    "Troops",
    "Village",
    "movement_kind",
]
