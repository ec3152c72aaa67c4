"""``docs/openapi.yaml``, generated: one path per declared operation, the answer schemas
from the domain values, the rest from ``wire.openapi_frame``.

    python -m travian_repo.wire.openapi           # rewrite docs/openapi.yaml
    python -m travian_repo.wire.openapi --check   # exit 1 when it differs from the declarations

The sandbox server serves the same text (``document_text()``), so what a client reads is
what the server does.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import re
import sys
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Union

from travian_repo.domain import values
from travian_repo.domain.settings import Settings
from travian_repo.repositories import validation as v
from travian_repo.repositories.base import CONTRACTS, RANKING_METRICS, declared_operations
from travian_repo.repositories.declaration import (
    BODY, PATH, QUERY, Operation, Param, type_name,
)
from travian_repo.rules import placement
from travian_repo.wire import openapi_frame as frame
from travian_repo.wire import openapi_world as world_routes
from travian_repo.wire.routes import PREFIX
from travian_repo.wire.serializer import encode

DOCS_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _integer(low: int, high: int, description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    return {**schema, "description": description} if description else schema


def _string(low: int, high: int) -> dict[str, Any]:
    return {"type": "string", "minLength": low, "maxLength": high}


# An argument's schema by its declared checker (a checker without one here is an error when
# the document is made, so a new checker is documented when it is added).
CHECKER_SCHEMAS: dict[Callable[..., Any], dict[str, Any]] = {
    v.check_id: _ref("Id"),
    v.check_ids: {"type": "string", "pattern": r"^[0-9]+(,[0-9]+)*$",
                  "description": f"1 to {v.MAX_BATCH} village ids separated by commas."},
    v.check_bool: {"type": "boolean"},
    v.check_coordinate: {"type": "integer", "description": "A map coordinate."},
    v.check_building: {"type": "string",
                       "description": "snake_case building name, e.g. main_building"},
    v.check_slot: {"type": ["integer", "null"], "minimum": placement.SLOTS.start,
                   "maximum": placement.SLOTS.stop - 1,
                   "description": "null: the building's slot (or a free one)"},
    v.check_queue_position: _integer(1, v.MAX_QUEUE_POSITION),
    v.check_troops: _ref("TroopsRequest"),
    v.check_attack_kind: {"type": "string", "enum": list(values.ATTACK_KINDS)},
    v.check_resource: _ref("ResourceName"),
    v.check_amount: _integer(1, v.MAX_AMOUNT),
    v.check_resources: {
        "type": "object",
        "description": "Resource name to amount (missing names are 0); not all 0.",
        "additionalProperties": False,
        "properties": {name: {"type": "integer", "minimum": 0, "maximum": v.MAX_AMOUNT}
                       for name in values.RESOURCE_NAMES},
    },
    v.check_count: _integer(1, v.MAX_COUNT),
    v.check_limit: _integer(1, v.MAX_LIMIT, "How many at most."),
    v.check_subject: _string(1, v.MAX_SUBJECT),
    v.check_body: {"type": "string", "maxLength": v.MAX_BODY},
    v.check_alliance_name: _string(1, v.MAX_NAME),
    v.check_alliance_tag: _string(1, v.MAX_TAG),
    v.check_metric: {"type": "string", "enum": list(RANKING_METRICS)},
    v.check_report_kind: {"type": "string", "enum": list(values.REPORT_KINDS),
                          "description": "Only reports of this kind (absent: every kind)."},
}

# What the field types of the domain values do not say.
FIELD_NOTES: dict[tuple[str, str], dict[str, Any]] = {
    ("BuildOrder", "id"): {"description": "0 for an instant build"},
    ("Village", "production"): {"description": "Per hour; net wheat may be negative."},
    ("Movement", "kind"): {"enum": list(values.MOVEMENT_KINDS)},
    ("Report", "kind"): {"enum": list(values.REPORT_KINDS)},
    ("BattleReport", "movement_kind"): {"enum": ["attack", "raid", "siege"]},
    ("BattleReport", "role"): {"enum": ["attacker", "defender"]},
    ("BattleSide", "village_id"): {"description": "The troops' home village."},
    ("TradeOffer", "offer_resource"): _ref("ResourceName"),
    ("TradeOffer", "request_resource"): _ref("ResourceName"),
    ("Event", "kind"): {"example": "message_received"},
    ("Event", "player_id"): _ref("Id"),
}
# Schemas of values the event stream and the session route answer with.
CLASS_NOTES: dict[str, str] = {
    "Event": "A domain event (kinds: travian_repo.domain.events), as the event stream's `data:`.",
}


def _argument_schema(param: Param) -> dict[str, Any]:
    try:
        schema = dict(CHECKER_SCHEMAS[param.check])
    except KeyError:
        raise KeyError(f"no OpenAPI schema for the checker {param.check.__name__} of "
                       f"{param.name!r}: add it to CHECKER_SCHEMAS") from None
    nullable = "null" in schema.get("type", ())
    if not param.required and (param.default is not None or nullable):
        schema["default"] = encode(param.default)  # an absent None is no value to show
    return schema


def _value_schema(tp: Any, found: dict[str, type]) -> dict[str, Any]:
    """The schema of a field or answer type; value classes are collected in ``found``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        schema = _value_schema(inner, found)
        if "type" in schema and "$ref" not in schema:
            return {**schema, "type": [schema["type"], "null"]}
        return {"oneOf": [schema, {"type": "null"}]}
    if origin in (list, tuple):
        return {"type": "array", "items": _value_schema(typing.get_args(tp)[0], found)}
    if origin is not None and issubclass(origin, Mapping):
        return {"type": "object", "additionalProperties": True}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is str:
        return {"type": "string"}
    if tp is datetime:
        return _ref("Time")
    if tp is values.Troops:
        return _ref("Troops")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        found.setdefault(tp.__name__, tp)
        return _ref(tp.__name__)
    raise TypeError(f"no OpenAPI schema for {tp!r}")


