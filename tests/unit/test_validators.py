"""The primitive checks every layer shares: a bool is never a number."""

from __future__ import annotations

import math

import pytest

from travian_repo.domain.errors import InvalidRequest
from travian_repo.domain.validators import (
    check_int,
    check_timeout,
    is_finite_number,
    is_int,
    is_number,
)
from travian_repo.repositories import validation
from travian_repo.rules import data_file


@pytest.mark.parametrize("value", [True, False])
def test_a_bool_is_neither_an_int_nor_a_number(value: bool) -> None:
    assert not is_int(value) and not is_number(value) and not is_finite_number(value)
    with pytest.raises(InvalidRequest, match="must be an integer, got bool"):
        check_int(value, "count")
    with pytest.raises(InvalidRequest, match="timeout"):
        check_timeout(value)


def test_ints_and_numbers() -> None:
    assert is_int(0) and is_int(-3) and not is_int(2.0) and not is_int("1")
    assert is_number(2.5) and is_number(7) and is_number(math.nan) and not is_number("1")
    assert is_finite_number(2.5) and not is_finite_number(math.inf)
    assert not is_finite_number(math.nan)


def test_check_int_bounds_and_details() -> None:
    assert check_int(5, "x", low=1, high=5) == 5
    assert check_int(-10**9, "x") == -10**9  # no bound: open
    with pytest.raises(InvalidRequest, match="x must be between 1 and 5, got 6") as caught:
        check_int(6, "x", low=1, high=5)
    assert caught.value.details == {"field": "x", "value": 6, "min": 1, "max": 5}
    with pytest.raises(InvalidRequest, match="level must be >= 1, got 0"):
        check_int(0, "level", low=1)
    with pytest.raises(InvalidRequest, match="level must be <= 20, got 21"):
        check_int(21, "level", high=20)
    with pytest.raises(InvalidRequest, match="got float"):
        check_int(2.0, "level")


def test_the_repositories_and_the_rules_use_the_one_check_int() -> None:
    assert validation.check_int is check_int
    with pytest.raises(InvalidRequest, match="level must be between 1 and 20, got 0"):
        data_file.check_int(0, "level", minimum=1, maximum=20)
    with pytest.raises(InvalidRequest, match="must be an integer, got bool"):
        data_file.check_int(True, "level")


def test_check_timeout() -> None:
    assert check_timeout(None) is None
    assert check_timeout(0) == 0.0 and check_timeout(1.5) == 1.5
    for bad in (-1, math.nan, "1"):
        with pytest.raises(InvalidRequest, match="timeout must be None or a number of seconds"):
            check_timeout(bad)
