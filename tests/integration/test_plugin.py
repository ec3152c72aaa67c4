"""The pytest plugin users test their NPC scripts with: the ``travian_world`` fixture.

The plugin is active through the package's ``pytest11`` entry point when the package is
installed (``pip install -e .``, as CI does); ``pytest_plugins`` below loads it otherwise,
and loading it both ways is harmless.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import travian_repo as tr
from travian_repo.testing import START, TravianWorld

pytest_plugins = ["travian_repo.testing"]


def test_a_fresh_world_acting_as_player_1(travian_world: TravianWorld) -> None:
    assert isinstance(travian_world.world, tr.World)
    assert travian_world.world.player_id == 1
    assert travian_world.clock() == START
    assert sorted(travian_world.tokens) == [1, 2, 3, 4, 5, 6]
    home = travian_world.world.villages.list_by_player(1)[0]
    assert home.level("barracks") == 3  # the developed start
    assert travian_world.advance(0) == 0
    assert travian_world.overdue() == 0


def test_advance_runs_the_engine(travian_world: TravianWorld) -> None:
    npc = travian_world.npc(1)
    home = npc.villages[0]
    assert npc.build_in_village(home.id, "woodcutter")
    order = npc.last_result
    assert isinstance(order, tr.BuildOrder)
    seconds = (order.completes_at - travian_world.now).total_seconds()
    assert travian_world.advance(seconds - 1) == 0  # not yet
    assert travian_world.world.villages.get(home.id).build_queue
    assert travian_world.advance(1) == 1  # done, exactly on time
    village = travian_world.world.villages.get(home.id)
    assert village.build_queue == ()
    assert any(b.slot == order.slot and b.level == order.target_level for b in village.buildings or ())


def test_as_player_and_a_raid_report(travian_world: TravianWorld) -> None:
    raider = travian_world.as_player(2)
    assert raider.player_id == 2
    npc = raider.npc(2)
    home = npc.initialize()[0]
    target = travian_world.world.villages.list_by_player(1)[0]
    unit = next(iter(raider.military.troops(home.id)))
    assert npc.launch_raid(home.id, target.x, target.y, {unit: 5})
    raid = npc.last_result
    assert isinstance(raid, tr.Movement)
    travian_world.advance((raid.arrives_at - travian_world.now).total_seconds())
    assert raider.military.outgoing(home.id) == []  # it arrived and fought


@pytest.mark.travian_world(players=2, seed=5, start="standard")
def test_a_marker_chooses_the_world(travian_world: TravianWorld) -> None:
    assert sorted(travian_world.tokens) == [1, 2]
    assert travian_world.summary.seed == 5
    home = travian_world.world.villages.list_by_player(1)[0]
    assert home.level("barracks") == 0 and home.level("woodcutter") == 0


@pytest.mark.slow  # a pytest run of its own
def test_the_example_in_docs_testing_md_passes(
    tmp_path: Path, pytester_free_env: dict[str, object]
) -> None:
    """docs/testing.md's example project, run by pytest in a directory of its own."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    script = next(b for b in blocks if b.startswith("# my_npc.py"))
    tests = next(b for b in blocks if "from my_npc import" in b)
    (tmp_path / "my_npc.py").write_text(script)
    (tmp_path / "test_my_npc.py").write_text(tests)
    (tmp_path / "conftest.py").write_text(str(pytester_free_env["conftest"]))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=pytester_free_env["env"])  # type: ignore[call-overload]
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


@pytest.fixture
def pytester_free_env() -> dict[str, object]:
    import os
    from importlib.metadata import entry_points

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    installed = any(ep.value == "travian_repo.testing" for ep in entry_points(group="pytest11"))
    # with the entry point the user's conftest needs nothing; without, the documented line
    conftest = "" if installed else 'pytest_plugins = ["travian_repo.testing"]\n'
    return {"env": env, "conftest": conftest}
