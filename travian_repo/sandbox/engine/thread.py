"""Running the engine by itself: a clock running at a multiple of real time, and a daemon
thread calling ``Engine.run_due`` at an interval."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import sqlalchemy

from travian_repo.domain.values import ClockFn
from travian_repo.sandbox.engine.runner import Engine
from travian_repo.sql.database import Database, utc_now

log = logging.getLogger(__name__)


class AcceleratedClock:
    """World time running ``speed`` times real time from ``start`` (default: now).

    Give the same instance to the server's ``Database``/``connect(clock=...)`` and to the
    :class:`EngineThread`, so players' actions and the engine agree on the time.
    """

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        if start is not None and start.tzinfo is None:
            raise ValueError("AcceleratedClock needs an aware datetime")
        self.speed = float(speed)
        self.start = (start or utc_now()).astimezone(timezone.utc)
        self._origin = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._origin) * self.speed)

    def __repr__(self) -> str:
        return f"AcceleratedClock(speed={self.speed}, now={self().isoformat()})"


class EngineThread:
    """Runs ``Engine.run_due()`` every ``interval`` seconds in a daemon thread (``workers``
    threads sharing the due events, each an engine with its share, when more than one).

    ``clock`` defaults to the real time (``speed`` 1) or an :class:`AcceleratedClock` of
    ``speed``. Use as a context manager, or ``start()`` / ``stop()`` (which ends a run
    between two batches). A failing round is logged and tried again at the next tick.
    """

    def __init__(
        self,
        database: Database | sqlalchemy.Engine | str,
        *,
        clock: ClockFn | None = None,
        speed: float = 1.0,
        interval: float = 1.0,
        workers: int = 1,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if clock is None:
            clock = AcceleratedClock(speed) if speed != 1.0 else utc_now
        self.clock: ClockFn = clock
        self.engine = Engine(database, clock=clock, share=(0, workers) if workers > 1 else None)
        # The others share the first one's database (its commit listeners see every event).
        self.engines = [self.engine] + [
            Engine(self.engine.database, clock=clock, share=(i, workers))
            for i in range(1, workers)]
        self.interval = float(interval)
        self.processed = 0
        self._count_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> EngineThread:
        if any(t.is_alive() for t in self._threads):
            return self
        self._stop.clear()
        for engine in self.engines:
            engine.halt.clear()
        self._threads = [
            threading.Thread(target=self._loop, args=(engine,), daemon=True,
                             name="travian-engine" + (f"-{i}" if i else ""))
            for i, engine in enumerate(self.engines)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        for engine in self.engines:
            engine.halt.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        self.engine.close()

    def _loop(self, engine: Engine) -> None:
        while not self._stop.is_set():
            try:
                done = engine.run_due()
                with self._count_lock:
                    self.processed += done
            except Exception:  # noqa: BLE001 - keep the world running; the next tick retries
                log.exception("the engine failed a round; trying again in %.1f s", self.interval)
            self._stop.wait(self.interval)

    def __enter__(self) -> EngineThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
