"""How domain values show: one short line (``repr``), an HTML table (Jupyter) and a text
table (a terminal). Numbers are right-aligned, times read as ``2026-01-01 12:00:00 UTC``,
resources and troops are columns, tuples of values (buildings, a build queue) are rows.

Only the shapes of values are known here (dataclasses, mappings, tuples); the two value
classes it spreads into columns are imported when first needed (``values`` imports this).
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from travian_repo.domain.values import Resources, Troops

CELL = "padding:1px 6px"
LEFT = f"text-align:left;{CELL}"
RIGHT = f"text-align:right;{CELL};font-variant-numeric:tabular-nums"
NOTHING = "–"  # a field with no value (None)
TEXT_LIMIT = 60  # characters of a text shown in a table cell or a repr


def when(moment: datetime) -> str:
    """A time as ``2026-01-01 12:00:00 UTC`` (naive times are shown as they are)."""
    if moment.tzinfo is not None:
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def kind_name(kind: type, count: int) -> str:
    """``RankingEntry``, 5 -> ``5 ranking entries``; ``Village``, 1 -> ``1 village``."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", kind.__name__).lower()
    if count != 1 and not words.endswith("s"):
        words = words[:-1] + "ies" if re.search(r"[^aeiou]y$", words) else words + "s"
    return f"{count} {words}"


def _resources_type() -> type[Resources]:
    from travian_repo.domain.values import Resources

    return Resources


def _troops_type() -> type[Troops]:
    from travian_repo.domain.values import Troops

    return Troops


def is_value(value: Any) -> bool:
    """A domain value (a dataclass instance)."""
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _values(value: Any) -> bool:
    """A non-empty tuple or list of domain values of one kind."""
    return (isinstance(value, (tuple, list)) and bool(value) and is_value(value[0])
            and all(type(v) is type(value[0]) for v in value))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


# --- text ------------------------------------------------------------------------------------


def short(value: Any) -> str:
    """A field's value in one short piece of text (a repr or a text table cell)."""
    if value is None:
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, _resources_type()):
        return ", ".join(f"{name} {amount}" for name, amount in value.as_dict().items()
                         if amount) or "nothing"
    if isinstance(value, _troops_type()):
        return ", ".join(f"{unit} {count}" for unit, count in value.items()) or "none"
    if _values(value):
        return kind_name(type(value[0]), len(value))
    if isinstance(value, (tuple, list)) and not value:
        return "none"
    if isinstance(value, Mapping):
        return _clip("{" + ", ".join(f"{k}: {short(v)}" for k, v in value.items()) + "}")
    return _clip(str(value))


def value_repr(value: Any) -> str:
    """``Kind(field=value, ...)`` on one line: times readable, tuples of values counted."""
    parts = []
    for f in dataclasses.fields(value):
        item = getattr(value, f.name)
        shown = repr(_clip(item)) if isinstance(item, str) else short(item)
        parts.append(f"{f.name}={shown}")
    return f"{type(value).__name__}({', '.join(parts)})"


def _columns(values: list[Any]) -> list[tuple[str, str, Any]]:
    """The columns of a table of ``values``: (group, label, how to read the cell); a
    resources or troops field spreads into one column per resource or unit."""
    columns: list[tuple[str, str, Any]] = []
    resources, troops = _resources_type(), _troops_type()
    for f in dataclasses.fields(values[0]):
        field_values = [getattr(v, f.name) for v in values]
        present = [x for x in field_values if x is not None]
        if present and all(isinstance(x, resources) for x in present):
            for i, name in enumerate(("wood", "clay", "iron", "wheat")):
                columns.append((f.name, name, (f.name, i)))
        elif present and all(isinstance(x, troops) for x in present):
            units = sorted({unit for x in present for unit in x})
            for unit in units or ["–"]:
                columns.append((f.name, unit, (f.name, unit)))
        else:
            columns.append(("", f.name, f.name))
    return columns


