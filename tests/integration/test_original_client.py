"""A client written to the original async design runs every one of its operations against
the server with only its session's Authorization header added: no X-World-Id, a read's
parameters as a JSON body on GET, and only 200 accepted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")

from travian_repo.sandbox.server import ServerThread, create_app  # noqa: E402
from travian_repo.wire.routes import ROUTES  # noqa: E402

from tests.conftest import MakeWorld  # noqa: E402


class OriginalClient:
    """The original design: one aiohttp session per player, JSON in and out, 200 or raise."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base = base_url + "/v1"
        self.session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.base + path, json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: {response.status} {await response.text()}")
            return await response.json()

    async def get_village(self, vid: int) -> Any: return await self._call("GET", f"/village/{vid}")
    async def get_player_villages(self, pid: int) -> Any:
        return await self._call("GET", f"/player/{pid}/villages")
    async def get_village_at(self, x: int, y: int) -> Any:
        return await self._call("GET", "/villages/at", {"x": x, "y": y})
    async def build(self, vid: int, building: str) -> Any:
        return await self._call("POST", f"/village/{vid}/build", {"building": building})
    async def get_build_queue(self, vid: int) -> Any:
        return await self._call("GET", f"/village/{vid}/build_queue")
    async def cancel_build(self, vid: int, pos: int) -> Any:
        return await self._call("DELETE", f"/village/{vid}/build_queue/{pos}")
    async def get_troops(self, vid: int) -> Any: return await self._call("GET", f"/village/{vid}/troops")
    async def train(self, vid: int, troops: dict[str, int]) -> Any:
        return await self._call("POST", f"/village/{vid}/train", {"troops": troops})
    async def attack(self, vid: int, target: int, troops: dict[str, int], kind: str) -> Any:
        return await self._call("POST", f"/village/{vid}/attack", {
            "target_village_id": target, "troops": troops, "attack_type": kind})
    async def reinforce(self, vid: int, target: int, troops: dict[str, int]) -> Any:
        return await self._call("POST", f"/village/{vid}/reinforce",
                                {"target_village_id": target, "troops": troops})
    async def incoming(self, vid: int) -> Any: return await self._call("GET", f"/village/{vid}/incoming")
    async def outgoing(self, vid: int) -> Any: return await self._call("GET", f"/village/{vid}/outgoing")
    async def send_home(self, vid: int, mid: int) -> Any:
        return await self._call("POST", f"/village/{vid}/movements/{mid}/send_home")
    async def create_offer(self, vid: int, give: str, amount: int, want: str, wanted: int) -> Any:
        return await self._call("POST", f"/village/{vid}/trade/offer", {
            "offer": {"resource": give, "amount": amount},
            "request": {"resource": want, "amount": wanted}})
    async def send_resources(self, vid: int, target: int, resources: dict[str, int]) -> Any:
        return await self._call("POST", f"/village/{vid}/send_resources",
                                {"target_village_id": target, "resources": resources})
    async def market(self, vid: int) -> Any: return await self._call("GET", f"/village/{vid}/market")
    async def accept_offer(self, vid: int, oid: int) -> Any:
        return await self._call("POST", f"/village/{vid}/trade/offer/{oid}/accept")
    async def cancel_offer(self, vid: int, oid: int) -> Any:
        return await self._call("DELETE", f"/village/{vid}/trade/offer/{oid}")
    async def scout(self, vid: int, target: int, scouts: int) -> Any:
        return await self._call("POST", f"/village/{vid}/scout",
                                {"target_village_id": target, "scouts": scouts})
    async def get_scout_reports(self, pid: int, limit: int) -> Any:
        return await self._call("GET", f"/player/{pid}/reports/scout", {"limit": limit})
    async def send_message(self, pid: int, to: int, subject: str, body: str) -> Any:
        return await self._call("POST", f"/player/{pid}/messages/send",
                                {"to": to, "subject": subject, "body": body})
    async def get_messages(self, pid: int, unread_only: bool) -> Any:
        return await self._call("GET", f"/player/{pid}/messages", {"unread_only": unread_only})
    async def create_alliance(self, pid: int, name: str, tag: str) -> Any:
        return await self._call("POST", f"/player/{pid}/alliance/create", {"name": name, "tag": tag})
    async def invite(self, aid: int, pid: int) -> Any:
        return await self._call("POST", f"/alliance/{aid}/invite", {"player_id": pid})
    async def get_player(self, pid: int) -> Any: return await self._call("GET", f"/player/{pid}")
    async def get_player_ranking(self, metric: str, limit: int) -> Any:
        return await self._call("GET", f"/rankings/{metric}", {"limit": limit})
    async def me(self) -> Any: return await self._call("GET", "/me")

    async def close(self) -> None:
        await self.session.close()


