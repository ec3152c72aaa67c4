"""docs/explore.ipynb runs top to bottom in a real kernel (nbclient + ipykernel, from the
``test`` extra), and lists of domain values render as tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from travian_repo import notebook
from travian_repo.domain.values import Building, Resources, table_html

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "docs" / "explore.ipynb"


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

    def html_of(fragment: str) -> str:
        cell = next(c for c in code if fragment in c.source)
        shown = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert shown, f"the cell with {fragment!r} shows nothing"
        return str(shown[-1]["data"].get("text/html", ""))

    ranking = html_of("players.ranking")
    assert "5 RankingEntrys" in ranking and ranking.count("<tr>") == 6
    assert "<caption>Village</caption>" in html_of("world.villages.get(")
    assert "Buildings" in html_of("notebook.table(home.buildings)")
    assert "BuildOrder" in html_of("build_queue")
    assert "Movement" in html_of("military.incoming")  # the raids on their way
    assert "Movement" in html_of("sorted(out")


def test_lists_of_values_render_as_one_table() -> None:
    buildings = [Building(1, "woodcutter", 3), Building(26, "main_building", 5)]
    html = table_html(buildings)
    assert html is not None
    assert html.count("<tr>") == 3 and "main_building" in html and "<th" in html
    assert notebook.table(buildings)._repr_html_() == html
    assert notebook.table(buildings) == buildings  # still a list
    assert table_html([]) is None
    assert table_html([Building(1, "woodcutter", 3), Resources()]) is None  # mixed kinds
    assert table_html([1, 2]) is None
    assert table_html((Resources(1, 2, 3, 4),)) is not None


def test_enable_registers_a_formatter_only_under_ipython() -> None:
    shell = pytest.importorskip("IPython.core.interactiveshell")
    assert notebook.enable(None) in (False, True)  # outside a kernel: no error
    ip = shell.InteractiveShell.instance()
    try:
        assert notebook.enable(ip)
        formatter = ip.display_formatter.formatters["text/html"]
        assert "RankingEntry" not in str(formatter([1]))
        assert "woodcutter" in formatter([Building(1, "woodcutter", 3)])
    finally:
        shell.InteractiveShell.clear_instance()
