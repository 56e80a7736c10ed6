"""Validation, estimation and editing (VEE): pure functions from raw frames to canonical frames.

Input of every function: a *raw* frame with a 1-based ``row`` column (Int64, the data row of the file)
and the file's columns renamed to canonical names (``ingest.schemas.ALIASES``), values as text (CSV)
or typed (Parquet). Output: a ``VeeResult`` with the canonical rows, quarantine rows and findings.
Every raw row ends in exactly one of: loaded, quarantined, duplicate (counted once).

Rules (documented here, tested in ``tests/ingest``):

* **Values**: a missing or non-numeric value is never read as zero: the row is quarantined
  (``missing_value``, ``non_numeric``); negative registers/consumption ``negative_value``. Dates are
  ISO ``YYYY-MM-DD`` (``YYYY/MM/DD`` and ``YYYYMMDD`` accepted); a date that does not exist
  (2024-02-30) is ``impossible_date``; before 1990 or after tomorrow ``implausible_date``.
* **Duplicates** (same customer, meter, day): identical rows count once (the rest are ``duplicates``);
  rows that disagree are all quarantined (``conflicting_duplicate``): we cannot know which is right.
* **Registers → consumption**: consumption of a day is ``(read - previous read) x multiplier``. The
  first read of a meter only anchors, unless the store holds the meter's last read from an earlier
  file (``REGISTER_STATE_SCHEMA``, passed as ``anchors``): then that read is the previous one, so
  consecutive files need not overlap (a gap between them is estimated like any gap).
* **Gaps**: when reads are ``g > 1`` days apart, the difference is split over the ``g`` days (integer
  division, the remainder 1 Wh at a time to the first days), so the register difference across the
  gap is kept exactly; the days are flagged ``estimated`` and a ``gap_estimated`` finding records it.
* **Bad reads before rollovers** (``ingest.kernels.register_deltas``): a read where a register goes
  down is a bad read when one of the meter's next 7 reads is back at or above the last accepted read
  in every register, whatever the register's size (quarantined ``negative_consumption``; the days
  around it are estimated from the reads on either side, so two bad reads in a row, or a bad period
  register alone, are handled alike); a read above both neighbours, which are in line with each
  other, is a bad read too (``out_of_line_read``); the last read of a meter in a file that went down
  is held back (``unconfirmed_drop``) until a later file shows whether it comes back; so is a last read
  whose consumption is beyond the physical limit (``implausible_consumption``, a read written in Wh at
  the end of a file).
* **Rollover**: a register that goes down and stays down wrapped when its size is known: ``digits``
  from the file, else the integer digits of the largest total the meter has shown (its history,
  with the stored last read of earlier files), never of one low value; the read before was within
  the top 10 % of ``10**digits`` kWh and the wrapped difference within its first 10 %: the
  difference is taken across the wrap (finding ``rollover``).
* **Register reset**: a register that goes down and stays down and did not wrap (register reset or
  replaced under the same id): the low read re-anchors the meter (finding ``register_reset``); the
  reset day has no consumption.
* **Meter exchange**: a customer whose meter id changes: the old meter's last read and the new meter's
  first read bound the exchange; the new meter's first read anchors it; both meters' rows are kept and
  billing sums meters per customer and day (finding ``meter_exchange`` with both reads as evidence).
* **Period registers of a meter**: the periods with a value on some row of the meter. A period column
  that is absent, or blank on every row of a meter, means the meter has no such register (two-period
  meters: 峰 and 谷 only): it stays null, it is not 0 and not a reason to quarantine; a row blank in a
  period the meter has elsewhere is quarantined (``missing_value``).
* **Periods vs total** (``total`` is authoritative for tiers, the periods give the time-of-use
  shares: design.md, "Reads"): when ``|sum(periods) - total| <= max(50 Wh, 1 % of total)`` the
  largest period absorbs the difference silently (rounding of the registers); beyond that the
  periods the meter has are scaled to the total, keeping their shares (finding ``periods_mismatch``
  with both values). A day with kWh and periods summing to 0 gives its kWh to the flat register; a
  meter without one has no share that day: its periods are null and the day is priced like a meter
  without time-of-use registers, at the tariff's ``unsplit`` period (``tariffs.reference``, rule 2).
  Every path that prices kWh takes absent registers as "no kWh in that period" (``diagnostics.densify``).
* **Spikes**: a day above ``max(5 x the household's median day, median + 20 kWh)`` (with at least
  14 measured days) is flagged only (finding ``spike``), never changed: real usage can spike.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from wattbill import _arrow
from wattbill.ingest import kernels, limits
from wattbill.ingest.schemas import (
    CHANNEL_ALIASES,
    CHANNELS,
    CUSTOMER_SCHEMA,
    DAILY_SCHEMA,
    FINDING_SCHEMA,
    PAYMENT_SCHEMA,
    QUARANTINE_SCHEMA,
    REGISTERS,
    is_sorted_by,
)
from wattbill.years import MIN_DATE, latest_date

SPIKE_FACTOR = 5
SPIKE_MIN_EXCESS_WH = 20_000
SPIKE_MIN_DAYS = 14
PERIOD_TOL_WH = 50
PERIOD_TOL_FRAC = 0.01


@dataclass
class VeeResult:
    """Result of VEE on one raw frame (or one customer batch of it)."""

    rows: int
    frame: pl.DataFrame  # DAILY / CUSTOMER / PAYMENT schema
    quarantine: pl.DataFrame  # row, column, code, reason (raw added by the caller)
    findings: pl.DataFrame  # FINDING_SCHEMA without file_sha256
    duplicates: int
    loaded: int
    estimated: int = 0
    extra: dict = field(default_factory=dict)
    state: pl.DataFrame | None = None  # registers: the last accepted read of each meter
    heads: pl.DataFrame | None = None  # registers: first reads without an earlier read (``IngestBatch``)

    @property
    def quarantined(self) -> int:
        return self.quarantine.height


Q_COLS = {"row": pl.Int64(), "column": pl.Utf8(), "code": pl.Utf8(), "reason": pl.Utf8()}
F_COLS = {k: v for k, v in FINDING_SCHEMA.items() if k != "file_sha256"}


def _empty_q() -> pl.DataFrame:
    return pl.DataFrame(schema=Q_COLS)


def _empty_f() -> pl.DataFrame:
    return pl.DataFrame(schema=F_COLS)


# --- parsing helpers -------------------------------------------------------------------------


def _prep(df: pl.DataFrame, nums: tuple[str, ...] = (), dates: tuple[str, ...] = ()) -> pl.DataFrame:
    """Parse every column once: ``__t_<c>`` text, ``__n_<c>`` number, ``__d_<c>`` date (used by the helpers).

    Fast paths first (a plain cast, ISO dates); the slower forms (surrounding spaces, ``YYYY/MM/DD``,
    ``YYYYMMDD``) are tried only when a column has values the fast path could not read.
    """
    cols = [c for c in df.columns if c != "row" and not c.startswith("_")]
    exprs = []
    plain = _plain_text_columns(df, [c for c in cols if c not in nums and c not in dates])
    for c in cols:
        if c in nums and df.schema[c] == pl.Utf8:
            exprs.append(pl.when(pl.col(c).str.len_bytes() > 0).then(pl.col(c)).alias(f"__t_{c}"))
        elif (c in nums or c in dates) and df.schema[c] != pl.Utf8:
            pass  # typed (Parquet, or a clean CSV read typed): present = not null (see ``_present``)
        elif c in plain:
            exprs.append(pl.col(c).alias(f"__t_{c}"))  # no blanks, no surrounding spaces: as it is
        else:
            exprs.append(_text(df, c).alias(f"__t_{c}"))
    df = df.with_columns(exprs)
    out = []
    for c in nums:
        if c not in df.columns:
            continue
        if df.schema[c].is_numeric():
            e = pl.col(c).cast(pl.Float64)
        else:
            e = pl.col(c).cast(pl.Float64, strict=False)
        out.append(pl.when(e.is_finite()).then(e).alias(f"__n_{c}"))
    for c in dates:
        if c not in df.columns:
            continue
        dtype = df.schema[c]
        if dtype == pl.Date:
            out.append(pl.col(c).alias(f"__d_{c}"))
        elif isinstance(dtype, pl.Datetime):
            out.append(pl.col(c).dt.date().alias(f"__d_{c}"))
        else:
            out.append(pl.col(c).str.to_date("%Y-%m-%d", strict=False).alias(f"__d_{c}"))
    df = df.with_columns(out)
    # slow paths, only where needed
    fix = []
    for c in nums:
        if c in df.columns and df.schema[c] == pl.Utf8:
            miss = pl.col(f"__n_{c}").is_null() & pl.col(f"__t_{c}").is_not_null()
            if df.select(miss.any()).item():
                t = pl.col(c).str.strip_chars()
                e = t.cast(pl.Float64, strict=False)
                fix.append(
                    pl.when(miss)
                    .then(pl.when(e.is_finite()).then(e))
                    .otherwise(pl.col(f"__n_{c}"))
                    .alias(f"__n_{c}")
                )
                fix.append(pl.when(t.str.len_bytes() > 0).then(pl.col(f"__t_{c}")).alias(f"__t_{c}"))
    for c in dates:
        if c in df.columns and df.schema[c] == pl.Utf8:
            miss = pl.col(f"__d_{c}").is_null() & pl.col(f"__t_{c}").is_not_null()
            if df.select(miss.any()).item():
                t = pl.col(f"__t_{c}")
                alt = pl.coalesce(
                    t.str.to_date("%Y-%m-%d", strict=False),
                    t.str.to_date("%Y/%m/%d", strict=False),
                    t.str.to_date("%Y%m%d", strict=False),
                )
                fix.append(pl.when(miss).then(alt).otherwise(pl.col(f"__d_{c}")).alias(f"__d_{c}"))
    if fix:
        df = df.with_columns(fix)
    return df


def _plain_text_columns(df: pl.DataFrame, cols: list[str]) -> set[str]:
    """The text columns of ``cols`` with no missing or empty value and no value with surrounding white
    space: they need no stripping (stripping 2M strings is not cheap; this scan of polars' string
    views in place is)."""
    out = set()
    for c in cols:
        if df.schema[c] != pl.Utf8 or df.height == 0 or df[c].null_count():
            continue
        s = df[c].rechunk() if df[c].n_chunks() > 1 else df[c]
        verdict = _arrow.plain_text(s)  # the string views in place, no copy
        if verdict < 0:  # long ids, or no views: copy to offsets + bytes
            large = s.to_arrow().cast(pa.large_string())
            if isinstance(large, pa.ChunkedArray):
                large = large.combine_chunks()
            _, offsets, data = large.buffers()
            off = np.frombuffer(offsets, np.int64)[large.offset : large.offset + len(large) + 1]
            verdict = int(data is not None and kernels.plain_strings(off, np.frombuffer(data, np.uint8)))
        if verdict == 1:
            out.add(c)
    return out


def _payment_channel(df: pl.DataFrame) -> pl.Expr:
    """A payment's channel as its code: stripped, lower-cased, Chinese names mapped (``CHANNEL_ALIASES``)."""
    return _text(df, "channel").str.to_lowercase().replace(CHANNEL_ALIASES)


def _text(df: pl.DataFrame, name: str) -> pl.Expr:
    """A column as stripped text; empty -> null."""
    if f"__t_{name}" in df.columns:
        return pl.col(f"__t_{name}")
    if name not in df.columns:
        return pl.lit(None, dtype=pl.Utf8)
    e = pl.col(name)
    if df.schema[name] != pl.Utf8:
        e = e.cast(pl.Utf8)
    e = e.str.strip_chars()
    return pl.when(e == "").then(None).otherwise(e)


def _number(df: pl.DataFrame, name: str) -> pl.Expr:
    """Float64 or null; NaN/inf become null (then flagged non-numeric because the text was present)."""
    if f"__n_{name}" in df.columns:
        return pl.col(f"__n_{name}")
    dtype = df.schema[name]
    if dtype.is_numeric():
        e = pl.col(name).cast(pl.Float64)
    else:
        e = _text(df, name).cast(pl.Float64, strict=False)
    return pl.when(e.is_finite()).then(e).otherwise(None)


def _date(df: pl.DataFrame, name: str) -> pl.Expr:
    if f"__d_{name}" in df.columns:
        return pl.col(f"__d_{name}")
    if name not in df.columns:
        return pl.lit(None, dtype=pl.Date)
    dtype = df.schema[name]
    if dtype == pl.Date:
        return pl.col(name)
    if isinstance(dtype, pl.Datetime):
        return pl.col(name).dt.date()
    t = _text(df, name)
    return pl.coalesce(
        t.str.to_date("%Y-%m-%d", strict=False),
        t.str.to_date("%Y/%m/%d", strict=False),
        t.str.to_date("%Y%m%d", strict=False),
    )


def _present(df: pl.DataFrame, name: str) -> pl.Expr:
    if name not in df.columns:
        return pl.lit(False)
    if f"__t_{name}" not in df.columns and df.schema[name] != pl.Utf8:
        return pl.col(name).is_not_null()  # a typed value is there or not
    return _text(df, name).is_not_null()


