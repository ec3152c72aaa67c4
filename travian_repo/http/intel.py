"""Scouting and reports over the v1 API."""

from __future__ import annotations

from travian_repo.domain.values import Movement, Report
from travian_repo.http.base import HttpRepository
from travian_repo.repositories import validation as v
from travian_repo.repositories.base import IntelRepository


class HttpIntelRepository(HttpRepository, IntelRepository):
    def send_scouts(self, from_village_id: int, to_village_id: int, count: int = 1) -> Movement:
        source, target = v.check_route(from_village_id, to_village_id)
        body = {"target_village_id": target,
                "scouts": v.check_int(count, "count", low=1, high=v.MAX_COUNT)}
        return self._one(Movement, "intel.send_scouts", body=body, village_id=source)

    def scout_reports(self, player_id: int, limit: int = 20) -> list[Report]:
        player_id = v.check_id(player_id, "player_id")
        return self._many(
            Report, "intel.scout_reports",
            params={"limit": v.check_int(limit, "limit", low=1, high=v.MAX_LIMIT)},
            player_id=player_id,
        )

    def reports(self, player_id: int, *, kind: str | None = None, limit: int = 20) -> list[Report]:
        player_id, kind, limit = v.check_reports_query(player_id, kind, limit)
        return self._many(Report, "intel.reports", params={"kind": kind, "limit": limit},
                          player_id=player_id)

    def mark_report_read(self, report_id: int) -> Report:
        report_id = v.check_id(report_id, "report_id")
        return self._one(Report, "intel.mark_report_read", body={}, report_id=report_id)
