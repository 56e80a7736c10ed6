"""``diagnose``: the per-household features of one year (pure, vectorised; numba for the daily pass)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from wattbill._arrow import string_codes
from wattbill.diagnostics.channels import CHANNEL_FEATURE_DOCS, CHANNEL_FEATURES, household_features
from wattbill.diagnostics.dense import (
    _EPOCH,
    REGISTERS,
    DenseYear,
    _runs,
    daily_columns,
    days_in_year,
    densify,
    month_of_day,
)
from wattbill.diagnostics.kernels import (
    count_days,
    month_sums,
    month_sums_from_rows,
    payments_kernel,
    season_of_month,
    usage_from_rows,
    usage_kernel,
    usage_params,
)
from wattbill.diagnostics.paykernels import mix_codes, peer_pct, take_codes

CHANNELS: tuple[str, ...] = ("app", "wechat", "alipay", "bank", "counter", "other")
ONLINE_CHANNELS: tuple[str, ...] = ("app", "wechat", "alipay")


@dataclass(frozen=True)
class Params:
    """Documented constants of the diagnostics (all overridable per call).

    Attributes
    ----------
    base_quantile : float
        Base load is this quantile of the household's daily Wh, divided by 24 h (0.10 = the 10th
        percentile: the low end of daily use, robust to a few zero days).
    low_abs_wh : int
        A day is near-zero when below ``max(low_abs_wh, low_frac * median day)`` [Wh/day]. 800 Wh/day is
        about a fridge and standby loads alone.
    low_frac : float
        See ``low_abs_wh`` (0.15 of the household's median day).
    spike_year_factor : float
        A spike day uses more than ``spike_year_factor`` times the household's median occupied day ...
    spike_local_factor : float
        ... and more than ``spike_local_factor`` times the median of the days within
        ``spike_window`` days around it (so that the first hot days of summer are no spikes) ...
    spike_min_wh : int
        ... and at least this much more than that local median [Wh/day].
    spike_window : int
        Half-width of the local window [days].
    min_season_days : int
        Seasonal levels need at least this many occupied days in the season, else null [days].
    peer_min_size : int
        Peer percentiles need a peer group (same region and household size) of at least this many
        households with data, else null.
    min_yoy_days : int
        Last year's annual total is shown only with at least this many days of reads [days].
    min_month_days : int
        A month of last year is shown only with at least this many days of reads [days].
    late_after_days : int
        A payment is late when paid more than this many days after the bill was issued (or unpaid by
        the end of the year) [days].
    """

    base_quantile: float = 0.10
    low_abs_wh: int = 800
    low_frac: float = 0.15
    spike_year_factor: float = 3.5
    spike_local_factor: float = 1.8
    spike_min_wh: int = 4000
    spike_window: int = 7
    min_season_days: int = 20
    peer_min_size: int = 30
    min_yoy_days: int = 330
    min_month_days: int = 20
    late_after_days: int = 15


DEFAULT_PARAMS = Params()

# The output columns (in order) and their types. See docs/interfaces.md "Features".
FEATURES: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(),
    "year": pl.Int32(),
    "tariff": pl.Utf8(),
    "tariff_is_tou": pl.Boolean(),
    "region": pl.Utf8(),
    "household_size": pl.Int32(),
    "days_open": pl.Int32(),
    "days_present": pl.Int32(),
    "missing_days": pl.Int32(),
    "estimated_days": pl.Int32(),
    "estimated_share": pl.Float64(),
    "wh_year": pl.Int64(),
    "wh_last_year": pl.Int64(),
    "change_pct": pl.Float64(),
    "month_wh": pl.List(pl.Int64()),
    "month_wh_last_year": pl.List(pl.Int64()),
    "month_fen": pl.List(pl.Int64()),
    "year_fen": pl.Int64(),
    "tou_days": pl.Int32(),
    "share_sharp": pl.Float64(),
    "share_peak": pl.Float64(),
    "share_flat": pl.Float64(),
    "share_valley": pl.Float64(),
    "share_sharp_peak": pl.Float64(),
    "base_load_w": pl.Float64(),
    "median_day_wh": pl.Float64(),
    "level_shoulder_wh": pl.Float64(),
    "level_summer_wh": pl.Float64(),
    "level_winter_wh": pl.Float64(),
    "summer_excess_pct": pl.Float64(),
    "winter_excess_pct": pl.Float64(),
    "summer_excess_wh": pl.Float64(),
    "winter_excess_wh": pl.Float64(),
    "low_days": pl.Int32(),
    "longest_low_run_days": pl.Int32(),
    "longest_low_run_start": pl.Date(),
    "spike_days": pl.Int32(),
    "spike_max_ratio": pl.Float64(),
    "spike_first_date": pl.Date(),
    "tier2_date": pl.Date(),
    "tier3_date": pl.Date(),
    "wh_tier2": pl.Int64(),
    "wh_tier3": pl.Int64(),
    "avg_price_fen_per_kwh": pl.Float64(),
    "peer_group_size": pl.Int32(),
    "peer_percentile": pl.Float64(),
    "peer_share_valley_pct": pl.Float64(),
    "peer_share_sharp_peak_pct": pl.Float64(),
    "peer_base_load_pct": pl.Float64(),
    "best_alt_tariff": pl.Utf8(),
    "best_alt_name": pl.Utf8(),
    "best_alt_name_en": pl.Utf8(),
    "best_alt_is_tou": pl.Boolean(),
    "best_alt_fen": pl.Int64(),
    "best_alt_saving_fen": pl.Int64(),
    "shift10_saving_fen": pl.Int64(),
    "base100_saving_fen": pl.Int64(),
    "pay_count": pl.Int32(),
    "pay_unpaid_count": pl.Int32(),
    "pay_delay_days_mean": pl.Float64(),
    "pay_delay_days_max": pl.Int32(),
    "pay_late_count": pl.Int32(),
    "pay_late_share": pl.Float64(),
    "pay_channel_main": pl.Utf8(),
    "pay_channel_mix": pl.Utf8(),
    "pay_share_online": pl.Float64(),
    "pay_share_counter": pl.Float64(),
    "pay_share_bank": pl.Float64(),
    **CHANNEL_FEATURES,  # service channels (diagnostics.channels)
}

FEATURE_DOCS: dict[str, str] = {
    "customer_id": "customer id",
    "year": "the year diagnosed",
    "tariff": "the customer's tariff code",
    "tariff_is_tou": "the tariff has time-of-use periods (from the bills)",
    "region": "region (peer group)",
    "household_size": "persons (peer group)",
    "days_open": "[days] days of the year the account was open",
    "days_present": "[days] open days with a read",
    "missing_days": "[days] open days without a read",
    "estimated_days": "[days] days with an estimated (VEE) read",
    "estimated_share": "[0..1] estimated_days / days_present",
    "wh_year": "[Wh] use in the year (days with reads)",
    "wh_last_year": "[Wh] use last year, null under Params.min_yoy_days days of reads",
    "change_pct": "[%] wh_year against wh_last_year",
    "month_wh": "[Wh] use per calendar month (12)",
    "month_wh_last_year": "[Wh] last year's months; null for a month under Params.min_month_days days of reads",
    "month_fen": "[fen] the monthly bills under the current tariff",
    "year_fen": "[fen] the annual charge (sum of month_fen)",
    "tou_days": "[days] days with time-of-use registers",
    "share_sharp": "[0..1] share of Wh in the sharp register (days with registers)",
    "share_peak": "[0..1] share in the peak register",
    "share_flat": "[0..1] share in the flat register",
    "share_valley": "[0..1] share in the valley register",
    "share_sharp_peak": "[0..1] sharp + peak",
    "base_load_w": "[W] Params.base_quantile of occupied daily Wh / 24 h: the always-on load",
    "median_day_wh": "[Wh/day] median occupied day",
    "level_shoulder_wh": "[Wh/day] median occupied day of Apr, May, Oct, Nov",
    "level_summer_wh": "[Wh/day] median occupied day of Jul-Aug",
    "level_winter_wh": "[Wh/day] median occupied day of Dec, Jan, Feb",
    "summer_excess_pct": "[%] summer level over the shoulder level",
    "winter_excess_pct": "[%] winter level over the shoulder level",
    "summer_excess_wh": "[Wh/day] summer level minus shoulder level",
    "winter_excess_wh": "[Wh/day] winter level minus shoulder level",
    "low_days": "[days] near-zero days (below max(Params.low_abs_wh, Params.low_frac * median day))",
    "longest_low_run_days": "[days] longest run of near-zero days (missing days skipped)",
    "longest_low_run_start": "first day of that run",
    "spike_days": "[days] days far above the household's typical day (Params.spike_*)",
    "spike_max_ratio": "[x] the highest spike day over the median occupied day",
    "spike_first_date": "the first spike day",
    "tier2_date": "day the bill entered tier 2 (null = never)",
    "tier3_date": "day the bill entered tier 3 (null = never)",
    "wh_tier2": "[Wh] use billed in tier 2",
    "wh_tier3": "[Wh] use billed in tier 3",
    "avg_price_fen_per_kwh": "[fen/kWh] year_fen / kWh (display only, a float)",
    "peer_group_size": "households of the same region and size with enough reads",
    "peer_percentile": "[0..100] share of peers using less per day (ties count half); null under Params.peer_min_size",
    "peer_share_valley_pct": "[0..100] same, for share_valley",
    "peer_share_sharp_peak_pct": "[0..100] same, for share_sharp_peak",
    "peer_base_load_pct": "[0..100] same, for base_load_w",
    "best_alt_tariff": "the cheapest alternative tariff (code)",
    "best_alt_name": "its name (zh)",
    "best_alt_name_en": "its name (en)",
    "best_alt_is_tou": "it has time-of-use periods",
    "best_alt_fen": "[fen] the year's charge under it",
    "best_alt_saving_fen": "[fen] year_fen - best_alt_fen (> 0: the alternative is cheaper)",
    "shift10_saving_fen": "[fen] saving of moving 10 % of sharp+peak Wh to the valley, current tariff",
    "base100_saving_fen": "[fen] saving of 100 W less always-on load (876 kWh) at the average price",
    "pay_count": "bills of the year (by bill_month)",
    "pay_unpaid_count": "bills without a payment date",
    "pay_delay_days_mean": "[days] mean days from issue to payment (paid bills)",
    "pay_delay_days_max": "[days] longest delay",
    "pay_late_count": "bills paid after Params.late_after_days days, or unpaid past it by Dec 31",
    "pay_late_share": "[0..1] pay_late_count / pay_count",
    "pay_channel_main": "channel of most payments",
    "pay_channel_mix": "JSON {channel: share of payments}",
    "pay_share_online": "[0..1] app + wechat + alipay",
    "pay_share_counter": "[0..1] service hall counter",
    "pay_share_bank": "[0..1] bank auto-debit",
    **CHANNEL_FEATURE_DOCS,
}
"""One line per feature, with its unit in brackets."""

BILLS_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(),
    "tariff": pl.Utf8(),
    "month_fen": pl.List(pl.Int64()),
    "year_fen": pl.Int64(),
    "tier2_day": pl.Int32(),
    "tier3_day": pl.Int32(),
    "wh_tier2": pl.Int64(),
    "wh_tier3": pl.Int64(),
    "shift10_year_fen": pl.Int64(),
    "is_tou": pl.Boolean(),
}
"""The ``bills`` argument of :func:`diagnose` (see :func:`diagnostics.bills_frame`)."""

ALTERNATIVES_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(),
    "tariff": pl.Utf8(),
    "year_fen": pl.Int64(),
    "is_tou": pl.Boolean(),
    "name": pl.Utf8(),
    "name_en": pl.Utf8(),
}
"""The ``alternatives`` argument of :func:`diagnose`: one row per customer and alternative tariff."""


def _month_lists(a: np.ndarray) -> pl.Series:
    """``[n, 12]`` int array -> list[12] Int64 series."""
    return pl.Series(values=np.ascontiguousarray(a, dtype=np.int64)).reshape((a.shape[0], 12)).arr.to_list()


def _mask_lists(a: np.ndarray, valid: np.ndarray) -> pl.Series:
    n = a.shape[0]
    flat = pl.Series(values=a.reshape(-1).astype(np.int64))
    flat = pl.select(pl.when(pl.Series(values=valid.reshape(-1))).then(flat)).to_series()
    return flat.reshape((n, 12)).arr.to_list()


def _dates(jan1: dt.date, idx: np.ndarray) -> pl.Series:
    """Day indices (``-1`` / negative = null) -> Date series."""
    days = np.datetime64(jan1, "D") + np.where(idx >= 0, idx, 0).astype("timedelta64[D]")
    d = pl.Series(values=days).cast(pl.Date)
    return pl.select(pl.when(pl.Series(values=idx >= 0)).then(d)).to_series().cast(pl.Date)


def _nan_to_null(x: np.ndarray) -> pl.Series:
    return pl.Series(values=x.astype(np.float64), nan_to_null=True)


def _usage(daily: pl.DataFrame, dense: DenseYear | None, customers: pl.DataFrame, year: int,
           p: Params) -> dict[str, pl.Series]:
    """The usage columns, from ``dense`` when given, else straight from the rows of ``daily`` (one pass,
    no dense arrays) when each customer's rows are one run, else via :func:`densify`."""
    month = month_of_day(year)
    prm = usage_params(p.base_quantile, p.low_abs_wh, p.low_frac, p.spike_year_factor, p.spike_local_factor,
                       p.spike_min_wh, p.spike_window, p.min_season_days)
    cols = None
    if dense is None:
        cols = daily_columns(daily, customers, year)
        if not cols.one_run_per_customer():
            dense, cols = densify(daily, customers, year), None
    if cols is not None:
        outs, tou_days, est_days, reg_sum, tou_total = usage_from_rows(cols, month, season_of_month(), prm,
                                                                       customers.height)
    else:
        assert dense is not None
        outs = usage_kernel(dense.total, dense.present, dense.open_first, dense.open_last, month,
                            season_of_month(), *prm)
        tou_days = count_days(dense.tou, dense.open_first, dense.open_last)
        est_days = count_days(dense.estimated, dense.open_first, dense.open_last)
        reg_sum, tou_total = dense.reg_sum, dense.tou_total
    (wh_year, month_wh, days_open, days_present, base_wh, median_wh, level, low_run, low_run_start, low_days,
     spike_days, spike_max_ratio, spike_first) = outs
    jan1 = dt.date(year, 1, 1)
    has = days_present > 0
    out: dict[str, pl.Series] = {}
    out["days_open"] = pl.Series(values=days_open, dtype=pl.Int32)
    out["days_present"] = pl.Series(values=days_present, dtype=pl.Int32)
    out["missing_days"] = pl.Series(values=days_open - days_present, dtype=pl.Int32)
    out["estimated_days"] = pl.Series(values=est_days, dtype=pl.Int32)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["estimated_share"] = _nan_to_null(np.where(days_present > 0, est_days / np.maximum(days_present, 1),
                                                       np.nan))
    out["wh_year"] = pl.select(pl.when(pl.Series(values=has)).then(pl.Series(values=wh_year))).to_series()
    out["month_wh"] = _month_lists(month_wh)
    out["tou_days"] = pl.Series(values=tou_days, dtype=pl.Int32)
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.where(tou_total > 0, tou_total, 0).astype(np.float64)
        shares = np.where(denom[:, None] > 0, reg_sum / np.where(denom > 0, denom, 1)[:, None], np.nan)
    for k, r in enumerate(REGISTERS):
        out[f"share_{r}"] = _nan_to_null(shares[:, k])
    out["share_sharp_peak"] = _nan_to_null(shares[:, 0] + shares[:, 1])
    out["base_load_w"] = _nan_to_null(base_wh / 24.0)
    out["median_day_wh"] = _nan_to_null(median_wh)
    out["level_shoulder_wh"] = _nan_to_null(level[:, 1])
    out["level_summer_wh"] = _nan_to_null(level[:, 2])
    out["level_winter_wh"] = _nan_to_null(level[:, 3])
    with np.errstate(invalid="ignore", divide="ignore"):
        sh = np.where(level[:, 1] > 0, level[:, 1], np.nan)
        out["summer_excess_pct"] = _nan_to_null(100.0 * (level[:, 2] - sh) / sh)
        out["winter_excess_pct"] = _nan_to_null(100.0 * (level[:, 3] - sh) / sh)
    out["summer_excess_wh"] = _nan_to_null(level[:, 2] - level[:, 1])
    out["winter_excess_wh"] = _nan_to_null(level[:, 3] - level[:, 1])
    out["low_days"] = pl.Series(values=low_days, dtype=pl.Int32)
    out["longest_low_run_days"] = pl.Series(values=low_run, dtype=pl.Int32)
    out["longest_low_run_start"] = _dates(jan1, low_run_start)
    out["spike_days"] = pl.Series(values=spike_days, dtype=pl.Int32)
    out["spike_max_ratio"] = _nan_to_null(spike_max_ratio)
    out["spike_first_date"] = _dates(jan1, spike_first)
    return out


def _last_year(daily: pl.DataFrame, customers: pl.DataFrame, year: int, p: Params) -> dict[str, pl.Series]:
    """Last year's columns (``year`` is last year), from the rows (no dense arrays) when each customer's
    rows are one run."""
    cols = daily_columns(daily, customers, year)
    if cols.one_run_per_customer():
        month_wh, month_days = month_sums_from_rows(cols, month_of_day(year), customers.height)
    else:
        dense = densify(daily, customers, year)
        month_wh, month_days = month_sums(dense.total, dense.present, month_of_day(year))
    days = month_days.sum(axis=1)
    wh = month_wh.sum(axis=1)
    return {
        "month_wh_last_year": _mask_lists(month_wh, month_days >= p.min_month_days),
        "wh_last_year": pl.select(pl.when(pl.Series(values=days >= p.min_yoy_days))
                                  .then(pl.Series(values=wh))).to_series(),
    }


def _date_days(s: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Date column -> (int32 days since 1970-01-01 (0 under nulls), valid mask); zero-copy without nulls."""
    days = s.to_physical()
    if not s.null_count():
        return days.to_numpy(), np.ones(s.len(), np.bool_)
    return days.fill_null(0).to_numpy(), s.is_not_null().to_numpy()


def _channel_index(channel: pl.Series) -> np.ndarray:
    """Index in ``CHANNELS`` of each payment's channel (case-insensitive; null = "other"; -1 = unknown).

    Read from the Arrow string views when the channels are short and few (:func:`string_codes`), else
    by polars' ``replace_strict``.
    """
    coded = string_codes(channel)
    if coded is not None:
        codes, strings = coded
        lut = np.array([CHANNELS.index(c.lower()) if c.lower() in CHANNELS else -1 for c in strings], np.int8)
        return take_codes(codes, lut, np.int8(CHANNELS.index("other")))
    seen = channel.unique().drop_nulls().to_list()
    index = [CHANNELS.index(c.lower()) if c.lower() in CHANNELS else -1 for c in seen]
    return channel.replace_strict(seen, index, default=CHANNELS.index("other"), return_dtype=pl.Int64).to_numpy()


def _payments(payments: pl.DataFrame | None, ids: pl.DataFrame, year: int, p: Params) -> pl.DataFrame:
    """Payment features per customer (one row per row of ``ids``).

    One numba pass over the payment rows (:func:`diagnostics.kernels.payments_kernel`), with the
    customers found run by run as in ``densify`` (payments grouped by customer cost one lookup per
    customer); a customer without a bill of the year gets nulls.
    """
    if payments is None or payments.height == 0:
        return ids.select("customer_id")
    n = ids.height
    year_end = (dt.date(year, 12, 31) - _EPOCH).days
    bounds, run_cust = _runs(ids, payments)
    bill_month = payments.get_column("bill_month")
    coded = string_codes(bill_month)
    if coded is not None:
        codes, strings = coded
        in_year = take_codes(codes, np.array([m.startswith(f"{year}-") for m in strings], np.bool_), False)
    else:
        in_year = bill_month.str.starts_with(f"{year}-").fill_null(False).to_numpy()
    issued, issued_ok = _date_days(payments.get_column("issued_on"))
    paid, paid_ok = _date_days(payments.get_column("paid_on"))
    channel = _channel_index(payments.get_column("channel"))
    count, unpaid, delay_sum, delay_n, delay_max, late, late_n, n_paid, by_channel = payments_kernel(
        bounds, run_cust, in_year, issued, issued_ok, paid, paid_ok, channel, len(CHANNELS),
        int(p.late_after_days), year_end, n)
    has = count > 0
    paid_any = has & (n_paid > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        delay_mean = np.where(delay_n > 0, delay_sum / np.maximum(delay_n, 1), np.nan)
        late_share = np.where(late_n > 0, late / np.maximum(late_n, 1), np.nan)
        share = {c: np.where(paid_any, by_channel[:, k] / np.where(paid_any, n_paid, 1), np.nan)
                 for k, c in enumerate(CHANNELS)}
    main = pl.select(pl.when(pl.Series(values=paid_any))  # ties: the first in CHANNELS
                     .then(pl.Series(values=CHANNELS, dtype=pl.Utf8).gather(np.argmax(by_channel, axis=1))))
    agg = pl.DataFrame({
        "pay_count": pl.Series(values=count.astype(np.int32)),
        "pay_unpaid_count": pl.Series(values=unpaid.astype(np.int32)),
        "pay_delay_days_mean": _nan_to_null(delay_mean),
        "pay_delay_days_max": pl.select(pl.when(pl.Series(values=delay_n > 0))
                                        .then(pl.Series(values=delay_max.astype(np.int32)))).to_series(),
        "pay_late_count": pl.Series(values=late.astype(np.int32)),
        "pay_late_share": _nan_to_null(late_share),
        "pay_channel_main": main.to_series(),
        "pay_channel_mix": _channel_mix_json(by_channel, n_paid, paid_any),
        "pay_share_online": _nan_to_null(share["app"] + share["wechat"] + share["alipay"]),
        "pay_share_counter": _nan_to_null(share["counter"]),
        "pay_share_bank": _nan_to_null(share["bank"]),
    })
    agg = agg.select(pl.when(pl.Series(values=has)).then(pl.col(c)).alias(c) for c in agg.columns)
    return ids.select("customer_id").hstack(agg)


PAYMENT_STATUS_SCHEMA: dict[str, pl.DataType] = {
    "bill_month": pl.Utf8(), "issued_on": pl.Date(), "paid_on": pl.Date(), "amount_fen": pl.Int64(),
    "channel": pl.Utf8(), "delay_days": pl.Int32(), "late": pl.Boolean(),
}


def payment_status(payments: pl.DataFrame | None, year: int, params: Params = DEFAULT_PARAMS) -> pl.DataFrame:
    """The payments of ``year``'s bills, each with its delay and whether it counts as late.

    The per-bill view of the rule that the ``pay_*`` features count (:func:`diagnose`), for whatever
    shows single payments (the bill's payment table and its list of late months), so a bill never
    lists other late payments than it counts. It is a plain polars formulation, independent of the
    features' numba kernel (``diagnostics.kernels.payments_kernel``); the tests hold the two equal.

    Parameters
    ----------
    payments : pl.DataFrame or None
        ``PAYMENT_SCHEMA`` rows of one or more customers (others than ``year``'s bills are dropped).
    year : int
        The bill year: bills whose ``bill_month`` starts with ``"<year>-"``.
    params : Params
        ``late_after_days`` [days].

    Returns
    -------
    pl.DataFrame
        ``PAYMENT_STATUS_SCHEMA`` (plus ``customer_id`` when given), ordered by ``bill_month``:
        ``channel`` lower-cased as the features count it (null -> ``"other"``), ``delay_days`` =
        ``paid_on - issued_on`` [days] (null unless both dates are known), ``late``: paid more than
        ``late_after_days`` after issue, or unpaid and issued more than ``late_after_days`` before
        31 December of ``year``; null when the issue date is unknown.

    Notes
    -----
    The threshold is ``Params.late_after_days`` alone: the features, the labels and the bill read it
    from there.
    """
    if payments is None or payments.height == 0:
        return pl.DataFrame(schema=PAYMENT_STATUS_SCHEMA)
    keep = (["customer_id"] if "customer_id" in payments.columns else []) + list(PAYMENT_STATUS_SCHEMA)
    year_end = dt.date(year, 12, 31)
    late_after = int(params.late_after_days)
    delay = (pl.col("paid_on") - pl.col("issued_on")).dt.total_days().cast(pl.Int32)
    out = (
        payments.filter(pl.col("bill_month").str.starts_with(f"{year}-"))
        .with_columns(
            pl.col("issued_on").cast(pl.Date), pl.col("paid_on").cast(pl.Date),
            pl.col("channel").str.to_lowercase().fill_null("other"),
        )
        .with_columns(delay.alias("delay_days"))
        .with_columns(
            pl.when(pl.col("issued_on").is_null()).then(None)
            .when(pl.col("paid_on").is_not_null()).then(pl.col("delay_days") > late_after)
            .otherwise((pl.lit(year_end) - pl.col("issued_on")).dt.total_days() > late_after)
            .alias("late")
        )
    )
    return out.select(keep).sort("bill_month", maintain_order=True)


def _channel_mix_json(by_channel: np.ndarray, n_paid: np.ndarray, paid_any: np.ndarray) -> pl.Series:
    """``pay_channel_mix`` of every customer (null where ``paid_any`` is False).

    The JSON text is formatted by polars once per distinct combination of channel counts (a few
    thousand at most for monthly bills; numbered in one pass by :func:`mix_codes`, or by ``np.unique``
    when a count does not fit its key) and then gathered for every customer.
    """
    n = by_channel.shape[0]
    combo, first = mix_codes(by_channel, n_paid, paid_any)
    if combo.shape[0] == n:
        combos = np.column_stack([by_channel[first], n_paid[first]])
        idx = np.where(paid_any, combo, 0)
    else:
        counts = np.column_stack([by_channel, n_paid])[paid_any]
        combos, inverse = np.unique(counts.reshape(-1, by_channel.shape[1] + 1), axis=0, return_inverse=True)
        idx = np.zeros(n, np.int64)
        idx[paid_any] = inverse.reshape(-1)
    frame = pl.DataFrame({**{f"__n_{c}": combos[:, k] for k, c in enumerate(CHANNELS)},
                          "__n_paid": combos[:, -1]}, schema={f"__n_{c}": pl.Int64 for c in [*CHANNELS, "paid"]})
    np_ = pl.col("__n_paid")
    mix = frame.select(pl.concat_str(
        [pl.lit("{"),
         pl.concat_str([pl.format('"{}": {}', pl.lit(c), (pl.col(f"__n_{c}") / np_).round(4)) for c in CHANNELS],
                       separator=", "),
         pl.lit("}")])).to_series()
    take = pl.select(pl.when(pl.Series(values=paid_any)).then(pl.Series(values=idx))).to_series()
    return mix.gather(take).alias("pay_channel_mix")


def _peer_pct(expr: pl.Expr, valid: pl.Expr, group: list[str], min_size: int) -> tuple[pl.Expr, pl.Expr]:
    """Percentile [0..100] of ``expr`` within ``group`` among rows where ``valid``; null if group small.

    percentile = 100 * (peers below + half of the peers equal, self included) / group size.
    """
    v = pl.when(valid).then(expr)
    size = v.count().over(group)
    rank = v.rank("average").over(group)
    pct = pl.when(valid & (size >= min_size)).then(100.0 * (rank - 0.5) / size)
    return pct, size


PEER_COLUMNS = ("peer_group_size", "peer_percentile", "peer_share_valley_pct", "peer_share_sharp_peak_pct",
                "peer_base_load_pct")


def _with_peers(out: pl.DataFrame, p: Params) -> pl.DataFrame:
    # peers: same region and household size; usage compared per read day (partial years comparable);
    # households with reads on fewer than half of their open days are not compared (nor counted).
    # Each metric is ranked in one walk over its sorted values (diagnostics.paykernels.peer_pct), the
    # same floats as the polars windows of _peer_pct, which remain for values that are not Float64.
    group = ["region", "household_size"]
    enough = pl.col("days_present") >= pl.col("days_open").clip(lower_bound=1) * 0.5
    per_day = pl.col("wh_year") / pl.col("days_present")
    metrics = {"peer_percentile": per_day, "peer_share_valley_pct": pl.col("share_valley"),
               "peer_share_sharp_peak_pct": pl.col("share_sharp_peak"), "peer_base_load_pct": pl.col("base_load_w")}
    cols = out.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("__peer_row")).select(
        pl.col("__peer_row").first().over(group).alias("__g"),
        *[(enough & e.is_not_null()).fill_null(False).alias(f"__ok_{k}") for k, e in enumerate(metrics.values())],
        *[e.alias(f"__v_{k}") for k, e in enumerate(metrics.values())])
    if all(cols.schema[f"__v_{k}"] == pl.Float64 for k in range(len(metrics))):
        n = out.height
        first = cols.get_column("__g").to_numpy()  # each row's group, as the group's first row
        heads = np.flatnonzero(first == np.arange(n))
        number = np.empty(n, np.int64)
        number[heads] = np.arange(heads.size)
        g = number[first]
        new: list[pl.Series] = []
        for k, name in enumerate(metrics):
            pct_k, size_k = peer_pct(cols.get_column(f"__v_{k}").to_numpy(),
                                     cols.get_column(f"__ok_{k}").to_numpy(), g, heads.size, p.peer_min_size)
            new.append(pl.Series(name, pct_k, nan_to_null=True))
            if k == 0:
                new.append(pl.Series("peer_group_size", size_k.astype(np.int32)))
        return out.with_columns(new)
    pct, size = _peer_pct(per_day, enough & per_day.is_not_null(), group, p.peer_min_size)
    pv, _ = _peer_pct(pl.col("share_valley"), enough & pl.col("share_valley").is_not_null(), group,
                      p.peer_min_size)
    pp, _ = _peer_pct(pl.col("share_sharp_peak"), enough & pl.col("share_sharp_peak").is_not_null(), group,
                      p.peer_min_size)
    pb, _ = _peer_pct(pl.col("base_load_w"), enough & pl.col("base_load_w").is_not_null(), group,
                      p.peer_min_size)
    return out.with_columns(
        pct.alias("peer_percentile"), size.cast(pl.Int32).alias("peer_group_size"),
        pv.alias("peer_share_valley_pct"), pp.alias("peer_share_sharp_peak_pct"),
        pb.alias("peer_base_load_pct"),
    )


def add_peers(features: pl.DataFrame, params: Params = DEFAULT_PARAMS) -> pl.DataFrame:
    """Recompute the peer columns over ``features`` (e.g. the concatenated batches of a bill run).

    ``diagnose`` forms peer groups within the customers it is given; a run that diagnoses customers in
    batches should call this once on all the batches' features so that every household is compared
    with all its peers (same region and household size).

    Parameters
    ----------
    features : pl.DataFrame
        Rows of ``diagnose`` (``FEATURES`` columns).
    params : Params
        ``peer_min_size`` is used.

    Returns
    -------
    pl.DataFrame
        Same rows and columns; ``PEER_COLUMNS`` replaced.
    """
    return _with_peers(features, params).select(features.columns)


def diagnose(daily: pl.DataFrame, daily_last_year: pl.DataFrame | None, customers: pl.DataFrame,
             payments: pl.DataFrame | None, bills: pl.DataFrame | None, alternatives: pl.DataFrame | None,
             year: int, params: Params = DEFAULT_PARAMS, dense: DenseYear | None = None,
             interactions: pl.DataFrame | None = None) -> pl.DataFrame:
    """Features of every customer for ``year`` (one row per row of ``customers``, same order).

    Parameters
    ----------
    daily : pl.DataFrame
        ``DAILY_SCHEMA`` rows of ``year`` (other days ignored); meters are summed per customer and day.
    daily_last_year : pl.DataFrame or None
        ``DAILY_SCHEMA`` rows of ``year - 1`` (for the year-over-year columns), or None (no data:
        ``month_wh_last_year`` null). A frame without rows gives each household's 12 months as null,
        as for a household without rows among others.
    customers : pl.DataFrame
        ``CUSTOMER_SCHEMA`` rows: ``customer_id``, ``tariff``, ``household_size``, ``region``,
        ``opened_on``, ``closed_on``. Peer groups are formed within this frame: for a run in batches,
        call :func:`add_peers` on the concatenated features afterwards.
    payments : pl.DataFrame or None
        ``PAYMENT_SCHEMA`` rows; those with ``bill_month`` in ``year`` are used.
    bills : pl.DataFrame or None
        The charges under the customer's current tariff, ``BILLS_SCHEMA``: ``customer_id``,
        ``tariff``, ``month_fen`` (list[12] Int64 [fen]), ``year_fen`` [fen], ``tier2_day``,
        ``tier3_day`` (Int32 day index of the year where tier 2/3 began, null = never), ``wh_tier2``,
        ``wh_tier3`` (Wh billed in tier 2 / 3 over the year [Wh], optional),
        ``shift10_year_fen`` (the year charge [fen] with 10% of sharp+peak Wh moved to the valley,
        null when not computed). Build it from a ``tariffs.YearBills`` with
        :func:`diagnostics.bills_frame`, or compute it with :func:`diagnostics.tariff_what_if`.
    alternatives : pl.DataFrame or None
        ``ALTERNATIVES_SCHEMA``: ``customer_id``, ``tariff``, ``year_fen`` [fen], one row per customer
        and alternative tariff (rows for the current tariff are ignored).
        :func:`diagnostics.tariff_what_if` makes it.
    year : int
        The year.
    params : Params
        The documented constants.
    dense : DenseYear or None
        ``densify(daily, customers, year)`` if the caller has it already (it is then not recomputed;
        it must be aligned to ``customers``).
    interactions : pl.DataFrame or None
        ``INTERACTION_SCHEMA`` rows of ``year`` and ``year - 1`` for the ``ch_*`` channel features
        (``diagnostics.channels.household_features``); None: no interaction data, those are null.

    Returns
    -------
    pl.DataFrame
        Columns ``FEATURES`` (in that order; nulls where data is missing).
    """
    p = params
    cust = customers
    n = cust.height
    if dense is not None and dense.total.shape[0] != n:
        dense = None
    cols: dict[str, pl.Series] = {"customer_id": cust.get_column("customer_id").cast(pl.Utf8)}
    cols["year"] = pl.Series(values=np.full(n, year, np.int32))
    for c, ctype in (("tariff", pl.Utf8()), ("region", pl.Utf8()), ("household_size", pl.Int32())):
        cols[c] = (cust.get_column(c).cast(ctype) if c in cust.columns
                   else pl.Series(values=[None] * n, dtype=ctype))
    cols.update(_usage(daily, dense, cust, year, p))
    del dense
    if daily_last_year is not None:  # (no rows: every household's months null, as for one without rows
        # among others: a bill run's chunks must not differ by whether a neighbour has last year's reads)
        cols.update(_last_year(daily_last_year, cust, year - 1, p))
    out = pl.DataFrame(cols)
    if "wh_last_year" not in out.columns:
        out = out.with_columns(pl.lit(None, pl.Int64).alias("wh_last_year"),
                               pl.lit(None, pl.List(pl.Int64)).alias("month_wh_last_year"))
    out = out.with_columns(
        pl.when(pl.col("wh_last_year") > 0)
        .then(100.0 * (pl.col("wh_year") - pl.col("wh_last_year")) / pl.col("wh_last_year"))
        .alias("change_pct"))

    # bills under the current tariff
    jan1 = dt.date(year, 1, 1)
    if bills is not None and bills.height > 0:
        b = bills.select(
            pl.col("customer_id"),
            *[pl.col(c) if c in bills.columns else pl.lit(None, BILLS_SCHEMA[c]).alias(c)
              for c in ("month_fen", "year_fen", "tier2_day", "tier3_day", "wh_tier2", "wh_tier3",
                        "shift10_year_fen")],
            (pl.col("tariff") if "tariff" in bills.columns else pl.lit(None, pl.Utf8)).alias("__bill_tariff"),
            (pl.col("is_tou") if "is_tou" in bills.columns else pl.lit(None, pl.Boolean)).alias("tariff_is_tou"),
        )
        if b.get_column("customer_id").equals(out.get_column("customer_id")):  # same rows (the what-if's
            out = out.hstack(b.drop("customer_id"))                        # order for a tariff-sorted chunk)
        else:
            out = out.join(b, on="customer_id", how="left", maintain_order="left")
    else:
        out = out.with_columns(pl.lit(None, BILLS_SCHEMA[c]).alias(c) for c in
                               ("month_fen", "year_fen", "tier2_day", "tier3_day", "wh_tier2", "wh_tier3",
                                "shift10_year_fen"))
        out = out.with_columns(pl.lit(None, pl.Utf8).alias("__bill_tariff"),
                               pl.lit(None, pl.Boolean).alias("tariff_is_tou"))
    out = out.with_columns(
        pl.coalesce("tariff", "__bill_tariff").alias("tariff"),
        (pl.lit(jan1) + pl.duration(days=pl.col("tier2_day"))).cast(pl.Date).alias("tier2_date"),
        (pl.lit(jan1) + pl.duration(days=pl.col("tier3_day"))).cast(pl.Date).alias("tier3_date"),
        pl.when(pl.col("wh_year") > 0)
        .then(pl.col("year_fen").cast(pl.Float64) * 1000.0 / pl.col("wh_year"))
        .alias("avg_price_fen_per_kwh"),
        (pl.col("year_fen") - pl.col("shift10_year_fen")).alias("shift10_saving_fen"),
    )

    # alternatives: the cheapest other tariff
    if alternatives is not None and alternatives.height > 0:
        def opt(c: str, dtype: pl.DataType) -> pl.Expr:
            return pl.col(c) if c in alternatives.columns else pl.lit(None, dtype)

        # the cheapest per customer (ties: the smallest code), found by row index: the only string
        # operation is the lookup of each alternative's customer
        alt = (alternatives.select(
                    "customer_id", pl.col("tariff").alias("__alt"), "year_fen",
                    opt("is_tou", pl.Boolean()).alias("__alt_tou"), opt("name", pl.Utf8()).alias("__alt_name"),
                    opt("name_en", pl.Utf8()).alias("__alt_name_en"))
               .join(out.select("customer_id", "tariff", pl.int_range(pl.len(), dtype=pl.Int64).alias("__i")),
                     on="customer_id", how="inner")
               .filter(pl.col("__alt") != pl.col("tariff").fill_null(""))
               .sort(["__i", "year_fen", "__alt"])
               .unique("__i", keep="first", maintain_order=True))
        at = np.full(n, -1, np.int64)
        at[alt.get_column("__i").to_numpy()] = np.arange(alt.height)
        take = pl.select(pl.when(pl.Series(values=at >= 0)).then(pl.Series(values=at))).to_series()
        out = out.hstack([alt.get_column(a).gather(take).alias(b) for a, b in (
            ("__alt", "best_alt_tariff"), ("year_fen", "best_alt_fen"), ("__alt_tou", "best_alt_is_tou"),
            ("__alt_name", "best_alt_name"), ("__alt_name_en", "best_alt_name_en"))])
    else:
        out = out.with_columns(pl.lit(None, pl.Utf8).alias("best_alt_tariff"),
                               pl.lit(None, pl.Int64).alias("best_alt_fen"),
                               pl.lit(None, pl.Boolean).alias("best_alt_is_tou"),
                               pl.lit(None, pl.Utf8).alias("best_alt_name"),
                               pl.lit(None, pl.Utf8).alias("best_alt_name_en"))
    out = out.with_columns(
        (pl.col("year_fen") - pl.col("best_alt_fen")).alias("best_alt_saving_fen"),
        # 100 W less always-on load for a year = 876 kWh, at the household's average price (integer fen)
        pl.when(pl.col("wh_year") > 0)
        .then(pl.col("year_fen") * 876_000 // pl.col("wh_year")).alias("base100_saving_fen"),
    )

    out = _with_peers(out, p)

    # payments
    pay = _payments(payments, out, year, p)
    out = out.hstack(pay.drop("customer_id"))
    out = out.hstack(household_features(interactions, out.get_column("customer_id"), year).drop("customer_id"))
    for c, dtype in FEATURES.items():
        if c not in out.columns:
            out = out.with_columns(pl.lit(None, dtype).alias(c))
    return out.select([pl.col(c).cast(dtype) for c, dtype in FEATURES.items()])


def bills_frame(customer_ids, tariff_code: str, year_bills, shifted=None, is_tou: bool | None = None) -> pl.DataFrame:
    """``BILLS_SCHEMA`` frame from a ``tariffs.YearBills`` (rows aligned to ``customer_ids``).

    Parameters
    ----------
    customer_ids : sequence of str or pl.Series
        The customers, in the row order of ``year_bills``.
    tariff_code : str
        The tariff they were billed under.
    year_bills : tariffs.YearBills
        ``month_fen[n, 12]``, ``year_fen[n]``, ``tier_cross_day[n, 2]`` are used.
    shifted : tariffs.YearBills or None
        The same customers billed with 10% of sharp+peak Wh moved to valley (see
        :func:`diagnostics.shift_peak_to_valley`); None leaves ``shift10_year_fen`` null.
    is_tou : bool or None
        Whether the tariff has time-of-use periods (``Tariff.is_time_of_use``).
    """
    ids = pl.Series("customer_id", customer_ids, dtype=pl.Utf8)
    n = ids.len()
    tcd = np.asarray(year_bills.tier_cross_day).reshape(n, 2)
    t2 = pl.Series(values=tcd[:, 0].astype(np.int32))
    t3 = pl.Series(values=tcd[:, 1].astype(np.int32))
    return pl.DataFrame({
        "customer_id": ids,
        "tariff": pl.Series(values=[tariff_code] * n, dtype=pl.Utf8),
        "month_fen": _month_lists(np.asarray(year_bills.month_fen).reshape(n, 12)),
        "year_fen": pl.Series(values=np.asarray(year_bills.year_fen).astype(np.int64)),
        "tier2_day": pl.select(pl.when(t2 >= 0).then(t2)).to_series(),
        "tier3_day": pl.select(pl.when(t3 >= 0).then(t3)).to_series(),
        "wh_tier2": _tier_wh(year_bills, n, 1),
        "wh_tier3": _tier_wh(year_bills, n, 2),
        "shift10_year_fen": (pl.Series(values=np.asarray(shifted.year_fen).astype(np.int64)) if shifted is not None
                             else pl.Series(values=[None] * n, dtype=pl.Int64)),
        "is_tou": pl.Series(values=[is_tou] * n, dtype=pl.Boolean),
    }).select([pl.col(c).cast(t) for c, t in BILLS_SCHEMA.items()])


def _tier_wh(year_bills, n: int, tier: int) -> pl.Series:
    m = getattr(year_bills, "month_wh_tier", None)
    if m is None:
        return pl.Series(values=[None] * n, dtype=pl.Int64)
    m = np.asarray(m)
    if m.shape[-1] <= tier:
        return pl.Series(values=np.zeros(n, np.int64))
    return pl.Series(values=m[..., tier].reshape(n, -1).sum(axis=1).astype(np.int64))


def channel_mix(mix_json: str | None) -> dict[str, float]:
    """Parse ``pay_channel_mix`` back into ``{channel: share}``."""
    return {} if not mix_json else json.loads(mix_json)


__all__ = [
    "ALTERNATIVES_SCHEMA",
    "BILLS_SCHEMA",
    "DEFAULT_PARAMS",
    "FEATURES",
    "FEATURE_DOCS",
    "PEER_COLUMNS",
    "Params",
    "add_peers",
    "bills_frame",
    "channel_mix",
    "days_in_year",
    "diagnose",
]
