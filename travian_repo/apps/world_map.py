"""A map of the world as SVG: no dependency, shows in Jupyter, saves to a file.

    from travian_repo import notebook
    notebook.world_map(world)              # every village, coloured by player
    notebook.world_map(world, colour_by="tribe").save("world.svg")

One circle per village (class ``village``; its area grows with the population), coloured
by its player or its tribe; the acting player's villages carry a black ring and their name
(class ``village mine``). Each movement is an arrow (class ``movement`` and its kind) from
the village it left to the village it goes to. North (larger y) is up, as in the game.
"""

from __future__ import annotations

import colorsys
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from travian_repo.domain.values import MOVEMENT_KINDS, Movement, Village

TRIBE_COLOURS = {
    "romans": "#c0392b", "teutons": "#2e86c1", "gauls": "#27ae60",
    "natars": "#7d3c98", "nature": "#7f8c8d",
}
MOVEMENT_COLOURS = {
    "attack": "#b2182b", "raid": "#d95f02", "siege": "#67001f",
    "reinforcement": "#1b7837", "scout": "#762a83", "return": "#555555",
}
# Twelve colours told apart at a glance; more players than that get hues a golden angle apart.
PALETTE = ("#4e79a7", "#e15759", "#59a14f", "#edc948", "#b07aa1", "#76b7b2",
           "#ff9da7", "#9c755f", "#f28e2b", "#bab0ac", "#1f3b73", "#8cd17d")
SIZE = 640        # pixels across the map square
MARGIN = 24       # pixels around it
LEGEND_WIDTH = 190
MAX_PLAYERS = 1000  # the most players a ranking answers


def player_colours(player_ids: Iterable[int]) -> dict[int, str]:
    """A colour per player, in the order of their ids."""
    ids = sorted(set(player_ids))
    if len(ids) <= len(PALETTE):
        return {p: PALETTE[i] for i, p in enumerate(ids)}
    colours = {}
    for i, p in enumerate(ids):
        r, g, b = colorsys.hls_to_rgb((i * 0.381966) % 1.0, 0.45, 0.65)
        colours[p] = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
    return colours


@dataclass(frozen=True)
class WorldMap:
    """The villages and movements to draw; ``svg()`` draws them."""

    villages: tuple[Village, ...]
    movements: tuple[Movement, ...] = ()
    player_id: int | None = None   # whose villages are marked
    colour_by: str = "player"      # or "tribe"
    title: str = "World map"

    def __post_init__(self) -> None:
        if self.colour_by not in ("player", "tribe"):
            raise ValueError(f"colour_by must be 'player' or 'tribe', got {self.colour_by!r}")

    def colours(self) -> dict[int, str]:
        """Village id -> its colour (its player's or its tribe's)."""
        if self.colour_by == "tribe":
            return {v.id: TRIBE_COLOURS.get(v.tribe, "#34495e") for v in self.villages}
        players = player_colours(v.player_id for v in self.villages)
        return {v.id: players[v.player_id] for v in self.villages}

    def svg(self) -> str:
        """The map as an SVG document."""
        return _draw(self)

    def _repr_svg_(self) -> str:
        return self.svg()

    def save(self, path: str | Path) -> Path:
        """Write the SVG to ``path`` (open it in a browser); the path written."""
        target = Path(path)
        target.write_text(self.svg(), encoding="utf-8")
        return target

    def __repr__(self) -> str:
        return (f"<WorldMap {len(self.villages)} villages, {len(self.movements)} movements, "
                f"coloured by {self.colour_by}, player {self.player_id}>")


def world_map(
    world: Any,
    *,
    player_id: int | None = None,
    movements: Iterable[Movement] | None = None,
    colour_by: str = "player",
) -> WorldMap:
    """The map of ``world`` (a connected ``World``): every player's villages (from the
    ranking), and the movements given, or by default those into and out of the acting
    player's villages. ``player_id``: whose villages are marked (default: the acting one)."""
    actor = world.player_id if player_id is None else player_id
    players = world.players.ranking("population", limit=MAX_PLAYERS)
    villages: dict[int, Village] = {}
    for entry in players:
        for village in world.villages.list_by_player(entry.player_id):
            villages[village.id] = village
    if movements is None:
        found: dict[int, Movement] = {}
        for village in villages.values():
            if actor is not None and village.player_id == actor:
                for movement in [*world.military.outgoing(village.id),
                                 *world.military.incoming(village.id)]:
                    found[movement.id] = movement
        movements = found.values()
    return WorldMap(tuple(sorted(villages.values(), key=lambda v: v.id)),
                    tuple(sorted(movements, key=lambda m: m.id)), actor, colour_by)


