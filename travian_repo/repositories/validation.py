"""Argument checks shared by every backend, so bad input gets the same InvalidRequest
everywhere and before any I/O. Operations name them in their declarations
(``@operation(checks=..., check=...)``); ``Repository`` applies them once, before any
implementation runs."""

from __future__ import annotations

from typing import Any, Mapping

from travian_repo.domain.errors import InvalidRequest
# check_int is re-exported: the repositories call it as validation.check_int.
from travian_repo.domain.validators import check_int as check_int, is_int
from travian_repo.domain.values import ATTACK_KINDS, REPORT_KINDS, RESOURCE_NAMES, Resources
from travian_repo.rules import buildings, placement

MAX_ID = 2**62
MAX_COUNT = 1_000_000  # units per order: far above any real village, far below overflow
MAX_AMOUNT = 100_000_000  # resources per call
MAX_SUBJECT = 200
MAX_BODY = 10_000
MAX_NAME = 50
MAX_TAG = 8
MAX_LIMIT = 1000
MAX_BUILDING_NAME = 40
MAX_QUEUE_POSITION = 1000


def check_id(value: Any, name: str) -> int:
    if not is_int(value):
        raise InvalidRequest(f"{name} must be an integer id, got {type(value).__name__}")
    if not 1 <= value <= MAX_ID:
        raise InvalidRequest(f"{name} must be a positive id, got {value}")
    return value


MAX_BATCH = 1000  # ids in one batched read


