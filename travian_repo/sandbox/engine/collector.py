"""Python's cyclic garbage collector, paused while the engine reads or processes a batch.

A batch keeps tens of thousands of small objects (rows, states, events) alive until its
flush. Each time the collector runs meanwhile it scans them, and, once enough have piled
up, the whole heap of every imported module too: about a seventh of a batch's CPU, for
nothing, since reference counting frees them when the batch ends. So the collector is
off while a batch or a read of what is due runs: each is bounded (``Engine.batch``) and
takes a fraction of a second. It is paused only if it was on when the first engine
thread of the process entered such a section, and is turned back on when the last one
leaves (a process that wants it off for good turns it off outside the engine's runs).
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator

_lock = threading.Lock()
_inside = 0  # engine threads inside a paused section
_paused = False  # whether this module turned the collector off


@contextmanager
def paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (see the module's docstring)."""
    global _inside, _paused
    with _lock:
        if _inside == 0 and gc.isenabled():
            gc.disable()
            _paused = True
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _paused:
                _paused = False
                gc.enable()


__all__ = ["paused"]
