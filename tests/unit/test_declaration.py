"""The declarations drive the wire and the checks: what the HTTP client sends for each
operation (the v1 wire, unchanged), the checks every implementation gets once from the base,
and declarations that do not fit their method refused when the contract is made."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Mapping

import pytest

import travian_repo as tr
from travian_repo.http.repositories import HTTP_REPOSITORIES
from travian_repo.repositories.base import operation
from travian_repo.wire.serializer import encode

NOW = "2026-01-01T12:00:00Z"
MOVEMENT = {"id": 1, "kind": "raid", "from_village_id": 1, "to_village_id": 2,
            "troops": {"legionnaire": 5}, "departed_at": NOW, "arrives_at": NOW}
OFFER = {"id": 1, "village_id": 1, "player_id": 1, "offer_resource": "wood", "offer_amount": 100,
         "request_resource": "clay", "request_amount": 150, "merchants": 1, "created_at": NOW}
SHIPMENT = {"id": 1, "from_village_id": 1, "to_village_id": 2,
            "resources": {"wood": 10, "clay": 0, "iron": 0, "wheat": 5}, "merchants": 1,
            "departed_at": NOW, "arrives_at": NOW}


class FakeTransport:
    """Records each request and answers the given JSON."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.sent: list[tuple[str, str, str, Any, Any]] = []

    def request(self, operation: str, method: str, path: str, *, params: Any = None,
                json_body: Any = None) -> Any:
        self.sent.append((operation, method, path, params, json_body))
        return self.answer


def http(domain: str, answer: Any) -> tuple[Any, FakeTransport]:
    transport = FakeTransport(answer)
    return HTTP_REPOSITORIES[domain](transport, 1), transport  # type: ignore[arg-type]


def test_the_http_client_sends_the_v1_wire_from_the_declarations() -> None:
    military, sent = http("military", MOVEMENT)
    assert military.attack(1, 2, {"legionnaire": 5, "praetorian": 0}, kind="raid").kind == "raid"
    assert sent.sent[-1] == ("military.attack", "POST", "/v1/village/1/attack", None, {
        "target_village_id": 2, "troops": {"legionnaire": 5}, "attack_type": "raid"})
    military.send_home(1, 9)
    assert sent.sent[-1] == ("military.send_home", "POST",
                             "/v1/village/1/movements/9/send_home", None, {})

    trade, sent = http("trade", OFFER)
    trade.create_offer(1, "wood", 100, "clay", 150)
    assert sent.sent[-1][2:] == ("/v1/village/1/trade/offer", None, {
        "offer": {"resource": "wood", "amount": 100},
        "request": {"resource": "clay", "amount": 150}})
    trade.cancel_offer(1, 4)
    assert sent.sent[-1][1:] == ("DELETE", "/v1/village/1/trade/offer/4", None, None)

    trade, sent = http("trade", SHIPMENT)
    trade.send_resources(1, 2, tr.Resources(wood=10, wheat=5))
    assert sent.sent[-1][2:] == ("/v1/village/1/send_resources", None, {
        "target_village_id": 2, "resources": {"wood": 10, "clay": 0, "iron": 0, "wheat": 5}})

    diplomacy, sent = http("diplomacy", [])
    assert diplomacy.messages(3, unread_only=True) == []
    assert sent.sent[-1][1:] == ("GET", "/v1/player/3/messages", {"unread_only": True}, None)

    villages, sent = http("villages", None)
    assert villages.at(-3, 4) is None
    assert sent.sent[-1][1:] == ("GET", "/v1/villages/at", {"x": -3, "y": 4}, None)

    players, sent = http("players", [])
    players.ranking("villages")
    assert sent.sent[-1][1:] == ("GET", "/v1/rankings/villages", {"limit": 100}, None)