def _class_schema(cls: type, found: dict[str, type]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    schema: dict[str, Any] = {"type": "object"}
    doc = inspect.getdoc(cls) or ""
    if cls.__name__ in CLASS_NOTES:
        schema["description"] = CLASS_NOTES[cls.__name__]
    elif doc and not doc.startswith(cls.__name__ + "("):  # not the dataclass's own
        schema["description"] = doc.split("\n\n")[0].replace("\n", " ")
    schema["required"] = names
    schema["additionalProperties"] = False
    schema["properties"] = {n: _field_schema(cls, n, hints[n], found) for n in names}
    return schema


def _field_schema(cls: type, name: str, tp: Any, found: dict[str, type]) -> dict[str, Any]:
    note = FIELD_NOTES.get((cls.__name__, name), {})
    if "$ref" in note:  # says more than the type
        return dict(note)
    return {**_value_schema(tp, found), **note}


def _summary(declared: Operation) -> tuple[str, str]:
    """The summary (the docstring's first sentence) and the rest as the description."""
    doc = declared.doc
    first, _, rest = doc.partition("\n\n")
    first = " ".join(first.split())
    if declared.summary:
        return declared.summary, doc
    sentence = re.match(r"(.+?\.)(\s|$)", first)
    if sentence and sentence.group(1) != first:
        rest = (first[len(sentence.group(1)):].strip() + "\n\n" + rest).strip()
        first = sentence.group(1)
    return first, rest


def _body_schema(declared: Operation) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "required": [], "additionalProperties": False,
                              "properties": {}}
    for param in declared.located(BODY):
        *outer, field = param.wire.split(".")
        target = schema
        for name in outer:
            if name not in target["properties"]:
                target["required"].append(name)
                target["properties"][name] = {"type": "object", "required": [],
                                              "additionalProperties": False, "properties": {}}
            target = target["properties"][name]
        if param.required:
            target["required"].append(field)
        target["properties"][field] = _argument_schema(param)
    return schema


def _error_responses(declared: Operation) -> dict[str, Any]:
    codes = {"400": "BadRequest", "401": "Unauthorized", "403": "Forbidden",
             "404": "NotFound", "409": "Conflict"}
    if declared.method == "POST":
        codes["413"] = "PayloadTooLarge"
    if declared.is_write:
        codes["422"] = "Unprocessable"
    codes.update({"429": "TooManyRequests", "500": "InternalError", "503": "Unavailable"})
    return {code: {"$ref": f"#/components/responses/{name}"} for code, name in codes.items()}


def _answer_description(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return f"A list of {typing.get_args(tp)[0].__name__}."
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return f"A {inner.__name__}, or null."
    return f"The {tp.__name__}."


def _path_item(declared: Operation, contract: str, found: dict[str, type]) -> dict[str, Any]:
    summary, description = _summary(declared)
    method = declared.name.split(".")[1]
    python = f"Python: `{contract}.{method}{_signature(declared)}`."
    item: dict[str, Any] = {
        "operationId": declared.name,
        "tags": [declared.name.split(".")[0]],
        "summary": summary,
        "description": (description + "\n\n" + python) if description else python,
    }
    parameters: list[dict[str, Any]] = [{"$ref": "#/components/parameters/WorldId"}]
    if declared.is_write:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    for param in declared.located(PATH):
        parameters.append({"name": param.wire, "in": "path", "required": True,
                           "schema": _argument_schema(param)})
    for param in declared.located(QUERY):
        parameters.append({"name": param.wire, "in": "query", "required": param.required,
                           "schema": _argument_schema(param)})
    item["parameters"] = parameters
    if declared.method == "POST":
        if declared.located(BODY):
            item["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": _body_schema(declared)}}}
        else:
            item["requestBody"] = {
                "required": False,
                "description": "Nothing to say beyond the path; send `{}` or no body at all.",
                "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": False, "properties": {}}}},
            }
    item["responses"] = {
        "200": {  # writes too, with the created value: the original async client wants 200
            "description": _answer_description(declared.response),
            "headers": {
                "Cache-Control": {"$ref": "#/components/headers/CacheControl"},
                "X-Content-Type-Options": {"$ref": "#/components/headers/NoSniff"},
            },
            "content": {"application/json": {
                "schema": _value_schema(declared.response, found)}},
        },
        **_error_responses(declared),
    }
    return item