def _cell(value: Any, key: Any) -> Any:
    if isinstance(key, str):
        return getattr(value, key)
    name, part = key
    inner = getattr(value, name)
    if inner is None:
        return None
    if isinstance(part, int):
        return tuple(inner)[part]
    return inner.get(part, 0) if part != "–" else None


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table_text(values: Any) -> str | None:
    """A list of values of one kind as a text table (a row per value), numbers
    right-aligned; None when it is not one (empty, mixed kinds, not values)."""
    if not _values(values):
        return None
    values = list(values)
    columns = _columns(values)
    heads = [f"{group}.{label}" if group else label for group, label, _ in columns]
    rows = [[_cell(v, key) for _, _, key in columns] for v in values]
    texts = [[short(x) for x in row] for row in rows]
    widths = [max(len(h), *(len(t[i]) for t in texts)) for i, h in enumerate(heads)]
    right = [all(_numeric(r[i]) or r[i] is None for r in rows) for i in range(len(heads))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right)).rstrip()

    out = [kind_name(type(values[0]), len(values)), line(heads),
           line(["-" * w for w in widths])]
    out += [line(t) for t in texts]
    return "\n".join(out)


# --- HTML ------------------------------------------------------------------------------------


def _td(value: Any) -> str:
    if _numeric(value):
        return f"<td style='{RIGHT}'>{html.escape(str(value))}</td>"
    return f"<td style='{LEFT}'>{cell_html(value)}</td>"


def cell_html(value: Any) -> str:
    """A field's value inside a table cell: nested values as small tables of their own."""
    if isinstance(value, _resources_type()):
        heads = "".join(f"<th style='{RIGHT}'>{n}</th>" for n in ("wood", "clay", "iron", "wheat"))
        cells = "".join(f"<td style='{RIGHT}'>{amount}</td>" for amount in value)
        return f"<table><tr>{heads}</tr><tr>{cells}</tr></table>"
    if isinstance(value, _troops_type()):
        if not value:
            return "none"
        heads = "".join(f"<th style='{RIGHT}'>{html.escape(unit)}</th>" for unit in value)
        cells = "".join(f"<td style='{RIGHT}'>{count}</td>" for count in value.values())
        return f"<table><tr>{heads}</tr><tr>{cells}</tr></table>"
    if _values(value):
        return table_html(value) or ""
    if isinstance(value, Mapping) and value:
        rows = "".join(f"<tr><th style='{LEFT}'>{html.escape(str(k))}</th>{_td(v)}</tr>"
                       for k, v in value.items())
        return f"<table>{rows}</table>"
    return html.escape(short(value))


def value_html(value: Any) -> str:
    """One value as a two-column table: a row per field."""
    rows = "".join(
        f"<tr><th style='{LEFT};vertical-align:top'>{html.escape(f.name)}</th>"
        f"{_td(getattr(value, f.name))}</tr>"
        for f in dataclasses.fields(value)
    )
    return f"<table><caption>{type(value).__name__}</caption>{rows}</table>"


def table_html(values: Any) -> str | None:
    """A list (or tuple) of values of one kind as one HTML table, a row per value and a
    column per field (resources and troops: a column each); None when it is empty or not
    all values of one kind (the notebook helpers then keep the plain repr)."""
    if not _values(values):
        return None
    values = list(values)
    columns = _columns(values)
    grouped = any(group for group, _, _ in columns)
    top, sub = "", ""
    i = 0
    while i < len(columns):
        group, label, _ = columns[i]
        if not group:
            rowspan = " rowspan='2'" if grouped else ""
            top += f"<th style='{LEFT}'{rowspan}>{html.escape(label)}</th>"
            i += 1
            continue
        span = 1
        while i + span < len(columns) and columns[i + span][0] == group:
            span += 1
        top += f"<th style='text-align:center;{CELL}' colspan='{span}'>{html.escape(group)}</th>"
        sub += "".join(f"<th style='{RIGHT}'>{html.escape(c[1])}</th>"
                       for c in columns[i:i + span])
        i += span
    head = f"<tr>{top}</tr>" + (f"<tr>{sub}</tr>" if grouped else "")
    body = "".join(
        "<tr>" + "".join(_td(_cell(v, key)) for _, _, key in columns) + "</tr>" for v in values
    )
    caption = html.escape(kind_name(type(values[0]), len(values)))
    return f"<table><caption>{caption}</caption>{head}{body}</table>"


__all__ = [
    "cell_html",
    "kind_name",
    "short",
    "table_html",
    "table_text",
    "value_html",
    "value_repr",
    "when",
]
