"""Domain values and errors: pure, no database."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timezone

import pytest

import travian_repo as tr
from travian_repo.domain.values import Building, BuildOrder, Resources, Troops, Village

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def private_village(**changes: object) -> Village:
    order = BuildOrder(7, 1, 1, 26, "main_building", 6, Resources(1, 2, 3, 4), T0, T0)
    v = Village(
        id=1, name="Home", player_id=1, x=3, y=-4, population=120, is_capital=True,
        tribe="romans", resources=Resources(10, 20, 30, 40), production=Resources(1, 2, 3, 4),
        warehouse_capacity=800, granary_capacity=800,
        buildings=(Building(26, "main_building", 5), Building(1, "woodcutter", 3)),
        build_queue=(order,),
    )
    return dataclasses.replace(v, **changes)  # type: ignore[arg-type]


# ---- Resources -------------------------------------------------------------------------

def test_resources_default_to_zero_and_add_subtract_per_resource() -> None:
    a, b = Resources(10, 20, 30, 40), Resources(1, 2, 3, 4)
    assert Resources() == Resources(0, 0, 0, 0)
    assert a + b == Resources(11, 22, 33, 44)
    assert a - b == Resources(9, 18, 27, 36)
    assert b - a == Resources(-9, -18, -27, -36)
    assert a + Resources() == a
    assert (a - b) + b == a
    assert a.total == 100
    assert list(a) == [10, 20, 30, 40]
    assert a.as_dict() == {"wood": 10, "clay": 20, "iron": 30, "wheat": 40}


@pytest.mark.parametrize(
    ("have", "need", "covers"),
    [
        (Resources(5, 5, 5, 5), Resources(5, 5, 5, 5), True),
        (Resources(5, 5, 5, 5), Resources(), True),
        (Resources(5, 5, 5, 5), Resources(6, 0, 0, 0), False),
        (Resources(5, 5, 5, 5), Resources(0, 6, 0, 0), False),
        (Resources(5, 5, 5, 5), Resources(0, 0, 6, 0), False),
        (Resources(5, 5, 5, 5), Resources(0, 0, 0, 6), False),
        (Resources(0, 0, 0, 0), Resources(1, 0, 0, 0), False),
        (Resources(100, 0, 100, 100), Resources(1, 1, 1, 1), False),
    ],
)
def test_resources_covers_needs_every_resource(have: Resources, need: Resources, covers: bool) -> None:
    assert have.covers(need) is covers


def test_resources_are_frozen_and_hashable() -> None:
    r = Resources(1, 2, 3, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.wood = 5  # type: ignore[misc]
    assert hash(r) == hash(Resources(1, 2, 3, 4))
    assert len({r, Resources(1, 2, 3, 4), Resources(0, 2, 3, 4)}) == 2


def test_resources_repr_and_str_are_readable() -> None:
    r = Resources(1, 2, 3, 4)
    assert repr(r) == "Resources(wood=1, clay=2, iron=3, wheat=4)"
    assert str(r) == "wood 1, clay 2, iron 3, wheat 4"


# ---- Troops ----------------------------------------------------------------------------

def test_troops_is_a_read_only_mapping_that_drops_zero_counts() -> None:
    t = Troops({"legionnaire": 10, "praetorian": 0}, equites_legati=2)
    assert isinstance(t, Mapping)
    assert dict(t) == {"equites_legati": 2, "legionnaire": 10}
    assert "praetorian" not in t
    assert len(t) == 2
    assert t["legionnaire"] == 10
    assert t.get("praetorian") == 0  # a count of nothing is 0
    assert t.get("praetorian", None) is None
    with pytest.raises(KeyError):
        t["praetorian"]
    assert t.total == 12
    assert t.as_dict() == {"equites_legati": 2, "legionnaire": 10}
    with pytest.raises(TypeError):
        t["legionnaire"] = 5  # type: ignore[index]
    with pytest.raises(AttributeError):
        t.extra = 1  # type: ignore[attr-defined]


def test_troops_copy_their_input() -> None:
    source = {"legionnaire": 10}
    t = Troops(source)
    source["legionnaire"] = 99
    t.as_dict()["legionnaire"] = 42
    assert t["legionnaire"] == 10


def test_troops_equality_ignores_zero_counts_and_order_and_hash_agrees() -> None:
    a = Troops({"legionnaire": 10, "praetorian": 0, "imperian": 3})
    b = Troops(imperian=3, legionnaire=10)
    assert a == b
    assert hash(a) == hash(b)
    assert a == {"imperian": 3, "legionnaire": 10}
    assert a == {"imperian": 3, "legionnaire": 10, "praetorian": 0}
    assert a != {"imperian": 3}
    assert a != Troops(imperian=3, legionnaire=11)
    assert a != "legionnaire"
    assert Troops() == {} and len(Troops()) == 0 and Troops().total == 0
    assert len({a, b, Troops(imperian=3)}) == 2


def test_troops_repr_lists_units_in_name_order() -> None:
    assert repr(Troops({"legionnaire": 10, "imperian": 3, "x": 0})) == "Troops(imperian=3, legionnaire=10)"
    assert repr(Troops()) == "Troops()"


def test_troops_html_escapes_unit_names() -> None:
    html = Troops({"<b>evil</b>": 1})._repr_html_()
    assert "<b>evil</b>" not in html
    assert "&lt;b&gt;evil&lt;/b&gt;" in html


# ---- Village and other values -----------------------------------------------------------

def test_village_public_face_drops_every_private_field() -> None:
    v = private_village()
    assert v.is_private_view
    pub = v.public()
    assert not pub.is_private_view
    for name in Village.PRIVATE_FIELDS:
        assert getattr(pub, name) is None, name
    for name in ("id", "name", "player_id", "x", "y", "population", "is_capital", "tribe"):
        assert getattr(pub, name) == getattr(v, name)
    assert pub.public() == pub
    assert v.is_private_view  # the original is untouched
    assert set(Village.PRIVATE_FIELDS) == {
        "resources", "production", "warehouse_capacity", "granary_capacity", "buildings",
        "build_queue",
    }


def test_village_level_reads_buildings_and_is_zero_when_unknown() -> None:
    v = private_village()
    assert v.level("main_building") == 5
    assert v.level("barracks") == 0
    assert v.public().level("main_building") == 0


def test_village_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        private_village().name = "x"  # type: ignore[misc]


def test_reprs_are_readable() -> None:
    text = repr(private_village().public())
    assert text.startswith("Village(id=1, name='Home', player_id=1, x=3, y=-4")
    assert text.endswith("public view)") and "resources" not in text
    assert repr(Building(26, "main_building", 5)) == "Building(slot=26, name='main_building', level=5)"


def test_a_village_repr_is_one_short_line_whatever_it_holds() -> None:
    buildings = tuple(Building(s, "woodcutter", 3) for s in range(1, 30))
    text = repr(private_village(buildings=buildings))
    assert "\n" not in text and len(text) < 200, text
    assert "29 buildings" in text and "1 in the build queue" in text
    assert "capital" in text


def test_reprs_show_times_readably_and_count_nested_values() -> None:
    order = private_village().build_queue[0]  # type: ignore[index]
    text = repr(order)
    assert "datetime.datetime" not in text
    assert "completes_at=2026-01-01 12:00:00 UTC" in text and "cost=wood 1, clay 2, iron 3, wheat 4" in text
    movement = tr.Movement(3, "raid", 1, 2, Troops(legionnaire=5), T0, T0)
    assert "troops=legionnaire 5" in repr(movement)
    report = tr.Report(1, 1, "battle", "x" * 500, None, T0, {"bounty": {"wood": 5}})
    assert len(repr(report)) < 300 and "village_id=–" in repr(report)


def test_html_repr_is_a_table_and_escapes_text() -> None:
    evil = private_village(name="<script>alert('x')</script> & co")
    html = evil._repr_html_()
    assert html.startswith("<table><caption>Village</caption>")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html and "&amp; co" in html
    # every field shows up as a row
    for f in dataclasses.fields(Village):
        assert f">{f.name}<" in html
    message = tr.Message(1, 1, 2, '<img src=x onerror="alert(1)">', "<b>", T0)
    assert "<img" not in message._repr_html_() and "<b>" not in message._repr_html_().replace(
        "<caption>", "").replace("</caption>", "")


def test_html_shows_times_readably_numbers_right_and_nested_values_as_rows() -> None:
    buildings = tuple(Building(s, "woodcutter", 1) for s in range(1, 19))
    html = private_village(buildings=buildings)._repr_html_()
    assert "items)" not in html
    assert html.count(">woodcutter<") == 18  # a row per building
    assert "2026-01-01 12:00:00 UTC" in tr.Message(1, 1, 2, "s", "b", T0)._repr_html_()
    assert "datetime" not in html and "+00:00" not in html
    assert "text-align:right" in html.split(">population<")[1].split("</tr>")[0]
    troops = Troops(legionnaire=5, imperian=2)._repr_html_()
    assert troops.index(">imperian<") < troops.index(">legionnaire<") < troops.index(">2<")


# ---- Errors ------------------------------------------------------------------------------

ERRORS = [
    tr.ConfigurationError, tr.NotFound, tr.Forbidden, tr.InvalidRequest, tr.RuleViolation,
    tr.Conflict, tr.BackendUnavailable, tr.SchemaMismatch,
]


@pytest.mark.parametrize("cls", ERRORS)
def test_every_error_is_a_travian_error_with_message_and_code(cls: type[tr.TravianError]) -> None:
    err = cls("something happened", details={"k": 1})
    assert isinstance(err, tr.TravianError) and isinstance(err, Exception)
    assert str(err) == "something happened" and err.message == "something happened"
    assert err.details == {"k": 1}
    assert isinstance(err.code, str) and err.code and err.code != tr.TravianError.code
    assert str(cls()) == cls.__name__  # never an empty message


def test_error_codes_are_distinct() -> None:
    classes = [*ERRORS, tr.InsufficientResources, tr.RateLimited, tr.TravianError]
    assert len({c.code for c in classes}) == len(classes)


def test_invalid_request_is_a_value_error() -> None:
    assert issubclass(tr.InvalidRequest, ValueError)
    with pytest.raises(ValueError):
        raise tr.InvalidRequest("bad")
    assert not issubclass(tr.RuleViolation, ValueError)


def test_insufficient_resources_carries_required_and_available() -> None:
    need, have = Resources(100, 50, 0, 10), Resources(20, 60, 0, 0)
    err = tr.InsufficientResources(required=need, available=have)
    assert isinstance(err, tr.RuleViolation) and isinstance(err, tr.TravianError)
    assert err.required == need and err.available == have
    assert err.details["required"] == need.as_dict()
    assert err.details["available"] == have.as_dict()
    assert "wood 100" in str(err) and "wood 20" in str(err)
    custom = tr.InsufficientResources("no", required=need, available=have, details={"village_id": 1})
    assert str(custom) == "no" and custom.details["village_id"] == 1
    assert custom.details["required"] == need.as_dict()


def test_rate_limited_carries_retry_after() -> None:
    err = tr.RateLimited(retry_after=2.5)
    assert err.retry_after == 2.5 and err.details["retry_after"] == 2.5
    assert isinstance(err, tr.TravianError) and str(err)
    assert tr.RateLimited().retry_after is None


def test_movement_kind_of_an_attack_kind() -> None:
    from travian_repo.domain.values import ATTACK_KINDS, MOVEMENT_KINDS, movement_kind

    assert movement_kind("normal") == "attack"
    assert [movement_kind(k) for k in ("raid", "siege")] == ["raid", "siege"]
    assert all(movement_kind(k) in MOVEMENT_KINDS for k in ATTACK_KINDS)
    with pytest.raises(KeyError):
        movement_kind("attack")  # a stored kind is not an attack kind