def _signature(declared: Operation) -> str:
    """``(village_id: int, *, slot: int | None = None) -> BuildOrder``"""
    parts: list[str] = []
    star = False
    for p in declared.params:
        if p.keyword_only and not star:
            parts.append("*")
            star = True
        text = f"{p.name}: {type_name(p.annotation)}"
        parts.append(text if p.required else f"{text} = {p.default!r}")
    return f"({', '.join(parts)}) -> {declared.returns}"


def document() -> dict[str, Any]:
    """The whole document as data."""
    contracts = {c.domain: c.__name__ for c in CONTRACTS}
    # The session route answers a Player, the event stream Events.
    found: dict[str, type] = {"Player": values.Player, "Event": values.Event}
    paths: dict[str, Any] = {}
    for declared in declared_operations().values():
        domain = declared.name.split(".")[0]
        paths.setdefault(PREFIX + declared.path, {})[declared.method.lower()] = _path_item(
            declared, contracts[domain], found)
    paths.update(frame.SESSION_PATHS)
    paths.update(world_routes.PATHS)
    found["Settings"] = Settings
    schemas = dict(frame.SCHEMAS)
    done: set[str] = set()
    while set(found) - done:  # value classes may name further ones
        for name in sorted(set(found) - done):
            schemas[name] = _class_schema(found[name], found)
            done.add(name)
    return {
        "openapi": "3.1.0",
        "info": frame.INFO,
        "servers": frame.SERVERS,
        "security": [{"bearerAuth": []}],
        "tags": [{"name": c.domain} for c in CONTRACTS] + [{"name": "session"},
                                                              {"name": "events"}],
        "paths": paths,
        "components": {
            "securitySchemes": frame.SECURITY_SCHEMES,
            "parameters": frame.PARAMETERS,
            "headers": frame.HEADERS,
            "responses": frame.RESPONSES,
            "schemas": schemas,
        },
    }


# ---- a small YAML writer: block style, deterministic, no dependency ----------------------

# Text YAML reads back as the same string in block and flow context; the rest is quoted.
_PLAIN = re.compile(r"[A-Za-z_$/][^\n:#{}\[\],&*!|>'\"%@`]*(?<! )")
_KEYWORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_entry(f"{pad}{_scalar(key)}:", item, indent))
    else:
        for item in value:
            if isinstance(item, dict) and item and _flow(item) is None:
                inner = _lines(item, indent + 2)  # "- key: value" on the dash's line
                out.extend([f"{pad}- {inner[0].lstrip()}", *inner[1:]])
            else:
                out.extend(_entry(f"{pad}-", item, indent))
    return out


def _flow(item: Any) -> str | None:
    """A short collection of scalars on one line (``[a, b]``, ``{ $ref: "..." }``)."""
    if isinstance(item, list) and all(not isinstance(i, (dict, list)) for i in item):
        return f"[{', '.join(_scalar(i) for i in item)}]"
    if isinstance(item, dict) and all(not isinstance(i, (dict, list)) for i in item.values()):
        text = ", ".join(f"{_scalar(k)}: {_scalar(i)}" for k, i in item.items())
        if len(text) <= 72 and not any(isinstance(i, str) and "\n" in i for i in item.values()):
            return "{ " + text + " }"
    return None


def _entry(head: str, item: Any, indent: int) -> list[str]:
    if isinstance(item, (dict, list)) and item:
        flow = _flow(item)
        if flow is not None:
            return [f"{head} {flow}"]
        return [head] + _lines(item, indent + 2)
    if isinstance(item, (dict, list)):
        return [f"{head} {'{}' if isinstance(item, dict) else '[]'}"]
    if isinstance(item, str) and "\n" in item and not item.startswith(" "):
        chomp = "" if item.endswith("\n") else "-"
        body = item.rstrip("\n")
        return [f"{head} |{chomp}"] + [
            (" " * (indent + 2) + line) if line else "" for line in body.split("\n")]
    return [f"{head} {_scalar(item)}"]


def render(doc: Mapping[str, Any]) -> str:
    return "\n".join(_lines(dict(doc), 0)) + "\n"


@functools.lru_cache(maxsize=1)
def document_text() -> str:
    """The document as YAML, made once per process."""
    return render(document())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m travian_repo.wire.openapi",
                                     description="Write docs/openapi.yaml from the declarations.")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the file differs from the declarations")
    parser.add_argument("--output", type=Path, default=DOCS_PATH)
    args = parser.parse_args(argv)
    text = document_text()
    if args.check:
        current = args.output.read_text("utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} differs from the declarations; run "
                  "python -m travian_repo.wire.openapi", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
