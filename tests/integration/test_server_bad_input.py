"""Bad input over raw HTTP on every route of ``wire.routes.ROUTES``, against a real server.

Malformed JSON, wrong types, 2**63, 1e308, NaN and Infinity, lone surrogates in keys and
values, 10 MB bodies, deep nesting, Unicode digits in path ids and in the query string: each
request gets a 4xx JSON error (never a 500, never an HTML page, never an effect), and every
row of every table of the world is the same afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
import requests
import sqlalchemy as sa

from travian_repo.sandbox import Clock
from travian_repo.sandbox.server import ServerThread, app_world, create_app
from travian_repo.wire.routes import PREFIX, ROUTES, Route

from tests.conftest import MakeWorld

TIMEOUT = 30

pytestmark = pytest.mark.slow

# A valid body for each write (the mutations below start from these); the ids are real.
VALID_BODIES: dict[str, dict[str, Any]] = {
    "villages.queue_building": {"building": "woodcutter", "slot": 1, "instant": False},
    "military.train": {"troops": {"legionnaire": 1}},
    "military.attack": {"target_village_id": 2, "troops": {"legionnaire": 1},
                        "attack_type": "raid"},
    "military.reinforce": {"target_village_id": 2, "troops": {"legionnaire": 1}},
    "trade.create_offer": {"offer": {"resource": "wood", "amount": 10},
                           "request": {"resource": "clay", "amount": 10}},
    "trade.send_resources": {"target_village_id": 2, "resources": {"wood": 1}},
    "intel.send_scouts": {"target_village_id": 2, "scouts": 1},
    "diplomacy.send_message": {"to": 2, "subject": "s", "body": "b"},
    "diplomacy.create_alliance": {"name": "Name", "tag": "TAG"},
    "diplomacy.invite": {"player_id": 2},
    "trade.accept_offer": {},
    "military.send_home": {},
}
PATH_PARAMS = {"village_id": "1", "player_id": "1", "alliance_id": "1", "queue_position": "1",
               "offer_id": "1", "movement_id": "1", "message_id": "1", "metric": "population"}
QUERY = {"villages.at": {"x": "0", "y": "0"}, "intel.scout_reports": {"limit": "5"},
         "players.ranking": {"limit": "5"}, "diplomacy.messages": {"unread_only": "true"}}


class Raw(str):
    """JSON text put into a body as it is (NaN, 1e309, ...), where json.dumps cannot."""


def dumps(value: Any) -> bytes:
    """JSON text with lone surrogates escaped (``"\\ud800"``) and Raw values spliced in."""
    raws: dict[str, str] = {}

    def mark(node: Any) -> Any:
        if isinstance(node, Raw):
            token = f"@@raw{len(raws)}@@"
            raws[token] = str(node)
            return token
        if isinstance(node, dict):
            return {mark(k) if isinstance(k, Raw) else k: mark(v) for k, v in node.items()}
        if isinstance(node, list):
            return [mark(v) for v in node]
        return node

    text = json.dumps(mark(value))  # ensure_ascii: "\ud800" stays an escape, as a client sends
    for token, raw in raws.items():
        text = text.replace(json.dumps(token), raw)
    return text.encode("ascii")


SURROGATES = ["\ud800", "a\udfffb", "\udbff"]
NUMBERS_BAD = [2**63, -(2**63) - 1, 10**30, 1e308, -1e308, 1.5, Raw("NaN"), Raw("Infinity"),
               Raw("-Infinity"), Raw("1e309"), Raw("-1e400")]
INT_BAD: list[Any] = [[], {}, "1", "\uff11", "\u0661", True, *NUMBERS_BAD, *SURROGATES]
STR_BAD: list[Any] = [[], {}, 2**63, 1e308, Raw("NaN"), *SURROGATES]
BOOL_BAD: list[Any] = [2**63, "true", 1e308, Raw("NaN"), [], *SURROGATES]
MAP_BAD: list[Any] = [[], "x", 2**63, Raw("NaN"), {"\ud800": 1}, {"legionnaire\udc00": 1},
                      {"wood": 2**63}, {"legionnaire": 2**63}, {"legionnaire": 1e308},
                      {"legionnaire": Raw("NaN")}, {"legionnaire": Raw("Infinity")},
                      {"wood": Raw("1e309")}, {"legionnaire": "\ud800"}]
PATH_IDS_BAD = ["\uff11", "\u0661", "\U0001d7cf", "1\uff11", "\u00b9", "9" * 30, str(2**63),
                str(2**64 + 1), "0x1", "+1", "1.0", "1e3", "%ED%A0%80", "%FF"]
QUERY_BAD = ["\uff11", "\u0661", "9" * 30, str(2**63), "1e308", "NaN", "Infinity", "1.5",
             "", "%ED%A0%80", "%FF", "0x10"]

DEPTH = 100_000


def whole_bodies(route: Route) -> Iterator[tuple[str, bytes]]:
    """Bodies that are wrong as a whole, for any route."""
    yield "truncated", b'{"a":'
    yield "trailing comma", b'{"a": 1,}'
    yield "array", b"[1, 2]"
    yield "string", b'"x"'
    yield "number", b"2e308"
    yield "null", b"null"
    yield "not utf-8", b'{"a": "\xff\xfe"}'
    yield "utf-8 of a surrogate", b'{"a": "\xed\xa0\x80"}'
    yield "nan", b'{"a": NaN}'
    yield "surrogate key", b'{"\\ud800": 1}'
    yield "surrogate key nested", b'{"troops": {"\\udfff": 1}}'
    yield "deep arrays", b"[" * DEPTH + b"]" * DEPTH
    yield "deep objects", b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
    yield "deep in a field", b'{"troops":' + b"[" * DEPTH + b"]" * DEPTH + b"}"
    valid = VALID_BODIES.get(route.operation, {})
    yield "10 MB", dumps({**valid, "body": "x" * 10_000_000})
    for key in ("\ud800", "x\udfffy", "\udbff\udbff"):
        yield f"unknown key {key!r}", dumps({**valid, key: 1})
    yield "unknown key and bad value", dumps({**valid, "\ud800": "\udc00"})


def leaves(body: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, value in body.items():
        if isinstance(value, dict) and name not in ("troops", "resources"):
            yield from leaves(value, prefix + (name,))
        else:
            yield prefix + (name,), value


def replaced(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(body))
    node = copy
    for name in path[:-1]:
        node = node[name]
    node[path[-1]] = value
    return copy


def field_bodies(route: Route) -> Iterator[tuple[str, bytes]]:
    """The valid body with one field at a time given a wrong value."""
    valid = VALID_BODIES.get(route.operation)
    if not valid:
        return
    for path, value in leaves(valid):
        if isinstance(value, dict):
            bad = MAP_BAD
        elif isinstance(value, bool):
            bad = BOOL_BAD
        elif isinstance(value, int):
            bad = INT_BAD
        else:
            bad = STR_BAD
        for value in bad:
            yield f"{'.'.join(path)}={value!r}"[:80], dumps(replaced(valid, path, value))


@dataclass(frozen=True)
class Probe:
    label: str
    method: str
    path: str  # under PREFIX, already percent-encoded where it needs to be
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


def path_of(route: Route, **override: str) -> str:
    return route.path.format(**{**PATH_PARAMS, **override})


def query_of(route: Route, **override: str) -> str:
    values = {**QUERY.get(route.operation, {}), **override}
    return "&".join(f"{k}={v}" for k, v in values.items())


def probes() -> Iterator[Probe]:
    for route in ROUTES:
        good_path = path_of(route)
        query = query_of(route)
        url = good_path + (f"?{query}" if query else "")
        body = dumps(VALID_BODIES[route.operation]) if route.operation in VALID_BODIES else None
        for name in PATH_PARAMS:
            if "{" + name + "}" not in route.path or name == "metric":
                continue
            for bad in PATH_IDS_BAD:
                yield Probe(f"path {name}={bad!r}", route.method,
                            path_of(route, **{name: bad}) + (f"?{query}" if query else ""), body)
        for name in QUERY.get(route.operation, {}):
            for bad in QUERY_BAD:
                yield Probe(f"query {name}={bad!r}", route.method,
                            f"{good_path}?{query_of(route, **{name: bad})}")
        yield Probe("unknown query parameter", route.method, f"{good_path}?{query}&\uff11=1"
                    if query else f"{good_path}?limit\ud7ff=1")
        for label, raw in whole_bodies(route):
            yield Probe(f"body {label}", route.method, url, raw)
        for label, raw in field_bodies(route):
            yield Probe(f"field {label}", route.method, url, raw)
        if route.is_write:
            for key in ("", "a" * 129, "has space", "\u00e9"):
                yield Probe(f"Idempotency-Key {key[:10]!r}", route.method, url, body,
                            (("Idempotency-Key", key),))
            # a key with a body the server refuses, with a number JSON cannot say back
            if route.operation in VALID_BODIES and VALID_BODIES[route.operation]:
                first = next(iter(VALID_BODIES[route.operation]))
                yield Probe("keyed 1e309", route.method, url,
                            dumps(replaced(VALID_BODIES[route.operation], (first,),
                                           Raw("1e309"))),
                            (("Idempotency-Key", "k-1e309"),))
                yield Probe("keyed surrogate key", route.method, url,
                            dumps({**VALID_BODIES[route.operation], "\ud800": 1}),
                            (("Idempotency-Key", "k-surrogate"),))


def snapshot(engine: sa.Engine) -> dict[str, list[str]]:
    """Every row of every table of the world's database."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        return {name: sorted(repr(tuple(row)) for row in conn.execute(sa.select(table)))
                for name, table in metadata.tables.items()}


