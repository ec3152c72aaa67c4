"""Players on the database: public profiles and rankings, each in one query.

Population and village counts are summed from the villages at read time (the stored
``players.population`` and ``players.rank`` columns are not trusted: they lag the world).
Ranks order players by the metric, highest first, ties to the lower player id; a player's
``rank`` in ``get`` is the same as their position in ``ranking("population")``. Players
without villages count with 0. Both are public: anyone may read them, even acting as nobody.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Subquery, func, select

from travian_repo.domain.errors import NotFound
from travian_repo.domain.values import Player, RankingEntry
from travian_repo.repositories.base import PlayerRepository
from travian_repo.sql import schema
from travian_repo.sql.repository import SqlRepository

_p = schema.players
_v = schema.villages
_a = schema.alliances


def _ranked(metric: str) -> Subquery:
    """Every player with population, village count and rank by ``metric``."""
    totals = (
        select(
            _p.c.id.label("player_id"),
            func.coalesce(func.sum(_v.c.population), 0).label("population"),
            func.count(_v.c.id).label("villages"),
        )
        .select_from(_p.outerjoin(_v, _v.c.player_id == _p.c.id))
        .group_by(_p.c.id)
        .subquery("totals")
    )
    value = totals.c[metric]
    return select(
        totals.c.player_id,
        totals.c.population,
        totals.c.villages,
        value.label("value"),
        func.row_number().over(order_by=(value.desc(), totals.c.player_id)).label("rank"),
    ).subquery("ranked")


class SqlPlayerRepository(SqlRepository, PlayerRepository):
    def get(self, player_id: int) -> Player:
        """A player's public profile with population, villages and rank (NotFound if none)."""
        ranked = _ranked("population")
        query = (
            select(
                _p.c.id,
                _p.c.username,
                _p.c.tribe,
                _p.c.alliance_id,
                _a.c.tag,
                ranked.c.population,
                ranked.c.villages,
                ranked.c.rank,
            )
            .select_from(
                _p.join(ranked, ranked.c.player_id == _p.c.id).outerjoin(
                    _a, _a.c.id == _p.c.alliance_id
                )
            )
            .where(_p.c.id == player_id)
        )
        row = self._read(lambda conn: conn.execute(query).first())
        if row is None:
            raise NotFound(f"player {player_id} does not exist")
        return Player(
            id=int(row.id),
            name=row.username,
            tribe=row.tribe,
            alliance_id=None if row.alliance_id is None else int(row.alliance_id),
            alliance_tag=row.tag,
            population=int(row.population),
            villages=int(row.villages),
            rank=int(row.rank),
        )

    def ranking(self, metric: str = "population", limit: int = 100) -> list[RankingEntry]:
        """The top ``limit`` players (1..1000) by ``metric`` (population or villages)."""
        ranked = _ranked(metric)
        query = (
            select(
                ranked.c.rank,
                _p.c.id,
                _p.c.username,
                _p.c.tribe,
                _a.c.tag,
                ranked.c.value,
            )
            .select_from(
                _p.join(ranked, ranked.c.player_id == _p.c.id).outerjoin(
                    _a, _a.c.id == _p.c.alliance_id
                )
            )
            .order_by(ranked.c.rank)
            .limit(limit)
        )
        rows: list[Any] = list(self._read(lambda conn: conn.execute(query).all()))
        return [
            RankingEntry(
                rank=int(r.rank),
                player_id=int(r.id),
                name=r.username,
                tribe=r.tribe,
                alliance_tag=r.tag,
                value=int(r.value),
            )
            for r in rows
        ]
