"""The NPC interface: ``NPCGameInterface``, synchronous.

Each action runs in its own unit of work as the NPC's player and answers with a bool:
True when the game accepted it, False when the game said no (``last_error`` holds the
``TravianError`` why). Infrastructure failures (database down, rate limited, bad
configuration, a database that is not a world) still raise: an NPC cannot play around them.

    npc = world.npc(3)
    npc.initialize()
    if not npc.build_in_village(npc.villages[0].id, "woodcutter"):
        print("refused:", npc.last_error)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Mapping, TypeVar

from travian_repo.domain.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    RuleViolation,
    TravianError,
)
from travian_repo.domain.values import Village
from travian_repo.repositories.validation import check_id

if TYPE_CHECKING:
    from travian_repo.unit_of_work import UnitOfWork
    from travian_repo.world import World

log = logging.getLogger(__name__)

T = TypeVar("T")

# The game said no: the action is refused, the NPC goes on. ``InsufficientResources`` is a
# ``RuleViolation``. Everything else (BackendUnavailable, RateLimited, ConfigurationError,
# SchemaMismatch, a bare TravianError from the database) is not the game's answer and raises.
GAME_REFUSALS: tuple[type[TravianError], ...] = (
    InvalidRequest,
    NotFound,
    Forbidden,
    RuleViolation,
    Conflict,
)


class NPCGameInterface:
    """One NPC player acting on a world. Build it with ``world.npc(player_id)``."""

    def __init__(self, world: World, player_id: int) -> None:
        self.world = world
        self.player_id = check_id(player_id, "player_id")
        self.villages: list[Village] = []
        self.last_error: TravianError | None = None
        # What the last accepted action returned (a BuildOrder, TrainingOrder, Movement ...).
        self.last_result: object | None = None

    def initialize(self) -> list[Village]:
        """Load (or reload) the player's villages into ``self.villages`` and return them."""
        with self.world.unit_of_work(self.player_id) as uow:
            self.villages = uow.villages.list_by_player(self.player_id)
        return self.villages

    def build_in_village(self, village_id: int, building: str) -> bool:
        """Queue the next level of ``building`` (a field name upgrades its lowest field)."""
        return self.act(lambda uow: uow.villages.queue_building(village_id, building))

    def train_army(self, village_id: int, unit_type: str, count: int) -> bool:
        """Train ``count`` units of ``unit_type`` in the village."""
        return self.act(lambda uow: uow.military.train(village_id, {unit_type: count}))

    def launch_raid(
        self, from_village_id: int, target_x: int, target_y: int, troops: Mapping[str, int]
    ) -> bool:
        """Raid the village at (target_x, target_y); no village there is a NotFound."""

        def raid(uow: UnitOfWork) -> object:
            target = uow.villages.at(target_x, target_y)
            if target is None:
                raise NotFound(f"there is no village at ({target_x}|{target_y})")
            return uow.military.attack(from_village_id, target.id, troops, kind="raid")

        return self.act(raid)

    def send_diplomatic_message(self, to_player_id: int, subject: str, message: str) -> bool:
        """Send an in-game message from this NPC's player."""
        return self.act(
            lambda uow: uow.diplomacy.send_message(self.player_id, to_player_id, subject, message)
        )

    def act(self, action: Callable[[UnitOfWork], T]) -> bool:
        """Run ``action(uow)`` in its own unit of work as this player, with the NPC answer.

        True (and ``last_result``) when it committed; False with ``last_error`` when the game
        refused it, in which case nothing of it was written. Other errors raise.
        """
        try:
            with self.world.unit_of_work(self.player_id) as uow:
                result = action(uow)
        except GAME_REFUSALS as exc:
            log.debug("player %s: refused: %s: %s", self.player_id, exc.code, exc)
            self.last_error = exc
            self.last_result = None
            return False
        self.last_error = None
        self.last_result = result
        return True

    def __repr__(self) -> str:
        return f"<NPCGameInterface player_id={self.player_id} villages={len(self.villages)}>"


__all__ = ["GAME_REFUSALS", "NPCGameInterface"]