async def play(url: str, tokens: dict[int, str], units: dict[int, str]) -> list[str]:
    one, two = OriginalClient(url, tokens[1]), OriginalClient(url, tokens[2])
    done: list[str] = []

    async def step(name: str, call: Any) -> Any:
        result = await call
        done.append(name)
        return result

    try:
        assert (await step("me", one.me()))["id"] == 1
        village = await step("get_village", one.get_village(1))
        await step("get_player_villages", one.get_player_villages(1))
        await step("get_village_at", one.get_village_at(village["x"], village["y"]))
        await step("build", one.build(1, "woodcutter"))
        queue = await step("get_build_queue", one.get_build_queue(1))
        await step("cancel_build", one.cancel_build(1, queue[-1]["position"]))
        await step("get_troops", one.get_troops(1))
        await step("train", one.train(1, {units[1]: 1}))
        await step("attack", one.attack(1, 2, {units[1]: 1}, "raid"))
        sent = await step("reinforce", one.reinforce(1, 3, {units[1]: 1}))
        await step("incoming", one.incoming(1))
        await step("outgoing", one.outgoing(1))
        await one._call("POST", "/sandbox/advance", {"seconds": 86400})  # the sandbox's clock
        await step("send_home", one.send_home(1, sent["id"]))
        offer = await step("create_offer", one.create_offer(1, "wood", 100, "clay", 100))
        await step("market", two.market(2))
        await step("accept_offer", two.accept_offer(2, offer["id"]))
        other = await step("create_offer", one.create_offer(1, "iron", 100, "clay", 100))
        await step("cancel_offer", one.cancel_offer(1, other["id"]))
        await step("send_resources", one.send_resources(1, 2, {"wood": 100}))
        await step("scout", one.scout(1, 2, 1))
        await step("get_scout_reports", one.get_scout_reports(1, 5))
        await step("send_message", one.send_message(1, 2, "hello", "trade?"))
        inbox = await step("get_messages", two.get_messages(2, True))
        assert [m["subject"] for m in inbox] == ["hello"]
        alliance = await step("create_alliance", one.create_alliance(1, "Wood Guild", "WOOD"))
        await step("invite", one.invite(alliance["id"], 2))
        await step("get_player", one.get_player(2))
        ranking = await step("get_player_ranking", one.get_player_ranking("population", 3))
        assert len(ranking) == 3
    finally:
        await one.close()
        await two.close()
    return done


def test_the_original_async_client_runs_every_operation(make_world: MakeWorld,
                                                        database_url: str) -> None:
    summary = make_world()
    app = create_app(database_url, manual_clock=True, rate_limit=None)
    with ServerThread(app) as server:
        from travian_repo import connect

        with connect(database_url, player_id=1) as world:
            units = {p: _scout_free_unit(world.villages.get(p).tribe) for p in (1, 2)}
        done = asyncio.run(play(server.url, summary.tokens, units))
    # every operation of the original design: the v1 routes less those this library added
    added = {"diplomacy.mark_read", "intel.reports", "intel.mark_report_read", "events.stream",
             "villages.get_many"}
    assert len(set(done)) == len([r for r in ROUTES if r.operation not in added]) == 27


def _scout_free_unit(tribe: str) -> str:
    return {"romans": "legionnaire", "teutons": "clubswinger", "gauls": "phalanx"}[tribe]