def _draw(m: WorldMap) -> str:
    xs = [v.x for v in m.villages] or [0]
    ys = [v.y for v in m.villages] or [0]
    half = max(max(xs) - min(xs), max(ys) - min(ys), 10) / 2 + 3
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    scale = SIZE / (2 * half)

    def at(x: float, y: float) -> tuple[float, float]:
        return (round(MARGIN + (x - cx + half) * scale, 1),
                round(MARGIN + (cy + half - y) * scale, 1))

    width, height = SIZE + 2 * MARGIN + LEGEND_WIDTH, SIZE + 2 * MARGIN
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' font-family='sans-serif' font-size='11'>",
        f"<title>{html.escape(m.title)}</title>",
        "<defs>" + "".join(
            f"<marker id='arrow-{kind}' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
            f"markerHeight='7' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' "
            f"fill='{colour}'/></marker>" for kind, colour in MOVEMENT_COLOURS.items()
        ) + "</defs>",
        f"<rect x='{MARGIN}' y='{MARGIN}' width='{SIZE}' height='{SIZE}' fill='#f7f4ea' "
        "stroke='#b3ab94'/>",
    ]
    out += _grid(half, cx, cy, at)
    by_id = {v.id: v for v in m.villages}
    colours = m.colours()
    radius = {v.id: max(3.0, min(14.0, 1.2 * math.sqrt(v.population))) for v in m.villages}
    for mv in m.movements:
        if mv.from_village_id not in by_id or mv.to_village_id not in by_id:
            continue  # an end not on the map (not visible to this player)
        out.append(_arrow(mv, by_id, radius, at))
    labels: list[str] = []
    for v in m.villages:
        x, y = at(v.x, v.y)
        mine = m.player_id is not None and v.player_id == m.player_id
        ring = "stroke='#000' stroke-width='2.5'" if mine else "stroke='#fff' stroke-width='1'"
        tip = (f"{v.name} ({v.x}|{v.y}): player {v.player_id}, {v.tribe}, "
               f"population {v.population}{', capital' if v.is_capital else ''}")
        out.append(
            f"<circle class='village{' mine' if mine else ''}' data-village-id='{v.id}' "
            f"data-player-id='{v.player_id}' cx='{x}' cy='{y}' r='{radius[v.id]:.1f}' "
            f"fill='{colours[v.id]}' {ring}><title>{html.escape(tip)}</title></circle>"
        )
        if mine:
            labels.append(f"<text x='{x}' y='{y - radius[v.id] - 5}' text-anchor='middle' "
                          "font-weight='bold' stroke='#fff' stroke-width='3' "
                          f"paint-order='stroke'>{html.escape(v.name)}</text>")
    out += labels  # above every circle, so no neighbour hides a name
    out += _legend(m)
    out.append("</svg>")
    return "\n".join(out)


def _grid(half: float, cx: float, cy: float, at: Any) -> list[str]:
    """Light lines every 5, 10 or 50 fields (by the map's size), labelled on the edges."""
    step = 5 if half <= 20 else 10 if half <= 60 else 50
    lines: list[str] = []
    low_x, high_x, low_y, high_y = cx - half, cx + half, cy - half, cy + half
    for value in range(math.ceil(low_x / step) * step, math.floor(high_x) + 1, step):
        (x, top), (_, bottom) = at(value, high_y), at(value, low_y)
        lines.append(f"<line x1='{x}' y1='{top}' x2='{x}' y2='{bottom}' stroke='#e0dacb'/>"
                     f"<text x='{x}' y='{bottom + 13}' text-anchor='middle' fill='#8a8270'>"
                     f"{value}</text>")
    for value in range(math.ceil(low_y / step) * step, math.floor(high_y) + 1, step):
        (left, y), (right, _) = at(low_x, value), at(high_x, value)
        lines.append(f"<line x1='{left}' y1='{y}' x2='{right}' y2='{y}' stroke='#e0dacb'/>"
                     f"<text x='{left - 3}' y='{y + 4}' text-anchor='end' fill='#8a8270'>"
                     f"{value}</text>")
    return lines


