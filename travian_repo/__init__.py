"""travian_repo: script a Travian world from synchronous Python.

    import travian_repo as tr
    with tr.connect("sqlite:///world.db", player_id=1) as world:
        village = world.villages.list_by_player(1)[0]
        world.villages.queue_building(village.id, "woodcutter")
"""

import logging

from travian_repo.domain.errors import (
    BackendUnavailable,
    ConfigurationError,
    Conflict,
    Forbidden,
    InsufficientResources,
    InvalidRequest,
    NotFound,
    RateLimited,
    RuleViolation,
    SchemaMismatch,
    TravianError,
    Unauthorized,
)
from travian_repo.domain.values import (
    Alliance,
    BattleReport,
    BattleSide,
    Building,
    BuildOrder,
    Event,
    Invitation,
    LevelChange,
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
from travian_repo.domain.settings import Settings
from travian_repo.infra.retry import RetryPolicy
from travian_repo.repositories.base import (
    DiplomacyRepository,
    IntelRepository,
    MilitaryRepository,
    PlayerRepository,
    Repository,
    TradeRepository,
    UnitOfWorkEnded,
    VillageRepository,
)
from travian_repo.unit_of_work import UnitOfWork
from travian_repo.world import World, WorldClosed, connect

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "Alliance",
    "BackendUnavailable",
    "BattleReport",
    "BattleSide",
    "BuildOrder",
    "Building",
    "ConfigurationError",
    "DiplomacyRepository",
    "Conflict",
    "Event",
    "Forbidden",
    "InsufficientResources",
    "InvalidRequest",
    "IntelRepository",
    "Invitation",
    "LevelChange",
    "Message",
    "MilitaryRepository",
    "Movement",
    "NotFound",
    "Player",
    "PlayerRepository",
    "RankingEntry",
    "RateLimited",
    "Report",
    "Repository",
    "Resources",
    "RetryPolicy",
    "RuleViolation",
    "SchemaMismatch",
    "Settings",
    "Shipment",
    "TradeOffer",
    "TradeRepository",
    "TrainingOrder",
    "TravianError",
    "Troops",
    "Unauthorized",
    "UnitOfWork",
    "UnitOfWorkEnded",
    "Village",
    "VillageRepository",
    "World",
    "WorldClosed",
    "connect",
]
