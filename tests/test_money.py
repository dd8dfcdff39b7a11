"""Human output's amounts: minor units shown with two decimals, exactly, at any size."""

from __future__ import annotations

import pytest

from worker.model.money import readable, readable_by_name


@pytest.mark.parametrize(
    ("minor", "shown"),
    [
        (-5830, "-58.30"),
        (5830, "58.30"),
        (0, "0.00"),
        (5, "0.05"),
        (-5, "-0.05"),
        (-100, "-1.00"),
        (10**29 + 1, "1" + "0" * 27 + ".01"),
    ],
)
def test_minor_units_read_with_two_decimals(minor: int, shown: str) -> None:
    assert readable(minor) == shown


def test_figures_by_name_are_sorted_and_readable() -> None:
    assert readable_by_name({"checking": 320000, "card": -5830}) == "card -58.30, checking 3200.00"
