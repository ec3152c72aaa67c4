"""The market and merchants over the v1 API."""

from __future__ import annotations

from typing import Mapping

from travian_repo.domain.values import Resources, Shipment, TradeOffer
from travian_repo.http.base import HttpRepository
from travian_repo.repositories import validation as v
from travian_repo.repositories.base import TradeRepository


class HttpTradeRepository(HttpRepository, TradeRepository):
    def create_offer(
        self,
        village_id: int,
        offer_resource: str,
        offer_amount: int,
        request_resource: str,
        request_amount: int,
    ) -> TradeOffer:
        village_id = v.check_id(village_id, "village_id")
        offer_resource, offer_amount, request_resource, request_amount = v.check_offer(
            offer_resource, offer_amount, request_resource, request_amount
        )
        body = {
            "offer": {"resource": offer_resource, "amount": offer_amount},
            "request": {"resource": request_resource, "amount": request_amount},
        }
        return self._one(TradeOffer, "trade.create_offer", body=body, village_id=village_id)

    def send_resources(
        self, from_village_id: int, to_village_id: int, resources: Resources | Mapping[str, int]
    ) -> Shipment:
        source, target, goods = v.check_shipment(from_village_id, to_village_id, resources)
        body = {"target_village_id": target, "resources": goods.as_dict()}
        return self._one(Shipment, "trade.send_resources", body=body, village_id=source)

    def offers(self, village_id: int) -> list[TradeOffer]:
        return self._many(TradeOffer, "trade.offers",
                          village_id=v.check_id(village_id, "village_id"))

    def accept_offer(self, village_id: int, offer_id: int) -> Shipment:
        return self._one(Shipment, "trade.accept_offer", body={},
                         village_id=v.check_id(village_id, "village_id"),
                         offer_id=v.check_id(offer_id, "offer_id"))

    def cancel_offer(self, village_id: int, offer_id: int) -> TradeOffer:
        return self._one(TradeOffer, "trade.cancel_offer",
                         village_id=v.check_id(village_id, "village_id"),
                         offer_id=v.check_id(offer_id, "offer_id"))