def test_bad_arguments_never_leave_the_process() -> None:
    military, sent = http("military", MOVEMENT)
    for call in (lambda: military.attack(1, 1, {"legionnaire": 5}),
                 lambda: military.attack(1, 2, {"legionnaire": 5}, kind="pillage"),
                 lambda: military.attack(0, 2, {"legionnaire": 5}),
                 lambda: military.train(1, {})):
        with pytest.raises(tr.InvalidRequest):
            call()
    with pytest.raises(TypeError):
        military.attack(1, 2, {"legionnaire": 5}, knd="raid")  # a misspelt keyword
    with pytest.raises(TypeError):
        military.attack(1, 2)  # an argument missing
    assert sent.sent == []


class Recording(tr.VillageRepository):
    """An implementation that records what it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def get(self, village_id: int) -> Any:
        self.calls.append(("get", village_id))

    def get_many(self, village_ids: Any) -> Any:
        self.calls.append(("get_many", village_ids))

    def list_by_player(self, player_id: int) -> Any:
        return []

    def at(self, x: int, y: int) -> Any:
        return None

    def queue_building(self, village_id: int, building: str, *, slot: int | None = None,
                       instant: bool = False) -> Any:
        self.calls.append(("queue_building", village_id, building, slot, instant))

    def build_queue(self, village_id: int) -> Any:
        return []

    def cancel_building(self, village_id: int, queue_position: int) -> Any:
        return None


def test_every_implementation_receives_checked_arguments_from_the_base() -> None:
    repo = Recording()
    repo.queue_building(village_id=3, building="Blacksmith", instant=True)
    repo.queue_building(3, "main_building", slot=26)
    assert repo.calls == [("queue_building", 3, "smithy", None, True),
                          ("queue_building", 3, "main_building", 26, False)]
    with pytest.raises(tr.InvalidRequest):
        repo.queue_building(3, "spaceport")
    with pytest.raises(tr.InvalidRequest):
        repo.get(True)  # a bool is no id
    with pytest.raises(tr.InvalidRequest):
        repo.get_many([1, True])
    assert len(repo.calls) == 2  # the implementation never ran for bad input
    repo.get_many("3,1")  # as the query string carries them
    assert repo.calls[-1] == ("get_many", (3, 1))


def test_a_declaration_that_does_not_fit_its_method_is_refused() -> None:
    with pytest.raises(TypeError, match="no argument travels"):
        class NoPlaceholder(tr.Repository):
            domain = "misfit_a"

            @operation("GET", "/thing/{thing_id}")
            @abstractmethod
            def get(self, other_id: int) -> tr.Village:
                """Misfit."""

    with pytest.raises(TypeError, match="no check for the argument 'name'"):
        class NoCheck(tr.Repository):
            domain = "misfit_b"

            @operation("POST", "/thing")
            @abstractmethod
            def make(self, name: str) -> tr.Village:
                """Misfit."""

    with pytest.raises(TypeError, match="names no argument"):
        class UnknownWire(tr.Repository):
            domain = "misfit_c"

            @operation("POST", "/thing", wire={"nme": "name"})
            @abstractmethod
            def make(self, thing_id: int) -> tr.Village:
                """Misfit."""

    with pytest.raises(TypeError, match="DELETE takes no body"):
        class DeleteWithBody(tr.Repository):
            domain = "misfit_d"

            @operation("DELETE", "/thing")
            @abstractmethod
            def drop(self, thing_id: int) -> tr.Village:
                """Misfit."""

    with pytest.raises(TypeError, match="unknown argument"):
        class BadInvalidation(tr.Repository):
            domain = "misfit_e"

            @operation("POST", "/thing/{thing_id}", invalidates=("thing:{thing}",))
            @abstractmethod
            def poke(self, thing_id: int) -> tr.Village:
                """Misfit."""


def test_encoded_resources_are_the_wire_mapping() -> None:
    resources: Mapping[str, int] = encode(tr.Resources(wood=1))
    assert resources == {"wood": 1, "clay": 0, "iron": 0, "wheat": 0}
