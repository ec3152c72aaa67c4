"""The repositories, declared once. The SQL and the HTTP side implement them alike:
same methods, same values, same errors for the same world state.

Each abstract class is the contract of one domain. A concrete subclass only writes the
bodies: ``Repository.__init_subclass__`` wraps each of its operations once, here, so every
backend gets the same guard (a unit of work that has ended refuses the call), the same
argument checks (from the declaration: an implementation receives checked values), the same
timing into the metrics and the cache of declared reads; the method keeps its name,
signature and the contract's docstring for ``help()``, ``inspect`` and completion.
"""

from __future__ import annotations

import functools
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

from travian_repo.domain.errors import TravianError
from travian_repo.repositories import validation as v
from travian_repo.repositories.binding import Binder
from travian_repo.repositories.declaration import DECLARED, Operation, named, operation
from travian_repo.domain.values import (
    Alliance,
    BuildOrder,
    Invitation,
    Message,
    Movement,
    Player,
    RankingEntry,
    Report,
    Resources,
    Shipment,
    TradeOffer,
    TrainingOrder,
    Troops,
    Village,
)

if TYPE_CHECKING:
    from travian_repo.infra.metrics import Metrics


class UnitOfWorkEnded(TravianError):
    """A repository of a unit of work was used after the unit's ``with`` block (or
    ``close()``): nothing was read or written."""


class Repository(ABC):
    """The base of every repository: the contracts below and their implementations."""

    # The domain a contract serves ("villages", ...); set by each contract, not by its
    # implementations.
    domain: ClassVar[str] = ""
    # The contract's operations, by method name (set on each contract from its declarations).
    declarations: ClassVar[dict[str, Operation]] = {}
    # Their argument binders, by method name (made once with the declarations).
    binders: ClassVar[dict[str, Binder]] = {}
    # The unit of work this repository belongs to (None: it stands alone).
    _unit: Any = None
    # Where calls are timed, by "domain.method" (None: not timed here).
    _metrics: Metrics | None = None
    # The unit of work's cache handle (travian_repo.infra.cache.CacheView); None = no caching.
    _cache: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "domain" in cls.__dict__:
            _declare(cls)
            return
        if not any(k.__dict__.get("domain") for k in cls.__mro__):
            return  # a shared base (SQL, HTTP, ...) serves every domain, implements none
        contract = cls.contract()
        for name in operations(contract):
            fn = cls.__dict__.get(name)
            if fn is None or getattr(fn, "__repository_operation__", False):
                continue
            declared = contract.declarations[name]
            if declared.ttl is not None:
                from travian_repo.infra.cache import cached  # the cache imports this module

                fn = cached(declared.name, scope=declared.visibility, depends=declared.depends)(fn)
            setattr(cls, name, _wrap(contract, name, fn, contract.binders[name]))

    @classmethod
    def contract(cls) -> type[Repository]:
        """The abstract class (one per domain) this class implements."""
        for klass in cls.__mro__:
            if klass.__dict__.get("domain"):
                return klass
        raise TypeError(f"{cls.__name__} implements no repository contract")


def operations(contract: type[Repository]) -> tuple[str, ...]:
    """The operations a contract declares, in declaration order."""
    return tuple(
        name for name, value in contract.__dict__.items()
        if getattr(value, "__isabstractmethod__", False)
    )


def _declare(contract: type[Repository]) -> None:
    """Name the contract's declarations and enter them in DECLARED; every operation of a
    contract must be declared."""
    found: dict[str, Operation] = {}
    for name in operations(contract):
        fn = contract.__dict__[name]
        declared = getattr(fn, "__operation__", None)
        if declared is None:
            raise TypeError(f"{contract.__name__}.{name} has no @operation declaration")
        found[name] = named(declared, contract.domain, fn, v.default_check)
        DECLARED[found[name].name] = found[name]
    contract.declarations = found
    contract.binders = {name: Binder(declared) for name, declared in found.items()}


def declared_operations() -> dict[str, Operation]:
    """Every operation of the contracts by "domain.method", in declaration order."""
    return DECLARED


def check_open(unit: Any) -> None:
    if unit is not None and unit._closed:
        raise UnitOfWorkEnded(
            "this unit of work has ended (its with block is over): it reads and writes "
            "nothing more; start a new one with world.unit_of_work()"
        )


