"""The engine clock: everything that falls due in the world, processed in time order.

``Engine(database).run_until(when)`` finds what is due up to ``when`` -- builds completing,
units finishing training (one by one), movements arriving, shipments arriving and merchants
coming home -- and processes it in time order; at the same time by kind (builds, training,
troops coming home, reinforcements, scouts, attacks/raids/sieges, shipments, merchants),
then by id. Events are processed in small transactions of at most ``batch`` events (16 by
default; 1 gives one transaction per event); a run of units of one training line with
nothing else due in between is handled as one step and counts one event per unit.

Locking follows the repositories: every village an event changes is locked first (``SELECT
... FOR UPDATE`` on its resources row on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` takes the
whole database), a batch's villages in one statement, lowest id first, before anything is
read; an event that needs a village its batch did not lock waits for the next batch. Then
the event's own row is read again under lock and checked to still be due, and every change
of its state checks that it changed exactly that row. A player's write in between (a build
cancelled, reinforcements sent home) is therefore seen, and two engines on one database
never process an event twice.
An event happens at its due time: the villages' stock is settled to that time (or to their
last write, if a player wrote later) before it is changed.

Choices: a catapult target that is not given (or not standing) is the village's highest
building other than the wall (lowest slot on a tie), since the game's random target would
make runs unrepeatable; a building knocked to 0 is removed (a resource field stays at 0); a
build completing sets the level it was ordered for; troops never starve.

The modules, one job each: ``due`` (finding what is due, in order), ``step`` (what every
processor shares), one processor per kind (``builds``, ``training``, ``movements`` with
``battles`` and ``scouts`` and their shared ``combat``, ``shipments``), ``reports`` (the
battle and scouting reports), ``runner`` (``Engine``: batches, locks, dispatch) and
``thread`` (``EngineThread`` and ``AcceleratedClock``). The statements they share with the
repositories live in ``travian_repo.sql`` (``village_state``, ``economy``, ``troops``).
"""

from travian_repo.sandbox.engine.due import HOSTILE, ORDER, Due
from travian_repo.sandbox.engine.runner import Engine
from travian_repo.sandbox.engine.thread import AcceleratedClock, EngineThread

__all__ = ["HOSTILE", "ORDER", "AcceleratedClock", "Due", "Engine", "EngineThread"]
