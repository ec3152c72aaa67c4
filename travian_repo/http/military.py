"""Troops and movements over the v1 API."""

from __future__ import annotations

from typing import Mapping

from travian_repo.domain.values import Movement, TrainingOrder, Troops
from travian_repo.http.base import HttpRepository
from travian_repo.repositories import validation as v
from travian_repo.repositories.base import MilitaryRepository


class HttpMilitaryRepository(HttpRepository, MilitaryRepository):
    def troops(self, village_id: int) -> Troops:
        return self._one(Troops, "military.troops", village_id=v.check_id(village_id, "village_id"))

    def train(self, village_id: int, troops: Mapping[str, int]) -> TrainingOrder:
        village_id = v.check_id(village_id, "village_id")
        return self._one(TrainingOrder, "military.train", body={"troops": v.check_troops(troops)},
                         village_id=village_id)

    def attack(
        self,
        from_village_id: int,
        to_village_id: int,
        troops: Mapping[str, int],
        *,
        kind: str = "normal",
    ) -> Movement:
        source, target = v.check_route(from_village_id, to_village_id)
        body = {
            "target_village_id": target,
            "troops": v.check_troops(troops),
            "attack_type": v.check_attack_kind(kind),
        }
        return self._one(Movement, "military.attack", body=body, village_id=source)

    def reinforce(
        self, from_village_id: int, to_village_id: int, troops: Mapping[str, int]
    ) -> Movement:
        source, target = v.check_route(from_village_id, to_village_id)
        body = {"target_village_id": target, "troops": v.check_troops(troops)}
        return self._one(Movement, "military.reinforce", body=body, village_id=source)

    def incoming(self, village_id: int) -> list[Movement]:
        return self._many(Movement, "military.incoming",
                          village_id=v.check_id(village_id, "village_id"))

    def outgoing(self, village_id: int) -> list[Movement]:
        return self._many(Movement, "military.outgoing",
                          village_id=v.check_id(village_id, "village_id"))

    def send_home(self, village_id: int, movement_id: int) -> Movement:
        return self._one(Movement, "military.send_home", body={},
                         village_id=v.check_id(village_id, "village_id"),
                         movement_id=v.check_id(movement_id, "movement_id"))
