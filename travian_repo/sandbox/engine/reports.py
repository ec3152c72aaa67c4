"""Writing reports: the battle reports of an attack (the attacker's, each defender's), the
scouting reports (the scout's, and the defender's when it has scouts of its own) and the
trade report of merchants delivering (the sender's, and the recipient's)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping, Sequence

from travian_repo.domain import events
from travian_repo.domain.values import Resources
from travian_repo.rules import battle
from travian_repo.rules.economy import cranny_capacity
from travian_repo.sandbox.engine.combat import Group
from travian_repo.sandbox.engine.step import Step
from travian_repo.sql.village_state import VillageState


def write_report(step: Step, player_id: int, kind: str, subject: str, village_id: int,
                 payload: dict[str, Any] | str, at: datetime) -> None:
    """One unread report for ``player_id`` (and its ``report_created`` event, whose report
    id the batch's insert fills in). The payload (or its JSON text) is kept as its JSON text:
    a batch holds thousands, and a row of plain values is out of the cyclic collector's
    sight where a tree of dicts is not."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    step.held.reports.append(dict(
        player_id=player_id, kind=kind, subject=subject[:200], village_id=village_id,
        payload=text, read=False, created_at=at))
    step.held.report_events.append(step.emit(events.REPORT_CREATED, player_id, report_id=None,
                                             kind=kind, village_id=village_id))


def battle_reports(
    step: Step, mv: Any, home: VillageState, target: VillageState, at: datetime, *,
    sent: Mapping[str, int], lost: Mapping[str, int], survivors: Mapping[str, int],
    result: battle.BattleResult, groups: Sequence[Group], wall: dict[str, Any],
    building: dict[str, Any] | None, loot: Resources, capacity: int,
) -> None:
    """The attacker's report, then one per defending player (the target's owner included)."""
    defenders_payload = [g.payload(c.lost) for g, c in zip(groups, result.defenders)]
    common: dict[str, Any] = dict(
        kind=str(mv.kind),
        movement_id=int(mv.id),
        at=at.isoformat(),
        attacker=dict(player_id=int(mv.player_id), village_id=home.id, tribe=home.tribe,
                      troops=sent, lost=lost, survivors=survivors),
        target_village_id=target.id,
        target_player_id=target.player_id,
        won=bool(survivors),
        attack_points=round(result.attack, 2),
        defence_points=round(result.defence, 2),
        mfactor=result.mfactor,
        morale=result.morale,
        losses=dict(attacker=round(result.losses.attacker, 6),
                    defender=round(result.losses.defender, 6)),
        wall=wall,
        building=building,
        bounty=resources_payload(loot),
        carry=capacity,
    )
    # The attacker sees the defence only when someone came back to tell.
    seen = defenders_payload if survivors else []
    verb = {"raid": "raids", "siege": "besieges"}.get(str(mv.kind), "attacks")
    subject = f"{home.name} {verb} {target.name}"
    # The reports share their text but for the role and what is seen: encoded once.
    shared = json.dumps(common)
    write_report(step, int(mv.player_id), "attack", subject, target.id,
                 _extended(shared, role="attacker", defenders=seen), at)
    defense = _extended(shared, role="defender", defenders=defenders_payload)
    for player in sorted({g.player_id for g in groups} | {target.player_id}):
        write_report(step, player, "defense", subject, target.id, defense, at)


def scout_reports(
    step: Step, mv: Any, home: VillageState, target: VillageState, at: datetime, *,
    sent: Mapping[str, int], lost: Mapping[str, int], survivors: Mapping[str, int],
    result: battle.ScoutResult, groups: Sequence[Group], armies: Sequence[battle.Army],
    wall_name: str, wall_level: int,
) -> None:
    """The scout's report (what it saw when it succeeded), and the defender's when it has
    scouts of its own to notice."""
    payload: dict[str, Any] = dict(
        kind="scout",
        movement_id=int(mv.id),
        at=at.isoformat(),
        success=result.success,
        attacker=dict(player_id=int(mv.player_id), village_id=home.id, tribe=home.tribe,
                      troops=sent, lost=lost, survivors=survivors),
        target_village_id=target.id,
        target_player_id=target.player_id,
        scout_points=result.attack,
        defence_points=round(result.defence, 2),
    )
    if result.success:
        troops: dict[str, int] = {}
        for g in groups:
            for unit, n in g.troops.items():
                troops[unit] = troops.get(unit, 0) + n
        payload.update(
            resources=resources_payload(target.available),
            troops=troops,
            defenders=[g.payload() for g in groups],
            wall=dict(building=wall_name, level=wall_level),
            cranny=cranny_capacity(
                [b.level for b in target.buildings if b.name == "cranny"], tribe=target.tribe
            ),
        )
    subject = f"{home.name} scouts {target.name}"
    write_report(step, int(mv.player_id), "scout", subject, target.id, payload, at)
    if any(battle.scouts_of(a) for a in armies):  # the defender notices with scouts of its own
        write_report(step, target.player_id, "scouted", subject, target.id,
                     dict(kind="scout", movement_id=int(mv.id), at=at.isoformat(),
                          success=result.success, attacker_player_id=int(mv.player_id),
                          attacker_village_id=home.id, scouts=sum(sent.values()),
                          killed=sum(lost.values())), at)


def trade_reports(step: Step, row: Any, sender: int, target: VillageState,
                  at: datetime) -> None:
    """One report to the sending player and one to the recipient's (one when the same)."""
    payload: dict[str, Any] = dict(
        kind="trade", shipment_id=int(row.id), at=at.isoformat(),
        from_village_id=int(row.from_village_id), from_player_id=sender,
        to_village_id=target.id, to_player_id=target.player_id,
        resources=resources_payload(Resources(row.wood, row.clay, row.iron, row.wheat)))
    subject = f"Merchants deliver to {target.name}"
    text = json.dumps(payload)  # both reports read the same
    for player in sorted({sender, target.player_id}):
        write_report(step, player, "trade", subject, target.id, text, at)


def resources_payload(r: Resources) -> dict[str, int]:
    return dict(wood=r.wood, clay=r.clay, iron=r.iron, wheat=r.wheat)


def _extended(text: str, **more: Any) -> str:
    """The JSON text of a non-empty object (``text``, from ``json.dumps``) with the keys
    ``more`` after its own, as ``json.dumps`` writes the merged dict (the keys are not among
    its own)."""
    added = "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in more.items())
    return text[:-1] + added + "}"