def _wh_of(df: pl.DataFrame, name: str) -> pl.Expr | pl.Series:
    """Column ``name`` (kWh) in integer Wh, rounded half to even (as ``_wh``); numpy's ``rint`` when the
    parsed column has no nulls, else the polars expression. (A numba kernel did this until the
    library's measurement: 4.4x numpy on the operation, 12 ms per 2.2M reads, ~3 % of the ingest.)"""
    col = f"__n_{name}" if f"__n_{name}" in df.columns else name
    s = df[col]
    if s.dtype == pl.Float64 and s.null_count() == 0 and df.height:
        return pl.Series(name, np.rint(s.to_numpy() * 1000.0).astype(np.int64))
    return _wh(_number(df, name)).alias(name)


def _wh(x: pl.Expr) -> pl.Expr:
    return (x * 1000).round(0).cast(pl.Int64)


class _Checks:
    """Accumulate (condition, column, code, reason) checks; the first failing one wins per row."""

    def __init__(self) -> None:
        self.items: list[tuple[pl.Expr, str | None, str, str]] = []

    def add(self, cond: pl.Expr, column: str | None, code: str, reason: str) -> None:
        self.items.append((cond, column, code, reason))

    def exprs(self) -> list[pl.Expr]:
        if not self.items:
            return [
                pl.lit(None, pl.Utf8).alias("_qcode"),
                pl.lit(None, pl.Utf8).alias("_qcol"),
                pl.lit(None, pl.Utf8).alias("_qreason"),
            ]
        out = []
        for idx, alias in ((2, "_qcode"), (1, "_qcol"), (3, "_qreason")):
            first = self.items[0]
            chain: Any = pl.when(first[0]).then(pl.lit(first[idx], pl.Utf8))
            for it in self.items[1:]:
                chain = chain.when(it[0]).then(pl.lit(it[idx], pl.Utf8))
            out.append(chain.otherwise(pl.lit(None, pl.Utf8)).alias(alias))
        return out


#: a date that does not start with its year: day-first or month-first, ambiguous (ingest.limits)
AMBIGUOUS_DATE_RE = r"^[0-9]{1,2}[/.\-][0-9]{1,2}[/.\-][0-9]{2,4}$"


def _date_checks(chk: _Checks, df: pl.DataFrame, name: str, required: bool, today: dt.date) -> None:
    if name not in df.columns:
        return
    if required:
        chk.add(~_present(df, name), name, "missing_value", f"{name} is missing")
    d = _date(df, name)
    if df.schema[name] == pl.Utf8:
        chk.add(
            _text(df, name).str.contains(AMBIGUOUS_DATE_RE).fill_null(False),
            name,
            "ambiguous_date",
            f"{name} is day-first or month-first (01/02/2025): state the order (--date-order dmy|mdy) "
            "or write ISO dates (2025-02-01)",
        )
    chk.add(_present(df, name) & d.is_null(), name, "impossible_date", f"{name} is not a real date")
    chk.add(
        d.is_not_null() & ((d < MIN_DATE) | (d > latest_date(today))),
        name,
        "implausible_date",
        f"{name} is before {MIN_DATE} or in the future",
    )


def _num_checks(chk: _Checks, df: pl.DataFrame, name: str, required: bool, negative_ok: bool = False) -> None:
    if name not in df.columns:
        return
    if required:
        chk.add(~_present(df, name), name, "missing_value", f"{name} is missing")
    n = _number(df, name)
    chk.add(_present(df, name) & n.is_null(), name, "non_numeric", f"{name} is not a number")
    if not negative_ok:
        chk.add(n < 0, name, "negative_value", f"{name} is negative")


def _read_checks(chk: _Checks, raw: pl.DataFrame, today: dt.date, total: str, periods: list[str]) -> None:
    """The checks every meter read gets: ids present, a plausible date, a number for ``total`` and
    each of ``periods`` (the file's column names), a positive ``multiplier`` where one is given."""
    for c in ("customer_id", "meter_id"):
        chk.add(~_present(raw, c), c, "missing_value", f"{c} is missing")
    _date_checks(chk, raw, "read_date", True, today)
    _num_checks(chk, raw, total, True)
    for p in periods:
        _num_checks(chk, raw, p, False)
    _magnitude_checks(chk, raw, [total, *periods], consumption=total.startswith("kwh_"))
    if "multiplier" in raw.columns:
        m = _number(raw, "multiplier")
        chk.add(
            _present(raw, "multiplier") & (m.is_null() | (m <= 0)),
            "multiplier",
            "bad_multiplier",
            "multiplier is not a positive number",
        )


#: the largest register value accepted [kWh]: a 12-digit register (``digits`` is at most 12)
MAX_REGISTER_KWH = 1e12


def _magnitude_checks(chk: _Checks, raw: pl.DataFrame, cols: list[str], consumption: bool) -> None:
    """Values no meter can show: a register beyond 12 digits (``1e308``), or a day's consumption beyond
    what a residential connection can draw (``ingest.limits.max_daily_wh``, times the ``multiplier``
    where one is given: the limit is on the energy, not the meter's reading)."""
    limit_kwh = limits.max_daily_wh() / 1000
    mult = (
        pl.when(_number(raw, "multiplier") > 0).then(_number(raw, "multiplier")).otherwise(1.0)
        if "multiplier" in raw.columns
        else pl.lit(1.0)
    )
    for c in cols:
        if c not in raw.columns:
            continue
        n = _number(raw, c)
        if consumption:
            chk.add(
                (n * mult > limit_kwh).fill_null(False),
                c,
                "implausible_value",
                f"{c} is more than a residential connection can use in a day: {limits.limit_text()}",
            )
        else:
            chk.add(
                (n >= MAX_REGISTER_KWH).fill_null(False),
                c,
                "implausible_value",
                f"{c} is beyond any meter register (at most 12 digits of kWh)",
            )


def _tou_flag(df: pl.DataFrame, periods: list[str]) -> pl.Expr:
    """``_tou``: the meter has time-of-use registers (any period value on any of its rows)."""
    has = pl.any_horizontal([pl.col(p).is_not_null() for p in periods])
    col = df.select(has.alias("h"))["h"]
    if col.all():
        return pl.lit(True).alias("_tou")
    if not col.any():
        return pl.lit(False).alias("_tou")
    return has.any().over("customer_id", "meter_id").alias("_tou")


