"""Villages over the v1 API."""

from __future__ import annotations

from travian_repo.domain.values import BuildOrder, Village
from travian_repo.http.base import HttpRepository
from travian_repo.repositories import validation as v
from travian_repo.repositories.base import VillageRepository
from travian_repo.wire.serializer import decode


class HttpVillageRepository(HttpRepository, VillageRepository):
    def get(self, village_id: int) -> Village:
        return self._one(Village, "villages.get", village_id=v.check_id(village_id, "village_id"))

    def list_by_player(self, player_id: int) -> list[Village]:
        return self._many(
            Village, "villages.list_by_player", player_id=v.check_id(player_id, "player_id")
        )

    def at(self, x: int, y: int) -> Village | None:
        x, y = v.check_point(x, y, radius=None)  # the server knows the map's edge
        data = self._call("villages.at", params={"x": x, "y": y})
        return None if data is None else decode(Village, data)

    def queue_building(
        self, village_id: int, building: str, *, slot: int | None = None, instant: bool = False
    ) -> BuildOrder:
        village_id = v.check_id(village_id, "village_id")
        body = {
            # The same checks as the SQL side, in the same order, before anything is sent.
            "building": v.check_building(building),
            "slot": v.check_slot(slot),
            "instant": v.check_bool(instant, "instant"),
        }
        return self._one(BuildOrder, "villages.queue_building", body=body, village_id=village_id)

    def build_queue(self, village_id: int) -> list[BuildOrder]:
        return self._many(
            BuildOrder, "villages.build_queue", village_id=v.check_id(village_id, "village_id")
        )

    def cancel_building(self, village_id: int, queue_position: int) -> BuildOrder:
        return self._one(
            BuildOrder,
            "villages.cancel_building",
            village_id=v.check_id(village_id, "village_id"),
            queue_position=v.check_queue_position(queue_position),
        )
