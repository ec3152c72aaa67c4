"""The handler table: one entry per operation of ``wire.routes.ROUTES``.

Each handler reads the parsed request (path, query, body) into an ``Op`` -- which repository
method to call with which arguments -- before any repository runs, so a malformed request
never reaches the database.
"""

from __future__ import annotations

from typing import Any, Callable

from travian_repo.sandbox.server.parsing import Call
from travian_repo.unit_of_work import UnitOfWork
from travian_repo.wire.routes import ROUTES, Route


class Op:
    """A parsed request: which repository method to call, with which arguments."""

    __slots__ = ("target", "args", "kwargs")

    def __init__(self, target: str, *args: Any, **kwargs: Any) -> None:
        self.target = target  # "domain.method"
        self.args = args
        self.kwargs = kwargs

    def __call__(self, uow: UnitOfWork) -> Any:
        domain, method = self.target.split(".")
        return getattr(getattr(uow, domain), method)(*self.args, **self.kwargs)


Handler = Callable[[Call], Op]


def _queue_building(c: Call) -> Op:
    b = c.json
    return Op("villages.queue_building", c.params["village_id"], b.get("building"),
              slot=b.get("slot", None), instant=b.get("instant", False))


def _attack(c: Call) -> Op:
    b = c.json
    return Op("military.attack", c.params["village_id"], b.get("target_village_id"),
              b.get("troops"), kind=b.get("attack_type", "normal"))


def _create_offer(c: Call) -> Op:
    offer, wanted = c.json.object("offer"), c.json.object("request")
    op = Op("trade.create_offer", c.params["village_id"], offer.get("resource"),
            offer.get("amount"), wanted.get("resource"), wanted.get("amount"))
    offer.finish()
    wanted.finish()
    return op


def _at(c: Call) -> Op:
    return Op("villages.at", c.query.int("x", required=True), c.query.int("y", required=True))


HANDLERS: dict[str, Handler] = {
    "villages.get": lambda c: Op("villages.get", c.params["village_id"]),
    "villages.list_by_player": lambda c: Op("villages.list_by_player", c.params["player_id"]),
    "villages.at": _at,
    "villages.queue_building": _queue_building,
    "villages.build_queue": lambda c: Op("villages.build_queue", c.params["village_id"]),
    "villages.cancel_building": lambda c: Op(
        "villages.cancel_building", c.params["village_id"], c.params["queue_position"]),
    "military.troops": lambda c: Op("military.troops", c.params["village_id"]),
    "military.train": lambda c: Op("military.train", c.params["village_id"],
                                   c.json.get("troops")),
    "military.attack": _attack,
    "military.reinforce": lambda c: Op(
        "military.reinforce", c.params["village_id"], c.json.get("target_village_id"),
        c.json.get("troops")),
    "military.incoming": lambda c: Op("military.incoming", c.params["village_id"]),
    "military.outgoing": lambda c: Op("military.outgoing", c.params["village_id"]),
    "military.send_home": lambda c: Op("military.send_home", c.params["village_id"],
                                       c.params["movement_id"]),
    "trade.create_offer": _create_offer,
    "trade.send_resources": lambda c: Op(
        "trade.send_resources", c.params["village_id"], c.json.get("target_village_id"),
        c.json.get("resources")),
    "trade.offers": lambda c: Op("trade.offers", c.params["village_id"]),
    "trade.accept_offer": lambda c: Op("trade.accept_offer", c.params["village_id"],
                                       c.params["offer_id"]),
    "trade.cancel_offer": lambda c: Op("trade.cancel_offer", c.params["village_id"],
                                       c.params["offer_id"]),
    "intel.send_scouts": lambda c: Op(
        "intel.send_scouts", c.params["village_id"], c.json.get("target_village_id"),
        c.json.get("scouts", 1)),
    "intel.scout_reports": lambda c: Op(
        "intel.scout_reports", c.params["player_id"], c.query.int("limit", 20)),
    "intel.reports": lambda c: Op(
        "intel.reports", c.params["player_id"], kind=c.query.text("kind"),
        limit=c.query.int("limit", 20)),
    "intel.mark_report_read": lambda c: Op("intel.mark_report_read", c.params["report_id"]),
    "diplomacy.send_message": lambda c: Op(
        "diplomacy.send_message", c.params["player_id"], c.json.get("to"),
        c.json.get("subject"), c.json.get("body")),
    "diplomacy.messages": lambda c: Op(
        "diplomacy.messages", c.params["player_id"],
        unread_only=c.query.bool("unread_only", False)),
    "diplomacy.create_alliance": lambda c: Op(
        "diplomacy.create_alliance", c.params["player_id"], c.json.get("name"),
        c.json.get("tag")),
    "diplomacy.invite": lambda c: Op("diplomacy.invite", c.params["alliance_id"],
                                     c.json.get("player_id")),
    "players.get": lambda c: Op("players.get", c.params["player_id"]),
    "players.ranking": lambda c: Op("players.ranking", c.params["metric"],
                                    c.query.int("limit", 100)),
    "session.me": lambda c: Op("players.get", c.player_id),
}


def parse(route: Route, call: Call) -> Op:
    """The request as an Op; InvalidRequest for a malformed query string or body."""
    op = HANDLERS[route.operation](call)
    call.query.finish()
    if call.body is not None:
        call.body.finish()
    return op


def check_table() -> None:
    """Every route has a handler and every handler a route (checked when an app is made)."""
    routed = {r.operation for r in ROUTES}
    if routed != set(HANDLERS):
        raise RuntimeError(
            "the server's handlers and wire.routes.ROUTES disagree: "
            f"no handler for {sorted(routed - set(HANDLERS))}, "
            f"no route for {sorted(set(HANDLERS) - routed)}"
        )


__all__ = ["HANDLERS", "Handler", "Op", "check_table", "parse"]
