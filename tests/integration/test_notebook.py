"""docs/explore.ipynb runs top to bottom in a real kernel (nbclient + ipykernel, from the
``test`` extra); lists of domain values render as readable tables; the world map is SVG with
one mark per village, on both backends."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from datetime import datetime, timezone
from typing import Any, Iterator

import pytest

import travian_repo as tr
from travian_repo import notebook
from travian_repo.domain.values import Building, BuildOrder, Movement, Resources, Troops, table_html
from travian_repo.sandbox import Clock
from travian_repo.sandbox.server import ServerThread, app_world, create_app

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "docs" / "explore.ipynb"
SVG = "{http://www.w3.org/2000/svg}"


def marks(svg: str) -> tuple[list[ET.Element], list[ET.Element]]:
    """The village marks and the movement arrows of a map."""
    root = ET.fromstring(svg)
    villages = [e for e in root.iter(f"{SVG}circle") if "village" in e.get("class", "").split()]
    arrows = [e for e in root.iter(f"{SVG}line") if "movement" in e.get("class", "").split()]
    return villages, arrows


@pytest.mark.slow  # a kernel of its own: several seconds
def test_the_explore_notebook_runs_top_to_bottom() -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert errors == []

    def cell_of(fragment: str) -> Any:
        return next(c for c in code if fragment in c.source)

    def shown(fragment: str, kind: str = "text/html") -> str:
        results = [o for o in cell_of(fragment).outputs if o.output_type == "execute_result"]
        assert results, f"the cell with {fragment!r} shows nothing"
        return str(results[-1]["data"].get(kind, ""))

    def printed(fragment: str) -> str:
        return "".join(o.text for o in cell_of(fragment).outputs if o.output_type == "stream")

    # the raids go with fighting units, and the game takes every one of them
    raids = printed("launch_raid")
    assert raids.count(" raids with 5 ") == 7, raids
    assert "REFUSED" not in raids and "refused" not in raids.lower(), raids
    assert not any(f"5 {scout} " in raids for scout in ("equites_legati", "scout", "pathfinder"))
    # nothing bare: every value a cell shows says what it is
    for cell in code:
        for out in cell.outputs:
            if out.output_type == "execute_result":
                text = str(out["data"].get("text/plain", ""))
                assert not re.fullmatch(r"[\d.,\s()-]*", text), (cell.source, text)
    assert re.search(r"\d+ events processed", printed("run_until"))

    ranking = shown("players.ranking")
    assert "<caption>5 ranking entries</caption>" in ranking and ranking.count("<tr>") == 6
    assert "text-align:right" in ranking.split(">value<")[1]  # numbers to the right
    village = shown("world.villages.get(")
    assert "<caption>Village</caption>" in village and "items)" not in village
    assert "<caption>29 buildings</caption>" in village  # buildings as rows, inside it
    assert "<caption>29 buildings</caption>" in shown("notebook.table(home.buildings)")
    queue = shown("build_queue")
    assert "<caption>2 build orders</caption>" in queue and "datetime" not in queue
    assert re.search(r">2026-01-01 1\d:\d\d:\d\d UTC<", queue)
    assert ">wood<" in queue  # the cost spread into a column per resource
    incoming = shown("military.incoming")
    assert "movements</caption>" in incoming and ">clubswinger<" in incoming  # troops as columns
    assert "movements</caption>" in shown("sorted(out")

    world_map = shown("notebook.world_map(world)", "image/svg+xml")
    villages, arrows = marks(world_map)
    assert len(villages) == 8 and len({v.get("data-village-id") for v in villages}) == 8
    assert [v.get("data-player-id") for v in villages if "mine" in v.get("class", "")] == ["1"]
    assert arrows and all("raid" in a.get("class", "") for a in arrows)
    assert "saved" in printed("save(")


# ---- the map, on both backends --------------------------------------------------------------


@pytest.fixture
def raided(make_world: Any, database_url: str, clock: Clock) -> Iterator[tuple[str, dict[int, str]]]:
    """A 6-player world where players 2 and 3 raid player 1 and player 1 reinforces player 4."""
    summary = make_world()
    with tr.connect(database_url, clock=clock) as world:
        home = {p: world.villages.list_by_player(p)[0].id for p in (1, 2, 3, 4)}
        for attacker in (2, 3):
            with world.unit_of_work(attacker) as uow:
                # the developed start's most numerous unit at home is a fighting one
                troops = uow.military.troops(home[attacker])
                first = max(troops, key=lambda unit: troops[unit])
                uow.military.attack(home[attacker], home[1], {first: 5}, kind="raid")
        with world.unit_of_work(1) as uow:
            uow.military.reinforce(home[1], home[4], {"legionnaire": 3})
    yield database_url, summary.tokens


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("over", ["sql", "http"])
def test_the_map_has_one_mark_per_village_and_an_arrow_per_movement(
    raided: tuple[str, dict[int, str]], clock: Clock, tmp_path: Path, over: str
) -> None:
    url, tokens = raided
    app = create_app(url, clock=clock) if over == "http" else None
    try:
        if app is not None:
            with ServerThread(app) as server:
                with tr.connect(api_url=server.url, token=tokens[1], prefer="http") as world:
                    drawn = notebook.world_map(world)
        else:
            with tr.connect(url, player_id=1, clock=clock) as world:
                drawn = notebook.world_map(world)
    finally:
        if app is not None:
            app_world(app).close()
    with tr.connect(url, player_id=1, clock=clock) as world:
        expected = {v.id: v for p in range(1, 7) for v in world.villages.list_by_player(p)}
        movements = {m.id: m for m in [*world.military.incoming(1), *world.military.outgoing(1)]}

    svg = drawn.svg()
    villages, arrows = marks(svg)
    assert sorted(int(v.get("data-village-id", 0)) for v in villages) == sorted(expected)
    mine = {int(v.get("data-village-id", 0)) for v in villages if "mine" in v.get("class", "")}
    assert mine == {i for i, v in expected.items() if v.player_id == 1}
    assert sorted(int(a.get("data-movement-id", 0)) for a in arrows) == sorted(movements)
    assert {a.get("class") for a in arrows} == {"movement raid", "movement reinforcement"}
    # hovering a village names it
    assert all(v.find(f"{SVG}title") is not None for v in villages)

    saved = drawn.save(tmp_path / "map.svg")
    assert saved.read_text(encoding="utf-8") == svg
    assert drawn._repr_svg_() == svg
    by_tribe = notebook.WorldMap(drawn.villages, drawn.movements, 1, "tribe")
    fills = {v.get("data-village-id"): v.get("fill") for v in marks(by_tribe.svg())[0]}
    tribes = {str(i): v.tribe for i, v in expected.items()}
    assert len({fills[i] for i in fills if tribes[i] == "romans"}) == 1
    assert len(set(fills.values())) == len(set(tribes.values()))


def test_a_map_of_no_villages_and_a_bad_colouring() -> None:
    villages, arrows = marks(notebook.WorldMap(()).svg())
    assert villages == [] and arrows == []
    with pytest.raises(ValueError, match="colour_by"):
        notebook.WorldMap((), colour_by="alliance")


# ---- tables -----------------------------------------------------------------------------------


def test_lists_of_values_render_as_one_table() -> None:
    buildings = [Building(1, "woodcutter", 3), Building(26, "main_building", 5)]
    html = table_html(buildings)
    assert html is not None
    assert html.count("<tr>") == 3 and "main_building" in html and "<th" in html
    assert "<caption>2 buildings</caption>" in html
    assert notebook.table(buildings)._repr_html_() == html
    assert notebook.table(buildings) == buildings  # still a list
    assert table_html([]) is None
    assert table_html([Building(1, "woodcutter", 3), Resources()]) is None  # mixed kinds
    assert table_html([1, 2]) is None
    assert table_html((Resources(1, 2, 3, 4),)) is not None


def test_troops_and_resources_spread_into_columns_and_text_tables_align() -> None:
    t0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    moves = [Movement(1, "raid", 2, 1, Troops(legionnaire=5), t0, t0),
             Movement(12, "raid", 3, 1, Troops(phalanx=40, legionnaire=1), t0, t0)]
    html = table_html(moves)
    assert html is not None
    # one header cell per unit under "troops"; a unit a movement lacks counts 0
    assert "colspan='2'>troops<" in html
    assert ">legionnaire<" in html and ">phalanx<" in html
    assert "<td style='text-align:right;padding:1px 6px;font-variant-numeric:tabular-nums'>0</td>" in html
    text = str(notebook.table(moves))
    lines = text.splitlines()
    assert lines[0] == "2 movements"
    assert "troops.legionnaire" in lines[1] and "troops.phalanx" in lines[1]
    assert "2026-01-01 12:00:00 UTC" in text and "datetime" not in text
    assert lines[3].startswith(" 1  raid") and lines[4].startswith("12  raid"), text  # ids right
    order = BuildOrder(1, 1, 1, 1, "woodcutter", 4, Resources(185, 465, 235, 280), t0, t0)
    queue = table_html([order])
    assert queue is not None and "colspan='4'>cost<" in queue and ">465<" in queue


def test_enable_registers_a_formatter_only_under_ipython() -> None:
    shell = pytest.importorskip("IPython.core.interactiveshell")
    assert notebook.enable(None) in (False, True)  # outside a kernel: no error
    ip = shell.InteractiveShell.instance()
    try:
        assert notebook.enable(ip)
        formatter = ip.display_formatter.formatters["text/html"]
        assert "ranking" not in str(formatter([1]))
        assert "woodcutter" in formatter([Building(1, "woodcutter", 3)])
    finally:
        shell.InteractiveShell.clear_instance()
