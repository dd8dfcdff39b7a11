"""Amounts as people read them. The app stores and prints in JSON integer minor units (cents:
exact, and the contract); it knows no currency, so human output shows the usual two decimals.
Pure, and in the model so that both the CLI and `dev` (a lower layer) format alike.
"""

from __future__ import annotations

from collections.abc import Mapping

MINOR_DIGITS = 2


def readable(minor: int) -> str:
    """-5830 -> "-58.30". Integer arithmetic only, so amounts up to the model's 10^30 bound
    print exactly."""
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(minor), 10**MINOR_DIGITS)
    return f"{sign}{whole}.{part:0{MINOR_DIGITS}d}"


def readable_by_name(amounts: Mapping[str, int]) -> str:
    """Per-account or per-category figures on one line, by name: "card -3.40, checking 12.00"."""
    return ", ".join(f"{name} {readable(amount)}" for name, amount in sorted(amounts.items()))
