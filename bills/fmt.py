"""Display formatting for bills: money (integer arithmetic only), kWh, percentages, dates.

Money is an integer number of fen everywhere inside wattbill; it is shown as yuan with two
decimals by integer division, never through a float.
"""

from __future__ import annotations

import datetime as _dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from wattbill.labels import format_yuan

_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def to_fen(value: Any) -> int | None:
    """Yuan (Decimal, int or decimal string) -> fen, rounded half-up. None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("money cannot be a bool")
    if isinstance(value, float):
        # Never do money arithmetic in binary floating point: go through the shortest repr.
        value = repr(value)
    try:
        dec = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount of money: {value!r}") from exc
    return int((dec * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def yuan(fen: int | None, *, sign: bool = False) -> str:
    """1234567 -> '12,345.67' (integer arithmetic). ``sign=True`` adds '+' for positive values."""
    if fen is None:
        return "–"
    fen = int(fen)
    text = format_yuan(fen)
    return "+" + text if sign and fen > 0 else text


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        return Decimal(repr(value))
    return Decimal(str(value))


def kwh(value: Any, places: int = 1) -> str:
    """kWh (float, Decimal, int or str) -> '3,456.8', rounded half-up to ``places``."""
    dec = _dec(value)
    if dec is None:
        return "–"
    q = Decimal(1).scaleb(-places) if places else Decimal(1)
    dec = dec.quantize(q, rounding=ROUND_HALF_UP)
    return f"{dec:,.{places}f}"


def kwh_from_wh(wh: int | None, places: int = 1) -> str:
    if wh is None:
        return "–"
    return kwh(Decimal(int(wh)) / 1000, places)


def pct(value: Any, places: int = 0) -> str:
    """A number already in percent (12.345) -> '12%' / '12.3%'. Display only."""
    dec = _dec(value)
    if dec is None:
        return "–"
    q = Decimal(1).scaleb(-places) if places else Decimal(1)
    return f"{dec.quantize(q, rounding=ROUND_HALF_UP):,.{places}f}%"


def share(value: Any, places: int = 0) -> str:
    """A share 0..1 -> percent text."""
    dec = _dec(value)
    if dec is None:
        return "–"
    return pct(dec * 100, places)


def as_date(value: Any) -> _dt.date | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    return _dt.date.fromisoformat(str(value)[:10])


def date(value: Any, language: str) -> str:
    d = as_date(value)
    if d is None:
        return "–"
    if language == "en":
        return f"{d.day} {_MONTHS_EN[d.month - 1]} {d.year}"
    return f"{d.year}年{d.month}月{d.day}日"


def month_short(month: int, language: str) -> str:
    if language == "en":
        return _MONTHS_EN[month - 1]
    return f"{month}月"
