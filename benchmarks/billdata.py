"""Benchmark data for the bill run at 100k-1M households: daily rows written straight into a store.

``wattbill.synth`` simulates households hour by hour and writes cumulative register reads that go
through ingest (VEE) like a real file: realistic, but about an hour per 100,000 households on this
machine. A bill run reads the store's *daily* rows (``DAILY_SCHEMA``), so its benchmark needs only
those: this module draws them with numpy, a slice of households at a time, and hands them to
``Store.save_ingest`` as one streamed batch (the layout a year's file gives: per partition, sorted
segments of ``store.embedded.SEGMENT_ROWS`` rows), with the customers and their payments.

The shape, per household and day [Wh]:

- a household scale (log-normal, growing with the household's size), a base load, a cooling load
  peaking in late July and a heating load in January (each household its own amplitude), weekends
  +12 %, a day-to-day log-normal noise of 20 %, 5 % of households with a vacancy of 20-60 near-empty
  days;
- time-of-use registers (sharp, peak, flat, valley) from each household's shares with a daily
  wander of the valley share, adding up to the total exactly; 12 % of meters without time-of-use
  registers (period columns null: design "Reads");
- 3 % of households with 1-3 runs of 1-5 estimated days (``estimated`` true), 3 % with 1-3 gaps of
  1-6 days without a row, 2 % opened during the year (no rows before ``opened_on``);
- four provinces' tariffs (Zhejiang, Shanghai and Jiangsu time-of-use and tiered, Guangdong's
  seasonal monthly tiers): a meter with time-of-use registers is on its province's time-of-use
  tariff with probability 0.7; the benchmark adds a price change on 1 July (``versioned_tariffs``);
- payments: one per household and month, delays and channels by a payer class (prompt, ordinary,
  late; counter, online, auto-debit, mixed).

Everything is drawn from ``seed`` and the slice index, so a size's data are the same on every call.
Memory is bounded by one slice (``SLICE`` households x the days of ``years`` years).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator

import numpy as np
import polars as pl

from wattbill.ingest.schemas import CUSTOMER_SCHEMA, DAILY_SCHEMA, LEDGER_SCHEMA, PAYMENT_SCHEMA, IngestBatch

#: households drawn at once (x 730 days for two years: ~2 GB of frame, temporaries and the store's staging)
SLICE = 10_000

#: region -> (province's time-of-use tariff or None, its tiered tariff)
REGIONS: dict[str, tuple[str | None, str]] = {
    "杭州": ("cn-zhejiang-res-tou", "cn-zhejiang-res-tier"),
    "宁波": ("cn-zhejiang-res-tou", "cn-zhejiang-res-tier"),
    "上海": ("cn-shanghai-res-tou", "cn-shanghai-res-tier"),
    "南京": ("cn-jiangsu-res-tou", "cn-jiangsu-res-tier"),
    "苏州": ("cn-jiangsu-res-tou", "cn-jiangsu-res-tier"),
    "广州": (None, "cn-guangdong-res-tier"),
    "深圳": (None, "cn-guangdong-res-tier"),
}
#: every tariff code the data use (the benchmark gives each a new version on 1 July)
TARIFFS = sorted({c for pair in REGIONS.values() for c in pair if c is not None})
_CHANNELS = np.array(["app", "wechat", "alipay", "bank", "counter", "other"])


def customer_ids(lo: int, hi: int) -> pl.Series:
    """Ids ``lo+1 .. hi`` as 10-digit strings with a leading zero (as ``wattbill.synth``)."""
    return pl.Series("customer_id", np.arange(lo + 1, hi + 1, dtype=np.int64)).cast(pl.Utf8).str.zfill(10)


def _days(year: int) -> int:
    return (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days


def _traits(n: int, lo: int, year: int, seed: int) -> dict[str, np.ndarray]:
    """Per-household traits of customers ``lo+1 .. lo+n`` (one generator per slice)."""
    rng = np.random.default_rng([seed, lo])
    size = rng.choice(np.arange(1, 7), size=n, p=[0.12, 0.28, 0.3, 0.18, 0.08, 0.04])
    region = rng.integers(0, len(REGIONS), n)
    has_tou = rng.random(n) < 0.88
    on_tou = has_tou & (rng.random(n) < 0.7)
    opened = np.where(rng.random(n) < 0.02, rng.integers(30, 300, n), -1)  # day of ``year``
    return {
        "size": size, "region": region, "has_tou": has_tou, "on_tou": on_tou, "opened": opened,
        "scale": np.exp(rng.normal(np.log(4_500.0), 0.45, n)) * (0.7 + 0.15 * size),  # Wh/day
        "base": rng.uniform(0.15, 0.35, n),  # share of the scale always on
        "cool": np.where(rng.random(n) < 0.6, rng.uniform(0.4, 1.6, n), rng.uniform(0, 0.1, n)),
        "heat": np.where(rng.random(n) < 0.3, rng.uniform(0.3, 1.2, n), rng.uniform(0, 0.1, n)),
        "valley": np.clip(rng.normal(0.28, 0.1, n), 0.04, 0.65),
        "sharp": rng.uniform(0.02, 0.06, n),
        "flat_of_rest": rng.uniform(0.25, 0.4, n),
        "vacancy": np.where(rng.random(n) < 0.05, rng.integers(60, 280, n), -1),
        "vac_len": rng.integers(20, 61, n),
        "delay": rng.choice(3, size=n, p=[0.3, 0.55, 0.15]),
        "channel": rng.choice(4, size=n, p=[0.2, 0.4, 0.2, 0.2]),
        "rng_seed": rng.integers(0, 2**62, 1),
    }


def customers_frame(n: int, year: int, seed: int) -> pl.DataFrame:
    """``CUSTOMER_SCHEMA`` rows of ``n`` households (names and addresses left out: not billed)."""
    names = list(REGIONS)
    frames = []
    for lo in range(0, n, SLICE):
        m = min(SLICE, n - lo)
        t = _traits(m, lo, year, seed)
        tou = np.array([REGIONS[r][0] or REGIONS[r][1] for r in names])[t["region"]]
        tier = np.array([REGIONS[r][1] for r in names])[t["region"]]
        opened = pl.Series(np.where(t["opened"] >= 0, t["opened"], 0).astype(np.int32)) + (
            dt.date(year, 1, 1) - dt.date(1970, 1, 1)).days
        frames.append(pl.DataFrame({
            "customer_id": customer_ids(lo, lo + m),
            "tariff": np.where(t["on_tou"], tou, tier),
            "household_size": t["size"].astype(np.int32),
            "region": np.array(names)[t["region"]],
            "opened_on": opened.cast(pl.Date),
        }).with_columns(
            pl.when(pl.Series(t["opened"] >= 0)).then(pl.col("opened_on")).otherwise(None).alias("opened_on"),
            pl.lit(None, pl.Date).alias("closed_on"), pl.lit(None, pl.Utf8).alias("name"),
            pl.lit(None, pl.Utf8).alias("address"), pl.lit("zh").alias("language"),
        ).select(list(CUSTOMER_SCHEMA)).cast(CUSTOMER_SCHEMA))  # type: ignore[arg-type]
    return pl.concat(frames)


def _shape(year: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Summer and winter curves (0..1) and the weekly factor of each day of ``year``."""
    doy = np.arange(_days(year), dtype=np.float32)
    summer = np.exp(-0.5 * ((doy - 205.0) / 22.0) ** 2)
    winter = np.exp(-0.5 * (np.minimum(np.abs(doy - 15.0), np.abs(doy - 15.0 - _days(year))) / 28.0) ** 2)
    week = np.where((np.arange(_days(year)) + dt.date(year, 1, 1).weekday()) % 7 >= 5, 1.12, 0.97)
    return summer.astype(np.float32), winter.astype(np.float32), week.astype(np.float32)


