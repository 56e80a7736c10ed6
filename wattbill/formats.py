"""Display formatting, one place for every figure wattbill shows: money, kWh, shares, dates (zh, en).

Used by the bill documents (``wattbill.bills``), the label cards (``wattbill.labels``) and the command
line. Money is an integer number of fen everywhere inside wattbill; it is shown as yuan with two
decimals by integer arithmetic, never through a float. Other numbers are rounded half-up through
``Decimal`` (display only). Both languages group thousands with ``,`` and write yuan and kWh with
``.``; dates are ``2025年3月5日`` / ``5 Mar 2025`` (``day_month``: ``3月5日`` / ``5 March``).

Babel was weighed for this: it would not format integer fen exactly, and the two locales' number
formats are the same here, so it would serve the dates alone; the two date forms are written out.
"""

from __future__ import annotations

import datetime as _dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

_MONTHS_EN_LONG = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                   "October", "November", "December")
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


def format_yuan(fen: int, grouping: bool = True) -> str:
    """Fen -> yuan text with two decimals, by integer arithmetic ("1,234.05", "-0.50").

    Parameters
    ----------
    fen : int
        Amount [fen]; must be an integer (floats are refused: money is never a float).
    grouping : bool
        Thousands separators.

    Raises
    ------
    TypeError
        ``fen`` is not an ``int`` (a float, a bool, a Decimal).
    """
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"money must be an integer number of fen, got {type(fen).__name__}")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}" if grouping else f"{sign}{whole}.{cents:02d}"


def yuan(fen: int | None, *, sign: bool = False, grouping: bool = True) -> str:
    """1234567 -> '12,345.67' (integer arithmetic); None -> '–'. ``sign=True`` adds '+' if positive."""
    if fen is None:
        return "–"
    fen = int(fen)
    text = format_yuan(fen, grouping)
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
    """Wh -> kWh text rounded half-up to ``places`` (3456789 -> '3,456.8'); None -> '–'."""
    if wh is None:
        return "–"
    return kwh(Decimal(int(wh)) / 1000, places)


def kwh_exact(wh: int) -> str:
    """Wh -> kWh without rounding or grouping, trailing zeros dropped (310000 -> '310', 3500 -> '3.5')."""
    wh = int(wh)
    sign = "-" if wh < 0 else ""
    whole, frac = divmod(abs(wh), 1000)
    return f"{sign}{whole}" + (f".{frac:03d}".rstrip("0") if frac else "")


def number(value: Any, places: int = 0, grouping: bool = False) -> str:
    """A plain number rounded half-up (away from zero) to ``places`` (86.45 -> '86'); None, NaN -> '–'."""
    dec = _dec(value)
    if dec is None:
        return "–"
    q = Decimal(1).scaleb(-places) if places else Decimal(1)
    dec = dec.quantize(q, rounding=ROUND_HALF_UP)
    return f"{dec:,.{places}f}" if grouping else f"{dec:.{places}f}"


def pct(value: Any, places: int = 0) -> str:
    """A number already in percent (12.345) -> '12%' / '12.3%'. Display only."""
    dec = _dec(value)
    if dec is None:
        return "–"
    q = Decimal(1).scaleb(-places) if places else Decimal(1)
    return f"{dec.quantize(q, rounding=ROUND_HALF_UP):,.{places}f}%"


def points(value: Any, places: int = 1) -> str:
    """A change in percentage points, signed: 1.25 -> '+1.3', -0.04 -> '-0.0'; None, NaN -> '–'."""
    dec = _dec(value)
    if dec is None:
        return "–"
    q = Decimal(1).scaleb(-places) if places else Decimal(1)
    return f"{dec.quantize(q, rounding=ROUND_HALF_UP):+.{places}f}"


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


def date(value: Any, language: str, *, year: bool = True) -> str:
    """A date: '2025年3月5日' / '5 Mar 2025'; ``year=False``: the day of the year, '3月5日' / '5 March'.
    None -> '–'."""
    d = as_date(value)
    if d is None:
        return "–"
    if language == "en":
        return f"{d.day} {_MONTHS_EN[d.month - 1]} {d.year}" if year else f"{d.day} {_MONTHS_EN_LONG[d.month - 1]}"
    return f"{d.year}年{d.month}月{d.day}日" if year else f"{d.month}月{d.day}日"


def day_month(value: Any, language: str) -> str:
    """A day of the year without the year: '3月5日' / '5 March' (:func:`date` with ``year=False``)."""
    return date(value, language, year=False)


def month_short(month: int, language: str) -> str:
    if language == "en":
        return _MONTHS_EN[month - 1]
    return f"{month}月"


def day_runs(runs: Any, language: str | None = None, limit: int = 3) -> str:
    """Runs of days ``[(first, last), ...]`` (dates or ISO strings), at most ``limit`` then how many more.

    ``language`` None: ISO dates for operators and logs ('2025-02-01 to 2025-12-31, 2025-03-15 and 2
    more'); 'zh' / 'en': days of the year as a statement says them ('2月1日至12月31日、3月15日等4段' /
    '1 February to 31 December, 15 March and 2 more')."""
    runs = [(as_date(a), as_date(b)) for a, b in runs]

    def one(d: Any) -> str:
        return d.isoformat() if language is None else day_month(d, language)

    sep, to = ("、", "至") if language == "zh" else (", ", " to ")
    text = sep.join(one(a) if a == b else f"{one(a)}{to}{one(b)}" for a, b in runs[:limit])
    if len(runs) > limit:
        text += f"等{len(runs)}段" if language == "zh" else f" and {len(runs) - limit} more"
    return text
