"""docs/operations.md names every declared operation: a new one cannot be left out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from travian_repo.repositories.base import declared_operations

PAGE = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def sections(text: str) -> dict[str, str]:
    """``## heading`` -> the text under it."""
    parts = re.split(r"^## +(.+)$", text, flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2])}


def table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| ")]


@pytest.mark.parametrize("name", sorted(declared_operations()))
def test_every_declared_operation_is_on_the_operations_page(name: str) -> None:
    domain, method = name.split(".")
    text = PAGE.read_text(encoding="utf-8")
    # a row of the table of operations: | domain | `method(...)` | ... |
    rows = [row for row in table_rows(text) if row[0] == domain]
    assert any(f"`{method}(" in row[1] for row in rows), (
        f"{name}: no row `| {domain} | `{method}(...)` ... |` in the table of {PAGE.name}")
    # and the domain's section says what it does
    section = sections(text).get(domain, "")
    assert re.search(rf"\b{method}\(", section), (
        f"{name}: the '## {domain}' section of {PAGE.name} does not show {method}(...)")


def test_the_page_names_no_operation_that_is_not_declared() -> None:
    declared = set(declared_operations())
    rows = table_rows(PAGE.read_text(encoding="utf-8"))
    named = {f"{row[0]}.{m}" for row in rows[2:] if len(row) > 1
             for m in re.findall(r"`(\w+)\(", row[1])}
    assert named and named <= declared, sorted(named - declared)
