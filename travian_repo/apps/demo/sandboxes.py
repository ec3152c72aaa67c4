"""Where the demo plays: a fresh world at a database URL, or a server's world over HTTP."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable, Mapping, Protocol

import travian_repo as tr

DEMO_START = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)
DEMO_DATABASE_FILE = "travian_demo.db"
DEFAULT_MAP_RADIUS = 200  # create_world's default


class Sandbox(Protocol):
    """Where the demo plays: the worlds the NPCs act in and the clock that moves them."""

    where: str

    def world_for(self, player_id: int) -> tr.World: ...

    def now(self) -> datetime: ...

    def advance_to(self, when: datetime) -> int:
        """Move the clock to ``when`` and run the engine up to it; the events processed."""
        ...

    def close(self) -> None: ...


class SqlSandbox:
    """A fresh world at a database URL; the demo's own clock and engine."""

    def __init__(self, url: str, *, players: int, seed: int, start: datetime = DEMO_START) -> None:
        from travian_repo.sandbox import Clock, Engine, create_world

        summary = create_world(url, players=players, seed=seed, start="developed",
                               replace=True, now=start)
        self.player_ids = sorted(summary.tokens)
        self.clock = Clock(start)
        self.world = tr.connect(url, clock=self.clock, cache=False)
        self.engine = Engine(self.world.database, clock=self.clock)
        self.map_radius = self.world.database.settings.map_radius
        self.where = describe_url(url)
        self.url = url

    def world_for(self, player_id: int) -> tr.World:
        return self.world

    def now(self) -> datetime:
        return self.clock()

    def advance_to(self, when: datetime) -> int:
        if when > self.clock():
            self.clock.set(when)
        return self.engine.run_until(self.clock())

    def close(self) -> None:
        self.engine.close()
        self.world.close()


class HttpSandbox:
    """A world served by ``travian-repo serve --manual-clock``: one connection per player."""

    def __init__(self, api_url: str, tokens: Mapping[int, str], *, players: int | None = None,
                 timeout: float = 30.0) -> None:
        import requests

        if not tokens:
            raise tr.InvalidRequest("playing through the API needs the players' tokens")
        chosen = sorted(tokens)[: players or None]
        self.base = api_url.rstrip("/")
        if self.base.endswith("/v1"):
            self.base = self.base[: -len("/v1")]
        self.worlds: dict[int, tr.World] = {}
        try:
            for player_id in chosen:
                self.worlds[player_id] = tr.connect(api_url=self.base, token=tokens[player_id],
                                                    cache=False)
        except BaseException:
            self.close()
            raise
        self.player_ids = chosen
        self.map_radius = self.worlds[chosen[0]].settings.map_radius  # GET /v1/world
        self.where = f"the world served at {self.base}/v1/"
        self._session = requests.Session()
        first = self.worlds[chosen[0]]
        self._headers = {"Authorization": f"Bearer {tokens[chosen[0]]}",
                         "X-World-Id": first.world_id}
        self._timeout = timeout
        self._now = self._advance(0.0)[1]

    def _advance(self, seconds: float) -> tuple[int, datetime]:
        answer = self._session.post(f"{self.base}/v1/sandbox/advance", json={"seconds": seconds},
                                    headers=self._headers, timeout=self._timeout)
        if answer.status_code == 404:
            raise tr.ConfigurationError(
                f"{self.base} has no sandbox clock: start the server with "
                "`travian-repo serve --manual-clock` to play the demo through it")
        if answer.status_code != 200:
            raise tr.TravianError(f"POST /v1/sandbox/advance answered {answer.status_code}: "
                                  f"{answer.text[:200]}")
        body = answer.json()
        return int(body["processed"]), datetime.fromisoformat(body["now"])

    def world_for(self, player_id: int) -> tr.World:
        return self.worlds[player_id]

    def now(self) -> datetime:
        return self._now

    def advance_to(self, when: datetime) -> int:
        seconds = max(0.0, (when - self._now).total_seconds())
        processed, self._now = self._advance(seconds)
        return processed

    def close(self) -> None:
        for world in self.worlds.values():
            world.close()
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()


def describe_url(url: str) -> str:
    import os

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return os.path.abspath(parsed.database or "")
    return parsed.render_as_string(hide_password=True)


def read_tokens(lines: Iterable[str]) -> dict[int, str]:
    """``player_id token`` lines (the output of ``travian-repo tokens``) as a dict."""
    tokens: dict[int, str] = {}
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.replace("=", " ").split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise tr.InvalidRequest(f"tokens line {number}: expected 'player_id token', got "
                                    f"{text[:40]!r}")
        tokens[int(parts[0])] = parts[1]
    return tokens


__all__ = ["DEFAULT_MAP_RADIUS", "DEMO_DATABASE_FILE", "DEMO_START", "HttpSandbox", "Sandbox",
           "SqlSandbox", "read_tokens"]
