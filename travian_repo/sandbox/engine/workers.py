"""The engine without a server: ``run_workers`` runs N engine processes over one world,
sharing its due events, until SIGINT or SIGTERM (what ``travian-repo engine`` runs).

Each process is an engine with its share (``Engine(share=(i, N))``): it takes batches of
its share, locks their villages with ``SKIP LOCKED`` and leaves those another holds; when
little of its share can move, it waits for the others' locks in the database instead of
looking again. Every event is still processed once, in time order per village.
On a signal every process ends its run between two batches and exits.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from datetime import datetime, timedelta, timezone
from types import FrameType
from typing import Callable

from travian_repo.sandbox.engine.runner import Engine
from travian_repo.sandbox.engine.thread import AcceleratedClock

log = logging.getLogger(__name__)


def run_workers(database_url: str, *, workers: int = 1, speed: float = 1.0,
                interval: float = 1.0, ready: Callable[[], None] | None = None) -> int:
    """Run ``workers`` engine processes (one: in this process) until SIGINT or SIGTERM;
    0 after a clean stop, 1 when a worker died. ``speed``: the world's time goes that many
    times real time, from now."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if not speed > 0 or not interval > 0:
        raise ValueError("speed and interval must be positive")
    stop = threading.Event()
    _on_signals(lambda: stop.set())
    start, wall = datetime.now(timezone.utc), time.time()
    if workers == 1:
        if ready is not None:
            ready()
        _work(database_url, None, speed, start, wall, interval, stop)
        return 0
    spawn = multiprocessing.get_context("spawn")
    procs = [spawn.Process(target=_child, name=f"travian-engine-{i}", daemon=True,
                           args=(database_url, (i, workers), speed, start, wall, interval))
             for i in range(workers)]
    for p in procs:
        p.start()
    if ready is not None:
        ready()
    died = False
    while not stop.wait(0.2):
        if any(not p.is_alive() for p in procs):
            died = True
            log.error("an engine worker died; stopping the others")
            break
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM: it ends its run between two batches
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.kill()
            p.join()
    return 1 if died else 0


def _child(database_url: str, share: tuple[int, int], speed: float, start: datetime,
           wall: float, interval: float) -> None:
    stop = threading.Event()
    _on_signals(lambda: stop.set())
    _work(database_url, share, speed, start, wall, interval, stop)


def _work(database_url: str, share: tuple[int, int] | None, speed: float, start: datetime,
          wall: float, interval: float, stop: threading.Event) -> None:
    # One world time for every worker: the parent's start, moved on by the real time since.
    clock = AcceleratedClock(speed, start + timedelta(seconds=(time.time() - wall) * speed))
    engine = Engine(database_url, clock=clock, share=share)
    def halt_on_stop() -> None:  # a run stops between two batches
        stop.wait()
        engine.halt.set()

    threading.Thread(target=halt_on_stop, daemon=True).start()
    try:
        while not stop.is_set():
            try:
                engine.run_due()
            except Exception:  # noqa: BLE001 - keep the world running; the next tick retries
                log.exception("the engine failed a round; trying again in %.1f s", interval)
            stop.wait(interval)
    finally:
        engine.close()


def _on_signals(handler: Callable[[], None]) -> None:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        handler()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
