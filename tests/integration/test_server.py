"""The sandbox server on a loopback port, on both SQL backends, driven by plain ``requests``:
authentication, the world header, a round trip of every route, the error table,
idempotency (replay, reuse, concurrency, lost replies) and the OpenAPI document."""

from __future__ import annotations

import dataclasses
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import sqlalchemy as sa
import yaml

import travian_repo as tr
from travian_repo.domain import values
from travian_repo.domain.values import (
    Alliance,
    BuildOrder,
    Invitation,
    Message,
    Movement,
    Player,
    RankingEntry,
    Report,
    Resources,
    Shipment,
    TradeOffer,
    TrainingOrder,
    Troops,
    Village,
)
from travian_repo.sandbox import Clock
from travian_repo.sandbox.server import ServerThread, app_world, create_app
from travian_repo.sql import schema
from travian_repo.sql.players import SqlPlayerRepository
from travian_repo.wire.errors import error_from_body
from travian_repo.wire.routes import PREFIX, ROUTES
from travian_repo.wire.serializer import decode, decode_list

from tests.conftest import START, MakeWorld

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS_SPEC = REPO_ROOT / "docs" / "openapi.yaml"
TIMEOUT = 10


# ---- fixtures and helpers -----------------------------------------------------------------

class Api:
    """The server under test, as a player: ``api.post("/village/1/build", json=..., key=...)``."""

    def __init__(self, url: str, tokens: dict[int, str], world: tr.World) -> None:
        self.url = url
        self.tokens = tokens
        self.world = world  # a SQL world on the same database, to check what was written
        self.session = requests.Session()

    def headers(self, player: int | None = 1, key: str | None = None,
                world_id: str | None = "default") -> dict[str, str]:
        headers: dict[str, str] = {}
        if player is not None:
            headers["Authorization"] = f"Bearer {self.tokens[player]}"
        if world_id is not None:
            headers["X-World-Id"] = world_id
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def request(self, method: str, path: str, *, player: int | None = 1, key: str | None = None,
                url: str | None = None, **kwargs: Any) -> requests.Response:
        headers = self.headers(player, key)
        headers.update(kwargs.pop("headers", {}))
        return self.session.request(method, (url or self.url) + PREFIX + path, headers=headers,
                                    timeout=TIMEOUT, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def rows(self, table: sa.Table) -> list[Any]:
        with self.world.database.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.id))]

    def as_player(self, player: int) -> tr.World:
        return tr.connect(self.world.database.engine, player_id=player,
                          clock=self.world.database.clock)


@pytest.fixture
def api(make_world: MakeWorld, database_url: str, clock: Clock) -> Iterator[Api]:
    summary = make_world()
    with ServerThread(database_url, clock=clock) as server, \
            tr.connect(database_url, player_id=1, clock=clock) as world:
        client = Api(server.url, summary.tokens, world)
        yield client
        client.session.close()


