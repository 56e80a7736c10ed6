"""Physical and format limits of what wattbill accepts: one place for each rule, used by ingest (which
quarantines what breaks them) and by the bill run (which leaves out a household whose stored data
breaks them, with the reason, instead of stopping).

Daily energy
    A residential connection in China is single-phase 220 V (GB/T 156-2017, *Standard voltages*) metered
    by a single-phase smart meter of maximum current 60 A (rating 5(60) A, Q/GDW 1364-2013, *Technical
    specification of single-phase smart electricity meters*). The most it can draw in a day is
    60 A x 220 V x 24 h = 316.8 kWh. ``WATTBILL_MAX_DAILY_KWH`` raises (or lowers) the limit, e.g. for
    three-phase residential connections (3 x 60 A x 220 V x 24 h = 950.4 kWh).

Money
    A payment is at most ``MAX_AMOUNT_FEN`` (10,000,000.00 yuan: far beyond any household's bill, far
    below where integer fen could overflow int64). Amounts are plain decimals with at most two decimals
    (``1234.50``); a thousands separator is accepted only in groups of three digits (``1,234.50``), so
    that ``269,55`` (a decimal comma) is refused, never read as 26,955.

Dates
    ISO 8601 (``2025-01-02``), ``2025/1/2`` and ``20250102``: year first, never ambiguous. A day-first or
    month-first date (``01/02/2025``) is refused unless the caller states the order
    (``date_order="dmy"`` or ``"mdy"``; the ``--date-order`` option of ``wattbill ingest``).
"""

from __future__ import annotations

#: 60 A x 220 V x 24 h in Wh (Q/GDW 1364-2013 Imax, GB/T 156-2017 nominal voltage)
DEFAULT_MAX_DAILY_WH = 60 * 220 * 24
MAX_DAILY_SOURCE = "60 A x 220 V x 24 h (Q/GDW 1364-2013 single-phase meter Imax, GB/T 156-2017 220 V)"

#: the largest payment accepted, in fen (10 million yuan)
MAX_AMOUNT_FEN = 1_000_000_000

#: date orders a file may state for slash dates that do not start with the year
DATE_ORDERS = ("ymd", "dmy", "mdy")


def max_daily_wh() -> int:
    """The most energy a connection can use in one day [Wh].

    Returns
    -------
    int
        ``WATTBILL_MAX_DAILY_KWH`` x 1000 when set (a positive number), else 316,800 Wh.

    Raises
    ------
    wattbill.errors.WattbillError
        ``WATTBILL_MAX_DAILY_KWH`` is set but is not a positive number below 1e9 (``settings.get_settings``:
        one line naming the setting, exit 1 on the CLI).

    References
    ----------
    Q/GDW 1364-2013 (single-phase smart meters, 5(60) A); GB/T 156-2017 (standard voltages, 220 V).
    """
    from wattbill.settings import get_settings

    kwh = get_settings().max_daily_kwh  # (validated there: a positive number below 1e9, one line if not)
    if kwh is None:
        return DEFAULT_MAX_DAILY_WH
    return round(kwh * 1000)


def limit_text(limit_wh: int | None = None) -> str:
    """The limit as shown in reasons: ``316.8 kWh/day (60 A x 220 V x 24 h ...)``."""
    wh = max_daily_wh() if limit_wh is None else limit_wh
    src = MAX_DAILY_SOURCE if wh == DEFAULT_MAX_DAILY_WH else "WATTBILL_MAX_DAILY_KWH"
    return f"{wh / 1000:g} kWh/day ({src})"
