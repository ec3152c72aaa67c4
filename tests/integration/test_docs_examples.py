"""docs/operations.md's examples run as written, in order, in a directory of their own: a
reader who copies them meets no error the page does not announce."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import travian_repo as tr

PAGE = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_the_operations_page_examples_run_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the page makes its world in the working directory
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 8
    names: dict[str, Any] = {}
    try:
        for number, block in enumerate(blocks):
            exec(compile(block, f"{PAGE.name}, example {number}", "exec"), names)
        # The last lines show a refusal the NPC keeps, as their comment says.
        assert isinstance(names["npc"].last_error, tr.InsufficientResources)
        assert names["raid"].battle is not None and names["report"].battle is not None
    finally:
        if "world" in names:
            names["world"].close()