def ok(response: requests.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.text
    return dict(body["error"])


def set_stock(world: tr.World, village_id: int, amount: int) -> None:
    r = schema.village_resources
    with world.database.engine.begin() as conn:
        conn.execute(r.update().where(r.c.village_id == village_id).values(
            wood=amount, clay=amount, iron=amount, wheat=amount, updated_at=START))


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCS_SPEC.read_text("utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def check_schema(spec: dict[str, Any], name: str, data: Any, *, many: bool = False) -> None:
    """The answer fits the OpenAPI document's schema for it (formats checked)."""
    import jsonschema

    ref = {"$ref": f"#/components/schemas/{name}"}
    root = {**({"type": "array", "items": ref} if many else ref), "components": spec["components"]}
    validator = jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(data)


# ---- authentication and the world header --------------------------------------------------

def test_a_bad_token_is_401_unauthorized(api: Api) -> None:
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer "}, {"Authorization": "Bearer " + "x" * 5000}):
        r = api.session.get(api.url + PREFIX + "/village/1",
                            headers={"X-World-Id": "default", **headers}, timeout=TIMEOUT)
        error(r, 401, "unauthorized")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        # the client's table turns it into Unauthorized, a Forbidden
        assert type(error_from_body(401, r.json())) is tr.Unauthorized
        assert issubclass(tr.Unauthorized, tr.Forbidden)
    # /me has nobody to describe without a token
    r = api.session.get(api.url + PREFIX + "/me", headers={"X-World-Id": "default"},
                        timeout=TIMEOUT)
    error(r, 401, "unauthorized")


def test_no_token_acts_as_nobody(api: Api) -> None:
    # public reads answer, as on the SQL side: the public face of a village
    r = api.session.get(api.url + PREFIX + "/village/1", headers={"X-World-Id": "default"},
                        timeout=TIMEOUT)
    village = decode(tr.Village, ok(r))
    assert village.id == 1 and village.resources is None
    # a write without a token acts on nothing: the repository refuses acting as nobody,
    # answered 401 with a challenge (403 is for "not yours")
    r = api.post("/player/1/messages/send", player=None,
                 json={"to": 2, "subject": "hi", "body": "there"})
    assert "acting player" in error(r, 401, "unauthorized")["message"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert type(error_from_body(401, r.json())) is tr.Unauthorized
    # a private read without a token: the same
    r = api.get("/village/1/troops", player=None)
    error(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert api.rows(schema.messages) == []


def test_the_token_decides_who_acts(api: Api) -> None:
    me = decode(Player, ok(api.get("/me", player=3)))
    assert me.id == 3
    assert me == api.world.players.get(3)
    # player 1's token cannot send as player 2: 403, no challenge (the token is fine)
    r = api.post("/player/2/messages/send", json={"to": 3, "subject": "hi", "body": "x"})
    error(r, 403, "forbidden")
    assert "WWW-Authenticate" not in r.headers
    assert type(error_from_body(403, r.json())) is tr.Forbidden


def test_world_header_missing_is_the_servers_world_and_another_world_409(api: Api) -> None:
    r = api.session.get(api.url + PREFIX + "/me", timeout=TIMEOUT,
                        headers={"Authorization": f"Bearer {api.tokens[1]}"})
    assert r.status_code == 200 and r.json()["id"] == 1
    r = api.session.get(api.url + PREFIX + "/me", timeout=TIMEOUT,
                        headers={"Authorization": f"Bearer {api.tokens[1]}", "X-World-Id": ""})
    assert error(r, 400, "invalid_request")["details"] == {"header": "X-World-Id"}
    r = api.session.get(api.url + PREFIX + "/me", timeout=TIMEOUT,
                        headers=api.headers(1, world_id="other"))
    details = error(r, 409, "conflict")["details"]
    assert details == {"header": "X-World-Id", "given": "other", "expected": "default"}
    # refused before acting
    r = api.session.post(api.url + PREFIX + "/player/1/messages/send", timeout=TIMEOUT,
                         headers=api.headers(1, world_id="other"),
                         json={"to": 2, "subject": "hi", "body": "x"})
    error(r, 409, "conflict")
    assert api.rows(schema.messages) == []


# ---- a round trip of every route ----------------------------------------------------------

def test_villages_round_trip(api: Api, spec: dict[str, Any]) -> None:
    own = ok(api.get("/village/1"))
    check_schema(spec, "Village", own)
    village = decode(Village, own)
    assert village == api.world.villages.get(1)
    assert village.is_private_view and own["resources"] == {
        "wood": 4000, "clay": 4000, "iron": 4000, "wheat": 4000}

    other = ok(api.get("/village/2"))
    check_schema(spec, "Village", other)
    assert other["player_id"] == 2 and other["resources"] is None and other["buildings"] is None
    assert decode(Village, other) == api.world.villages.get(2)

    listed = ok(api.get("/player/2/villages"))
    check_schema(spec, "Village", listed, many=True)
    assert decode_list(Village, listed) == api.world.villages.list_by_player(2)

    assert ok(api.get("/villages/at", params={"x": village.x, "y": village.y}))["id"] == 1
    assert ok(api.get("/villages/at", params={"x": 150, "y": -150})) is None

    order_json = ok(api.post("/village/1/build", json={"building": "woodcutter"}), 200)
    check_schema(spec, "BuildOrder", order_json)
    order = decode(BuildOrder, order_json)
    assert (order.village_id, order.building, order.position, order.started_at) == (
        1, "woodcutter", 1, START)
    queue = ok(api.get("/village/1/build_queue"))
    assert decode_list(BuildOrder, queue) == [order] == api.world.villages.build_queue(1)

    cancelled = ok(api.delete("/village/1/build_queue/1"))
    assert decode(BuildOrder, cancelled) == order
    assert ok(api.get("/village/1/build_queue")) == []
    assert api.world.villages.get(1).resources == Resources(4000, 4000, 4000, 4000)


def test_military_round_trip(api: Api, spec: dict[str, Any]) -> None:
    troops = ok(api.get("/village/1/troops"))
    check_schema(spec, "Troops", troops)
    assert troops == {"equites_legati": 5, "legionnaire": 20}

    trained = ok(api.post("/village/1/train", json={"troops": {"legionnaire": 2}}), 200)
    check_schema(spec, "TrainingOrder", trained)
    assert decode(TrainingOrder, trained).troops == Troops(legionnaire=2)

    attack_json = ok(api.post("/village/1/attack", json={
        "target_village_id": 2, "troops": {"legionnaire": 5}, "attack_type": "raid"}), 200)
    check_schema(spec, "Movement", attack_json)
    attack = decode(Movement, attack_json)
    assert (attack.kind, attack.from_village_id, attack.to_village_id) == ("raid", 1, 2)
    assert attack.troops == Troops(legionnaire=5) and attack.departed_at == START

    normal = decode(Movement, ok(api.post("/village/1/attack", json={
        "target_village_id": 3, "troops": {"legionnaire": 1}}), 200))
    assert normal.kind == "attack"  # attack_type defaults to normal

    reinforce = decode(Movement, ok(api.post("/village/1/reinforce", json={
        "target_village_id": 4, "troops": {"legionnaire": 2}}), 200))
    assert reinforce.kind == "reinforcement"

    outgoing = ok(api.get("/village/1/outgoing"))
    check_schema(spec, "Movement", outgoing, many=True)
    assert decode_list(Movement, outgoing) == api.world.military.outgoing(1)
    assert {m.id for m in decode_list(Movement, outgoing)} == {attack.id, normal.id, reinforce.id}

    incoming = decode_list(Movement, ok(api.get("/village/2/incoming", player=2)))
    assert [m.id for m in incoming] == [attack.id]
    assert ok(api.get("/village/1/troops")) == {"equites_legati": 5, "legionnaire": 12}


def test_trade_round_trip(api: Api, spec: dict[str, Any]) -> None:
    offer_json = ok(api.post("/village/1/trade/offer", json={
        "offer": {"resource": "wood", "amount": 200},
        "request": {"resource": "clay", "amount": 150}}), 200)
    check_schema(spec, "TradeOffer", offer_json)
    offer = decode(TradeOffer, offer_json)
    assert (offer.village_id, offer.player_id, offer.offer_resource, offer.offer_amount,
            offer.request_resource, offer.request_amount) == (1, 1, "wood", 200, "clay", 150)

    market = ok(api.get("/village/2/market", player=2))
    check_schema(spec, "TradeOffer", market, many=True)
    assert decode_list(TradeOffer, market) == [offer]

    shipment_json = ok(api.post("/village/1/send_resources", json={
        "target_village_id": 3, "resources": {"wood": 300, "wheat": 100}}), 200)
    check_schema(spec, "Shipment", shipment_json)
    shipment = decode(Shipment, shipment_json)
    assert shipment.resources == Resources(wood=300, wheat=100)
    assert (shipment.from_village_id, shipment.to_village_id) == (1, 3)


def test_intel_round_trip(api: Api, spec: dict[str, Any]) -> None:
    scout = decode(Movement, ok(api.post("/village/1/scout", json={
        "target_village_id": 2, "scouts": 2}), 200))
    assert scout.kind == "scout" and scout.troops == Troops(equites_legati=2)
    one = decode(Movement, ok(api.post("/village/1/scout", json={"target_village_id": 3}), 200))
    assert one.troops == Troops(equites_legati=1)  # scouts defaults to 1

    reports = ok(api.get("/player/1/reports/scout", params={"limit": 5}))
    check_schema(spec, "Report", reports, many=True)
    assert decode_list(Report, reports) == api.world.intel.scout_reports(1, 5)
    error(api.get("/player/2/reports/scout"), 403, "forbidden")


def test_battle_reports_round_trip(api: Api, spec: dict[str, Any], clock: Clock) -> None:
    from travian_repo.sandbox import Engine

    raid = decode(Movement, ok(api.post("/village/1/attack", json={
        "target_village_id": 2, "troops": {"legionnaire": 20}, "attack_type": "raid"})))
    clock.set(raid.arrives_at)
    with Engine(api.world.database, clock=clock) as engine:
        assert engine.run_until(raid.arrives_at) == 1

    mine_json = ok(api.get("/player/1/reports", params={"kind": "attack", "limit": 5}))
    check_schema(spec, "Report", mine_json, many=True)
    [mine] = decode_list(Report, mine_json)
    assert mine.battle is not None and mine.battle.role == "attacker"
    assert mine_json[0]["battle"]["attacker"]["troops"] == {"legionnaire": 20}
    assert [mine] == api.world.intel.reports(1, kind="attack", limit=5)
    assert ok(api.get("/player/1/reports", params={"kind": "defense"})) == []
    check_schema(spec, "Report", ok(api.get("/player/2/reports", player=2)), many=True)
    error(api.get("/player/2/reports"), 403, "forbidden")

    read_json = ok(api.post(f"/report/{mine.id}/read", data=b""))
    check_schema(spec, "Report", read_json)
    assert decode(Report, read_json) == dataclasses.replace(mine, read=True)
    assert ok(api.post(f"/report/{mine.id}/read", json={})) == read_json
    [theirs] = api.as_player(2).intel.reports(2)
    error(api.post(f"/report/{theirs.id}/read", json={}), 403, "forbidden")
    error(api.post("/report/999999/read", json={}), 404, "not_found")
    error(api.post(f"/report/{mine.id}/read", json={"read": False}), 400, "invalid_request")
    assert api.as_player(2).intel.reports(2)[0].read is False


def test_diplomacy_round_trip(api: Api, spec: dict[str, Any]) -> None:
    sent_json = ok(api.post("/player/1/messages/send", json={
        "to": 2, "subject": "Greetings", "body": "Peace?"}), 200)
    check_schema(spec, "Message", sent_json)
    sent = decode(Message, sent_json)
    assert (sent.from_player_id, sent.to_player_id, sent.subject, sent.read) == (
        1, 2, "Greetings", False)

    inbox = ok(api.get("/player/2/messages", player=2, params={"unread_only": "true"}))
    check_schema(spec, "Message", inbox, many=True)
    assert decode_list(Message, inbox) == [sent]
    with api.as_player(2) as world2:
        assert decode_list(Message, ok(api.get("/player/2/messages", player=2))) == (
            world2.diplomacy.messages(2))
    error(api.get("/player/2/messages"), 403, "forbidden")

    alliance_json = ok(api.post("/player/1/alliance/create", json={
        "name": "Iron Legion", "tag": "IRON"}), 200)
    check_schema(spec, "Alliance", alliance_json)
    alliance = decode(Alliance, alliance_json)
    assert (alliance.name, alliance.tag, alliance.founder_id) == ("Iron Legion", "IRON", 1)

    invitation_json = ok(api.post(f"/alliance/{alliance.id}/invite", json={"player_id": 2}), 200)
    check_schema(spec, "Invitation", invitation_json)
    invitation = decode(Invitation, invitation_json)
    assert (invitation.alliance_id, invitation.player_id, invitation.invited_by) == (
        alliance.id, 2, 1)


def test_players_round_trip(api: Api, spec: dict[str, Any]) -> None:
    player = ok(api.get("/player/4"))
    check_schema(spec, "Player", player)
    assert decode(Player, player) == api.world.players.get(4)
    ranking = ok(api.get("/rankings/population", params={"limit": 3}))
    check_schema(spec, "RankingEntry", ranking, many=True)
    assert decode_list(RankingEntry, ranking) == api.world.players.ranking("population", 3)
    assert len(ranking) == 3
    assert len(ok(api.get("/rankings/villages"))) == 6
    error(api.get("/rankings/gold"), 400, "invalid_request")


# ---- the error table ----------------------------------------------------------------------

def test_not_found_and_forbidden(api: Api) -> None:
    error(api.get("/village/999"), 404, "not_found")
    error(api.get("/player/999"), 404, "not_found")
    error(api.get("/village/2/troops"), 403, "forbidden")
    error(api.get("/village/2/build_queue"), 403, "forbidden")
    error(api.post("/village/2/build", json={"building": "woodcutter"}), 403, "forbidden")
    error(api.delete("/village/1/build_queue/1"), 404, "not_found")
    # routes and methods the contract does not have: JSON errors too
    error(api.get("/nowhere"), 404, "not_found")
    error(api.get("/village/abc"), 404, "not_found")
    r = api.request("PUT", "/village/1")
    error(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]
    assert api.rows(schema.build_queue) == []


def test_malformed_requests_are_400(api: Api) -> None:
    bad_bodies: list[dict[str, Any]] = [
        {"data": b"not json"},
        {"data": b'{"building": "woodcutter"'},  # truncated
        {"data": b""},
        {"data": b"\xff\xfe"},
        {"data": b'{"building": NaN}'},
        {"json": ["woodcutter"]},
        {"json": "woodcutter"},
        {"json": None},
        {"json": {}},  # missing building
        {"json": {"building": "woodcutter", "colour": "red"}},  # unknown field
        {"json": {"building": 7}},  # wrong type: the repository says so
        {"json": {"building": "woodcutter", "slot": "3"}},
        {"json": {"building": "woodcutter", "instant": "yes"}},
        {"json": {"building": "goldmine"}},
    ]
    for kwargs in bad_bodies:
        error(api.post("/village/1/build", **kwargs), 400, "invalid_request")
    error(api.post("/village/1/train", json={"troops": {"legionnaire": "3"}}), 400,
          "invalid_request")
    error(api.post("/village/1/trade/offer", json={"offer": "wood", "request": {}}), 400,
          "invalid_request")
    error(api.post("/village/1/trade/offer", json={
        "offer": {"resource": "wood", "amount": 1, "extra": 1},
        "request": {"resource": "clay", "amount": 1}}), 400, "invalid_request")
    error(api.post("/village/1/attack", json={"target_village_id": "2",
                                              "troops": {"legionnaire": 1}}),
          400, "invalid_request")
    error(api.post("/village/1/attack", json={"target_village_id": 2,
                                              "troops": {"legionnaire": 1},
                                              "attack_type": "pillage"}),
          400, "invalid_request")
    # query strings, parsed strictly
    for path, params in [
        ("/villages/at", {"x": "1"}),
        ("/villages/at", {"x": "1", "y": "one"}),
        ("/villages/at", {"x": "1.0", "y": "2"}),
        ("/villages/at", {"x": " 1", "y": "2"}),
        ("/villages/at", {"x": "1", "y": "2", "z": "3"}),
        ("/player/1/reports/scout", {"limit": "ten"}),
        ("/player/1/reports/scout", {"limit": "0"}),
        ("/player/1/reports/scout", [("limit", "1"), ("limit", "2")]),
        ("/player/1/reports", {"kind": "battle"}),
        ("/player/1/reports", {"kind": ""}),
        ("/player/1/reports", {"limit": "1001"}),
        ("/player/1/reports", [("kind", "attack"), ("kind", "scout")]),
        ("/player/1/messages", {"unread_only": "yes"}),
        ("/rankings/population", {"limit": "-1"}),
        ("/village/1", {"verbose": "true"}),
    ]:
        error(api.get(path, params=params), 400, "invalid_request")
    # a GET's JSON body is its parameters, as strictly parsed as the query string
    assert api.get("/player/1/reports/scout", json={"limit": 3}).status_code == 200
    error(api.get("/player/1/reports/scout", json={"limit": "ten"}), 400, "invalid_request")
    error(api.get("/player/1/reports/scout", json={"limit": 1.5}), 400, "invalid_request")
    error(api.get("/player/1/reports/scout", json=[3]), 400, "invalid_request")
    error(api.get("/player/1/reports/scout", json={"count": 3}), 400, "invalid_request")
    error(api.get("/player/1/reports/scout", params={"limit": "2"}, json={"limit": 3}), 400,
          "invalid_request")  # given twice
    error(api.post("/village/1/build", key="x" * 129, json={"building": "woodcutter"}), 400,
          "invalid_request")
    error(api.post("/village/1/build", key="two words", json={"building": "woodcutter"}), 400,
          "invalid_request")
    error(api.get("/village/0"), 400, "invalid_request")
    error(api.post("/village/1/build", data=b"[" * 100_000 + b"]" * 100_000), 400,
          "invalid_request")
    error(api.post("/village/1/build", data=b'{"building": "' + b"w" * (2 << 20) + b'"}'),
          413, "invalid_request")
    assert api.rows(schema.build_queue) == []
    assert api.rows(schema.movements) == []


def test_rule_violations_are_422_with_details(api: Api) -> None:
    set_stock(api.world, 1, 10)
    details = error(api.post("/village/1/build", json={"building": "woodcutter"}), 422,
                    "insufficient_resources")["details"]
    assert details["available"] == {"wood": 10, "clay": 10, "iron": 10, "wheat": 10}
    assert set(details["required"]) == {"wood", "clay", "iron", "wheat"}
    assert details["required"]["wood"] > 10
    # the client's error table rebuilds the same class with its values
    r = api.post("/village/1/build", json={"building": "woodcutter"})
    raised = error_from_body(r.status_code, r.json())
    assert isinstance(raised, tr.InsufficientResources)
    assert raised.available == Resources(10, 10, 10, 10)
    error(api.post("/village/1/attack", json={"target_village_id": 2,
                                              "troops": {"legionnaire": 21}}),
          422, "rule_violation")
    assert api.rows(schema.build_queue) == [] and api.rows(schema.movements) == []


def test_unexpected_failures_are_500_without_a_traceback(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(self: Any, player_id: int) -> Player:
        raise RuntimeError("secret internals at /srv/db password=hunter2")

    monkeypatch.setattr(SqlPlayerRepository, "get", boom)
    r = api.get("/player/2")
    body = error(r, 500, "internal_error")
    assert "hunter2" not in r.text and "RuntimeError" not in r.text
    assert body["details"] == {}
    assert any("secret internals" in str(rec.exc_info[1]) for rec in caplog.records
               if rec.exc_info)
    # and the server goes on serving
    assert ok(api.get("/village/1"))["id"] == 1


# ---- idempotency --------------------------------------------------------------------------

def test_same_key_same_request_replays_the_first_answer(api: Api) -> None:
    first = api.post("/village/1/build", key="build-1", json={"building": "woodcutter"})
    second = api.post("/village/1/build", key="build-1", json={"building": "woodcutter"})
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(api.rows(schema.build_queue)) == 1
    # key order and whitespace in the body do not matter: the body is compared as JSON
    third = api.post("/village/1/build", key="build-1",
                     data=b'{ "instant": false,\n "building": "woodcutter" }',
                     headers={"Content-Type": "application/json"})
    error(third, 409, "conflict")  # "instant" was not in the first request: another request
    fourth = api.post("/village/1/build", key="build-1", data=b'{"building" : "woodcutter"}')
    assert fourth.content == first.content
    assert len(api.rows(schema.build_queue)) == 1
    # a new key is a new request
    assert ok(api.post("/village/1/build", key="build-2", json={"building": "woodcutter"}),
              200)["position"] == 2
    assert len(api.rows(schema.build_queue)) == 2


def test_same_key_another_request_is_409(api: Api) -> None:
    ok(api.post("/player/1/messages/send", key="k", json={"to": 2, "subject": "a", "body": "b"}),
       200)
    body = error(api.post("/player/1/messages/send", key="k",
                          json={"to": 3, "subject": "a", "body": "b"}), 409, "conflict")
    assert body["details"]["reason"] == "idempotency_key_reused"
    error(api.post("/village/1/build", key="k", json={"building": "woodcutter"}), 409,
          "conflict")
    assert len(api.rows(schema.messages)) == 1 and api.rows(schema.build_queue) == []
    # keys belong to their player: player 2 may use the same key for its own request
    ok(api.post("/player/2/messages/send", player=2, key="k",
                json={"to": 1, "subject": "a", "body": "b"}), 200)
    assert len(api.rows(schema.messages)) == 2


def test_error_answers_are_stored_and_replayed(api: Api) -> None:
    set_stock(api.world, 1, 10)
    first = api.post("/village/1/build", key="poor", json={"building": "woodcutter"})
    error(first, 422, "insufficient_resources")
    set_stock(api.world, 1, 4000)
    # the same key gets the same answer, even though the build would now succeed
    again = api.post("/village/1/build", key="poor", json={"building": "woodcutter"})
    assert (again.status_code, again.content) == (422, first.content)
    assert api.rows(schema.build_queue) == []
    # requests refused before any game logic are not stored: a fixed body may reuse the key
    error(api.post("/village/1/build", key="typo", json={"bulding": "woodcutter"}), 400,
          "invalid_request")
    ok(api.post("/village/1/build", key="typo", json={"building": "woodcutter"}), 200)
    # reads ignore the header
    ok(api.get("/village/1", key="typo"))


def test_delete_is_idempotent_too(api: Api) -> None:
    ok(api.post("/village/1/build", json={"building": "woodcutter"}), 200)
    first = api.delete("/village/1/build_queue/1", key="cancel")
    second = api.delete("/village/1/build_queue/1", key="cancel")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert api.world.villages.get(1).resources == Resources(4000, 4000, 4000, 4000)
    error(api.delete("/village/1/build_queue/1", key="cancel-again"), 404, "not_found")


def test_concurrent_requests_with_one_key_act_once(api: Api) -> None:
    barrier = threading.Barrier(8)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def send() -> None:
        with requests.Session() as session:
            barrier.wait()
            r = session.post(api.url + PREFIX + "/player/1/messages/send", timeout=TIMEOUT,
                             headers=api.headers(1, key="together"),
                             json={"to": 2, "subject": "once", "body": "only once"})
        with lock:
            answers.append(r)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(api.rows(schema.messages)) == 1
    created = [r for r in answers if r.status_code == 200]
    busy = [r for r in answers if r.status_code == 409]
    assert len(created) + len(busy) == 8 and created
    assert len({r.content for r in created}) == 1
    for r in busy:
        assert r.json()["error"]["details"]["reason"] == "idempotency_key_in_progress"
        assert r.headers["Retry-After"] == "1"
    final = api.post("/player/1/messages/send", key="together",
                     json={"to": 2, "subject": "once", "body": "only once"})
    assert final.content == created[0].content


# ---- lost replies -------------------------------------------------------------------------

class LosingProxy:
    """A loopback TCP proxy that forwards each request to the server and never answers.

    With ``wait=True`` it reads the server's whole reply first, so the server has committed
    before the client's connection drops; with ``wait=False`` it hangs up at once, and the
    client's retry races the server still at work on the original.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.wait = True
        self.forwarded = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._serve, args=(conn, self.wait), daemon=True).start()

    def _serve(self, conn: socket.socket, wait: bool) -> None:
        with conn:
            conn.settimeout(TIMEOUT)
            request = read_http_message(conn)
            with socket.create_connection(self.upstream, timeout=TIMEOUT) as up:
                up.sendall(request)
                with self._lock:
                    self.forwarded += 1
                if wait:
                    read_http_message(up)  # the server's answer, thrown away
            # hang up with a reset, as a dropped connection would
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


def read_http_message(sock: socket.socket) -> bytes:
    """One HTTP/1.1 message with a Content-Length body (what requests and waitress send)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def proxy(api: Api) -> Iterator[LosingProxy]:
    host, port = api.url.removeprefix("http://").split(":")
    lossy = LosingProxy((host, int(port)))
    yield lossy
    lossy.close()


def lose_then_retry(api: Api, proxy: LosingProxy, method: str, path: str, key: str,
                    body: dict[str, Any] | None, *, wait: bool = True) -> requests.Response:
    """Send through the proxy (the reply is lost), then retry directly with the same key."""
    proxy.wait = wait
    with pytest.raises(requests.ConnectionError):
        requests.request(method, proxy.url + PREFIX + path, json=body, timeout=TIMEOUT,
                         headers=api.headers(1, key=key))
    deadline = time.monotonic() + TIMEOUT
    while True:
        r = api.request(method, path, key=key, json=body)
        in_progress = r.status_code == 409 and r.json()["error"]["details"].get(
            "reason") == "idempotency_key_in_progress"
        if not in_progress or time.monotonic() > deadline:
            return r
        time.sleep(0.005)


def test_a_lost_reply_retried_acts_once(api: Api, proxy: LosingProxy) -> None:
    build = lose_then_retry(api, proxy, "POST", "/village/1/build", "lost-build",
                            {"building": "woodcutter"})
    assert ok(build, 200)["building"] == "woodcutter"
    assert build.headers["Idempotent-Replayed"] == "true"
    attack = lose_then_retry(api, proxy, "POST", "/village/1/attack", "lost-attack",
                             {"target_village_id": 2, "troops": {"legionnaire": 3}})
    assert ok(attack, 200)["troops"] == {"legionnaire": 3}
    message = lose_then_retry(api, proxy, "POST", "/player/1/messages/send", "lost-message",
                              {"to": 2, "subject": "lost", "body": "and found"})
    assert ok(message, 200)["subject"] == "lost"
    cancel = lose_then_retry(api, proxy, "DELETE", "/village/1/build_queue/1", "lost-cancel",
                             None)
    assert ok(cancel)["building"] == "woodcutter"

    assert proxy.forwarded == 4
    assert api.rows(schema.build_queue) == []  # built once, cancelled once
    assert len(api.rows(schema.movements)) == 1
    assert len(api.rows(schema.messages)) == 1
    assert api.world.military.troops(1) == Troops(legionnaire=17, equites_legati=5)
    assert api.world.villages.get(1).resources == Resources(4000, 4000, 4000, 4000)


@pytest.mark.slow  # two hundred retried writes
def test_two_hundred_lost_replies_leave_no_duplicate(api: Api, proxy: LosingProxy) -> None:
    started = time.monotonic()
    ids: list[int] = []
    for i in range(200):
        # every other fault hangs up before the server has answered: the retry may then
        # find the original in progress, or get there first
        r = lose_then_retry(api, proxy, "POST", "/player/1/messages/send", f"fault-{i}",
                            {"to": 2, "subject": f"n{i}", "body": "once"}, wait=i % 2 == 0)
        ids.append(ok(r, 200)["id"])
    # the originals that were still running must finish before counting
    deadline = time.monotonic() + TIMEOUT
    while proxy.forwarded < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    rows = api.rows(schema.messages)
    assert len(rows) == 200
    assert sorted(ids) == [row[0] for row in rows]
    assert sorted(row[3] for row in rows) == sorted(f"n{i}" for i in range(200))
    assert time.monotonic() - started < 20


# ---- the OpenAPI document -----------------------------------------------------------------

@pytest.mark.slow  # validates the whole OpenAPI document
def test_openapi_document_validates(spec: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    validate(spec)
    assert spec["openapi"].startswith("3.1")


def test_openapi_document_is_generated_from_the_declarations() -> None:
    """docs/openapi.yaml is what ``python -m travian_repo.wire.openapi`` writes: a
    declaration changed without regenerating the file fails here (and so in CI)."""
    from travian_repo.wire.openapi import document_text, main

    assert DOCS_SPEC.read_text("utf-8") == document_text(), (
        "docs/openapi.yaml is stale: run python -m travian_repo.wire.openapi")
    assert main(["--check"]) == 0
    assert yaml.safe_load(document_text())["paths"]["/v1/message/{message_id}/read"]["post"][
        "operationId"] == "diplomacy.mark_read"


def test_the_openapi_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    from travian_repo.wire.openapi import document_text, main

    stale = tmp_path / "openapi.yaml"
    stale.write_text(document_text().replace("villages.get", "villages.fetch"), "utf-8")
    assert main(["--check", "--output", str(stale)]) == 1
    assert main(["--output", str(stale)]) == 0  # regenerated
    assert main(["--check", "--output", str(stale)]) == 0


def test_openapi_document_covers_every_route(spec: dict[str, Any]) -> None:
    documented = {
        (method.upper(), path, op["operationId"])
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }
    routed = {(r.method, PREFIX + r.path, r.operation) for r in ROUTES}
    served_apart = {("GET", f"{PREFIX}/openapi.yaml", "openapi"),
                    ("GET", f"{PREFIX}/health", "health"),
                    ("GET", f"{PREFIX}/world", "world.settings"),
                    ("POST", f"{PREFIX}/sandbox/advance", "sandbox.advance"),
                    ("GET", f"{PREFIX}/player/{{player_id}}/events", "events.stream")}
    assert routed == documented - served_apart
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if op["operationId"] in ("openapi", "health", "world.settings", "sandbox.advance"):
                continue
            names = {p["$ref"].rsplit("/", 1)[1] if "$ref" in p else p["name"]
                     for p in op["parameters"]}
            assert "WorldId" in names
            assert ("IdempotencyKey" in names) == (method != "get"), path
            codes = set(op["responses"])
            assert {"400", "401", "409", "429", "500", "503"} <= codes, path
            assert "200" in codes, path
            assert ("413" in codes) == (method == "post"), path
            success = op["responses"]["200"]
            assert set(success["headers"]) == {"Cache-Control", "X-Content-Type-Options"}, path


def test_openapi_schemas_mirror_the_domain_values(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for cls in (values.Resources, values.Building, values.BuildOrder, values.Village,
                values.TrainingOrder, values.Movement, values.TradeOffer, values.Shipment,
                values.Report, values.Message, values.Alliance, values.Invitation,
                values.Player, values.RankingEntry, values.Event, values.BattleReport,
                values.BattleSide, values.LevelChange):
        names = [f.name for f in dataclasses.fields(cls)]
        documented = schemas[cls.__name__]
        assert sorted(documented["properties"]) == sorted(names), cls.__name__
        assert sorted(documented["required"]) == sorted(names), cls.__name__


def test_openapi_document_is_served_without_a_token(api: Api) -> None:
    r = requests.get(api.url + PREFIX + "/openapi.yaml", timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/yaml")
    assert r.text == DOCS_SPEC.read_text("utf-8")


# ---- the app itself -----------------------------------------------------------------------

def test_create_app_refuses_a_database_that_is_not_a_world(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    with pytest.raises(tr.SchemaMismatch):
        create_app(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(tr.ConfigurationError, match="does not exist"):
        create_app(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()


def test_create_app_takes_an_engine(make_world: MakeWorld, database_url: str) -> None:
    summary = make_world()
    engine = sa.create_engine(database_url)
    try:
        app = create_app(engine)
        client = app.test_client()
        r = client.get(PREFIX + "/me", headers={"Authorization": f"Bearer {summary.tokens[2]}",
                                                "X-World-Id": "default"})
        assert r.status_code == 200 and r.get_json()["id"] == 2
        app_world(app).close()  # leaves a caller's engine alone
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(schema.players)).scalar() == 6
    finally:
        engine.dispose()


def test_old_keys_can_be_purged(api: Api) -> None:
    from datetime import timedelta

    from travian_repo.sandbox.idempotency import IdempotencyStore

    ok(api.post("/player/1/messages/send", key="old", json={"to": 2, "subject": "a", "body": "b"}),
       200)
    store = IdempotencyStore()
    engine = api.world.database.engine
    assert store.purge(engine, older_than=START) == 0
    assert store.purge(engine, older_than=START + timedelta(seconds=1)) == 1
    # a forgotten key acts again
    ok(api.post("/player/1/messages/send", key="old", json={"to": 2, "subject": "a", "body": "b"}),
       200)
    assert len(api.rows(schema.messages)) == 2