def _incomplete_tou(df: pl.DataFrame, periods_in: list[str], column_prefix: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Flag ``_tou`` meters; quarantine their rows that miss a period the meter has (``missing_value``).

    A meter's period registers are the periods with a value on some row of the meter: a column that
    is absent, or present and blank on every row of a meter, means the meter has no such register
    (two-period meters: 峰 and 谷 only), not 0 and not a bad row; it stays null. A row that misses a
    period the meter has on its other rows is quarantined, naming the first such period
    (``column_prefix`` + period, the file's own column name).
    """
    if not periods_in:
        return df.with_columns(pl.lit(False).alias("_tou")), _empty_q()
    df = df.with_columns(_tou_flag(df, periods_in))
    nulls = df.select([pl.col(p).null_count() for p in periods_in]).row(0)
    gappy = [p for p, k in zip(periods_in, nulls, strict=True) if 0 < k < df.height]
    if not gappy:  # every period on every row or on none: nothing to check per meter
        return df, _empty_q()
    miss = pl.lit(None, pl.Utf8)
    for p in reversed(gappy):
        has = pl.col(p).is_not_null().any().over("customer_id", "meter_id")
        miss = pl.when(pl.col(p).is_null() & has).then(pl.lit(f"{column_prefix}{p}")).otherwise(miss)
    df = df.with_columns(miss.alias("_miss"))
    bad = df.filter(pl.col("_miss").is_not_null())
    q = bad.select(
        "row",
        pl.col("_miss").alias("column"),
        pl.lit("missing_value").alias("code"),
        _fmt("{} is missing on a meter that has this register", pl.col("_miss")).alias("reason"),
    )
    return df.filter(pl.col("_miss").is_null()).drop("_miss"), q


def _split_quarantine(df: pl.DataFrame, chk: _Checks) -> tuple[pl.DataFrame, pl.DataFrame]:
    code, col, reason = chk.exprs()
    flags = df.select(code)["_qcode"]
    if flags.null_count() == df.height:  # nothing to quarantine: no copy of the frame
        return df, _empty_q()
    bad_mask = flags.is_not_null()
    bad = df.filter(bad_mask).select(
        pl.col("row").cast(pl.Int64),
        col.alias("column"),
        code.alias("code"),
        reason.alias("reason"),
    )
    return df.filter(~bad_mask), bad


def _dedupe(
    df: pl.DataFrame, keys: list[str], values: list[str], what: str
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Identical rows on ``keys`` count once; disagreeing ones are all quarantined.

    Returns the frame sorted by ``keys``. Only rows whose key repeats go through the group logic.
    """
    if df.height == 0:
        return df, _empty_q(), 0
    df = _sort_if_needed(df, keys)
    same_prev = pl.all_horizontal([pl.col(k) == pl.col(k).shift(1) for k in keys]).fill_null(False)
    flag = df.select((same_prev | same_prev.shift(-1).fill_null(False)).alias("_d"))["_d"]
    if not flag.any():
        return df, _empty_q(), 0
    rest = df.filter(~flag)
    sub, q, dups = _dedupe_groups(df.filter(flag), keys, values, what)
    return _sort_if_needed(pl.concat([rest, sub], how="vertical_relaxed"), keys), q, dups


def _deduped_result(rows: int, df: pl.DataFrame, q1: pl.DataFrame, schema: dict[str, pl.DataType],
                    keys: list[str], what: str, *, by_row: bool) -> VeeResult:
    """The result of a table without findings (customers, payments, interactions): ``df`` (the rows
    that passed the checks) deduplicated on ``keys``, cast to ``schema``, its quarantine after ``q1``
    (the checks'); loaded = rows - quarantined - duplicates. ``by_row``: in input order, else by key."""
    df, q2, dups = _dedupe(df, keys, [c for c in schema if c not in keys], what)
    out = (df.sort("row") if by_row else df).select([pl.col(k).cast(v) for k, v in schema.items()])
    q = pl.concat([q1, q2], how="vertical_relaxed")
    return VeeResult(rows, out, q, _empty_f(), dups, rows - q.height - dups)


def _sort_if_needed(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Sort by ``keys`` (then row) unless already sorted: exports usually are."""
    return df if is_sorted_by(df, keys) else df.sort([*keys, "row"])


def _dedupe_groups(
    df: pl.DataFrame, keys: list[str], values: list[str], what: str
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    df = df.with_columns(
        pl.len().over(keys).alias("_n"),
        pl.struct(values).n_unique().over(keys).alias("_nu") if values else pl.lit(1).alias("_nu"),
    )
    multi = df.filter(pl.col("_n") > 1)
    if multi.height == 0:
        return df.drop("_n", "_nu"), _empty_q(), 0
    conflicting = multi.filter(pl.col("_nu") > 1)
    q = conflicting.select(
        pl.col("row").cast(pl.Int64),
        pl.lit(None, pl.Utf8).alias("column"),
        pl.lit("conflicting_duplicate").alias("code"),
        (
            pl.lit(f"{what} appears ") + pl.col("_n").cast(pl.Utf8) + pl.lit(" times with different values")
        ).alias("reason"),
    )
    keep = df.filter(pl.col("_nu") == 1)
    before = keep.height
    keep = keep.sort("row").unique(subset=keys, keep="first", maintain_order=True)
    return keep.drop("_n", "_nu"), q, before - keep.height


def _fmt(template: str, *exprs: pl.Expr) -> pl.Expr:
    """``pl.format`` built from ``concat_str`` (nulls shown as "null"): ``pl.format`` panics on some
    filtered string views in polars 1.44."""
    pieces = template.split("{}")
    assert len(pieces) == len(exprs) + 1
    parts: list[pl.Expr] = []
    for text, e in zip(pieces, [*exprs, None], strict=True):
        if text:
            parts.append(pl.lit(text))
        if e is not None:
            parts.append(e.cast(pl.Utf8).fill_null("null"))
    return pl.concat_str(parts)


def _findings(
    df: pl.DataFrame, code: str, description: pl.Expr, evidence: dict[str, pl.Expr]
) -> pl.DataFrame:
    """Finding rows from a frame having customer_id, meter_id and day columns."""
    if df.height == 0:
        return _empty_f()
    ev = df.select(
        pl.struct([e.alias(k) for k, e in evidence.items()]).struct.json_encode().alias("evidence")
    )
    out = df.select(
        pl.col("customer_id"),
        pl.col("meter_id") if "meter_id" in df.columns else pl.lit(None, pl.Utf8).alias("meter_id"),
        pl.col("day") if "day" in df.columns else pl.lit(None, pl.Date).alias("day"),
        pl.lit(code).alias("code"),
        description.alias("description"),
    ).with_columns(ev["evidence"])
    return out.select([pl.col(k).cast(v) for k, v in F_COLS.items()])


# --- registers --------------------------------------------------------------------------------


def _reconcile_periods(
    df: pl.DataFrame, total: str, periods: list[str], tou: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Make the period columns add up to ``total`` (see the module rules and
    ``ingest.kernels.reconcile_periods``). Returns (frame, findings: the scaled rows as read, with
    their period sum ``_s``)."""
    if not periods or df.height == 0:
        return df, _empty_f()
    tou_rows = df[tou].to_numpy()
    if not tou_rows.any():
        return df, _empty_f()
    tot = df[total].fill_null(0).to_numpy()
    regs = np.empty((len(periods), df.height), np.int64)
    for j, c in enumerate(periods):
        regs[j] = df[c].fill_null(0).to_numpy()
    zero_target = periods.index("flat") if "flat" in periods else 0
    has = [df[c].is_not_null().to_numpy() for c in periods]  # (a meter without the register: null)
    big, sums, changed = kernels.reconcile_periods(tot, regs, tou_rows, PERIOD_TOL_WH, zero_target)
    findings = (
        df.filter(pl.Series(big)).with_columns(pl.Series("_s", sums[big])) if big.any() else df.clear()
    )
    # a day with kWh and no period kWh, on a meter without the flat register: no share is known, the
    # periods become null and the day is priced as a meter without time-of-use registers (the tariff's
    # ``unsplit`` period, which is the flat period's unless the tariff says otherwise)
    lost = big & (sums == 0) & ~has[zero_target]
    if changed.any() or lost.any():
        df = df.with_columns([_nullable(periods[j], regs[j], tou_rows & has[j] & ~lost) for j in range(len(periods))
                              if changed[j] or lost.any()])
    return df, findings


def _period_finding_frame(
    findings: pl.DataFrame, total: str, periods: list[str], day_col: str
) -> pl.DataFrame:
    if findings.height == 0:
        return _empty_f()
    f = findings.rename({day_col: "day"}) if day_col != "day" else findings
    return _findings(
        f,
        "periods_mismatch",
        _fmt(
            "periods add up to {} Wh but the total is {} Wh; periods scaled to the total",
            pl.col("_s"),
            pl.col(total),
        ),
        {
            "total_wh": pl.col(total),
            "periods_sum_wh": pl.col("_s"),
            **{f"{p}_wh": pl.col(p) for p in periods},
        },
    )


def registers_to_daily(
    raw: pl.DataFrame,
    today: dt.date | None = None,
    anchors: pl.DataFrame | None = None,
    known_gaps: Callable[[list[str]], pl.DataFrame] | None = None,
    stored_days: Callable[[list[str], dt.date, dt.date], pl.DataFrame] | None = None,
) -> VeeResult:
    """Cumulative register reads -> daily consumption per meter (DAILY_SCHEMA).

    ``anchors`` (``REGISTER_STATE_SCHEMA``): the last read of meters from earlier files; a meter's
    anchor older than its first read here becomes the previous read of that first read. Anchors are
    not rows of this file: they count in no total.

    ``known_gaps(customer_ids)``: for a *late* file (a meter whose first read here is not after its
    stored last read), the stored gaps of those customers that are still estimated
    (:data:`GAP_SCHEMA`). Late reads replace estimates completely: a late file whose first read
    falls in such a gap continues from the read before the gap, and one whose last read falls in a
    gap is continued to the read that ends it, so every estimated day of the gap is replaced (by a
    measured day, or by a new estimate between nearer reads).

    ``stored_days(customer_ids, first, last)``: for a late file, the stored daily rows
    (``DAILY_SCHEMA``) of those customers from ``first`` to ``last``. A day measured in the store is
    never overwritten by an estimate: a pair of reads of a late file that spans measured days keeps
    them, and only what is left of its consumption is spread over its other days (finding
    ``late_gap_estimated``); a pair whose days are all measured must agree with them (else finding
    ``late_read_conflict``, the stored days kept). The meter's stored last read, when it falls inside
    the file's span, is a read of the file's sequence (it splits the pair around it). A read sent
    again that adds nothing (the same value as the stored read of its day, or every pair of reads it
    ends agrees with measured days) counts as a duplicate, not as loaded (MDMS VEE practice: a
    re-sent read is a duplicate; a late read replaces estimates, never measurements).
    """
    today = today or dt.date.today()
    rows = raw.height
    periods_in = [r for r in REGISTERS if r in raw.columns]
    has_multiplier = "multiplier" in raw.columns
    raw = _prep(raw, ("total", *REGISTERS, "multiplier", "digits"), ("read_date",))
    chk = _Checks()
    _read_checks(chk, raw, today, "total", periods_in)
    if "digits" in raw.columns:
        d = _number(raw, "digits")
        chk.add(
            _present(raw, "digits") & (d.is_null() | (d != d.round(0)) | (d < 3) | (d > 12)),
            "digits",
            "bad_digits",
            "digits is not a whole number between 3 and 12",
        )
    good, q1 = _split_quarantine(raw, chk)

    reg_cols = ["total", *periods_in]
    df = good.select(
        pl.col("row").cast(pl.Int64),
        _text(good, "customer_id").alias("customer_id"),
        _text(good, "meter_id").alias("meter_id"),
        _date(good, "read_date").alias("day"),
        *[_wh_of(good, c) for c in reg_cols],
        (_number(good, "multiplier") if "multiplier" in good.columns else pl.lit(None, pl.Float64))
        .fill_null(1.0)
        .alias("multiplier"),
        (_number(good, "digits") if "digits" in good.columns else pl.lit(None, pl.Float64))
        .cast(pl.Int64)
        .alias("digits"),
    )
    # meters with time-of-use registers: every read must carry all of them
    df, q2 = _incomplete_tou(df, periods_in, column_prefix="")

    df, q3, duplicates = _dedupe_reads(df, [*reg_cols, "multiplier", "digits"])
    q6 = _empty_q()
    if anchors is not None and anchors.height and df.height:
        df, q6 = _unmeasurable_corrections(df, anchors, reg_cols)
    loaded_rows = df.height
    late = None
    q7 = _empty_q()
    if anchors is not None and anchors.height and df.height:
        df, late, resent = _with_anchors(df, anchors, periods_in, reg_cols, known_gaps)
        duplicates += resent
        if late.height and stored_days is not None:
            df, lone_same, q7 = _lone_late_reads(df, anchors, late, stored_days, reg_cols)
            duplicates += lone_same

    findings: list[pl.DataFrame] = []
    # pass 1: deltas; bad reads (a register that went down and came back, a read above both
    # neighbours, a last read that went down) are quarantined and the deltas taken again without them
    d1 = _deltas(df, reg_cols)
    qbad: list[pl.DataFrame] = []
    while (d1["_bad"] > 0).any():
        bad = d1.filter(pl.col("_bad") > 0)
        qbad.append(_bad_read_quarantine(bad.filter(pl.col("row") > 0)))  # (anchors are no rows of the file)
        df = df.filter(d1["_bad"] == 0)
        d1 = _deltas(df, reg_cols)
    q4 = pl.concat(qbad, how="vertical_relaxed") if qbad else _empty_q()
    # physical limit: a read whose consumption since the previous read is beyond what the connection can
    # draw (a register written in Wh, a typo) is a bad read when the next read comes back
    df, d1, q5, over_f = _implausible_reads(df, d1, reg_cols)
    if over_f.height:
        findings.append(over_f)
    # the remaining negatives re-anchor (register reset)
    resets = d1.filter(pl.col("_neg")) if d1["_neg"].any() else d1.clear()
    if resets.height:
        findings.append(
            _findings(
                resets,
                "register_reset",
                _fmt(
                    "register went down from {} Wh to {} Wh and stayed down: re-anchored, the day has no consumption",
                    pl.col("_prev_total"),
                    pl.col("total"),
                ),
                {
                    "previous_day": pl.col("_prev_day"),
                    "previous_total_wh": pl.col("_prev_total"),
                    "total_wh": pl.col("total"),
                },
            )
        )
    roll = d1.filter(pl.col("_roll")) if d1["_roll"].any() else d1.clear()
    if roll.height:
        findings.append(
            _findings(
                roll,
                "rollover",
                _fmt(
                    "register wrapped at {} digits: {} Wh -> {} Wh, consumption taken across the wrap",
                    pl.col("_digits"),
                    pl.col("_prev_total"),
                    pl.col("total"),
                ),
                {
                    "digits": pl.col("_digits"),
                    "previous_day": pl.col("_prev_day"),
                    "previous_total_wh": pl.col("_prev_total"),
                    "total_wh": pl.col("total"),
                },
            )
        )
    m, c = d1["_m"].to_numpy(), d1["_c"].to_numpy()
    multi = bool(np.any((c[1:] == c[:-1]) & (m[1:] != m[:-1])))  # a customer with several meters
    exchanges = None
    if multi:
        ex_f, exchanges = _exchange_findings(d1)
        findings.append(ex_f)
    across = False
    if anchors is not None and anchors.height and df.height:
        # an exchange across files: the old meter's last read is stored, the new meter starts here
        x_f, x_ex = _exchanges_across_files(df, anchors)
        if x_ex.height:
            findings.append(x_f)
            exchanges = x_ex if exchanges is None else pl.concat([exchanges, x_ex], how="vertical_relaxed")
            multi = True
            across = True
    scaled = [
        (pl.col(f"_d_{c}").cast(pl.Float64) * pl.col("multiplier")).round(0).cast(pl.Int64).alias(c)
        if has_multiplier
        else pl.col(f"_d_{c}").alias(c)
        for c in reg_cols
    ]
    pairs = (
        d1.select("customer_id", "meter_id", "day", "_m", "_prev_day", "_tou", "_neg", "_over", *scaled)
        .filter(pl.col("_prev_day").is_not_null() & ~pl.col("_neg") & ~pl.col("_over"))
        .drop("_neg", "_over")
    )
    pairs, pf = _reconcile_periods(pairs, "total", periods_in, "_tou")
    findings.append(_period_finding_frame(pf, "total", periods_in, "day"))
    late_days = None
    state_reads = df
    if late is not None and late.height and stored_days is not None:
        pairs, late_days, late_f, resent, refused = _respect_stored_days(pairs, late, stored_days, periods_in, df)
        findings.append(late_f)
        duplicates += resent
        if refused.height:
            # the stored days stand: a refused read is not the meter's last read (a corrected stored last
            # read taken as the state would move its difference into the next day's consumption)
            state_reads = df.join(refused, on=["customer_id", "meter_id", "day"], how="anti")

    daily, gap_f, estimated = _spread_gaps(pairs, periods_in, df)
    findings.append(gap_f)
    if late_days is not None and late_days.height:
        daily = pl.concat([daily, late_days.select(daily.columns)], how="vertical_relaxed").sort("_m", "day")
        estimated += late_days.height
    if exchanges is not None and exchanges.height:
        x_basis = None
        if stored_days is not None and (across or (late is not None and late.height)):
            # the store holds days around the exchanges: the old meter's (an exchange across files), or those a
            # late file's exchange had when it came first (a file sent again with other bytes, say), and the
            # days estimated then (the same basis, the same finding)
            lo = exchanges["old_last_day"].min() - dt.timedelta(days=EXCHANGE_BASIS_DAYS)  # type: ignore[operator]
            hi = exchanges["new_first_day"].max() + dt.timedelta(days=EXCHANGE_BASIS_DAYS)  # type: ignore[operator]
            x_basis = stored_days(exchanges["customer_id"].unique().to_list(), lo, hi)  # type: ignore[arg-type]
        daily, ex_est_f, ex_est = _estimate_exchange_days(daily, exchanges, periods_in, x_basis)
        findings.append(ex_est_f)
        estimated += ex_est
    findings.append(_spike_findings(daily, multi))
    daily = daily.drop("_m")
    q = pl.concat([q1, q2, q3, q4, q5, q6, q7], how="vertical_relaxed")
    return VeeResult(
        state=_last_reads(state_reads, periods_in),
        heads=_first_reads(df, periods_in),
        rows=rows,
        frame=daily,
        quarantine=q,
        findings=pl.concat([f for f in findings if f.height], how="vertical_relaxed")
        if any(f.height for f in findings)
        else _empty_f(),
        duplicates=duplicates,
        loaded=rows - q.height - duplicates,
        estimated=estimated,
        extra={"accepted_reads": loaded_rows},
    )


def _over_limit(d1: pl.DataFrame, limit_wh: int) -> np.ndarray:
    """Per read: its consumption since the previous read (times the multiplier) is beyond
    ``limit_wh`` per day of the interval (``ingest.limits``)."""
    gap = (d1["day"].cast(pl.Int64) - d1["_prev_day"].cast(pl.Int64)).to_numpy()
    delta = d1["_d_total"].cast(pl.Float64).to_numpy() * d1["multiplier"].to_numpy()
    with np.errstate(invalid="ignore"):
        over = (delta > limit_wh * np.maximum(gap, 1)) & ~d1["_neg"].to_numpy()
    return np.nan_to_num(over, nan=0).astype(np.bool_)


def _implausible_reads(
    df: pl.DataFrame, d1: pl.DataFrame, reg_cols: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Reads whose consumption is beyond the physical limit (``ingest.limits.max_daily_wh``).

    A read that goes up by more than the connection can draw and whose next read comes back to a
    plausible level (below it, and plausible from the read before) is a bad read: quarantined
    (``implausible_consumption``) and the days around it estimated from its neighbours, as for a
    glitch. A jump that stays (no plausible next read) re-anchors the meter: the interval is not
    billed, and a finding ``implausible_consumption`` records it with its evidence. Returns ``df`` and
    ``d1`` without the bad reads, their quarantine rows, and the findings; ``d1`` gains ``_over``.
    """
    limit = limits.max_daily_wh()
    over = _over_limit(d1, limit)
    q = _empty_q()
    if over.any():
        idx = np.flatnonzero(over)
        same_next = np.zeros(d1.height, np.bool_)
        same_next[:-1] = _same_meter(d1)[1:]
        tot = d1["total"].to_numpy()
        prev = d1["_prev_total"].fill_null(0).to_numpy()
        day = d1["day"].cast(pl.Int64).to_numpy()
        pday = d1["_prev_day"].cast(pl.Int64).fill_null(0).to_numpy()
        mult = d1["multiplier"].to_numpy()
        bad = np.zeros(d1.height, np.bool_)
        held = np.zeros(d1.height, np.bool_)
        row = d1["row"].to_numpy()
        for i in idx:
            if not same_next[i]:
                # the meter's last read here: held back until a later read shows whether it comes back
                # (a register written in Wh at the end of a daily file); a jump that stays shows as
                # such in the next file, from the read before
                held[i] = row[i] > 0
                continue
            j = i + 1
            back = tot[j] - prev[i]
            if tot[j] < tot[i] and 0 <= back and back * mult[i] <= limit * max(day[j] - pday[i], 1):
                bad[i] = True
        if bad.any() or held.any():
            held_s = pl.Series("_held", held)
            q = d1.with_columns(held_s).filter(pl.Series(bad | held)).select(
                "row",
                pl.lit("total").alias("column"),
                pl.lit("implausible_consumption").alias("code"),
                pl.when(pl.col("_held")).then(_fmt(
                    "total went up by {} Wh since {} on the meter's last read: more than a residential "
                    f"connection can use ({limits.limit_text(limit)}); held back until a later read shows "
                    "whether it comes back",
                    pl.col("_d_total"), pl.col("_prev_day"),
                )).otherwise(_fmt(
                    "total went up by {} Wh and came back: more than a residential connection can use "
                    f"({limits.limit_text(limit)}); a bad read, days estimated",
                    pl.col("_d_total"),
                )).alias("reason"),
            )
            bad = bad | held
            df = df.filter(pl.Series(~bad))
            d1 = _deltas(df, reg_cols)
            over = _over_limit(d1, limit)
    d1 = d1.with_columns(pl.Series("_over", over))
    f = _empty_f()
    if over.any():
        jumps = d1.filter(pl.col("_over"))
        f = _findings(
            jumps,
            "implausible_consumption",
            _fmt(
                "total went up by {} Wh since {} and stayed: more than a residential connection can use "
                f"({limits.limit_text(limit)}); re-anchored, the interval is not billed",
                pl.col("_d_total"),
                pl.col("_prev_day"),
            ),
            {
                "previous_day": pl.col("_prev_day"),
                "previous_total_wh": pl.col("_prev_total"),
                "total_wh": pl.col("total"),
                "limit_wh_per_day": pl.lit(limit),
            },
        )
    return df, d1, q, f


#: a stored gap of a meter, still estimated in the store, with its two register reads as read
GAP_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(), "meter_id": pl.Utf8(), "from": pl.Date(), "to": pl.Date(),
    **{f"{side}_{c}_wh": pl.Int64() for side in ("from", "to") for c in ("total", *REGISTERS)},
    "multiplier": pl.Float64(), "digits": pl.Int64(),
}


def _unmeasurable_corrections(
    df: pl.DataFrame, anchors: pl.DataFrame, reg_cols: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Quarantine the reads that would correct a meter's stored last read with nothing to measure the
    day from: the read of the stored last read's day, with other registers, and the first read of
    the meter in the file (no earlier read here; the store keeps the day's consumption, not the read
    before it). Taken as the new last read, it would move the difference into the next day's
    consumption (a correction of +5 kWh to the read of 3 March counted on 4 March, and the 3 March row
    left as it was): the meter's total would no longer be its register's. A correction is measured
    inside a run of reads whose ends agree with the store (``_respect_stored_days``): sent again with
    the reads of the day before and the day after, once the next read is stored.

    Parameters
    ----------
    df : DataFrame
        The file's reads (``row``, ``customer_id``, ``meter_id``, ``day`` and ``reg_cols`` [Wh as read]).
    anchors : DataFrame
        ``REGISTER_STATE_SCHEMA``: the stored last read of each meter (``head`` rows are not).
    reg_cols : list of str
        ``total`` and the time-of-use registers the file has.

    Returns
    -------
    (df, quarantine) : the reads left, and quarantine rows (code ``correction_without_previous_read``).
    """
    is_head = pl.col("head").fill_null(False) if "head" in anchors.columns else pl.lit(False)
    keys = ["customer_id", "meter_id", "day"]
    stored = anchors.filter(~is_head).select(
        *keys, *[pl.col("wh_total" if c == "total" else f"wh_{c}").alias(f"_s_{c}") for c in reg_cols])
    first = df.sort("day", "row").group_by("customer_id", "meter_id").agg(pl.col("row").first())
    hit = df.join(first, on="row", how="semi").join(stored, on=keys, how="inner").filter(
        ~pl.all_horizontal([pl.col(c).eq_missing(pl.col(f"_s_{c}"))
                            | (pl.lit(c != "total") & pl.col(f"_s_{c}").is_null())  # (a read without them)
                            for c in reg_cols]))
    if hit.height == 0:
        return df, _empty_q()
    q = hit.select(
        "row",
        pl.lit("total").alias("column"),
        pl.lit("correction_without_previous_read").alias("code"),
        _fmt("corrects the stored last read of {} ({} Wh) with nothing before it in the file to measure the day"
             " from: send it again with the meter's reads of the day before and the day after (once the next read"
             " is in)", pl.col("day"), pl.col("_s_total"))
        .alias("reason"),
    )
    return df.join(hit.select("row"), on="row", how="anti"), q


def _span_days(spans: pl.DataFrame, id_col: str, start: str, stored: pl.DataFrame, regs: list[str],
               day: str = "day") -> pl.DataFrame:
    """Each day of each span of a meter's days (``id_col``; the ``_g`` days after ``start``), as column
    ``day``, with the store's measured consumption of the day in each register (``_s_<register>`` [Wh],
    null when not measured) and ``_cov`` (measured). ``stored``: the meters' stored daily rows
    (``DAILY_SCHEMA``); estimated days are not measured."""
    keys = ["customer_id", "meter_id"]
    measured = stored.filter(~pl.col("estimated").fill_null(False)).select(
        *keys, pl.col("day").alias(day), *[pl.col(f"wh_{r}").alias(f"_s_{r}") for r in regs])
    return (
        spans.select(id_col, *keys, start, "_g")
        .with_columns(pl.int_ranges(1, pl.col("_g") + 1).alias("_i"))
        .explode("_i", empty_as_null=True)
        .with_columns((pl.col(start) + pl.duration(days=pl.col("_i"))).alias(day))
        .join(measured, on=[*keys, day], how="left")
        .with_columns(pl.col("_s_total").is_not_null().alias("_cov"))
    )


def _measured(days: pl.DataFrame, id_col: str, regs: list[str]) -> pl.DataFrame:
    """Per span of ``_span_days``: how many of its days are measured (``_k``) and their consumption in
    each register (``_s_<register>`` [Wh])."""
    return days.group_by(id_col).agg(pl.col("_cov").sum().cast(pl.Int64).alias("_k"),
                                     *[pl.col(f"_s_{r}").fill_null(0).sum() for r in regs])


def _lone_late_reads(
    df: pl.DataFrame, anchors: pl.DataFrame, late: pl.DataFrame,
    stored_days: Callable[[list[str], dt.date, dt.date], pl.DataFrame], reg_cols: list[str],
) -> tuple[pl.DataFrame, int, pl.DataFrame]:
    """The reads of a late file that are their meter's only read here and pair with no stored read
    (older than the meter's stored last read, outside any stored gap): one read measures no day.

    The stored days imply that read: the stored last read less the consumption of the measured days
    after it (divided by the multiplier). A read equal to it in every register it has is the same read
    sent again (a daily file re-sent after later ones): a duplicate, not loaded (MDMS VEE practice: a
    re-sent read is a duplicate). Any other such read (it differs, or the days up to the stored read are
    not all measured) is quarantined, ``late_read_alone``, with what it would take to measure it: it
    changes nothing stored, and before this it was counted as loaded.

    Parameters
    ----------
    df : DataFrame
        The file's reads and their anchors (``row`` < 0) as ``_with_anchors`` left them [Wh as read].
    anchors : DataFrame
        ``REGISTER_STATE_SCHEMA``: the stored last read of each meter (``head`` rows are not).
    late : DataFrame
        ``customer_id``, ``meter_id`` of the meters with a stored read at or after their first read here.
    stored_days : callable
        ``stored_days(customer_ids, first, last)``: the stored daily rows (``DAILY_SCHEMA``).
    reg_cols : list of str
        ``total`` and the time-of-use registers the file has.

    Returns
    -------
    (df, same, quarantine) : the reads left, how many were the same read sent again (duplicates), and
    quarantine rows (code ``late_read_alone``).
    """
    keys = ["customer_id", "meter_id"]
    per = df.group_by(keys).agg((pl.col("row") > 0).sum().alias("_n"), (pl.col("row") < 0).sum().alias("_a"))
    lone_m = per.filter((pl.col("_n") == 1) & (pl.col("_a") == 0)).join(late, on=keys, how="semi").select(keys)
    if lone_m.height == 0:
        return df, 0, _empty_q()
    is_head = pl.col("head").fill_null(False) if "head" in anchors.columns else pl.lit(False)
    last = anchors.filter(~is_head).select(
        *keys, pl.col("day").alias("_L"),
        *[pl.col("wh_total" if c == "total" else f"wh_{c}").alias(f"_T_{c}") for c in reg_cols])
    mult = pl.col("multiplier").fill_null(1.0) if "multiplier" in df.columns else pl.lit(1.0)
    lone = (df.join(lone_m, on=keys, how="semi").join(last, on=keys, how="inner")
            .filter(pl.col("_L") > pl.col("day"))
            .with_columns(mult.cast(pl.Float64).alias("_mult"),
                          (pl.col("_L") - pl.col("day")).dt.total_days().cast(pl.Int64).alias("_g")))
    if lone.height == 0:
        return df, 0, _empty_q()
    st = stored_days(lone["customer_id"].unique().to_list(),
                     lone["day"].min() + dt.timedelta(days=1), lone["_L"].max())  # type: ignore[operator, arg-type]
    lone = lone.join(_measured(_span_days(lone, "row", "day", st, reg_cols, day="_d"), "row", reg_cols),
                     on="row", how="left")

    def agrees(c: str) -> pl.Expr:
        # the read's consumption to the stored last read, as stored (times the multiplier; each day's Wh
        # rounded, hence half a Wh a day of tolerance with a multiplier)
        diff = (pl.col(f"_T_{c}") - pl.col(c)).cast(pl.Float64) * pl.col("_mult")
        gap = (diff - pl.col(f"_s_{c}").cast(pl.Float64)).abs()
        ok = pl.when(pl.col("_mult") == 1.0).then(gap == 0).otherwise(gap <= 0.5 * pl.col("_g"))
        return pl.col(c).is_null() | ok.fill_null(False)

    full = pl.col("_k") == pl.col("_g")
    same = full & pl.all_horizontal([agrees(c) for c in reg_cols])
    lone = lone.with_columns(same.fill_null(False).alias("_same"))
    bad = lone.filter(~pl.col("_same"))
    implied = (pl.col("_T_total") - pl.col("_s_total").cast(pl.Float64) / pl.col("_mult")).round(0).cast(pl.Int64)
    tail = " and one read measures no day: send it with the meter's reads of the days before and after it"
    q = bad.select(
        "row",
        pl.lit("total").alias("column"),
        pl.lit("late_read_alone").alias("code"),
        pl.when(full).then(_fmt("a read of {} alone, older than the meter's stored last read ({}): it differs from"
                                " the read the stored days imply ({} Wh)," + tail, pl.col("day"), pl.col("_L"),
                                implied))
        .otherwise(_fmt("a read of {} alone, older than the meter's stored last read ({}): the days between are"
                        " not all measured," + tail, pl.col("day"), pl.col("_L")))
        .alias("reason"),
    ) if bad.height else _empty_q()
    return df.join(lone.select("row"), on="row", how="anti"), lone.height - bad.height, q


def _with_anchors(
    df: pl.DataFrame,
    anchors: pl.DataFrame,
    periods_in: list[str],
    reg_cols: list[str],
    known_gaps: Callable[[list[str]], pl.DataFrame] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """``df`` with, for each meter, its stored last read if older than the meter's first read here,
    and, for a late file, the reads around the stored gaps it falls in and the stored last read when it
    falls inside the file's span (see ``registers_to_daily``).

    Anchor rows get negative ``row`` numbers: they are no row of the file. An anchor of a meter with
    time-of-use registers is used only if it has them too (and the other way round).

    Returns ``(df, late, resent)``: ``late`` the meters of a late file (``customer_id``,
    ``meter_id``), ``resent`` the number of reads of the file equal to the stored read of their day
    (dropped: duplicates; the stored read stands in for them).
    """
    first = df.group_by("customer_id", "meter_id").agg(
        pl.col("day").min().alias("_first"), pl.col("day").max().alias("_last"), pl.col("_tou").first(),
        pl.col("_m").first(), pl.col("_c").first()
    )
    is_head = anchors["head"] if "head" in anchors.columns else pl.Series([False] * anchors.height)
    a = anchors.with_columns(is_head.fill_null(False).alias("_head")).select(
        "_head",
        pl.col("customer_id"), pl.col("meter_id"), pl.col("day"), pl.col("wh_total").alias("total"),
        *[pl.col(f"wh_{p}").alias(p) for p in periods_in],
        pl.col("multiplier").fill_null(1.0), pl.col("digits"),
        (pl.any_horizontal([pl.col(f"wh_{p}").is_not_null() for p in periods_in]) if periods_in else pl.lit(False))
        .alias("_a_tou"),
    ).join(first, on=["customer_id", "meter_id"], how="inner")
    same_kind = pl.col("_a_tou") == pl.col("_tou")
    # a stored last read before the file's first read: its previous read; a stored first read of a later
    # file (a head) after the file's last read: the file's next read, whose day gets its consumption now;
    # a stored read at or after the file's first read: a late file, continued from the stored gap's reads
    late = a.filter(~pl.col("_head") & (pl.col("day") >= pl.col("_first")))
    late_keys = late.select("customer_id", "meter_id").unique()
    resent = 0
    inside = late.filter(same_kind & (pl.col("day") <= pl.col("_last")))
    if inside.height:
        # the stored last read inside the file's span: a read of the meter's sequence. A read of the
        # file on that day with the same registers is the same read sent again (a duplicate); one with
        # other registers is a correction and stands (the stored days it disagrees with are checked)
        keys = ["customer_id", "meter_id", "day"]
        same_day = df.join(inside.select(*keys, *[pl.col(c).alias(f"_a_{c}") for c in reg_cols]), on=keys,
                           how="inner")
        same = same_day.filter(pl.all_horizontal([pl.col(c).eq_missing(pl.col(f"_a_{c}")) for c in reg_cols]))
        resent = same.height
        if resent:
            df = df.join(same.select("row"), on="row", how="anti")
        inside = inside.join(same_day.join(same.select("row"), on="row", how="anti").select(keys), on=keys,
                             how="anti")
    before = a.filter(~pl.col("_head") & (pl.col("day") < pl.col("_first")) & same_kind)
    after = (
        a.filter(pl.col("_head") & (pl.col("day") > pl.col("_last")) & same_kind)
        .sort("day")
        .group_by("customer_id", "meter_id", maintain_order=True)
        .first()
    )
    a = pl.concat([before, after.select(before.columns), inside.select(before.columns)],
                  how="vertical_relaxed").drop("_first", "_last", "_a_tou", "_head")
    parts = [a]
    if late.height and known_gaps is not None:
        parts += _gap_edges(first.join(late.select("customer_id", "meter_id"), on=["customer_id", "meter_id"]),
                            known_gaps(late["customer_id"].unique().to_list()), periods_in)
    a = pl.concat([x.select(a.columns) for x in parts], how="vertical_relaxed") if len(parts) > 1 else a
    if a.height == 0:
        return df, late_keys, resent
    a = a.unique(["customer_id", "meter_id", "day"], keep="first", maintain_order=True)  # (a gap's edge = last read)
    a = a.with_columns((-pl.int_range(1, a.height + 1, dtype=pl.Int64)).alias("row"))
    a = a.select([pl.col(c).cast(df.schema[c]) for c in df.columns])
    return pl.concat([df, a], how="vertical_relaxed").sort("_m", "day", "row"), late_keys, resent


def _respect_stored_days(
    pairs: pl.DataFrame,
    late: pl.DataFrame,
    stored_days: Callable[[list[str], dt.date, dt.date], pl.DataFrame],
    periods: list[str],
    reads: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame | None, pl.DataFrame, int, pl.DataFrame]:
    """Pairs of reads of a late file's meters checked against the days already stored.

    A pair (``_prev_day`` -> ``day``, its registers the consumption between the two reads, times the
    multiplier) covers the days after ``_prev_day`` through ``day``. Days measured in the store are
    never replaced by an estimate (a late read replaces estimates, not measurements):

    - no day measured: the pair stays (a new measurement, or an estimate replacing an estimate);
    - every day measured, and the pair agrees with their sum in every register: the pair adds nothing
      and is dropped; it disagrees: dropped, the measured days kept, finding ``late_read_conflict``
      (a one-day pair that disagrees is a new measurement of the day and stays: a correction);
    - some days measured: they are kept and what is left of the pair's consumption is spread evenly
      over its other days (exact integer split, as ``_spread_gaps``; finding ``late_gap_estimated``);
      left less than zero in a register: finding ``late_read_conflict``, the pair dropped.

    Returns ``(pairs, estimated_days, findings, resent, refused)``: the pairs left, the daily rows
    estimated here (``_spread_gaps``' columns), the findings, the number of reads of the file
    (``row > 0``) every pair of which agreed with measured days (re-sent reads: duplicates), and the
    reads that end a refused pair (``customer_id, meter_id, day``: the stored days stand, so such a
    read is not the meter's new last read either).
    """
    regs = ["total", *periods]
    keys = ["customer_id", "meter_id"]
    lp = pairs.join(late, on=keys, how="semi")
    no_refused = pl.DataFrame(schema={"customer_id": pl.Utf8, "meter_id": pl.Utf8, "day": pl.Date})
    none: tuple[pl.DataFrame, pl.DataFrame | None, pl.DataFrame, int, pl.DataFrame] = (
        pairs, None, _empty_f(), 0, no_refused)
    if lp.height == 0:
        return none
    lp = lp.with_columns(
        pl.int_range(0, pl.len(), dtype=pl.Int64).alias("_pid"),
        (pl.col("day") - pl.col("_prev_day")).dt.total_days().cast(pl.Int64).alias("_g"),
    )
    first = lp["_prev_day"].min() + dt.timedelta(days=1)  # type: ignore[operator]
    st = stored_days(lp["customer_id"].unique().to_list(), first, lp["day"].max())  # type: ignore[arg-type]
    if st.filter(~pl.col("estimated").fill_null(False)).height == 0:
        return none
    ex = _span_days(lp, "_pid", "_prev_day", st, regs)
    lp = lp.join(_measured(ex, "_pid", regs), on="_pid", how="left")
    # registers the pair has (a meter without time-of-use registers: the total only)
    def left(r: str) -> pl.Expr:
        return pl.col(r) - pl.col(f"_s_{r}")

    has = {r: (pl.lit(True) if r == "total" else pl.col("_tou") & pl.col(r).is_not_null()) for r in regs}
    agree = pl.all_horizontal([~has[r] | (left(r) == 0) for r in regs])
    negative = pl.any_horizontal([has[r] & (left(r) < 0) for r in regs])
    # runs of consecutive pairs over measured days only: a run of one-day pairs whose sum agrees with the
    # measured days is a correction of the reads inside it (its end reads agree with the store, so the
    # register difference over the run is kept); any other disagreement is a conflict
    full = pl.col("_k") == pl.col("_g")
    lp = lp.sort("_m", "day").with_columns(
        (~full | ~full.shift(1).fill_null(False) | (pl.col("_m") != pl.col("_m").shift(1))
         | (pl.col("_prev_day") != pl.col("day").shift(1))).fill_null(True).cum_sum().alias("_run")
    )
    run_ok = pl.all_horizontal(
        [pl.when(has[r]).then(left(r)).otherwise(0).sum().over("_run") == 0 for r in regs]
    ) & (pl.col("_g").max().over("_run") == 1)
    lp = lp.with_columns(
        pl.when(pl.col("_k") == 0).then(pl.lit("new"))
        .when(full & agree).then(pl.lit("same"))
        .when(full & run_ok).then(pl.lit("new"))  # a corrected read inside a run that keeps its ends
        .when(full | negative).then(pl.lit("conflict"))
        .otherwise(pl.lit("partial"))
        .alias("_kind")
    )
    out_pairs = pl.concat(
        [pairs.join(late, on=keys, how="anti"), lp.filter(pl.col("_kind") == "new").select(pairs.columns)],
        how="vertical_relaxed",
    ).sort("_m", "day")
    conflict = lp.filter(pl.col("_kind") == "conflict")
    partial = lp.filter(pl.col("_kind") == "partial")
    findings = []
    if conflict.height:
        findings.append(_findings(
            conflict, "late_read_conflict",
            _fmt("reads of {} and {} give {} Wh, but the {} days between them are measured in the store at {} Wh: "
                 "the measured days kept", pl.col("_prev_day"), pl.col("day"), pl.col("total"), pl.col("_g"),
                 pl.col("_s_total")),
            {"from": pl.col("_prev_day"), "to": pl.col("day"), "days": pl.col("_g"), "total_wh": pl.col("total"),
             "stored_total_wh": pl.col("_s_total")},
        ))
    est = None
    if partial.height:
        findings.append(_findings(
            partial, "late_gap_estimated",
            _fmt("reads of {} and {} give {} Wh; {} of the {} days between them are measured in the store "
                 "({} Wh, kept): the other {} Wh spread evenly over the other days (estimated)",
                 pl.col("_prev_day"), pl.col("day"), pl.col("total"), pl.col("_k"), pl.col("_g"),
                 pl.col("_s_total"), left("total")),
            {"from": pl.col("_prev_day"), "to": pl.col("day"), "days": pl.col("_g"), "measured_days": pl.col("_k"),
             "total_wh": pl.col("total"), "stored_total_wh": pl.col("_s_total")},
        ))
        rest = partial.select("_pid", "_m", "_tou", *[left(r).alias(f"_r_{r}") for r in regs])
        e = (
            ex.filter(~pl.col("_cov")).join(rest, on="_pid", how="inner").sort("_pid", "day")
            .with_columns(
                pl.int_range(0, pl.len(), dtype=pl.Int64).over("_pid").alias("_j"),
                pl.len().over("_pid").cast(pl.Int64).alias("_u"),
            )
        )

        def split(r: str) -> pl.Expr:
            c = pl.col(f"_r_{r}")
            return (c // pl.col("_u")) + (pl.col("_j") < (c % pl.col("_u"))).cast(pl.Int64)

        per = {r: split(r) for r in regs}
        tou_total = pl.sum_horizontal([per[p] for p in periods]) if periods else per["total"]
        est = e.select(
            "_m", *keys, "day",
            pl.when(pl.col("_tou")).then(tou_total).otherwise(per["total"]).alias("wh_total"),
            *[(pl.when(pl.col("_tou")).then(per[r]) if r in periods else pl.lit(None, pl.Int64)).alias(f"wh_{r}")
              for r in REGISTERS],
            pl.lit(True).alias("estimated"),
        ).select([pl.col(k).cast(v) for k, v in DAILY_SCHEMA.items()] + [pl.col("_m")])
    # reads of the file every pair of which agreed with the measured days: sent again, duplicates
    ends = pl.concat([
        lp.select("_m", "day", (pl.col("_kind") == "same").alias("_same")),
        lp.select("_m", pl.col("_prev_day").alias("day"), (pl.col("_kind") == "same").alias("_same")),
    ]).group_by("_m", "day").agg(pl.col("_same").all())
    resent = reads.filter(pl.col("row") > 0).join(ends.filter(pl.col("_same")), on=["_m", "day"], how="semi").height
    f = pl.concat(findings, how="vertical_relaxed") if findings else _empty_f()
    return out_pairs, est, f, resent, conflict.select(*keys, "day").cast(no_refused.schema)


def _gap_edges(first: pl.DataFrame, gaps: pl.DataFrame, periods_in: list[str]) -> list[pl.DataFrame]:
    """Anchor rows from stored gaps: the read before the gap the meter's first read falls in
    (``from < first <= to``, the nearest), and the read that ends the gap its last read falls in
    (``from <= last < to``, the nearest); only gaps with the meter's register set."""
    if gaps.height == 0:
        return []
    g = gaps.join(first, on=["customer_id", "meter_id"], how="inner").filter(
        pl.any_horizontal([pl.col(f"to_{p}_wh").is_not_null() for p in periods_in]).fill_null(False)
        == pl.col("_tou") if periods_in else ~pl.col("_tou")
    )
    out = []
    for side, cond, pick in (
        ("from", (pl.col("from") < pl.col("_first")) & (pl.col("_first") <= pl.col("to")), pl.col("from").max()),
        ("to", (pl.col("from") <= pl.col("_last")) & (pl.col("_last") < pl.col("to")), pl.col("to").min()),
    ):
        e = g.filter(cond)
        if e.height == 0:
            continue
        e = e.filter(pl.col(side) == pick.over("customer_id", "meter_id")).unique(["customer_id", "meter_id"])
        out.append(e.select(
            "customer_id", "meter_id", pl.col(side).alias("day"), pl.col(f"{side}_total_wh").alias("total"),
            *[pl.col(f"{side}_{p}_wh").alias(p) for p in periods_in],
            pl.col("multiplier").fill_null(1.0), "digits", "_tou", "_m", "_c",
        ))
    return out


def _first_reads(df: pl.DataFrame, periods_in: list[str]) -> pl.DataFrame:
    """The first read of each meter when it is a row of this file (no stored read before it: it only
    anchors), as ``REGISTER_STATE_SCHEMA`` (``df`` sorted by customer, meter, day)."""
    if df.height:
        is_first = ~_same_meter(df) & (df["row"].to_numpy() > 0)
        return _last_reads(df.filter(pl.Series(is_first)), periods_in, presorted_unique=True)
    return _last_reads(df, periods_in)


def _last_reads(df: pl.DataFrame, periods_in: list[str], presorted_unique: bool = False) -> pl.DataFrame:
    """The last accepted read of each meter, as ``REGISTER_STATE_SCHEMA`` (``df`` sorted by customer,
    meter, day)."""
    from wattbill.ingest.schemas import REGISTER_STATE_SCHEMA

    if df.height and not presorted_unique:
        is_last = np.ones(df.height, np.bool_)
        is_last[:-1] = ~_same_meter(df)[1:]
        last = df.filter(pl.Series(is_last))  # df is sorted by customer, meter, day
    else:
        last = df
    cols = {
        "customer_id": pl.col("customer_id"), "meter_id": pl.col("meter_id"), "day": pl.col("day"),
        "wh_total": pl.col("total"),
        **{f"wh_{p}": (pl.col(p) if p in periods_in else pl.lit(None)) for p in REGISTERS},
        "multiplier": pl.col("multiplier"), "digits": pl.col("digits"),
    }
    return last.select([cols[k].cast(v).alias(k) for k, v in REGISTER_STATE_SCHEMA.items()])


def _same_meter(df: pl.DataFrame) -> np.ndarray:
    """``same[i]``: row ``i`` is the same meter as row ``i - 1`` (``df`` sorted by ``_m``, day)."""
    m = df["_m"].to_numpy()
    same = np.zeros(len(m), np.bool_)
    same[1:] = m[1:] == m[:-1]
    return same


def _runs(df: pl.DataFrame) -> tuple[bool, dict[str, np.ndarray]]:
    """(sorted, flags): is ``df`` sorted by customer, meter, day, row; and per row ``eq_c``, ``eq_m``,
    ``eq_d`` (same customer / meter / day as the row before). Two string comparisons and a sortedness
    check of the customer ids; the rest is integer work in numpy."""
    n = df.height
    eq = df.select(
        (pl.col("customer_id") == pl.col("customer_id").shift(1)).fill_null(False).alias("c"),
        (pl.col("meter_id") == pl.col("meter_id").shift(1)).fill_null(False).alias("m"),
    )
    eq_c = eq["c"].to_numpy()
    eq_m = eq_c & eq["m"].to_numpy()
    day = df["day"].to_physical().to_numpy()
    row = df["row"].to_numpy()
    eq_d = np.zeros(n, np.bool_)
    eq_d[1:] = eq_m[1:] & (day[1:] == day[:-1])
    ok = bool(df["customer_id"].is_sorted())
    if ok and n > 1:
        inner = eq_m[1:]
        later = (day[1:] > day[:-1]) | ((day[1:] == day[:-1]) & (row[1:] > row[:-1]))
        ok = bool(np.all(later | ~inner))
    if ok:
        new_meter = np.flatnonzero(eq_c & ~eq_m)  # a customer's next meter: ids must increase
        if len(new_meter):
            mid = df["meter_id"]
            ok = bool((mid.gather(new_meter) > mid.gather(new_meter - 1)).all())
    return ok, {"eq_c": eq_c, "eq_m": eq_m, "eq_d": eq_d}


def _dedupe_reads(df: pl.DataFrame, values: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """``_dedupe`` of meter reads on (customer, meter, day), adding the run ids ``_m`` (meter) and
    ``_c`` (customer), Int32, increasing in (customer, meter) order: later steps sort and compare these
    integers instead of the id strings. Returns the frame sorted by customer, meter, day."""
    if df.height == 0:
        return df.with_columns(pl.lit(0, pl.Int32).alias("_m"), pl.lit(0, pl.Int32).alias("_c")), _empty_q(), 0
    ok, flags = _runs(df)
    if not ok:  # exports are usually sorted already
        df = df.sort("customer_id", "meter_id", "day", "row")
        ok, flags = _runs(df)
    eq_c, eq_m, eq_d = flags["eq_c"], flags["eq_m"], flags["eq_d"]
    df = df.with_columns(
        pl.Series("_m", np.cumsum(~eq_m, dtype=np.int32) - 1),
        pl.Series("_c", np.cumsum(~eq_c, dtype=np.int32) - 1),
    )
    dup = eq_d.copy()
    dup[:-1] |= eq_d[1:]
    if not dup.any():
        return df, _empty_q(), 0
    mask = pl.Series(dup)
    sub, q, dups = _dedupe_groups(df.filter(mask), ["customer_id", "meter_id", "day"], values,
                                  "the read of this meter and day")
    return pl.concat([df.filter(~mask), sub], how="vertical_relaxed").sort("_m", "day"), q, dups


def _nullable(name: str, values: np.ndarray, has: np.ndarray) -> pl.Series:
    """A Series of ``values`` with nulls where ``has`` is False."""
    s = pl.Series(name, values)
    return s if has.all() else s.set(pl.Series(~has), None)


def _deltas(df: pl.DataFrame, reg_cols: list[str]) -> pl.DataFrame:
    """Differences to the previous read of the same meter (df sorted by customer, meter, day).

    Adds ``_prev_day``, ``_prev_total``, ``_digits``, ``_d_<register>``, ``_roll``, ``_negcol``, ``_neg``
    and ``_bad`` (see ``ingest.kernels.register_deltas``, which does the work in one pass).
    """
    n = df.height
    same = _same_meter(df)
    day = df["day"].cast(pl.Int32).to_numpy()
    regs = np.empty((len(reg_cols), n), np.int64)
    for j, c in enumerate(reg_cols):
        col = df[c]
        regs[j] = (col.fill_null(-1) if col.null_count() else col).to_numpy()
    dig = df["digits"]
    digits = dig.fill_null(-1).to_numpy() if dig.null_count() < n else np.empty(0, np.int64)
    delta, prev_day, prev_total, rolled, negcol, bad, used = kernels.register_deltas(same, day, regs, digits)
    has_prev = prev_day >= 0
    neg = negcol >= 0
    if neg.any():
        names = pl.Series("_negcol", reg_cols, dtype=pl.Utf8).gather(np.maximum(negcol, 0).astype(np.int64))
        negname: pl.Series | pl.Expr = names.set(pl.Series(~neg), None)
    else:
        negname = pl.lit(None, pl.Utf8).alias("_negcol")
    went_down = used >= 0
    return df.with_columns(
        _nullable("_prev_day", prev_day, has_prev).cast(pl.Date),
        _nullable("_prev_total", prev_total, has_prev),
        _nullable("_digits", used, went_down) if went_down.any() else pl.lit(None, pl.Int64).alias("_digits"),
        *[_nullable(f"_d_{c}", delta[j], delta[j] != kernels.NO_DELTA) for j, c in enumerate(reg_cols)],
        pl.Series("_roll", rolled),
        negname,
        pl.Series("_neg", neg & (bad == 0)),
        pl.Series("_bad", bad),
    )


_BAD_READS = {
    kernels.BAD_LOW: ("negative_consumption", "{} went down from the previous read ({} Wh total) to {} Wh total and "
                      "came back: a bad read, days estimated"),
    kernels.BAD_HIGH: ("out_of_line_read", "{}: {} Wh total before, {} Wh now, and the next read is back in line "
                       "with the one before: a bad read, days estimated"),
    kernels.BAD_UNCONFIRMED: ("unconfirmed_drop", "{} went down from {} Wh total to {} Wh total on the meter's last "
                              "read: held back until a later read shows whether it comes back"),
}


def _bad_read_quarantine(bad: pl.DataFrame) -> pl.DataFrame:
    """Quarantine rows of the bad reads of ``_deltas`` (``_bad`` > 0), one code per kind."""
    parts = []
    for kind, (code, template) in _BAD_READS.items():
        sub = bad.filter(pl.col("_bad") == kind)
        if sub.height:
            parts.append(sub.select(
                "row",
                pl.col("_negcol").fill_null("total").alias("column"),
                pl.lit(code).alias("code"),
                _fmt(template, pl.col("_negcol").fill_null("total"), pl.col("_prev_total"), pl.col("total"))
                .alias("reason"),
            ))
    return pl.concat(parts, how="vertical_relaxed") if parts else _empty_q()


def _edge_evidence(periods: list[str]) -> dict[str, pl.Expr]:
    """Evidence of a gap's two register reads as read (Wh, before the multiplier): a late file of the
    gap's days continues from them (``ingest.core``, "late reads")."""
    ev: dict[str, pl.Expr] = {}
    for side in ("from", "to"):
        for c in ("total", *REGISTERS):
            ev[f"{side}_{c}_wh"] = pl.col(f"_{side}_{c}") if c == "total" or c in periods else pl.lit(None, pl.Int64)
    ev["multiplier"] = pl.col("_to_multiplier")
    ev["digits"] = pl.col("_to_digits")
    return ev


def _with_edges(multi: pl.DataFrame, reads: pl.DataFrame, periods: list[str]) -> pl.DataFrame:
    """``multi`` (gap rows) with the register reads at both ends, ``_from_<c>`` and ``_to_<c>``."""
    cols = ["total", *periods]
    r = reads.select("_m", "day", *cols, "multiplier", "digits")
    to = r.rename({c: f"_to_{c}" for c in [*cols, "multiplier", "digits"]})
    fr = r.select("_m", pl.col("day").alias("_prev_day"), *[pl.col(c).alias(f"_from_{c}") for c in cols])
    return (multi.join(to, on=["_m", "day"], how="left", maintain_order="left")
            .join(fr, on=["_m", "_prev_day"], how="left", maintain_order="left"))


def _spread_gaps(
    pairs: pl.DataFrame, periods: list[str], reads: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """One row per day: a read g days after the previous one is split over the g days (exact sums).

    ``reads``: the accepted register reads (``_m``, ``day``, registers as read, ``multiplier``,
    ``digits``); the gap findings then carry the reads at both ends."""
    pairs = pairs.with_columns(
        (pl.col("day") - pl.col("_prev_day")).dt.total_days().cast(pl.Int64).alias("_g")
    )
    gap = pairs["_g"] > 1
    if gap.any():
        single, multi = pairs.filter(~gap), pairs.filter(gap)
    else:  # the usual file: a read every day, no copy
        single, multi = pairs, pairs.clear()
    out_cols = ["customer_id", "meter_id", "day", "total", *periods]
    run = ["_m"] if "_m" in pairs.columns else []  # meter run id (registers): kept for the caller
    out_cols += run

    def finish(df: pl.DataFrame, est: bool) -> pl.DataFrame:
        return df.select(
            *run,
            "customer_id",
            "meter_id",
            "day",
            pl.col("total").alias("wh_total"),
            *[(pl.col(r) if r in periods else pl.lit(None, pl.Int64)).alias(f"wh_{r}") for r in REGISTERS],
            pl.lit(est).alias("estimated"),
        )

    parts = [finish(single.select([*out_cols, "_tou"]), False)]
    gap_f = _empty_f()
    estimated = 0
    if multi.height:
        gap_f = _findings(
            multi if reads is None else _with_edges(multi, reads, periods),
            "gap_estimated",
            _fmt(
                "no reads for {} days before this read; {} Wh spread evenly over them (estimated)",
                pl.col("_g") - 1,
                pl.col("total"),
            ),
            {
                "from": pl.col("_prev_day"),
                "to": pl.col("day"),
                "days": pl.col("_g"),
                "total_wh": pl.col("total"),
                **({} if reads is None else _edge_evidence(periods)),
            },
        )
        ex = multi.with_columns(pl.int_ranges(0, pl.col("_g")).alias("_i")).explode("_i", empty_as_null=True)
        ex = ex.with_columns((pl.col("_prev_day") + pl.duration(days=pl.col("_i") + 1)).alias("day"))

        def split(c: str) -> pl.Expr:
            return (pl.col(c) // pl.col("_g")) + (pl.col("_i") < (pl.col(c) % pl.col("_g"))).cast(pl.Int64)

        if periods:
            ex = ex.with_columns([split(p).alias(p) for p in periods])
            ex = ex.with_columns(
                pl.when(pl.col("_tou"))
                .then(pl.sum_horizontal(periods))
                .otherwise(split("total"))
                .alias("total")
            )
            ex = ex.with_columns([pl.when(pl.col("_tou")).then(pl.col(p)).alias(p) for p in periods])
        else:
            ex = ex.with_columns(split("total").alias("total"))
        ex = finish(ex.select([*out_cols, "_tou"]), True)
        estimated = ex.height
        parts.append(ex)
    daily = pl.concat(parts, how="vertical_relaxed")
    if len(parts) > 1:  # estimated days were appended: back in (customer, meter, day) order
        daily = daily.sort(*run, "day") if run else daily.sort("customer_id", "meter_id", "day")
    # non-TOU meters: periods null
    daily = daily.select([pl.col(k).cast(v) for k, v in DAILY_SCHEMA.items()] + [pl.col(c) for c in run])
    return daily, gap_f, estimated


#: measured days on each side of a meter exchange whose mean estimates the days no meter saw [days]
EXCHANGE_BASIS_DAYS = 14


def _exchange_findings(d: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A customer whose meter id changes: old meter's last read and new meter's first read.

    The new meter's first read is where it starts (its installation read), never use: only
    consumption a meter saw is billed. Returns (findings, exchanges): one row per exchange with
    ``customer_id``, ``meter_id`` (the new meter), ``old_last_day`` and ``new_first_day``; the days
    after the old meter's last read through the new meter's first read (none when both were read on
    the same day) saw no meter and are estimated by :func:`_estimate_exchange_days`.
    """
    no_ex = pl.DataFrame(schema={"customer_id": pl.Utf8, "meter_id": pl.Utf8, "old_last_day": pl.Date,
                                 "new_first_day": pl.Date})
    if d.height == 0:
        return _empty_f(), no_ex
    spans = (
        d.group_by("customer_id", "meter_id")
        .agg(
            pl.col("day").min().alias("first_day"),
            pl.col("day").max().alias("last_day"),
            pl.col("total").sort_by("day").first().alias("first_total"),
            pl.col("total").sort_by("day").last().alias("last_total"),
        )
        .filter(pl.len().over("customer_id") > 1)
    )
    if spans.height == 0:
        return _empty_f(), no_ex
    spans = spans.sort("customer_id", "first_day", "last_day")
    nxt = spans.with_columns(
        pl.col("meter_id").shift(-1).over("customer_id").alias("new_meter"),
        pl.col("first_day").shift(-1).over("customer_id").alias("new_first_day"),
        pl.col("first_total").shift(-1).over("customer_id").alias("new_first_total"),
    ).filter(pl.col("new_meter").is_not_null() & (pl.col("new_first_day") >= pl.col("last_day")))
    nxt = nxt.with_columns(pl.col("new_first_day").alias("day"))
    exchanges = nxt.select(
        "customer_id", pl.col("new_meter").alias("meter_id"), pl.col("last_day").alias("old_last_day"),
        "new_first_day",
    )
    return _findings(
        nxt,
        "meter_exchange",
        _fmt(
            "meter {} (last read {} on {}) replaced by {} (first read {} on {}, where it starts)",
            pl.col("meter_id"),
            pl.col("last_total"),
            pl.col("last_day"),
            pl.col("new_meter"),
            pl.col("new_first_total"),
            pl.col("new_first_day"),
        ),
        {
            "old_meter": pl.col("meter_id"),
            "old_last_day": pl.col("last_day"),
            "old_last_total_wh": pl.col("last_total"),
            "new_meter": pl.col("new_meter"),
            "new_first_day": pl.col("new_first_day"),
            "new_first_total_wh": pl.col("new_first_total"),
            "days_without_reads": (pl.col("new_first_day") - pl.col("last_day")).dt.total_days(),
        },
    ), exchanges


def _exchanges_across_files(df: pl.DataFrame, anchors: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Meter exchanges across files, in either order: a meter of the file with no stored read (its
    first read is where it starts) whose customer's stored last read is of another meter absent from
    the file, on or before the new meter's first day; or a meter of the file with no stored read whose
    customer has another meter, absent from the file, whose stored first read (a head: where it
    starts) is on or after this meter's last read here (the new meter's file came first).
    Returns (findings ``meter_exchange``, exchanges as ``_exchange_findings``)."""
    no_ex = pl.DataFrame(schema={"customer_id": pl.Utf8, "meter_id": pl.Utf8, "old_last_day": pl.Date,
                                 "new_first_day": pl.Date})
    is_head = pl.col("head").fill_null(False) if "head" in anchors.columns else pl.lit(False)
    state = anchors.filter(~is_head)
    heads = anchors.filter(is_head)
    rows = df.filter(pl.col("row") > 0)
    # the file's meters without a stored read: in a daily file, none (and nothing else to do)
    new_keys = rows.select("customer_id", "meter_id").unique().join(
        state.select("customer_id", "meter_id"), on=["customer_id", "meter_id"], how="anti")
    if new_keys.height == 0:
        return _empty_f(), no_ex
    new = rows.join(new_keys, on=["customer_id", "meter_id"], how="semi").group_by("customer_id", "meter_id").agg(
        pl.col("day").min().alias("new_first_day"), pl.col("total").sort_by("day").first().alias("new_first_total"),
        pl.col("day").max().alias("last_day"), pl.col("total").sort_by("day").last().alias("last_total"))
    in_file = df.select("customer_id", "meter_id").unique()
    old = state.join(in_file, on=["customer_id", "meter_id"], how="anti").select(
        "customer_id", pl.col("meter_id").alias("old_meter"), pl.col("day").alias("old_last_day"),
        pl.col("wh_total").alias("old_last_total"))
    # the old meter's reads stored, the new meter starts in this file
    x = new.join(old, on="customer_id", how="inner").filter(pl.col("new_first_day") >= pl.col("old_last_day"))
    x = x.sort("old_last_day").group_by("customer_id", "meter_id", maintain_order=True).last()  # the newest old meter
    x = x.select("customer_id", "meter_id", "new_first_day", "new_first_total", "old_meter", "old_last_day",
                 "old_last_total")
    # the new meter's reads stored first (its first read a head), the old meter's come in this file
    later = heads.join(in_file, on=["customer_id", "meter_id"], how="anti").select(
        "customer_id", "meter_id", pl.col("day").alias("new_first_day"), pl.col("wh_total").alias("new_first_total"))
    y = new.select("customer_id", pl.col("meter_id").alias("old_meter"), pl.col("last_day").alias("old_last_day"),
                   pl.col("last_total").alias("old_last_total")).join(later, on="customer_id", how="inner").filter(
        pl.col("new_first_day") >= pl.col("old_last_day"))
    y = y.sort("new_first_day").group_by("customer_id", "old_meter", maintain_order=True).first()  # the nearest
    x = pl.concat([x, y.select(x.columns)], how="vertical_relaxed").unique(["customer_id", "meter_id"], keep="first")
    if x.height == 0:
        return _empty_f(), no_ex
    f = _findings(
        x.with_columns(pl.col("new_first_day").alias("day")),
        "meter_exchange",
        _fmt("meter {} (last read {} on {}, stored) replaced by {} (first read {} on {}, where it starts)",
             pl.col("old_meter"), pl.col("old_last_total"), pl.col("old_last_day"), pl.col("meter_id"),
             pl.col("new_first_total"), pl.col("new_first_day")),
        {
            "old_meter": pl.col("old_meter"),
            "old_last_day": pl.col("old_last_day"),
            "old_last_total_wh": pl.col("old_last_total"),
            "new_meter": pl.col("meter_id"),
            "new_first_day": pl.col("new_first_day"),
            "new_first_total_wh": pl.col("new_first_total"),
            "days_without_reads": (pl.col("new_first_day") - pl.col("old_last_day")).dt.total_days(),
        },
    )
    return f, x.select(no_ex.columns)


def _estimate_exchange_days(
    daily: pl.DataFrame, exchanges: pl.DataFrame, periods: list[str], basis: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Estimate the days of a meter exchange that no meter saw (old meter's last read day + 1 through
    the new meter's first read day): each such day gets the customer's mean measured day over up to
    ``EXCHANGE_BASIS_DAYS`` days on either side (per register, integer Wh, floor; the total of a
    time-of-use meter is the sum of its registers), flagged ``estimated``, as rows of the new meter;
    finding ``exchange_estimated``. Without measured days around it nothing is guessed: the days
    stay without consumption and the finding says so. ``basis``: stored daily rows (``DAILY_SCHEMA``)
    around the exchange when the store holds some (the old meter's reads came in an earlier file, or the
    file is sent again): their measured days count in the mean, and a day the store holds already,
    measured or estimated by an earlier load, is not estimated again (the stored day stands; a file sent
    again estimates nothing and finds what the first load found)."""
    ex = exchanges.filter(pl.col("new_first_day") > pl.col("old_last_day"))
    if ex.height == 0:
        return daily, _empty_f(), 0
    cols = ["wh_total", *[f"wh_{p}" for p in periods]]
    days = daily.select(DAILY_SCHEMA.keys())
    if basis is not None and basis.height:
        days = pl.concat([days, basis.select(DAILY_SCHEMA.keys())], how="vertical_relaxed").unique(
            ["customer_id", "meter_id", "day"], keep="first", maintain_order=True)
    near = (
        days.filter(~pl.col("estimated"))
        .join(ex.select("customer_id", "old_last_day", "new_first_day"), on="customer_id")
        .filter(
            (pl.col("day") > pl.col("old_last_day") - pl.duration(days=EXCHANGE_BASIS_DAYS))
            & (pl.col("day") <= pl.col("new_first_day") + pl.duration(days=EXCHANGE_BASIS_DAYS))
            & ((pl.col("day") <= pl.col("old_last_day")) | (pl.col("day") > pl.col("new_first_day")))
        )
        .group_by("customer_id", "old_last_day", "new_first_day", "day")
        .agg(*[pl.col(c).sum() for c in cols],
             *[pl.col(f"wh_{p}").is_not_null().any().alias(f"_has_{p}") for p in periods])
        .group_by("customer_id", "old_last_day", "new_first_day")
        .agg(*[(pl.col(c).sum() // pl.len()).alias(c) for c in cols],
             *[pl.col(f"_has_{p}").any().alias(f"_has_{p}") for p in periods],
             pl.len().alias("basis_days"))
    )
    ex = ex.join(near, on=["customer_id", "old_last_day", "new_first_day"], how="left")
    ex = ex.with_columns((pl.col("new_first_day") - pl.col("old_last_day")).dt.total_days().alias("_g"))
    if periods:
        tou = pl.any_horizontal([pl.col(f"_has_{p}").fill_null(False) for p in periods])
        ex = ex.with_columns(
            *[pl.when(pl.col(f"_has_{p}")).then(pl.col(f"wh_{p}")).alias(f"wh_{p}") for p in periods],
        ).with_columns(
            pl.when(tou).then(pl.sum_horizontal([pl.col(f"wh_{p}").fill_null(0) for p in periods]))
            .otherwise(pl.col("wh_total")).alias("wh_total")
        )
    found = ex.filter(pl.col("basis_days").is_not_null())
    f = _findings(
        ex.with_columns(pl.col("new_first_day").alias("day")),
        "exchange_estimated",
        pl.when(pl.col("basis_days").is_not_null()).then(_fmt(
            "no meter saw the {} day(s) from {} to {} of the exchange: each estimated at the mean of {} measured "
            "days around it, {} Wh",
            pl.col("_g"), pl.col("old_last_day") + pl.duration(days=1), pl.col("new_first_day"),
            pl.col("basis_days"), pl.col("wh_total"),
        )).otherwise(_fmt(
            "no meter saw the {} day(s) from {} to {} of the exchange and no measured day is near: not estimated",
            pl.col("_g"), pl.col("old_last_day") + pl.duration(days=1), pl.col("new_first_day"),
        )),
        {
            "from": pl.col("old_last_day") + pl.duration(days=1),
            "to": pl.col("new_first_day"),
            "days": pl.col("_g"),
            "wh_per_day": pl.col("wh_total"),
            "basis_days": pl.col("basis_days"),
        },
    )
    if found.height == 0:
        return daily, f, 0
    m_of = daily.select("customer_id", "meter_id", "_m").unique(["customer_id", "meter_id"])
    rows = (
        found.with_columns(pl.int_ranges(1, pl.col("_g") + 1).alias("_i")).explode("_i")
        .with_columns((pl.col("old_last_day") + pl.duration(days=pl.col("_i"))).alias("day"))
        .join(m_of, on=["customer_id", "meter_id"], how="left")
        .with_columns(pl.lit(True).alias("estimated"))
    )
    if basis is not None and basis.height:  # (the days the store holds stand)
        rows = rows.join(basis.select("customer_id", "day").unique(), on=["customer_id", "day"], how="anti")
    if rows.height == 0:
        return daily, f, 0
    for r in REGISTERS:
        if f"wh_{r}" not in rows.columns:
            rows = rows.with_columns(pl.lit(None, pl.Int64).alias(f"wh_{r}"))
    rows = rows.select([pl.col(c).cast(daily.schema[c]) for c in daily.columns])
    out = pl.concat([daily, rows], how="vertical_relaxed").sort("customer_id", "meter_id", "day")
    return out, f, rows.height


def _spike_findings(daily: pl.DataFrame, multi: bool = True) -> pl.DataFrame:
    """``multi``: some customer has several meters (then days are summed over meters first)."""
    if daily.height == 0:
        return _empty_f()
    if multi:  # several meters for a customer: judge the customer's day (sum of meters)
        measured = (
            daily.filter(~pl.col("estimated"))
            .group_by("customer_id", "day")
            .agg(pl.col("wh_total").sum(), pl.col("meter_id").first())
        )
        stats = measured.group_by("customer_id").agg(
            pl.col("wh_total").median().alias("median_wh"), pl.len().alias("n_days")
        )
        sp = measured.join(stats.filter(pl.col("n_days") >= SPIKE_MIN_DAYS), on="customer_id")
    else:  # one meter per customer, rows sorted by customer: one pass over contiguous households
        if "_m" in daily.columns:
            m = daily["_m"].to_numpy()
            new = np.ones(len(m), np.bool_)
            new[1:] = m[1:] != m[:-1]
        else:
            new = daily.select(
                (pl.col("customer_id") != pl.col("customer_id").shift(1)).fill_null(True)
            ).to_series().to_numpy()
        starts = np.append(np.flatnonzero(new), daily.height).astype(np.int64)
        hit, median = kernels.spike_days(
            starts,
            daily["wh_total"].to_numpy(),
            ~daily["estimated"].to_numpy(),
            float(SPIKE_FACTOR),
            float(SPIKE_MIN_EXCESS_WH),
            SPIKE_MIN_DAYS,
        )
        if not hit.any():
            return _empty_f()
        sp = daily.filter(pl.Series(hit)).select("customer_id", "meter_id", "day", "wh_total").with_columns(
            pl.Series("median_wh", median[hit])
        )
    sp = sp.filter(
        pl.col("wh_total")
        > pl.max_horizontal(pl.col("median_wh") * SPIKE_FACTOR, pl.col("median_wh") + SPIKE_MIN_EXCESS_WH)
    )
    return _findings(
        sp,
        "spike",
        _fmt(
            "{} Wh on this day, the household's median day is {} Wh (flagged only)",
            pl.col("wh_total"),
            pl.col("median_wh").round(0),
        ),
        {
            "wh_total": pl.col("wh_total"),
            "median_wh": pl.col("median_wh"),
            "ratio": (pl.col("wh_total") / pl.col("median_wh")).round(2),
        },
    )


# --- daily consumption reads ------------------------------------------------------------------

_TRUE = ("e", "est", "estimated", "true", "t", "1", "y", "yes", "是", "估")


def consumption_to_daily(raw: pl.DataFrame, today: dt.date | None = None) -> VeeResult:
    """Daily consumption reads (kWh) taken as they are, after the same checks."""
    today = today or dt.date.today()
    rows = raw.height
    periods_in = [r for r in REGISTERS if f"kwh_{r}" in raw.columns]
    raw = _prep(raw, ("kwh_total", *[f"kwh_{r}" for r in REGISTERS], "multiplier"), ("read_date",))
    chk = _Checks()
    _read_checks(chk, raw, today, "kwh_total", [f"kwh_{p}" for p in periods_in])
    good, q1 = _split_quarantine(raw, chk)
    mult = (
        _number(good, "multiplier") if "multiplier" in good.columns else pl.lit(None, pl.Float64)
    ).fill_null(1.0)
    est = (
        _text(good, "estimated").str.to_lowercase().is_in(list(_TRUE)).fill_null(False)
        if "estimated" in good.columns
        else pl.lit(False)
    )
    df = good.select(
        pl.col("row").cast(pl.Int64),
        _text(good, "customer_id").alias("customer_id"),
        _text(good, "meter_id").alias("meter_id"),
        _date(good, "read_date").alias("day"),
        _wh(_number(good, "kwh_total") * mult).alias("total"),
        *[_wh(_number(good, f"kwh_{p}") * mult).alias(p) for p in periods_in],
        est.alias("estimated"),
    )
    df, q2 = _incomplete_tou(df, periods_in, column_prefix="kwh_")
    df, q3, duplicates = _dedupe(
        df,
        ["customer_id", "meter_id", "day"],
        ["total", *periods_in, "estimated"],
        "the read of this meter and day",
    )
    df, pf = _reconcile_periods(df, "total", periods_in, "_tou")
    daily = (
        df.select(
            "customer_id",
            "meter_id",
            "day",
            pl.col("total").alias("wh_total"),
            *[
                (
                    pl.when(pl.col("_tou")).then(pl.col(r)) if r in periods_in else pl.lit(None, pl.Int64)
                ).alias(f"wh_{r}")
                for r in REGISTERS
            ],
            "estimated",
        )
        .select([pl.col(k).cast(v) for k, v in DAILY_SCHEMA.items()])
        .sort("customer_id", "meter_id", "day")
    )
    findings = [_period_finding_frame(pf, "total", periods_in, "day"), _spike_findings(daily)]
    q = pl.concat([q1, q2, q3], how="vertical_relaxed")
    nonempty = [f for f in findings if f.height]
    return VeeResult(
        rows=rows,
        frame=daily,
        quarantine=q,
        findings=pl.concat(nonempty, how="vertical_relaxed") if nonempty else _empty_f(),
        duplicates=duplicates,
        loaded=rows - q.height - duplicates,
        estimated=int(daily["estimated"].sum()),
    )


# --- customers and payments -------------------------------------------------------------------


def customers_frame(
    raw: pl.DataFrame, today: dt.date | None = None, known_tariffs: Collection[str] | None = None
) -> VeeResult:
    """Customers (``CUSTOMER_SCHEMA``). Refused with a reason: a missing id or tariff, a tariff code not
    in ``known_tariffs`` (when given: the catalogue's codes) ``unknown_tariff``, ``closed_on`` before
    ``opened_on`` ``closed_before_opened``, a bad household size or language."""
    today = today or dt.date.today()
    rows = raw.height
    raw = _prep(raw, ("household_size",), ("opened_on", "closed_on"))
    chk = _Checks()
    for c in ("customer_id", "tariff"):
        chk.add(~_present(raw, c), c, "missing_value", f"{c} is missing")
    if "household_size" in raw.columns:
        n = _number(raw, "household_size")
        chk.add(
            _present(raw, "household_size") & (n.is_null() | (n != n.round(0)) | (n < 1) | (n > 50)),
            "household_size",
            "bad_value",
            "household_size is not a whole number between 1 and 50",
        )
    for c in ("opened_on", "closed_on"):
        _date_checks(chk, raw, c, False, today + dt.timedelta(days=3660))
    if "opened_on" in raw.columns and "closed_on" in raw.columns:
        chk.add(
            (_date(raw, "closed_on") < _date(raw, "opened_on")).fill_null(False),
            "closed_on",
            "closed_before_opened",
            "closed_on is before opened_on",
        )
    if known_tariffs is not None:
        chk.add(
            _present(raw, "tariff") & ~_text(raw, "tariff").is_in(sorted(known_tariffs)).fill_null(False),
            "tariff",
            "unknown_tariff",
            "tariff is not a code of the tariff catalogue (wattbill tariffs list)",
        )
    if "language" in raw.columns:
        chk.add(
            _present(raw, "language") & ~_text(raw, "language").str.to_lowercase().is_in(["zh", "en"]),
            "language",
            "bad_value",
            "language is not zh or en",
        )
    good, q1 = _split_quarantine(raw, chk)
    df = good.select(
        "row",
        _text(good, "customer_id").alias("customer_id"),
        _text(good, "tariff").alias("tariff"),
        (_number(good, "household_size") if "household_size" in good.columns else pl.lit(None, pl.Float64))
        .fill_null(1)
        .cast(pl.Int32)
        .alias("household_size"),
        _text(good, "region").fill_null("").alias("region"),
        _date(good, "opened_on").alias("opened_on"),
        _date(good, "closed_on").alias("closed_on"),
        _text(good, "name").alias("name"),
        _text(good, "address").alias("address"),
        _text(good, "language").str.to_lowercase().fill_null("zh").alias("language"),
    )
    return _deduped_result(rows, df, q1, CUSTOMER_SCHEMA, ["customer_id"], "this customer", by_row=True)


#: yuan with at most 2 decimals; thousands separators only in groups of three (``1,234.50``; ``269,55`` refused)
# ASCII digits only: ``\d`` would take full-width digits (１２.５, common in Chinese exports), which the
# integer cast then refuses for the whole file; such an amount is quarantined with its reason instead
_AMOUNT_RE = r"^([+-]?)([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]{1,2}))?$"


def _amount_text(df: pl.DataFrame) -> pl.Expr:
    """The amount as text, as written (text) or as the shortest decimal of a typed value (Parquet)."""
    dtype = df.schema["amount"]
    if dtype == pl.Utf8:
        return pl.col("amount").str.strip_chars()
    return pl.col("amount").cast(pl.Utf8)


def _amount_parts(df: pl.DataFrame) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(sign, integer yuan as text without separators, 2-digit fen text) of a valid amount."""
    parts = _amount_text(df).str.extract_groups(_AMOUNT_RE)
    yuan = parts.struct.field("2").str.replace_all(",", "", literal=True)
    frac = parts.struct.field("3").fill_null("").str.pad_end(2, "0")
    return parts.struct.field("1"), yuan, frac


def payments_frame(raw: pl.DataFrame, today: dt.date | None = None) -> VeeResult:
    today = today or dt.date.today()
    rows = raw.height
    raw = _prep(raw, (), ("issued_on", "paid_on"))
    chk = _Checks()
    for c in ("customer_id", "bill_month", "amount"):
        chk.add(~_present(raw, c), c, "missing_value", f"{c} is missing")
    bm = _text(raw, "bill_month")
    bm_ok = bm.str.contains(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
    chk.add(
        _present(raw, "bill_month") & ~bm_ok.fill_null(False),
        "bill_month",
        "bad_value",
        "bill_month is not YYYY-MM",
    )
    _date_checks(chk, raw, "issued_on", True, today)
    _date_checks(chk, raw, "paid_on", False, today)
    ok = _amount_text(raw).str.contains(_AMOUNT_RE).fill_null(False)
    chk.add(
        _present(raw, "amount") & ~ok,
        "amount",
        "non_numeric",
        "amount is not a number of yuan with at most 2 decimals (thousands separators in groups of three)",
    )
    _, yuan_txt, frac_txt = _amount_parts(raw)
    max_yuan = limits.MAX_AMOUNT_FEN // 100
    fen = yuan_txt.cast(pl.Int64, strict=False).fill_null(0) * 100 + frac_txt.cast(pl.Int64, strict=False).fill_null(0)
    chk.add(
        ok & ((yuan_txt.str.strip_chars_start("0").str.len_chars() > len(str(max_yuan))) | (fen > limits.MAX_AMOUNT_FEN)),
        "amount",
        "implausible_value",
        f"amount is beyond {max_yuan:,} yuan",
    )
    if "channel" in raw.columns:
        chk.add(
            _present(raw, "channel") & ~_payment_channel(raw).is_in(list(CHANNELS)),
            "channel",
            "bad_value",
            f"channel is not one of {', '.join(CHANNELS)}",
        )
    good, q1 = _split_quarantine(raw, chk)
    sign_txt, yuan_txt, frac_txt = _amount_parts(good)
    sign = pl.when(sign_txt == "-").then(-1).otherwise(1)
    yuan = yuan_txt.cast(pl.Int64)
    frac = frac_txt.cast(pl.Int64)
    df = good.select(
        "row",
        _text(good, "customer_id").alias("customer_id"),
        _text(good, "bill_month").alias("bill_month"),
        _date(good, "issued_on").alias("issued_on"),
        _date(good, "paid_on").alias("paid_on"),
        (sign * (yuan * 100 + frac)).cast(pl.Int64).alias("amount_fen"),
        _payment_channel(good).fill_null("other").alias("channel"),
    )
    return _deduped_result(rows, df, q1, PAYMENT_SCHEMA, ["customer_id", "bill_month"],
                           "this customer and bill month", by_row=True)


def evidence(obj: dict) -> str:
    """JSON text of a finding's evidence (dates as ISO)."""
    return json.dumps(obj, default=str, ensure_ascii=False, sort_keys=True)


QUARANTINE_OUT = QUARANTINE_SCHEMA
