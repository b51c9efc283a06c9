"""Money: exact decimal USD, stored as integer ten-thousandths (the API shows 4 decimals)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

#: Every amount is a whole number of these units: 1 unit = 0.0001 USD.
UNITS_PER_USD = 10_000
#: Far above any real balance; keeps amounts inside a signed 64-bit column.
MAX_UNITS = 10**15


class MoneyError(ValueError):
    """An amount that is not a non-negative USD value with at most 4 decimals."""


def parse_usd(text: str | Decimal | int) -> int:
    """Parse ``"10.00"`` into units, refusing floats' imprecision, negatives and sub-unit fractions."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise MoneyError(f"not a decimal amount: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise MoneyError(f"amount must be a non-negative number: {text!r}")
    scaled = value * UNITS_PER_USD
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"amount has more than 4 decimals: {text!r}")
    units = int(scaled)
    if units > MAX_UNITS:
        raise MoneyError(f"amount too large: {text!r}")
    return units


def format_usd(units: int) -> str:
    """Units to the wire form: a decimal string with exactly 4 decimals (``"0.0009"``)."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), UNITS_PER_USD)
    return f"{sign}{whole}.{frac:04d}"
