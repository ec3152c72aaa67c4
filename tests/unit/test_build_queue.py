"""The build queue's timing as a pure rule, and the training lines': worked queues in,
positions and times out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from travian_repo.domain.values import BuildOrder, Resources
from travian_repo.rules import build_queue
from travian_repo.rules.build_queue import Place
from travian_repo.rules.military import plan_training, schedule_training

NOW = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


def order(position: int, slot: int, start: int, end: int, level: int = 1) -> BuildOrder:
    return BuildOrder(100 + position, 1, position, slot, "woodcutter", level, Resources(wood=1),
                      at(start), at(end))


def test_a_new_order_goes_last_and_waits_for_the_last_one() -> None:
    assert build_queue.next_place([], NOW, 60) == Place(1, NOW, NOW + timedelta(seconds=60))
    queue = [order(1, 1, -5, 10), order(2, 3, 10, 30)]
    assert build_queue.next_place(queue, NOW, 120) == Place(3, at(30), at(32))
    # A queue that ran out in the past: the new order starts now.
    done = [order(1, 1, -30, -10)]
    assert build_queue.next_place(done, NOW, 60) == Place(2, NOW, NOW + timedelta(seconds=60))


def test_cancelling_takes_the_later_levels_of_the_same_slot() -> None:
    queue = [order(1, 1, -5, 10, 1), order(2, 3, 10, 30), order(3, 1, 30, 50, 2),
             order(4, 14, 50, 60)]
    assert [o.position for o in build_queue.cancelled(queue, 1)] == [1, 3]
    assert [o.position for o in build_queue.cancelled(queue, 3)] == [3]
    assert [o.position for o in build_queue.cancelled(queue, 2)] == [2]
    assert build_queue.cancelled(queue, 9) == []


def test_the_rest_closes_up_started_orders_keep_their_times() -> None:
    running, waiting_a, waiting_b = order(1, 1, -5, 10), order(3, 3, 30, 50), order(4, 14, 50, 60)
    # Position 2 (10..30) was cancelled: 3 and 4 move up a place and 20 minutes earlier.
    moves = build_queue.close_up([running, waiting_a, waiting_b], NOW)
    assert moves == [(waiting_a, Place(2, at(10), at(30))), (waiting_b, Place(3, at(30), at(40)))]
    # The running order was cancelled: the next one starts now.
    moves = build_queue.close_up([waiting_a, waiting_b], NOW)
    assert moves == [(waiting_a, Place(1, NOW, at(20))), (waiting_b, Place(2, at(20), at(30)))]
    # Nothing to change: nothing moves.
    assert build_queue.close_up([running], NOW) == []


def test_training_lines_wait_for_their_building() -> None:
    levels = {"barracks": 1, "stable": 1, "academy": 5, "smithy": 1}
    plans = plan_training("romans", {"legionnaire": 2, "equites_legati": 1, "praetorian": 1},
                          levels, server_speed=1)
    lines = schedule_training(plans, {"barracks": at(10)}, NOW)
    got = [(line.plan.spec.name, line.started_at, line.completes_at) for line in lines]
    assert got == [
        ("equites_legati", NOW, NOW + timedelta(seconds=1360)),  # the stable is free
        ("legionnaire", at(10), at(10) + timedelta(seconds=3200)),  # after the barracks' line
        ("praetorian", at(10) + timedelta(seconds=3200),
         at(10) + timedelta(seconds=3200 + 1760)),  # after the legionnaires
    ]
    # A building busy only in the past starts now.
    assert schedule_training(plans[:1], {"stable": at(-5)}, NOW)[0].started_at == NOW
