"""Builders of small hand-made households (daily frames, customers, payments, bills) for tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

YEAR = 2025
TOU = "cn-zhejiang-res-tou"
TIER = "cn-zhejiang-res-tier"
ORDINARY_SHARES = (0.04, 0.46, 0.20, 0.30)


def n_days(year: int = YEAR) -> int:
    return (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days


def month_days(year: int = YEAR) -> np.ndarray:
    """Month index (0..11) of every day of ``year``."""
    start = np.datetime64(f"{year}-01-01")
    return ((start + np.arange(n_days(year))).astype("datetime64[M]").astype(np.int64) % 12).astype(int)


def flat(level_wh: int, year: int = YEAR) -> np.ndarray:
    """Every day the same Wh, with a small deterministic weekly wobble (±5 %)."""
    wobble = np.array([0, 2, -3, 1, -2, 4, -2])[np.arange(n_days(year)) % 7] / 100.0
    return np.round(level_wh * (1 + wobble)).astype(np.int64)


def add_months(wh: np.ndarray, months: tuple[int, ...], extra_wh: int, year: int = YEAR) -> np.ndarray:
    """Add ``extra_wh`` a day in the given months (1-based)."""
    out = wh.copy()
    sel = np.isin(month_days(year), [m - 1 for m in months])
    out[sel] += extra_wh
    return out


@dataclass
class House:
    """One household: daily Wh (``-1`` = missing day), TOU shares (None = no TOU registers)."""

    customer_id: str
    wh: np.ndarray
    shares: tuple[float, float, float, float] | None = ORDINARY_SHARES
    region: str = "杭州"
    household_size: int = 3
    tariff: str = TOU
    opened_on: dt.date | None = None
    closed_on: dt.date | None = None
    estimated_days: tuple[int, ...] = ()
    exchange_day: int | None = None  # split that day over two meters
    language: str = "zh"
    payments: list[tuple[int, str | None]] = field(default_factory=list)  # (delay days or -1 unpaid, channel)


def _regs(total: int, shares) -> list[int]:
    parts = [int(total * s) for s in shares[:3]]
    return [*parts, total - sum(parts)]


def daily_frame(houses: list[House], year: int = YEAR) -> pl.DataFrame:
    rows: dict[str, list] = {k: [] for k in ("customer_id", "meter_id", "day", "wh_total", "wh_sharp", "wh_peak",
                                              "wh_flat", "wh_valley", "estimated")}
    jan1 = dt.date(year, 1, 1)

    def add(cid, meter, day, total, regs, est):
        rows["customer_id"].append(cid)
        rows["meter_id"].append(meter)
        rows["day"].append(jan1 + dt.timedelta(days=day))
        rows["wh_total"].append(total)
        for r, v in zip(("wh_sharp", "wh_peak", "wh_flat", "wh_valley"), regs, strict=True):
            rows[r].append(v)
        rows["estimated"].append(est)

    for h in houses:
        for d, v in enumerate(h.wh.tolist()):
            if v < 0:
                continue
            regs = _regs(v, h.shares) if h.shares is not None else [None] * 4
            est = d in h.estimated_days
            if h.exchange_day == d:
                a = v // 3
                ra = _regs(a, h.shares) if h.shares is not None else [None] * 4
                rb = [None if x is None else x - y for x, y in zip(regs, ra, strict=True)]
                add(h.customer_id, "M-old", d, a, ra, est)
                add(h.customer_id, "M-new", d, v - a, rb, est)
            else:
                add(h.customer_id, "M-old" if h.exchange_day is None or d < h.exchange_day else "M-new", d, v,
                    regs, est)
    return pl.DataFrame(rows, schema={
        "customer_id": pl.Utf8, "meter_id": pl.Utf8, "day": pl.Date, "wh_total": pl.Int64, "wh_sharp": pl.Int64,
        "wh_peak": pl.Int64, "wh_flat": pl.Int64, "wh_valley": pl.Int64, "estimated": pl.Boolean})


def customers_frame(houses: list[House]) -> pl.DataFrame:
    return pl.DataFrame({
        "customer_id": [h.customer_id for h in houses],
        "tariff": [h.tariff for h in houses],
        "household_size": [h.household_size for h in houses],
        "region": [h.region for h in houses],
        "opened_on": [h.opened_on for h in houses],
        "closed_on": [h.closed_on for h in houses],
        "name": [None] * len(houses),
        "address": [None] * len(houses),
        "language": [h.language for h in houses],
    }, schema={"customer_id": pl.Utf8, "tariff": pl.Utf8, "household_size": pl.Int32, "region": pl.Utf8,
               "opened_on": pl.Date, "closed_on": pl.Date, "name": pl.Utf8, "address": pl.Utf8,
               "language": pl.Utf8})


def payments_frame(houses: list[House], year: int = YEAR) -> pl.DataFrame:
    rows = []
    for h in houses:
        for m, (delay, channel) in enumerate(h.payments, start=1):
            issued = dt.date(year + (m == 12), m % 12 + 1, 2) if m < 12 else dt.date(year, 12, 20)
            paid = None if delay < 0 else issued + dt.timedelta(days=delay)
            rows.append((h.customer_id, f"{year}-{m:02d}", issued, paid, 10000, channel))
    return pl.DataFrame(rows, orient="row", schema={
        "customer_id": pl.Utf8, "bill_month": pl.Utf8, "issued_on": pl.Date, "paid_on": pl.Date,
        "amount_fen": pl.Int64, "channel": pl.Utf8})


def pay(delay: int, channel: str, n: int = 12) -> list[tuple[int, str]]:
    return [(delay, channel)] * n
