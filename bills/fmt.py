"""Display formatting for bills: the one formatter of wattbill, :mod:`wattbill.formats`, under its old name."""

from wattbill.formats import (
    as_date,
    date,
    day_month,
    day_runs,
    format_yuan,
    kwh,
    kwh_exact,
    kwh_from_wh,
    month_short,
    number,
    pct,
    share,
    to_fen,
    yuan,
)

__all__ = ["as_date", "date", "day_month", "day_runs", "format_yuan", "kwh", "kwh_exact", "kwh_from_wh", "month_short", "number", "pct",
           "share", "to_fen", "yuan"]
