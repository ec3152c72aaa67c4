"""Villages over the v1 API."""

from __future__ import annotations

from travian_repo.domain.values import BuildOrder, Village
from travian_repo.http.base import HttpRepository
from travian_repo.repositories import validation as v
from travian_repo.rules import buildings as rules
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
        params = {"x": v.check_int(x, "x", low=-v.MAX_ID, high=v.MAX_ID),
                  "y": v.check_int(y, "y", low=-v.MAX_ID, high=v.MAX_ID)}
        data = self._call("villages.at", params=params)
        return None if data is None else decode(Village, data)

    def queue_building(
        self, village_id: int, building: str, *, slot: int | None = None, instant: bool = False
    ) -> BuildOrder:
        village_id = v.check_id(village_id, "village_id")
        body = {
            # Unknown names are refused here, as on the SQL side, before the slot is checked.
            "building": rules.building_spec(v.check_name(building, "building", max_length=40)).name,
            "slot": None if slot is None else v.check_int(slot, "slot", low=1, high=40),
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
            queue_position=v.check_int(queue_position, "queue_position", low=1, high=1000),
        )