def _slice_year(t: dict[str, np.ndarray], year: int, before: bool, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One year of one slice: (total [n, days] int64, regs [n, days, 4] int64, estimated bool, keep bool)."""
    n, days = len(t["size"]), _days(year)
    summer, winter, week = _shape(year)
    f32 = np.float32
    scale = t["scale"].astype(f32)[:, None]
    use = scale * (t["base"].astype(f32)[:, None]
                   + (1 - t["base"].astype(f32)[:, None]) * week[None, :]
                   * np.exp(f32(0.2) * rng.standard_normal((n, days), dtype=f32) - f32(0.02))
                   + t["cool"].astype(f32)[:, None] * summer[None, :] + t["heat"].astype(f32)[:, None] * winter[None, :])
    d = np.arange(days)[None, :]
    vac = (d >= t["vacancy"][:, None]) & (d < (t["vacancy"] + t["vac_len"])[:, None])
    use = np.where(vac, f32(30) + f32(300) * rng.random((n, days), dtype=f32), use)
    total = (use / 10).astype(np.int64) * 10  # meters resolve 10 Wh
    # registers: shares of each household, the valley share wandering from day to day
    sharp = (total * t["sharp"][:, None]).astype(np.int64)
    valley = (total * np.clip(t["valley"][:, None] * (1 + 0.08 * rng.standard_normal((n, days), dtype=f32)), 0, 0.9)
              ).astype(np.int64)
    flat = ((total - sharp - valley) * t["flat_of_rest"][:, None]).astype(np.int64)
    peak = total - sharp - valley - flat
    regs = np.stack([sharp, peak, flat, valley], axis=2)
    # data events: estimated runs, gaps without rows, accounts opened during the year
    estimated = np.zeros((n, days), dtype=bool)
    keep = np.ones((n, days), dtype=bool)
    for mask_p, target, value in ((0.03, estimated, True), (0.03, keep, False)):
        who = np.flatnonzero(rng.random(n) < mask_p)
        for _ in range(3):
            start = rng.integers(0, days - 6, len(who))
            length = rng.integers(1, 6, len(who))
            on = rng.random(len(who)) < 0.7
            for w, s, k, o in zip(who, start, length, on, strict=True):
                if o:
                    target[w, s : s + k] = value
    if not before:  # (the accounts opened during the last year have no earlier rows at all)
        opened = t["opened"]
        keep &= ~((opened[:, None] >= 0) & (d < opened[:, None]))
    else:
        keep &= ~(t["opened"][:, None] >= 0)
    return total, regs, estimated, keep


def daily_slices(n: int, year: int, years: int, seed: int) -> Iterator[pl.DataFrame]:
    """``DAILY_SCHEMA`` frames of ``years`` years ending with ``year``, ``SLICE`` households at a time,
    each sorted by (customer_id, meter_id, day) and the slices in customer order."""
    span = list(range(year - years + 1, year + 1))
    for lo in range(0, n, SLICE):
        m = min(SLICE, n - lo)
        t = _traits(m, lo, year, seed)
        rng = np.random.default_rng(int(t["rng_seed"][0]))
        parts = [_slice_year(t, y, y != year, rng) if years > 1 else _slice_year(t, y, False, rng) for y in span]
        # (the last year is year; an account opened in it has no rows the year before)
        days_all = np.concatenate([
            np.arange(_days(y), dtype=np.int32) + (dt.date(y, 1, 1) - dt.date(1970, 1, 1)).days for y in span])
        total = np.concatenate([p[0] for p in parts], axis=1)
        regs = np.concatenate([p[1] for p in parts], axis=1)
        est = np.concatenate([p[2] for p in parts], axis=1)
        keep = np.concatenate([p[3] for p in parts], axis=1).reshape(-1)
        width = total.shape[1]
        ids = customer_ids(lo, lo + m)
        rows = np.repeat(np.arange(m, dtype=np.int64), width)[keep]
        no_tou = pl.Series(np.repeat(~t["has_tou"], width)[keep])
        frame = pl.DataFrame({
            "customer_id": ids.gather(rows),
            "meter_id": ("M" + ids).gather(rows),
            "day": pl.Series(np.tile(days_all, m)[keep]).cast(pl.Date),
            "wh_total": total.reshape(-1)[keep],
            **{f"wh_{r}": regs[:, :, k].reshape(-1)[keep] for k, r in enumerate(("sharp", "peak", "flat", "valley"))},
            "estimated": est.reshape(-1)[keep],
        })
        frame = frame.with_columns(
            pl.when(no_tou).then(None).otherwise(pl.col(c)).alias(c) for c in ("wh_sharp", "wh_peak", "wh_flat", "wh_valley"))
        yield frame.cast(DAILY_SCHEMA)  # type: ignore[arg-type]


def payments_frame(n: int, year: int, years: int, seed: int) -> pl.DataFrame:
    """``PAYMENT_SCHEMA``: one bill a month per household, paid by its class's delay and channel."""
    out = []
    for lo in range(0, n, SLICE):
        m = min(SLICE, n - lo)
        t = _traits(m, lo, year, seed)
        rng = np.random.default_rng([seed, lo, 7])
        ids = customer_ids(lo, lo + m)
        for y in range(year - years + 1, year + 1):
            for month in range(1, 13):
                issued = np.datetime64(dt.date(y + (month == 12), month % 12 + 1, 1)) + rng.integers(0, 5, m).astype(
                    "timedelta64[D]")
                delay = np.select([t["delay"] == 0, t["delay"] == 1],
                                  [rng.integers(0, 4, m), rng.integers(4, 15, m)], rng.integers(20, 46, m))
                channel = np.select(
                    [t["channel"] == 0, t["channel"] == 1, t["channel"] == 2],
                    [np.full(m, 4), rng.integers(0, 3, m), np.full(m, 3)], rng.integers(0, 6, m))
                opened = (t["opened"] >= 0) & ((y < year) | (month <= t["opened"] // 31 + 1))
                fen = (t["scale"] * 30 * 0.55 / 10).astype(np.int64)  # about 0.55 yuan/kWh
                out.append(pl.DataFrame({
                    "customer_id": ids, "bill_month": f"{y}-{month:02d}", "issued_on": issued,
                    "paid_on": issued + delay.astype("timedelta64[D]"), "amount_fen": fen,
                    "channel": _CHANNELS[channel],
                }).filter(pl.Series(~opened)))
    return pl.concat(out).cast(PAYMENT_SCHEMA).sort("customer_id", "bill_month")  # type: ignore[arg-type]


def _ledger(what: str, n: int, year: int, years: int, seed: int, rows: int) -> dict:
    sha = hashlib.sha256(f"billdata|{what}|{n}|{year}|{years}|{seed}".encode()).hexdigest()
    row = {"sha256": sha, "file": f"billdata-{what}-{n}-{year}-{years}y-seed{seed}", "kind": what, "rows": rows,
           "loaded": rows, "estimated": 0, "quarantined": 0, "duplicates": 0, "findings": 0,
           "loaded_at": dt.datetime(year + 1, 1, 2, tzinfo=dt.UTC)}
    assert set(row) == set(LEDGER_SCHEMA)
    return row


def write_store(store: object, n: int, year: int, *, years: int = 2, seed: int = 15) -> dict[str, int]:
    """Write ``n`` households (customers, ``years`` years of daily rows, payments) into ``store``.

    Three ``save_ingest`` batches: customers, payments, then the daily rows streamed slice by slice.
    Returns the rows written of each kind.
    """
    customers = customers_frame(n, year, seed)
    store.save_ingest(IngestBatch(ledger=_ledger("customers", n, year, years, seed, customers.height),  # type: ignore[attr-defined]
                                  kind="customers", customers=customers))
    payments = payments_frame(n, year, years, seed)
    store.save_ingest(IngestBatch(ledger=_ledger("payments", n, year, years, seed, payments.height),  # type: ignore[attr-defined]
                                  kind="payments", payments=payments))
    counted = {"daily": 0}

    def counting() -> Iterator[pl.DataFrame]:
        for frame in daily_slices(n, year, years, seed):
            counted["daily"] += frame.height
            yield frame

    store.save_ingest(IngestBatch(ledger=_ledger("consumption", n, year, years, seed, 0),  # type: ignore[attr-defined]
                                  kind="consumption", daily=counting()))
    return {"customers": customers.height, "payments": payments.height, "daily": counted["daily"]}
