"""docs/operations.md lists every declared operation in its table, with the contract's
signature, so a new operation cannot go undocumented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from travian_repo.repositories.base import CONTRACTS, declared_operations

OPERATIONS_MD = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def table_rows() -> dict[str, str]:
    """``domain.method`` -> the method cell, for each method named in the table."""
    rows: dict[str, str] = {}
    for line in OPERATIONS_MD.read_text("utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not line.startswith("| "):
            continue
        for code in re.findall(r"`([a-z_]+\(.*?\)(?: -> [^`]+)?)`", cells[1]):
            rows[f"{cells[0]}.{code.split('(')[0]}"] = code
    return rows


def test_every_operation_is_in_the_table_with_its_parameters() -> None:
    rows = table_rows()
    missing = sorted(set(declared_operations()) - set(rows))
    assert not missing, f"docs/operations.md does not list {missing}"
    for contract in CONTRACTS:
        for name, declared in contract.declarations.items():
            documented = rows[declared.name]
            params = [p for p in inspect.signature(getattr(contract, name)).parameters
                      if p != "self"]
            for param in params:
                assert re.search(rf"\b{param}\b", documented), (declared.name, param, documented)
