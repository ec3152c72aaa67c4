"""The engine clock: everything that falls due in the world, processed in time order.

``Engine(database).run_until(when)`` finds what is due up to ``when`` -- builds completing,
units finishing training (one by one), movements arriving, shipments arriving and merchants
coming home -- and processes it in time order; at the same time by kind (builds, training,
troops coming home, reinforcements, scouts, attacks/raids/sieges, shipments, merchants),
then by id, per village. A run of units of one training line with nothing else due in
between is handled as one step and counts one event per unit.

Work is done set-wise, a batch per transaction: the villages of the next ``batch`` events
(512 by default) are locked in one statement (``SELECT ... FOR UPDATE`` on their resources
rows, lowest id first, ``SKIP LOCKED`` when engines share the world; SQLite's ``BEGIN
IMMEDIATE`` takes the whole database); then, after the lock, the villages' state and
everything due in them are read in a few statements; the events are processed in memory in
time order; and the batch's changes are written back with one statement per kind of change
(``flush``), each checking that it changed exactly the rows it meant to (an event's row
still in the state it was read in), or the batch rolls back. An event that involves a village
the batch does not hold waits for a later batch, and so does everything after it in the
villages it involves. Troops a battle sends home, due before the run's end, arrive in the
same batch (in their time order; their row is written arrived, and the events name the id
it got). A player's write in between (a build cancelled, reinforcements sent home) is
therefore seen, several engines on one database never process an event twice, and every
village sees its events in time order, whichever engine processes them.
An event happens at its due time: the villages' stock is settled to that time (or to their
last write, if a player wrote later) before it is changed, exactly as a read of the row
would.

Choices: a catapult target that is not given (or not standing) is the village's highest
building other than the wall (lowest slot on a tie), since the game's random target would
make runs unrepeatable; a building knocked to 0 is removed (a resource field stays at 0); a
build completing sets the level it was ordered for; troops never starve.

The modules, one job each: ``due`` (finding what is due, in order), ``held`` (a batch's
villages in memory), ``step`` (what every processor shares), one processor per kind
(``builds``, ``training``, ``movements`` with ``battles`` and ``scouts`` and their shared
``combat``, ``shipments``), ``reports`` (the battle and scouting reports), ``flush`` (the
batch's writes), ``collector`` (the garbage collector paused during a batch), ``runner``
(``Engine``: batches, locks, dispatch), ``thread`` (``EngineThread`` and
``AcceleratedClock``) and ``workers`` (engine processes sharing a world). The set-wise
statements live in ``travian_repo.sql.bulk``.
"""

from travian_repo.sandbox.engine.due import HOSTILE, ORDER, Due
from travian_repo.sandbox.engine.runner import Engine
from travian_repo.sandbox.engine.thread import AcceleratedClock, EngineThread

__all__ = ["HOSTILE", "ORDER", "AcceleratedClock", "Due", "Engine", "EngineThread"]
