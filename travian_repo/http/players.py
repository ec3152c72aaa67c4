"""Players and rankings over the v1 API."""

from __future__ import annotations

from travian_repo.domain.values import Player, RankingEntry
from travian_repo.http.base import HttpRepository
from travian_repo.repositories import validation as v
from travian_repo.repositories.base import PlayerRepository


class HttpPlayerRepository(HttpRepository, PlayerRepository):
    def get(self, player_id: int) -> Player:
        return self._one(Player, "players.get", player_id=v.check_id(player_id, "player_id"))

    def ranking(self, metric: str = "population", limit: int = 100) -> list[RankingEntry]:
        metric = v.check_metric(metric)
        return self._many(
            RankingEntry, "players.ranking",
            params={"limit": v.check_int(limit, "limit", low=1, high=v.MAX_LIMIT)},
            metric=metric,
        )
