"""The repositories, declared once. The SQL and the HTTP side implement them alike:
same methods, same values, same errors for the same world state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Mapping

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


class VillageRepository(ABC):
    @abstractmethod
    def get(self, village_id: int) -> Village:
        """The village now; private fields only for its owner."""

    @abstractmethod
    def list_by_player(self, player_id: int) -> list[Village]:
        """All villages of a player, capital first, in a constant number of round trips."""

    @abstractmethod
    def at(self, x: int, y: int) -> Village | None:
        """The village at (x, y), public face (private for its owner), or None."""

    @abstractmethod
    def queue_building(
        self, village_id: int, building: str, *, slot: int | None = None, instant: bool = False
    ) -> BuildOrder:
        """Spend the cost and queue the next level of ``building`` after the last order."""

    @abstractmethod
    def build_queue(self, village_id: int) -> list[BuildOrder]:
        """The village's build queue in order (owner only)."""

    @abstractmethod
    def cancel_building(self, village_id: int, queue_position: int) -> BuildOrder:
        """Cancel the order at ``queue_position`` with a full refund; returns it."""


class MilitaryRepository(ABC):
    @abstractmethod
    def troops(self, village_id: int) -> Troops:
        """Troops at home (owner only)."""

    @abstractmethod
    def train(self, village_id: int, troops: Mapping[str, int]) -> TrainingOrder:
        """Spend the cost and queue the units in their training buildings."""

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

    @abstractmethod
    def reinforce(
        self, from_village_id: int, to_village_id: int, troops: Mapping[str, int]
    ) -> Movement:
        """Send troops to stand in another village."""

    @abstractmethod
    def incoming(self, village_id: int) -> list[Movement]:
        """Movements under way to the village (its owner only)."""

    @abstractmethod
    def outgoing(self, village_id: int) -> list[Movement]:
        """Movements under way from the village (its owner only)."""

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


class TradeRepository(ABC):
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

    @abstractmethod
    def send_resources(
        self, from_village_id: int, to_village_id: int, resources: Resources | Mapping[str, int]
    ) -> Shipment:
        """Send resources with merchants."""

    @abstractmethod
    def offers(self, village_id: int) -> list[TradeOffer]:
        """Open offers on the market seen from the village (other villages' offers)."""

    @abstractmethod
    def accept_offer(self, village_id: int, offer_id: int) -> Shipment:
        """Accept another player's open offer from ``village_id``: it pays the requested goods
        (sent to the offerer with its own merchants) and receives the held offered goods
        (brought by the offerer's merchants). Returns the accepter's outgoing shipment.

        NotFound (village or offer missing), Forbidden (not the acting player's village),
        RuleViolation (the acting player's own offer; no marketplace or too few merchants),
        InsufficientResources, Conflict (the offer is no longer open: accepted or cancelled).
        """

    @abstractmethod
    def cancel_offer(self, village_id: int, offer_id: int) -> TradeOffer:
        """Withdraw the village's open offer: the held goods go back to stock (capped by
        storage) and the merchants are free again. Returns the offer.

        NotFound (village or offer missing, or an offer of another of the player's
        villages), Forbidden (not the acting player's village or offer), Conflict (the offer
        is no longer open).
        """


class IntelRepository(ABC):
    @abstractmethod
    def send_scouts(self, from_village_id: int, to_village_id: int, count: int = 1) -> Movement:
        """Send the tribe's scouts."""

    @abstractmethod
    def scout_reports(self, player_id: int, limit: int = 20) -> list[Report]:
        """The player's newest scout reports (the player only)."""


class DiplomacyRepository(ABC):
    @abstractmethod
    def send_message(
        self, from_player_id: int, to_player_id: int, subject: str, body: str
    ) -> Message:
        """Send an in-game message (from the acting player only)."""

    @abstractmethod
    def messages(self, player_id: int, *, unread_only: bool = False) -> list[Message]:
        """The player's inbox, newest first (the player only)."""

    @abstractmethod
    def create_alliance(self, player_id: int, name: str, tag: str) -> Alliance:
        """Found an alliance (needs an embassy at level 3)."""

    @abstractmethod
    def invite(self, alliance_id: int, player_id: int) -> Invitation:
        """Invite a player (by a member of the alliance)."""


class PlayerRepository(ABC):
    @abstractmethod
    def get(self, player_id: int) -> Player:
        """A player's public profile."""

    @abstractmethod
    def ranking(self, metric: str = "population", limit: int = 100) -> list[RankingEntry]:
        """Players ordered by ``metric`` (population or villages)."""


RANKING_METRICS = ("population", "villages")