def _wrap(
    contract: type[Repository], name: str, fn: Callable[..., Any], binder: Binder
) -> Callable[..., Any]:
    operation = f"{contract.domain}.{name}"
    perf_counter = time.perf_counter
    # An implementation made from the declaration (the HTTP side's) takes the checked values
    # as one list; a written one takes them as its signature says.
    if getattr(fn, "__takes_values__", False):
        checked = binder.checked

        def run(self: Repository, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return fn(self, checked(args, kwargs))
    else:
        bind = binder.bind

        def run(self: Repository, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            positional, keywords = bind(args, kwargs)
            return fn(self, *positional, **keywords)

    @functools.wraps(fn)
    def call(self: Repository, *args: Any, **kwargs: Any) -> Any:
        unit = self._unit
        if unit is not None and unit._closed:
            check_open(unit)
        metrics = self._metrics
        if metrics is None:
            return run(self, args, kwargs)
        started = perf_counter()
        failed = True
        try:
            result = run(self, args, kwargs)
            failed = False
            return result
        finally:
            metrics.record(operation, (perf_counter() - started) * 1000.0, error=failed)

    call.__doc__ = getattr(contract, name).__doc__ or fn.__doc__
    call.__signature__ = contract.declarations[name].signature  # type: ignore[attr-defined]
    call.__repository_operation__ = True  # type: ignore[attr-defined]
    return call


# A movement or a shipment sent: both villages and the sender's villages list.
_SENT = ("village:{from_village_id}", "village:{to_village_id}", "villages_of:{actor}")


class VillageRepository(Repository):
    domain = "villages"

    @operation("GET", "/village/{village_id}", ttl=30, depends=("village:{village_id}",))
    @abstractmethod
    def get(self, village_id: int) -> Village:
        """The village now; private fields only for its owner."""

    @operation("GET", "/villages", checks={"village_ids": v.check_ids})
    @abstractmethod
    def get_many(self, village_ids: Sequence[int]) -> list[Village]:
        """Several villages at once (one round trip), in the order asked; each as ``get``."""

    @operation("GET", "/player/{player_id}/villages", ttl=60, depends=("villages_of:{player_id}",))
    @abstractmethod
    def list_by_player(self, player_id: int) -> list[Village]:
        """All villages of a player, capital first, in a constant number of round trips."""

    @operation("GET", "/villages/at", ttl=30, depends=("village:{result.id}",),
               checks={"x": v.check_coordinate, "y": v.check_coordinate})
    @abstractmethod
    def at(self, x: int, y: int) -> Village | None:
        """The village at (x, y), public face (private for its owner), or None."""

    @operation("POST", "/village/{village_id}/build",
               checks={"building": v.check_building, "slot": v.check_slot},
               invalidates=("village:{village_id}", "villages_of:{actor}",
                            "player:{actor} if instant", "rank if instant"))
    @abstractmethod
    def queue_building(
        self, village_id: int, building: str, *, slot: int | None = None, instant: bool = False
    ) -> BuildOrder:
        """Spend the cost and queue the next level of ``building`` after the last order."""

    @operation("GET", "/village/{village_id}/build_queue", ttl=30, depends=("village:{village_id}",))
    @abstractmethod
    def build_queue(self, village_id: int) -> list[BuildOrder]:
        """The village's build queue in order (owner only)."""

    @operation("DELETE", "/village/{village_id}/build_queue/{queue_position}",
               checks={"queue_position": v.check_queue_position},
               invalidates=("village:{village_id}", "villages_of:{actor}"))
    @abstractmethod
    def cancel_building(self, village_id: int, queue_position: int) -> BuildOrder:
        """Cancel the order at ``queue_position`` with a full refund; returns it."""


class MilitaryRepository(Repository):
    domain = "military"

    @operation("GET", "/village/{village_id}/troops", ttl=30, depends=("village:{village_id}",))
    @abstractmethod
    def troops(self, village_id: int) -> Troops:
        """Troops at home (owner only)."""

    @operation("POST", "/village/{village_id}/train", checks={"troops": v.check_troops},
               invalidates=("village:{village_id}", "villages_of:{actor}"))
    @abstractmethod
    def train(self, village_id: int, troops: Mapping[str, int]) -> TrainingOrder:
        """Spend the cost and queue the units in their training buildings."""

    @operation("POST", "/village/{village_id}/attack",
               wire={"from_village_id": "village_id", "to_village_id": "target_village_id",
                     "kind": "attack_type"},
               checks={"troops": v.check_troops, "kind": v.check_attack_kind},
               check=v.distinct_villages, invalidates=_SENT)
    @abstractmethod
    def attack(
        self,
        from_village_id: int,
        to_village_id: int,
        troops: Mapping[str, int],
        *,
        kind: str = "normal",
    ) -> Movement:
        """Send troops to attack (kind: normal, raid, siege)."""

    @operation("POST", "/village/{village_id}/reinforce",
               wire={"from_village_id": "village_id", "to_village_id": "target_village_id"},
               checks={"troops": v.check_troops}, check=v.distinct_villages,
               invalidates=_SENT)
    @abstractmethod
    def reinforce(
        self, from_village_id: int, to_village_id: int, troops: Mapping[str, int]
    ) -> Movement:
        """Send troops to stand in another village."""

    @operation("GET", "/village/{village_id}/incoming", ttl=10, depends=("village:{village_id}",))
    @abstractmethod
    def incoming(self, village_id: int) -> list[Movement]:
        """Movements under way to the village (its owner only)."""

    @operation("GET", "/village/{village_id}/outgoing", ttl=10, depends=("village:{village_id}",))
    @abstractmethod
    def outgoing(self, village_id: int) -> list[Movement]:
        """Movements under way from the village (its owner only)."""

    @operation("POST", "/village/{village_id}/movements/{movement_id}/send_home",
               invalidates=("village:{result.from_village_id}", "village:{village_id}",
                            "villages_of:{actor}"))
    @abstractmethod
    def send_home(self, village_id: int, movement_id: int) -> Movement:
        """Recall reinforcements: the owner of troops stationed in another village calls them
        home. ``village_id`` is the troops' home village (the acting player's) and
        ``movement_id`` the reinforcement movement that stationed them. The stationed
        movement is done and a ``return`` movement (from the station to home, arriving after
        the travel time back) is returned.

        NotFound (village or movement missing, or troops from another village), Forbidden
        (not the acting player's village, or someone else's troops: the host cannot send
        them away), Conflict (not stationed: still under way, already recalled, not a
        reinforcement).
        """


class TradeRepository(Repository):
    domain = "trade"

    @operation("POST", "/village/{village_id}/trade/offer",
               wire={"offer_resource": "offer.resource", "offer_amount": "offer.amount",
                     "request_resource": "request.resource",
                     "request_amount": "request.amount"},
               checks={"offer_resource": v.check_resource, "offer_amount": v.check_amount,
                       "request_resource": v.check_resource,
                       "request_amount": v.check_amount},
               check=v.offer_terms,
               invalidates=("village:{village_id}", "villages_of:{actor}", "market"))
    @abstractmethod
    def create_offer(
        self,
        village_id: int,
        offer_resource: str,
        offer_amount: int,
        request_resource: str,
        request_amount: int,
    ) -> TradeOffer:
        """Put an offer on the market; the offered goods and merchants are held."""

    @operation("POST", "/village/{village_id}/send_resources",
               wire={"from_village_id": "village_id", "to_village_id": "target_village_id"},
               checks={"resources": v.check_resources}, check=v.no_shipment_to_itself,
               invalidates=_SENT)
    @abstractmethod
    def send_resources(
        self, from_village_id: int, to_village_id: int, resources: Resources | Mapping[str, int]
    ) -> Shipment:
        """Send resources with merchants."""

    @operation("GET", "/village/{village_id}/market", visibility="public", ttl=60, depends=("market",))
    @abstractmethod
    def offers(self, village_id: int) -> list[TradeOffer]:
        """Open offers on the market seen from the village (other villages' offers)."""

    @operation("POST", "/village/{village_id}/trade/offer/{offer_id}/accept",
               # the offerer's village from the answer: the shipment goes to it
               invalidates=("village:{result.to_village_id}", "village:{village_id}",
                            "villages_of:{actor}", "market"))
    @abstractmethod
    def accept_offer(self, village_id: int, offer_id: int) -> Shipment:
        """Accept another player's open offer from ``village_id``: it pays the requested goods
        (sent to the offerer with its own merchants) and receives the held offered goods
        (brought by the offerer's merchants). Returns the accepter's outgoing shipment.

        NotFound (village or offer missing), Forbidden (not the acting player's village),
        RuleViolation (the acting player's own offer; no marketplace or too few merchants),
        InsufficientResources, Conflict (the offer is no longer open: accepted or cancelled).
        """

    @operation("DELETE", "/village/{village_id}/trade/offer/{offer_id}",
               invalidates=("village:{village_id}", "villages_of:{actor}", "market"))
    @abstractmethod
    def cancel_offer(self, village_id: int, offer_id: int) -> TradeOffer:
        """Withdraw the village's open offer: the held goods go back to stock (capped by
        storage) and the merchants are free again. Returns the offer.

        NotFound (village or offer missing, or an offer of another of the player's
        villages), Forbidden (not the acting player's village or offer), Conflict (the offer
        is no longer open).
        """


class IntelRepository(Repository):
    domain = "intel"

    @operation("POST", "/village/{village_id}/scout",
               wire={"from_village_id": "village_id", "to_village_id": "target_village_id",
                     "count": "scouts"},
               checks={"count": v.check_count}, check=v.distinct_villages, invalidates=_SENT)
    @abstractmethod
    def send_scouts(self, from_village_id: int, to_village_id: int, count: int = 1) -> Movement:
        """Send the tribe's scouts."""

    # Reports are not cached: the engine writes them, often in another process (or on the
    # server), whose commits no reader's cache hears of; a stale list would hide a battle
    # or the scouting just sent for.
    @operation("GET", "/player/{player_id}/reports/scout", checks={"limit": v.check_limit})
    @abstractmethod
    def scout_reports(self, player_id: int, limit: int = 20) -> list[Report]:
        """The player's newest scout reports (the player only)."""

    @operation("GET", "/player/{player_id}/reports",
               checks={"kind": v.check_report_kind, "limit": v.check_limit})
    @abstractmethod
    def reports(self, player_id: int, *, kind: str | None = None, limit: int = 20) -> list[Report]:
        """The player's newest reports, all kinds or only ``kind`` (one of
        ``REPORT_KINDS``: attack, defense, scout, scouted, trade), newest first, at most ``limit``
        (1..1000). An attack or defense report carries its typed ``battle``. Reading does
        not mark reports read. The player only. Errors: InvalidRequest (bad id, kind or
        limit); Unauthorized (acting as nobody); Forbidden (another player's reports,
        whether or not that player exists)."""

    @operation("POST", "/report/{report_id}/read", invalidates=("reports:{actor}",))
    @abstractmethod
    def mark_report_read(self, report_id: int) -> Report:
        """Mark one of the acting player's reports read; returns it (``read`` True).
        Marking it again is no error. Errors, nothing written: InvalidRequest (bad id);
        Unauthorized (acting as nobody); NotFound (no such report); Forbidden (another
        player's report)."""


class DiplomacyRepository(Repository):
    domain = "diplomacy"

    @operation("POST", "/player/{player_id}/messages/send",
               wire={"from_player_id": "player_id", "to_player_id": "to"},
               checks={"subject": v.check_subject, "body": v.check_body},
               check=v.no_message_to_oneself, invalidates=("mail:{to_player_id}",))
    @abstractmethod
    def send_message(
        self, from_player_id: int, to_player_id: int, subject: str, body: str
    ) -> Message:
        """Send an in-game message (from the acting player only)."""

    @operation("GET", "/player/{player_id}/messages", ttl=30, depends=("mail:{player_id}",))
    @abstractmethod
    def messages(self, player_id: int, *, unread_only: bool = False) -> list[Message]:
        """The player's inbox, newest first (the player only)."""

    @operation("POST", "/message/{message_id}/read", invalidates=("mail:{actor}",))
    @abstractmethod
    def mark_read(self, message_id: int) -> Message:
        """Mark one of the acting player's received messages read; returns it with
        ``read=True``. Marking a message already read changes nothing and answers the same.

        NotFound (no such message), Forbidden (a message to another player, sent by the
        acting player included; acting as nobody).
        """

    @operation("POST", "/player/{player_id}/alliance/create",
               checks={"name": v.check_alliance_name, "tag": v.check_alliance_tag},
               invalidates=("player:{player_id}", "rank"))
    @abstractmethod
    def create_alliance(self, player_id: int, name: str, tag: str) -> Alliance:
        """Found an alliance (needs an embassy at level 3)."""

    @operation("POST", "/alliance/{alliance_id}/invite", invalidates=("player:{player_id}",))
    @abstractmethod
    def invite(self, alliance_id: int, player_id: int) -> Invitation:
        """Invite a player (by a member of the alliance)."""


class PlayerRepository(Repository):
    domain = "players"

    @operation("GET", "/player/{player_id}", visibility="public", ttl=120, depends=("player:{player_id}", "rank"))
    @abstractmethod
    def get(self, player_id: int) -> Player:
        """A player's public profile."""

    @operation("GET", "/rankings/{metric}", visibility="public", ttl=300, depends=("rank",),
               checks={"metric": v.check_metric, "limit": v.check_limit})
    @abstractmethod
    def ranking(self, metric: str = "population", limit: int = 100) -> list[RankingEntry]:
        """Players ordered by ``metric`` (population or villages)."""


RANKING_METRICS = ("population", "villages")

CONTRACTS: tuple[type[Repository], ...] = (
    VillageRepository, MilitaryRepository, TradeRepository, IntelRepository,
    DiplomacyRepository, PlayerRepository,
)
