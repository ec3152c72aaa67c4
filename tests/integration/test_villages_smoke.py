from __future__ import annotations

import travian_repo as tr


def test_get_own_village_is_private_and_other_is_public(world: tr.World) -> None:
    own = world.villages.get(1)
    assert own.player_id == 1
    assert own.resources is not None and own.resources.wood == 4000
    other = world.villages.get(2)
    assert other.player_id == 2 and other.resources is None and other.buildings is None


def test_queue_building_spends_and_queues(world: tr.World) -> None:
    before = world.villages.get(1).resources
    order = world.villages.queue_building(1, "main_building")
    assert order.target_level == 6 and order.position == 1
    after = world.villages.get(1).resources
    assert before is not None and after == before - order.cost
    assert world.villages.build_queue(1) == [order]