def check_ids(value: Any, name: str) -> tuple[int, ...]:
    """1 to ``MAX_BATCH`` ids: a list or tuple of ints, or (as the query string carries
    them) one string of decimal ids separated by commas."""
    if isinstance(value, str):
        parts = value.split(",")
        if len(parts) > MAX_BATCH or not all(p.isascii() and p.isdigit() and len(p) <= 19
                                             for p in parts):
            raise InvalidRequest(f"{name} must be ids separated by commas, e.g. 1,2,3")
        value = [int(p) for p in parts]
    if not isinstance(value, (list, tuple)):
        raise InvalidRequest(f"{name} must be a list of ids, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_BATCH:
        raise InvalidRequest(f"{name} must hold 1 to {MAX_BATCH} ids, got {len(value)}")
    return tuple(check_id(item, name) for item in value)


def check_name(value: Any, name: str, *, max_length: int = 64) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string, got {type(value).__name__}")
    if not value or len(value) > max_length:
        raise InvalidRequest(f"{name} must be 1 to {max_length} characters")
    return _encodable(value, name)


def _encodable(value: str, name: str) -> str:
    """Text the database and the wire can carry: UTF-8 (no lone surrogates), no NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{name} is not valid Unicode text (lone surrogate)") from None
    if "\x00" in value:
        raise InvalidRequest(f"{name} must not contain NUL characters")
    return value


def check_text(value: Any, name: str, *, max_length: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string, got {type(value).__name__}")
    _encodable(value, name)
    if not allow_empty and not value.strip():
        raise InvalidRequest(f"{name} must not be empty")
    if len(value) > max_length:
        raise InvalidRequest(f"{name} is {len(value)} characters; the limit is {max_length}")
    return value


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be true or false, got {type(value).__name__}")
    return value


def check_troops(value: Any, name: str = "troops") -> dict[str, int]:
    """A non-empty mapping unit name -> positive count (names checked later against the tribe)."""
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{name} must be a mapping of unit name to count")
    result: dict[str, int] = {}
    for unit, count in value.items():
        check_name(unit, f"{name} unit name", max_length=40)
        result[unit] = check_int(count, f"{name}[{unit!r}]", low=0, high=MAX_COUNT)
    result = {unit: count for unit, count in result.items() if count}
    if not result:
        raise InvalidRequest(f"{name} must name at least one unit with a count above 0")
    return result


def check_resource(value: Any, name: str) -> str:
    if value not in RESOURCE_NAMES or not isinstance(value, str):
        raise InvalidRequest(f"{name} must be one of {', '.join(RESOURCE_NAMES)}, got {value!r}")
    return value


def check_resources(value: Any, name: str = "resources") -> Resources:
    """Resources or a mapping of resource name -> amount >= 0, not all zero."""
    if isinstance(value, Resources):
        amounts = value.as_dict()
    elif isinstance(value, Mapping):
        unknown = [k for k in value if k not in RESOURCE_NAMES]
        if unknown:
            raise InvalidRequest(
                f"{name} has unknown resource {unknown[0]!r}; use {', '.join(RESOURCE_NAMES)}"
            )
        amounts = dict(value)
    else:
        raise InvalidRequest(f"{name} must be Resources or a mapping of resource to amount")
    checked = {
        r: check_int(amounts.get(r, 0), f"{name}[{r!r}]", low=0, high=MAX_AMOUNT)
        for r in RESOURCE_NAMES
    }
    result = Resources(**checked)
    if result.total == 0:
        raise InvalidRequest(f"{name} must send at least one resource")
    return result


def check_point(x: Any, y: Any, *, radius: int | None) -> tuple[int, int]:
    """Map coordinates, each within -radius..radius. A client that does not know the world's
    radius (over HTTP it is not published) passes None: only the type is checked there (and
    a bound far beyond any map), and the server answers for the map's edge."""
    high = MAX_ID if radius is None else radius
    return check_int(x, "x", low=-high, high=high), check_int(y, "y", low=-high, high=high)


def check_coordinate(value: Any, name: str) -> int:
    """A map coordinate, type only (and a bound far beyond any map): the world's radius is
    checked where it is known (the SQL side, with ``check_point``)."""
    return check_int(value, name, low=-MAX_ID, high=MAX_ID)


def check_building(value: Any, name: str = "building") -> str:
    """A building name as the rules spell it (aliases and any case accepted); an unknown
    name is InvalidRequest."""
    return buildings.building_spec(check_name(value, name, max_length=MAX_BUILDING_NAME)).name


def check_slot(value: Any, name: str = "slot") -> int | None:
    """None (the rules choose the slot) or one of a village's slots."""
    if value is None:
        return None
    return check_int(value, name, low=placement.SLOTS.start, high=placement.SLOTS.stop - 1)


def check_queue_position(value: Any, name: str = "queue_position") -> int:
    return check_int(value, name, low=1, high=MAX_QUEUE_POSITION)


def check_attack_kind(value: Any, name: str = "kind") -> str:
    if not isinstance(value, str) or value not in ATTACK_KINDS:
        raise InvalidRequest(f"{name} must be one of {', '.join(ATTACK_KINDS)}, got {value!r}")
    return value


def check_report_kind(value: Any, name: str = "kind") -> str | None:
    """None (every kind) or one of REPORT_KINDS."""
    if value is not None and (not isinstance(value, str) or value not in REPORT_KINDS):
        raise InvalidRequest(
            f"{name} must be one of {', '.join(REPORT_KINDS)} (or None), got {repr(value)[:40]}",
            details={"allowed": list(REPORT_KINDS)},
        )
    return None if value is None else str(value)


def check_count(value: Any, name: str) -> int:
    """Units in one order: 1..MAX_COUNT."""
    return check_int(value, name, low=1, high=MAX_COUNT)


def check_amount(value: Any, name: str) -> int:
    """Resources in one offer: 1..MAX_AMOUNT."""
    return check_int(value, name, low=1, high=MAX_AMOUNT)


def check_limit(value: Any, name: str) -> int:
    """How many rows a read returns: 1..MAX_LIMIT."""
    return check_int(value, name, low=1, high=MAX_LIMIT)


def check_subject(value: Any, name: str) -> str:
    return check_text(value, name, max_length=MAX_SUBJECT)


def check_body(value: Any, name: str) -> str:
    return check_text(value, name, max_length=MAX_BODY, allow_empty=True)


def check_alliance_name(value: Any, name: str) -> str:
    """Without surrounding whitespace, then within its length."""
    return check_text(value.strip() if isinstance(value, str) else value, name,
                      max_length=MAX_NAME)


def check_alliance_tag(value: Any, name: str) -> str:
    return check_text(value.strip() if isinstance(value, str) else value, name,
                      max_length=MAX_TAG)


def check_metric(metric: Any, name: str = "metric") -> str:
    from travian_repo.repositories.base import RANKING_METRICS

    if not isinstance(metric, str) or metric not in RANKING_METRICS:
        raise InvalidRequest(
            f"{name} must be one of {', '.join(RANKING_METRICS)}, got {metric!r}",
            details={"allowed": list(RANKING_METRICS)},
        )
    return metric


# Checks over several arguments of one operation, run after each argument's own check (a
# declaration's ``check=``); they take the checked arguments by name.

MAX_OFFER_RATIO = 2  # the market takes offers between 1:2 and 2:1


def distinct_villages(from_village_id: int, to_village_id: int, **_: Any) -> None:
    if from_village_id == to_village_id:
        raise InvalidRequest(f"from_village_id and to_village_id are both {from_village_id}")


def no_shipment_to_itself(from_village_id: int, to_village_id: int, **_: Any) -> None:
    if from_village_id == to_village_id:
        raise InvalidRequest("a village cannot send resources to itself")


def no_message_to_oneself(from_player_id: int, to_player_id: int, **_: Any) -> None:
    if from_player_id == to_player_id:
        raise InvalidRequest("a player cannot send a message to themself")


def offer_terms(
    offer_resource: str, offer_amount: int, request_resource: str, request_amount: int, **_: Any
) -> None:
    """A market offer's terms; a ratio beyond 2:1 either way is the market's RuleViolation."""
    from travian_repo.domain.errors import RuleViolation

    if offer_resource == request_resource:
        raise InvalidRequest("an offer must ask for another resource than it offers")
    if offer_amount > MAX_OFFER_RATIO * request_amount or request_amount > MAX_OFFER_RATIO * offer_amount:
        raise RuleViolation(
            f"the market takes offers between 1:{MAX_OFFER_RATIO} and {MAX_OFFER_RATIO}:1; "
            f"{offer_amount} {offer_resource} for {request_amount} {request_resource} is not",
            details={"offer_amount": offer_amount, "request_amount": request_amount},
        )


def default_check(name: str, annotation: Any) -> Any:
    """The check of an argument its declaration does not name: an ``int`` called ``*_id`` is a
    positive id, a ``bool`` a boolean; anything else must be declared."""
    if annotation is int and name.endswith("_id"):
        return check_id
    if annotation is bool:
        return check_bool
    return None