@pytest.fixture
def server(make_world: MakeWorld, database_url: str, clock: Clock) -> Iterator[tuple[str, str]]:
    summary = make_world()
    # no rate limit: a thousand requests a second of one token is this test's point
    app = create_app(database_url, clock=clock, rate_limit=None)
    try:
        with ServerThread(app) as running:
            yield running.url, summary.tokens[1]
    finally:
        app_world(app).close()


def is_json_error(response: requests.Response) -> bool:
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return (isinstance(body, dict) and set(body) == {"error"}
            and isinstance(body["error"].get("code"), str)
            and isinstance(body["error"].get("message"), str))


def test_bad_input_on_every_route_is_a_4xx_json_error_and_changes_nothing(
    server: tuple[str, str], database_url: str
) -> None:
    url, token = server
    engine = sa.create_engine(database_url)
    try:
        before = snapshot(engine)
        failures: list[str] = []
        statuses: dict[int, int] = {}
        sent = 0
        with requests.Session() as session:
            for probe in probes():
                headers = {"Authorization": f"Bearer {token}", "X-World-Id": "default",
                           "Content-Type": "application/json"}
                headers.update(dict(probe.headers))
                prepared = requests.Request(probe.method, url + PREFIX + probe.path,
                                            headers=headers, data=probe.body).prepare()
                if "\u00e9" in headers.get("Idempotency-Key", ""):
                    prepared.headers["Idempotency-Key"] = "\u00e9"  # sent as latin-1
                response = session.send(prepared, timeout=TIMEOUT)
                sent += 1
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if not (400 <= response.status_code < 500 and is_json_error(response)):
                    failures.append(f"{probe.method} {probe.path[:60]} [{probe.label}] -> "
                                    f"{response.status_code} {response.text[:100]!r}")
        after = snapshot(engine)
    finally:
        engine.dispose()
    assert sent > 1000
    assert not failures, f"{len(failures)} of {sent} not a 4xx JSON error:\n" + "\n".join(
        failures[:60])
    changed = [name for name in before if before[name] != after.get(name)]
    assert not changed, f"tables changed: {changed}"
    assert set(statuses) <= {400, 401, 403, 404, 405, 409, 413, 422}, statuses


def test_a_chunked_body_past_the_limit_is_413(server: tuple[str, str]) -> None:
    url, token = server

    def chunks() -> Iterator[bytes]:
        yield b'{"to": 2, "subject": "s", "body": "'
        for _ in range(10):
            yield b"x" * 1_000_000
        yield b'"}'

    response = requests.post(url + PREFIX + "/player/1/messages/send", data=chunks(),
                             headers={"Authorization": f"Bearer {token}",
                                      "X-World-Id": "default",
                                      "Content-Type": "application/json"}, timeout=TIMEOUT)
    assert response.status_code == 413, response.text[:200]
    assert is_json_error(response)
    assert response.json()["error"]["code"] == "invalid_request"
