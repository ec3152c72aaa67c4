"""The v1 routes, named after the repository method each one serves.

The HTTP client builds its URLs from this table and the sandbox server registers its
handlers from it, so the two cannot drift apart. Bodies (JSON) follow the seed's shapes:

    villages.queue_building   POST   {"building": str, "slot": int|null, "instant": bool}
    military.train            POST   {"troops": {unit: count}}
    military.attack           POST   {"target_village_id": int, "troops": {...}, "attack_type": "normal"|"raid"|"siege"}
    military.reinforce        POST   {"target_village_id": int, "troops": {...}}
    trade.create_offer        POST   {"offer": {"resource": str, "amount": int}, "request": {"resource": str, "amount": int}}
    trade.send_resources      POST   {"target_village_id": int, "resources": {"wood": int, ...}}
    intel.send_scouts         POST   {"target_village_id": int, "scouts": int}
    diplomacy.send_message    POST   {"to": int, "subject": str, "body": str}
    diplomacy.create_alliance POST   {"name": str, "tag": str}
    diplomacy.invite          POST   {"player_id": int}
    trade.accept_offer        POST   {} (or no body)
    military.send_home        POST   {} (or no body)

GET parameters travel in the query string (``limit``, ``unread_only``, ``x``, ``y``).
Writes carry an ``Idempotency-Key`` header; every request carries ``Authorization: Bearer``
and ``X-World-Id``.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "/v1"


@dataclass(frozen=True)
class Route:
    operation: str  # "domain.method"
    method: str  # GET, POST, DELETE
    path: str  # under PREFIX, with {placeholders}

    @property
    def is_write(self) -> bool:
        return self.method != "GET"

    def url_path(self, **params: int | str) -> str:
        return PREFIX + self.path.format(**params)

    @property
    def flask_rule(self) -> str:
        """The path with Flask converters: ``/village/<int:village_id>``."""
        rule = self.path
        for name in (
            "village_id", "player_id", "alliance_id", "queue_position", "offer_id", "movement_id"
        ):
            rule = rule.replace("{" + name + "}", f"<int:{name}>")
        return PREFIX + rule.replace("{metric}", "<metric>")


ROUTES: tuple[Route, ...] = (
    Route("villages.get", "GET", "/village/{village_id}"),
    Route("villages.list_by_player", "GET", "/player/{player_id}/villages"),
    Route("villages.at", "GET", "/villages/at"),
    Route("villages.queue_building", "POST", "/village/{village_id}/build"),
    Route("villages.build_queue", "GET", "/village/{village_id}/build_queue"),
    Route("villages.cancel_building", "DELETE", "/village/{village_id}/build_queue/{queue_position}"),
    Route("military.troops", "GET", "/village/{village_id}/troops"),
    Route("military.train", "POST", "/village/{village_id}/train"),
    Route("military.attack", "POST", "/village/{village_id}/attack"),
    Route("military.reinforce", "POST", "/village/{village_id}/reinforce"),
    Route("military.incoming", "GET", "/village/{village_id}/incoming"),
    Route("military.outgoing", "GET", "/village/{village_id}/outgoing"),
    Route("military.send_home", "POST", "/village/{village_id}/movements/{movement_id}/send_home"),
    Route("trade.create_offer", "POST", "/village/{village_id}/trade/offer"),
    Route("trade.send_resources", "POST", "/village/{village_id}/send_resources"),
    Route("trade.offers", "GET", "/village/{village_id}/market"),
    Route("trade.accept_offer", "POST", "/village/{village_id}/trade/offer/{offer_id}/accept"),
    Route("trade.cancel_offer", "DELETE", "/village/{village_id}/trade/offer/{offer_id}"),
    Route("intel.send_scouts", "POST", "/village/{village_id}/scout"),
    Route("intel.scout_reports", "GET", "/player/{player_id}/reports/scout"),
    Route("diplomacy.send_message", "POST", "/player/{player_id}/messages/send"),
    Route("diplomacy.messages", "GET", "/player/{player_id}/messages"),
    Route("diplomacy.create_alliance", "POST", "/player/{player_id}/alliance/create"),
    Route("diplomacy.invite", "POST", "/alliance/{alliance_id}/invite"),
    Route("players.get", "GET", "/player/{player_id}"),
    Route("players.ranking", "GET", "/rankings/{metric}"),
    Route("session.me", "GET", "/me"),
)

BY_OPERATION: dict[str, Route] = {route.operation: route for route in ROUTES}


def route(operation: str) -> Route:
    return BY_OPERATION[operation]