def _arrow(mv: Movement, by_id: dict[int, Village], radius: dict[int, float], at: Any) -> str:
    (x1, y1), (x2, y2) = at(by_id[mv.from_village_id].x, by_id[mv.from_village_id].y), at(
        by_id[mv.to_village_id].x, by_id[mv.to_village_id].y)
    length = math.hypot(x2 - x1, y2 - y1) or 1.0
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    # start and stop at the circles' edges, so the head is not hidden under the target
    start, stop = radius[mv.from_village_id] + 1, radius[mv.to_village_id] + 2
    colour = MOVEMENT_COLOURS.get(mv.kind, "#000")
    tip = (f"{mv.kind} #{mv.id}: village {mv.from_village_id} -> {mv.to_village_id}, "
           f"arrives {mv.arrives_at:%Y-%m-%d %H:%M} UTC")
    return (f"<line class='movement {html.escape(mv.kind)}' data-movement-id='{mv.id}' "
            f"x1='{x1 + ux * start:.1f}' y1='{y1 + uy * start:.1f}' "
            f"x2='{x2 - ux * stop:.1f}' y2='{y2 - uy * stop:.1f}' stroke='{colour}' "
            f"stroke-width='1.8' marker-end='url(#arrow-{html.escape(mv.kind)})'>"
            f"<title>{html.escape(tip)}</title></line>")


def _legend(m: WorldMap) -> list[str]:
    left = SIZE + 2 * MARGIN + 8
    rows: list[tuple[str, str]] = []  # (colour, label)
    if m.colour_by == "tribe":
        tribes = sorted({v.tribe for v in m.villages})
        rows += [(TRIBE_COLOURS.get(t, "#34495e"), t) for t in tribes]
    else:
        seen: dict[int, str] = {}
        for v in m.villages:
            seen.setdefault(v.player_id, v.tribe)
        shown = sorted(seen)[:20]
        if m.player_id in seen and m.player_id not in shown:
            shown[-1] = m.player_id  # the acting player always has its line
        players = player_colours(seen)
        rows += [(players[p], f"player {p} ({seen[p]})") for p in shown]
        if len(seen) > len(shown):
            rows.append(("none", f"... {len(seen) - len(shown)} more players"))
    out = [f"<g class='legend'><text x='{left}' y='{MARGIN + 4}' font-weight='bold'>"
           f"{'Tribes' if m.colour_by == 'tribe' else 'Players'}</text>"]
    y = MARGIN + 20
    for colour, label in rows:
        if colour != "none":
            out.append(f"<rect x='{left}' y='{y - 9}' width='10' height='10' fill='{colour}'/>")
        out.append(f"<text x='{left + 15}' y='{y}'>{html.escape(label)}</text>")
        y += 15
    kinds = [k for k in MOVEMENT_KINDS if any(mv.kind == k for mv in m.movements)]
    if m.player_id is not None:
        y += 8
        out.append(f"<circle cx='{left + 5}' cy='{y - 4}' r='5' fill='none' stroke='#000' "
                   f"stroke-width='2.5'/><text x='{left + 15}' y='{y}'>player {m.player_id}'s "
                   "villages</text>")
        y += 15
    if kinds:
        y += 8
        out.append(f"<text x='{left}' y='{y}' font-weight='bold'>Movements</text>")
        y += 16
        for kind in kinds:
            colour = MOVEMENT_COLOURS[kind]
            out.append(f"<line x1='{left}' y1='{y - 4}' x2='{left + 22}' y2='{y - 4}' "
                       f"stroke='{colour}' stroke-width='1.8' marker-end='url(#arrow-{kind})'/>"
                       f"<text x='{left + 28}' y='{y}'>{kind}</text>")
            y += 15
    out.append("</g>")
    return out


__all__ = ["WorldMap", "player_colours", "world_map"]
