"""Reports as stored and read: the row -> ``Report`` value, with the typed battle of an
attack or defense report read from its payload (written by ``sandbox/engine/reports.py``)."""

from __future__ import annotations

from typing import Any, Mapping

from travian_repo.domain.values import (
    BattleReport, BattleSide, LevelChange, Report, Resources, Troops,
)
from travian_repo.sql import schema
from travian_repo.sql.schema import as_utc

_rep = schema.reports

COLUMNS = (_rep.c.id, _rep.c.player_id, _rep.c.kind, _rep.c.subject, _rep.c.village_id,
           _rep.c.created_at, _rep.c.payload, _rep.c.read)

BATTLE_KINDS = ("attack", "defense")


def report_from_row(row: Any) -> Report:
    kind = str(row.kind)
    payload = dict(row.payload or {})
    return Report(
        id=int(row.id),
        player_id=int(row.player_id),
        kind=kind,
        subject=str(row.subject),
        village_id=None if row.village_id is None else int(row.village_id),
        created_at=as_utc(row.created_at),
        payload=payload,
        read=bool(row.read),
        battle=battle_from_payload(payload) if kind in BATTLE_KINDS else None,
    )


def battle_from_payload(payload: Mapping[str, Any]) -> BattleReport | None:
    """The typed battle of a stored battle payload; None when the payload is not one (a
    report written by hand, or by an engine that stored less)."""
    try:
        attacker = payload["attacker"]
        wall = payload["wall"]
        target = payload.get("building")
        return BattleReport(
            movement_kind=str(payload["kind"]),
            role=str(payload["role"]),
            movement_id=int(payload["movement_id"]),
            attacker=_side(attacker, attacker.get("survivors")),
            defenders=tuple(_side(d, None) for d in payload["defenders"]),
            target_village_id=int(payload["target_village_id"]),
            target_player_id=int(payload["target_player_id"]),
            attacker_won=bool(payload["won"]),
            bounty=Resources(**{k: int(n) for k, n in payload["bounty"].items()}),
            carry=int(payload["carry"]),
            wall=LevelChange(str(wall["building"]), int(wall["before"]), int(wall["after"])),
            target=None if not target else LevelChange(
                str(target["name"]), int(target["before"]), int(target["after"])),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _side(data: Mapping[str, Any], survivors: Mapping[str, int] | None) -> BattleSide:
    troops = Troops(data["troops"])
    lost = Troops(data.get("lost") or {})
    if survivors is None:  # a defending army's: what it had less what it lost
        survivors = {u: n - lost.get(u) for u, n in troops.items()}
    return BattleSide(int(data["player_id"]), int(data["village_id"]), str(data["tribe"]),
                      troops, lost, Troops(survivors))


__all__ = ["BATTLE_KINDS", "COLUMNS", "battle_from_payload", "report_from_row"]
