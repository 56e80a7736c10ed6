"""Service channels: per-household channel features and the portfolio report's figures. Pure.

Channels and intents are those of ``../shared/design.md`` ("Service interactions"). The rules of
this module, in one place:

* **online** channels: ``app``, ``wechat``, ``alipay``, ``robot``, ``social`` (digital, no person);
  **assisted**: ``phone`` (the 95598 line) and ``hall`` (a person at the service hall); ``other`` is
  neither.
* **simple needs**, which the app serves in a minute: ``bill_query``, ``payment``, ``application``.
* **funnel stages**, in order: ``self_service`` (app, WeChat, Alipay, social accounts) -> ``robot``
  -> ``phone`` -> ``person`` (hall); ``other`` channels are a stage of their own, last. A contact is a
  need that entered the funnel at its channel's stage; it is *resolved* there when ``resolved`` is
  true, and *escalated* when ``escalated_to`` names a channel. Complaints go to a person first: the
  complaint table shows at which stage complaints entered.
* **small groups** (``merge_small``, the one rule, and ``plan_regions``): a figure (a cell of a
  table) must rest on at least ``min_group`` households. The reporting group of each customer is
  decided once, from both years together, and used by every table: a region is named only when it
  has ``min_group`` households with contacts in the year before and in every month of the report
  year; the others form one explicit ``OTHER_REGIONS`` group (其他地区), never another named region.
  Within a group, values of a dimension (a channel in a region, a need, a stage, a segment, a label)
  too small in any period are merged into ``MERGED``, the same way in both years and every month;
  a merged value still too small takes the smallest kept value with it, so nothing is left out and
  no cell can be had by subtracting shown cells from a total. Only a group too small as a whole is
  left out (counted in ``suppressed``). The months of all regions are the sums of the regions' cells.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

ONLINE: tuple[str, ...] = ("app", "wechat", "alipay", "robot", "social")
ASSISTED: tuple[str, ...] = ("phone", "hall")
SELF_SERVICE: tuple[str, ...] = ("app", "wechat", "alipay", "social")
SIMPLE_INTENTS: tuple[str, ...] = ("bill_query", "payment", "application")
STAGES: tuple[str, ...] = ("self_service", "robot", "phone", "person", "other")
MERGED = "merged"
OTHER_REGIONS = "other regions"
#: a customer's region written as the other regions' group itself (how the report names it, in either
#: language): it is that group, not a region beside it with the same name
OTHER_REGIONS_NAMES = frozenset({OTHER_REGIONS, "其他地区", "其它地区", "other regions"})

#: default handling cost of one contact per channel [fen]. Sources: order-of-magnitude figures of
#: Chinese utility service research (a hall visit costs a clerk ~15-20 minutes; a 95598 call ~5
#: minutes of an agent; a digital contact costs server and support time only). A setting:
#: ``wattbill report channels --cost channel=fen``.
DEFAULT_COST_FEN: dict[str, int] = {
    "hall": 2500, "phone": 800, "robot": 50, "app": 30, "wechat": 30, "alipay": 30, "social": 200, "other": 500,
}

#: label code -> (suggested channel, contacts that move: a feature of the household)
CAMPAIGNS: dict[str, tuple[str, str]] = {
    "channel_assisted_simple": ("app", "ch_simple_assisted"),
    "channel_hall_only": ("app", "ch_simple_hall"),
    "channel_fully_online": ("app", "ch_ebill_contacts"),
}

CHANNEL_FEATURES: dict[str, pl.DataType] = {
    "ch_contacts": pl.Int32(),
    "ch_contacts_last_year": pl.Int32(),
    "ch_contacts_change_pct": pl.Float64(),
    "ch_channel_mix": pl.Utf8(),
    "ch_intent_mix": pl.Utf8(),
    "ch_channel_main": pl.Utf8(),
    "ch_share_online": pl.Float64(),
    "ch_share_online_last_year": pl.Float64(),
    "ch_online_change_pp": pl.Float64(),
    "ch_share_phone": pl.Float64(),
    "ch_share_hall": pl.Float64(),
    "ch_simple_contacts": pl.Int32(),
    "ch_simple_assisted": pl.Int32(),
    "ch_simple_hall": pl.Int32(),
    "ch_simple_assisted_share": pl.Float64(),
    "ch_ebill_contacts": pl.Int32(),
    "ch_self_resolved_rate": pl.Float64(),
    "ch_escalation_rate": pl.Float64(),
}
CHANNEL_FEATURE_DOCS: dict[str, str] = {
    "ch_contacts": "contacts with the grid company in the year (0 with interaction data and no contact)",
    "ch_contacts_last_year": "contacts in the year before",
    "ch_contacts_change_pct": "[%] change of contacts against the year before",
    "ch_channel_mix": "JSON {channel: share of contacts}",
    "ch_intent_mix": "JSON {intent: share of contacts}",
    "ch_channel_main": "the channel of most contacts (ties: funnel order)",
    "ch_share_online": "[0..1] contacts by app, WeChat, Alipay, robot or social accounts",
    "ch_share_online_last_year": "[0..1] the same, the year before",
    "ch_online_change_pp": "[percentage points] online share against the year before",
    "ch_share_phone": "[0..1] contacts by the 95598 phone line",
    "ch_share_hall": "[0..1] contacts at the service hall",
    "ch_simple_contacts": "contacts for simple needs (bill query, payment, application)",
    "ch_simple_assisted": "simple needs by phone or at the hall (the app does them)",
    "ch_simple_hall": "simple needs at the hall",
    "ch_simple_assisted_share": "[0..1] ch_simple_assisted / ch_simple_contacts",
    "ch_ebill_contacts": "bill queries (an e-bill answers them)",
    "ch_self_resolved_rate": "[0..1] self-service contacts (app, WeChat, Alipay, social) resolved there",
    "ch_escalation_rate": "[0..1] contacts escalated to another channel",
}


def _year_of(interactions: pl.DataFrame, year: int) -> pl.DataFrame:
    lo, hi = dt.datetime(year, 1, 1), dt.datetime(year + 1, 1, 1)
    return interactions.filter((pl.col("occurred_at") >= lo) & (pl.col("occurred_at") < hi))


_CHANNEL_CODES = ("alipay", "app", "hall", "other", "phone", "robot", "social", "wechat")  # sorted: JSON keys
_INTENT_CODES = ("application", "bill_query", "complaint", "consultation", "other", "outage", "payment", "repair")


def _mix(prefix: str, codes: Sequence[str], name: str) -> pl.Expr:
    """JSON ``{code: share}`` (4 decimals, codes with no contact left out) from the count columns
    ``<prefix><code>`` and ``ch_contacts``; null without contacts."""
    parts = [pl.when(pl.col(f"{prefix}{c}") > 0).then(
        pl.lit(f'"{c}": ') + (pl.col(f"{prefix}{c}") / pl.col("ch_contacts")).round(4).cast(pl.Utf8))
        for c in codes]
    body = pl.concat_str(parts, separator=", ", ignore_nulls=True)
    return pl.when(pl.col("ch_contacts") > 0).then(pl.lit("{") + body + pl.lit("}")).alias(name)


def household_features(interactions: pl.DataFrame | None, customer_ids: pl.Series, year: int) -> pl.DataFrame:
    """Channel features of every customer of ``customer_ids`` for ``year`` (same order).

    Parameters
    ----------
    interactions : pl.DataFrame or None
        ``INTERACTION_SCHEMA`` rows of ``year`` and ``year - 1`` (others are ignored). None: no
        interaction data at all, every feature null (labels are withheld, not denied).
    customer_ids : pl.Series
        Utf8, the households, in the order of the result.
    year : int

    Returns
    -------
    pl.DataFrame
        ``customer_id`` and ``CHANNEL_FEATURES`` (units in ``CHANNEL_FEATURE_DOCS``).
    """
    ids = pl.DataFrame({"customer_id": customer_ids.cast(pl.Utf8)})
    if interactions is None:
        return ids.with_columns([pl.lit(None, t).alias(c) for c, t in CHANNEL_FEATURES.items()])
    # the codes as categoricals: the comparisons below compare small integers, not strings
    cur = _year_of(interactions, year).with_columns(pl.col("channel", "intent").cast(pl.Categorical))
    last = _year_of(interactions, year - 1).with_columns(pl.col("channel").cast(pl.Categorical))
    ch, it = pl.col("channel"), pl.col("intent")
    simple = it.is_in(list(SIMPLE_INTENTS))
    selfs = ch.is_in(list(SELF_SERVICE))
    agg = cur.group_by("customer_id").agg(
        pl.len().cast(pl.Int32).alias("ch_contacts"),
        *[(ch == c).sum().alias(f"_c_{c}") for c in _CHANNEL_CODES],
        *[(it == c).sum().alias(f"_i_{c}") for c in _INTENT_CODES],
        simple.sum().cast(pl.Int32).alias("ch_simple_contacts"),
        (simple & ch.is_in(list(ASSISTED))).sum().cast(pl.Int32).alias("ch_simple_assisted"),
        (simple & (ch == "hall")).sum().cast(pl.Int32).alias("ch_simple_hall"),
        selfs.sum().alias("_self"),
        (selfs & pl.col("resolved")).sum().alias("_self_ok"),
        pl.col("escalated_to").is_not_null().sum().alias("_esc"),
    )
    lagg = last.group_by("customer_id").agg(
        pl.len().cast(pl.Int32).alias("ch_contacts_last_year"),
        ch.is_in(list(ONLINE)).mean().alias("ch_share_online_last_year"),
    )
    n = pl.when(pl.col("ch_contacts") > 0).then(pl.col("ch_contacts"))
    online = pl.sum_horizontal([pl.col(f"_c_{c}") for c in ONLINE])
    # the main channel: most contacts, ties by funnel order
    agg = agg.with_columns(
        (online / n).alias("ch_share_online"),
        (pl.col("_c_phone") / n).alias("ch_share_phone"),
        (pl.col("_c_hall") / n).alias("ch_share_hall"),
        pl.col("_i_bill_query").cast(pl.Int32).alias("ch_ebill_contacts"),
        (pl.col("_esc") / n).alias("ch_escalation_rate"),
        pl.when(pl.col("ch_contacts") > 0).then(
            pl.concat_list([pl.col(f"_c_{c}") for c in _ORDER]).list.arg_max()
            .replace_strict(list(range(len(_ORDER))), list(_ORDER), return_dtype=pl.Utf8)).alias("ch_channel_main"),
        _mix("_c_", _CHANNEL_CODES, "ch_channel_mix"),
        _mix("_i_", _INTENT_CODES, "ch_intent_mix"),
    )
    out = (ids.join(agg, on="customer_id", how="left", maintain_order="left")
           .join(lagg, on="customer_id", how="left", maintain_order="left"))
    zero = ["ch_contacts", "ch_contacts_last_year", "ch_simple_contacts", "ch_simple_assisted", "ch_simple_hall",
            "ch_ebill_contacts"]
    out = out.with_columns([pl.col(c).fill_null(0) for c in zero]).with_columns(
        pl.when(pl.col("ch_contacts_last_year") > 0)
        .then(100.0 * (pl.col("ch_contacts") - pl.col("ch_contacts_last_year")) / pl.col("ch_contacts_last_year"))
        .alias("ch_contacts_change_pct"),
        (100.0 * (pl.col("ch_share_online") - pl.col("ch_share_online_last_year"))).alias("ch_online_change_pp"),
        pl.when(pl.col("ch_simple_contacts") > 0)
        .then(pl.col("ch_simple_assisted") / pl.col("ch_simple_contacts")).alias("ch_simple_assisted_share"),
        pl.when(pl.col("_self") > 0).then(pl.col("_self_ok") / pl.col("_self")).alias("ch_self_resolved_rate"),
    )
    return out.select("customer_id", *[pl.col(c).cast(t) for c, t in CHANNEL_FEATURES.items()])


_ORDER = ("app", "wechat", "alipay", "social", "robot", "phone", "hall", "other")


def _rank(ch: pl.Expr) -> pl.Expr:
    return ch.replace_strict(list(_ORDER), list(range(len(_ORDER))), default=len(_ORDER), return_dtype=pl.Int32)


def stage_of(ch: pl.Expr) -> pl.Expr:
    """The funnel stage of a channel (``STAGES``)."""
    return (pl.when(ch.is_in(list(SELF_SERVICE))).then(pl.lit("self_service"))
            .when(ch == "robot").then(pl.lit("robot"))
            .when(ch == "phone").then(pl.lit("phone"))
            .when(ch == "hall").then(pl.lit("person"))
            .otherwise(pl.lit("other")))


# --- the portfolio report ------------------------------------------------------------------------


@dataclass
class ReportParams:
    """Settings of the portfolio report.

    Attributes
    ----------
    min_group : int
        Households a figure must rest on (small groups merged, see the module docstring).
    cost_fen : dict[str, int]
        Handling cost of one contact per channel [fen] (``DEFAULT_COST_FEN``).
    late_after_days : int
        A payment is late when paid more than this many days after issue (``diagnostics.Params``).
    """

    min_group: int = 10
    cost_fen: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_COST_FEN))
    late_after_days: int = 15


@dataclass
class ChannelReport:
    """The report's tables (one per chart, each written as Parquet beside it) and headline figures."""

    year: int
    region: str | None
    tables: dict[str, pl.DataFrame]
    campaign: pl.DataFrame  # the CRM list: one row per household to guide
    headline: dict[str, float | int | None]
    suppressed: dict[str, int]
    min_group: int = 10
    #: the customers' regions shown as ``OTHER_REGIONS`` (``plan_regions``), sorted
    merged_regions: list[str] = field(default_factory=list)


def merge_small(rows: pl.DataFrame, key: str, k: int, *, within: Sequence[str] = (), period: str | None = None,
                merged: str = MERGED, counts: pl.DataFrame | None = None) -> pl.DataFrame:
    """The one rule for small groups: which values of ``key`` are shown and which are merged.

    A value of ``key`` (within each group of ``within``) is kept when it rests on at least ``k``
    distinct households (``_hh``) in *every* period of its group (``period``: e.g. both years and
    every month of the report year, so the two years and the months are merged the same way);
    the others become ``merged``. When the merged value of a group is then non-empty but rests on
    fewer than ``k`` households in some period, the kept value with the fewest households joins
    it (a kept value has ``k`` in every period, so the merged group then has too). Nothing is left
    out, so no figure can be had by subtracting shown cells from a total. Only when a group as a
    whole is under ``k`` is its merged value still small (the caller leaves it out).

    Parameters
    ----------
    rows : pl.DataFrame
        ``_hh`` (a household's integer index), ``key``, the ``within`` columns and ``period``.
    key : str
    k : int
        The minimum group size [households].
    within : sequence of str
        The columns of the group a value is merged within (e.g. ``region`` for channels).
    period : str or None
        The column of periods every kept value must be large enough in; None: one period.
    merged : str
        The merged value (``MERGED``; ``OTHER_REGIONS`` for regions).
    counts : pl.DataFrame or None
        ``rows.group_by(*within, key, period).agg(pl.col("_hh").n_unique().alias("_n"))`` when the
        caller has it already (its tables use the same counts).

    Returns
    -------
    pl.DataFrame
        ``within`` columns, ``key`` and ``_to`` (the value shown: ``key`` or ``merged``), one row per
        group and value of ``rows``.
    """
    g = list(within)
    per = [period] if period else []
    hh = counts if counts is not None else rows.group_by(*g, key, *per).agg(pl.col("_hh").n_unique().alias("_n"))
    cells = hh.group_by(*g, key).agg((pl.col("_n") >= k).sum().alias("_ok"), pl.col("_n").min().alias("_min"))
    if period:
        nper = rows.group_by(*g).agg(pl.col(period).n_unique().alias("_p")) if g else pl.DataFrame(
            {"_p": [rows[period].n_unique()]})
        cells = cells.join(nper, on=g) if g else cells.join(nper, how="cross")
    else:
        cells = cells.with_columns(pl.lit(1, pl.UInt32).alias("_p"))
    cells = cells.with_columns((pl.col("_ok") == pl.col("_p")).alias("_keep"))
    small = cells.filter(~pl.col("_keep")).select(*g, key)
    if small.height:
        # the merged value's households, counted again (a household may be in several small cells)
        low = (rows.join(small, on=[*g, key], how="semi").group_by(*g, *per)
               .agg(pl.col("_hh").n_unique().alias("_n")).filter(pl.col("_n") < k))
        if low.height:
            short = low.select(g).unique() if g else None
            cand = cells.filter(pl.col("_keep"))
            if short is not None:
                cand = cand.join(short, on=g, how="semi")
            add = cand.sort("_min", pl.col(key).cast(pl.Utf8)).group_by(g or pl.lit(0), maintain_order=True).first()
            if add.height:
                cells = cells.join(add.select(*g, key).with_columns(pl.lit(True).alias("_add")), on=[*g, key],
                                   how="left").with_columns(pl.col("_keep") & pl.col("_add").is_null())
    return cells.select(*g, key, pl.when(pl.col("_keep")).then(pl.col(key).cast(pl.Utf8)).otherwise(pl.lit(merged))
                        .alias("_to"))


def _apply(rows: pl.DataFrame, plan: pl.DataFrame, key: str, to: str, within: Sequence[str] = ()) -> pl.DataFrame:
    """``rows`` with ``to``: the shown value of ``key`` by ``plan`` (``merge_small``)."""
    moved = plan.filter(pl.col("_to") != pl.col(key).cast(pl.Utf8))
    if moved.height == 0:  # nothing merged (the usual case with many households): no pass over the rows
        return rows.with_columns(pl.col(key).alias(to))
    if not within or moved.select(within).unique().height == plan.select(within).unique().height == 1:
        values = moved[key].cast(pl.Utf8).implode()
        return rows.with_columns(pl.when(pl.col(key).cast(pl.Utf8).is_in(values)).then(pl.lit(MERGED if not within
                                 else moved["_to"][0])).otherwise(pl.col(key).cast(pl.Utf8)).alias(to))
    return rows.join(plan.rename({"_to": to}), on=[*within, key], how="left")


def plan_regions(customers: pl.DataFrame, interactions: pl.DataFrame, year: int, k: int) -> pl.DataFrame:
    """The reporting group of each customer, decided once for every table and both years.

    A region is named when it rests on at least ``k`` households with contacts in the year before,
    and in every month of ``year`` (the finest groups the report shows by region); the others are
    one explicit group, ``OTHER_REGIONS`` (a customer without a region is in it too). When that
    group is non-empty and too small, the smallest named region joins it (``merge_small``): a small
    region is never folded into another named region.

    Parameters
    ----------
    customers : pl.DataFrame
        ``customer_id``, ``region``.
    interactions : pl.DataFrame
        ``customer_id``, ``occurred_at`` of ``year`` and ``year - 1`` (others ignored).
    year : int
    k : int
        The minimum group size [households].

    Returns
    -------
    pl.DataFrame
        ``customer_id``, ``region`` (the group shown), ``region_given`` (the customer's own region)
        and ``_hh`` (UInt32, the household's index), in the order of ``customers``.
    """
    c = _customer_index(customers)
    act = interactions.select("customer_id", "occurred_at").join(c, on="customer_id", how="inner")
    return _plan_regions(c, act, year, k)


def _customer_index(customers: pl.DataFrame) -> pl.DataFrame:
    """``customer_id``, ``region_given`` (null, blank or a name of the group itself, ``OTHER_REGIONS_NAMES``:
    ``OTHER_REGIONS``) and ``_hh`` (the row's index)."""
    region = pl.col("region").cast(pl.Utf8).str.strip_chars()
    other = (region == "") | region.str.to_lowercase().is_in(sorted(OTHER_REGIONS_NAMES))
    return customers.select("customer_id", pl.when(other).then(None).otherwise(region).fill_null(OTHER_REGIONS)
                            .alias("region_given")).with_row_index("_hh")


def _plan_regions(c: pl.DataFrame, act: pl.DataFrame, year: int, k: int) -> pl.DataFrame:
    """``plan_regions`` of the customer index ``c`` and contacts ``act`` already joined to it."""
    lo, hi = dt.datetime(year - 1, 1, 1), dt.datetime(year + 1, 1, 1)
    act = act.filter((pl.col("occurred_at") >= lo) & (pl.col("occurred_at") < hi)).select(
        "_hh", pl.col("region_given").alias("region"),
        pl.when(pl.col("occurred_at").dt.year() == year).then(pl.col("occurred_at").dt.month())
        .otherwise(0).cast(pl.Int8).alias("_period"))
    plan = merge_small(act, "region", k, period="_period", merged=OTHER_REGIONS)
    c = c.join(plan.rename({"region": "region_given"}), on="region_given", how="left", maintain_order="left")
    return c.select("customer_id", pl.col("_to").fill_null(OTHER_REGIONS).alias("region"), "region_given", "_hh")


def _shown(df: pl.DataFrame, k: int, name: str, suppressed: dict[str, int]) -> pl.DataFrame:
    """Cells of fewer than ``k`` households left out (only a group small as a whole: ``merge_small``
    merged the rest), counted in ``suppressed[name]``."""
    gone = df.filter(pl.col("households") < k).height
    if gone:
        suppressed[name] = suppressed.get(name, 0) + gone
    return df.filter(pl.col("households") >= k)


def channel_report(interactions: pl.DataFrame, customers: pl.DataFrame, payments: pl.DataFrame | None,
                   features: pl.DataFrame | None, assigned: pl.DataFrame | None, quarantine: pl.DataFrame | None,
                   year: int, region: str | None = None, params: ReportParams | None = None) -> ChannelReport:
    """The service-channel portfolio report's figures for ``year``.

    Parameters
    ----------
    interactions : pl.DataFrame
        ``INTERACTION_SCHEMA`` rows of ``year`` and ``year - 1``.
    customers : pl.DataFrame
        ``CUSTOMER_SCHEMA`` rows (``customer_id``, ``region``); contacts of other customers count
        under the region ``unknown`` in the data-quality table only.
    payments : pl.DataFrame or None
        ``PAYMENT_SCHEMA`` rows (those with ``bill_month`` in ``year`` are used).
    features : pl.DataFrame or None
        ``customer_id`` and ``CHANNEL_FEATURES`` (``household_features``); computed when None.
    assigned : pl.DataFrame or None
        Assigned labels (``labels.ASSIGNED_SCHEMA``) of ``year``, for labels by region and the campaign.
    quarantine : pl.DataFrame or None
        Quarantined interaction rows (``QUARANTINE_SCHEMA``), for the data-quality table. A row's
        customer is the first field of ``raw`` (the design's column order); rows whose first field is
        not a known customer count under ``unknown``.
    year : int
    region : str or None
        Only the customers of this region.
    params : ReportParams or None

    Returns
    -------
    ChannelReport
        Tables: ``mix_month`` (region, month, channel, contacts, households, share of the region's
        month), ``mix_trend`` (region, channel, contacts, contacts_last_year, share, share_last_year,
        change_pp), ``intent_channel`` (intent, channel, contacts, share of the intent), ``funnel``
        (stage, contacts, resolved, escalated, resolved_share, escalated_share, share_of_needs),
        ``complaints`` (stage, complaints, share), ``payment_mix`` (channel, payments, share,
        delay_days_mean, late_share), ``campaign_summary`` (segment, region, households,
        contacts_moved, cost_saved_fen), ``labels_by_region`` (region, code, households, share),
        ``quality_by_region`` (region, customers, contacts, missing_handle_share,
        missing_satisfaction_share, quarantined). Shares are 0..1.
    """
    p = params or ReportParams()
    k = max(1, int(p.min_group))
    suppressed: dict[str, int] = {}
    cust = customers
    if region is not None:
        cust = cust.filter(pl.col("region") == region)
    # the reporting groups: decided once, from both years, for every table (``plan_regions``)
    cols = ["customer_id", "occurred_at", "channel", "intent", "resolved", "escalated_to", "handle_seconds",
            "satisfaction"]
    # one join: contacts of customers outside ``customers`` keep a null region (data quality only)
    cidx = _customer_index(cust)
    # codes as categoricals: every group_by below hashes small integers, not strings
    inter_all = interactions.select(cols).join(cidx, on="customer_id", how="left").with_columns(
        pl.col("channel").cast(pl.Categorical), pl.col("intent").cast(pl.Categorical))
    inter = inter_all.filter(pl.col("_hh").is_not_null())
    groups = _plan_regions(cidx, inter, year, k)
    ids = groups.select("customer_id")
    gkeys = groups.select("customer_id", "region", "_hh")
    # the group of each contact, by the household's index (a gather, not another join on the account)
    region_of = groups["region"].cast(pl.Categorical)
    inter_all = inter_all.with_columns(
        pl.when(pl.col("_hh").is_not_null()).then(region_of.gather(inter_all["_hh"].fill_null(0)))
        .alias("region")).drop("region_given")
    inter = inter_all.filter(pl.col("_hh").is_not_null())
    cur = _year_of(inter, year).with_columns(pl.col("occurred_at").dt.month().cast(pl.Int8).alias("month"))
    last = _year_of(inter, year - 1)
    tables: dict[str, pl.DataFrame] = {}

    # channels by region: one merge for the months of the year and the year before (``merge_small``)
    both = pl.concat([cur.select("_hh", "region", "channel", pl.col("month").alias("_period")),
                      last.select("_hh", "region", "channel", pl.lit(0, pl.Int8).alias("_period"))])
    counts = both.group_by("region", "channel", "_period").agg(pl.col("_hh").n_unique().alias("_n"),
                                                                 pl.len().alias("_len"))
    chan = merge_small(both, "channel", k, within=["region"], period="_period", counts=counts)
    cur = _apply(cur, chan, "channel", "ch_r", ["region"])
    last = _apply(last, chan, "channel", "ch_r", ["region"])
    hh = pl.col("_hh").n_unique().alias("households")
    as_is = bool((chan["_to"] == chan["channel"].cast(pl.Utf8)).all())  # nothing merged: the counts are the cells

    # channel mix by month and region; the months of all regions are the sums of the regions' cells
    mm = (counts.filter(pl.col("_period") > 0).select(
        "region", pl.col("_period").alias("month"), "channel", pl.col("_n").alias("households"),
        pl.col("_len").cast(pl.UInt32).alias("contacts")) if as_is else
        cur.group_by("region", "month", pl.col("ch_r").alias("channel")).agg(hh, pl.len().alias("contacts")))
    mm = _shown(mm, k, "mix_month", suppressed).sort("region", "month", "channel")
    tables["mix_month"] = mm.with_columns(
        (pl.col("contacts") / pl.col("contacts").sum().over("region", "month")).alias("share"))
    mt = mm.group_by("month", "channel").agg(pl.col("households").sum(), pl.col("contacts").sum())
    tables["mix_month_total"] = mt.sort("month", "channel").with_columns(
        (pl.col("contacts") / pl.col("contacts").sum().over("month")).alias("share"))
    # trend against the year before: the same cells in both years
    t_now = _shown(cur.group_by("region", pl.col("ch_r").alias("channel")).agg(hh, pl.len().alias("contacts")),
                   k, "mix_trend", suppressed)
    t_last = (counts.filter(pl.col("_period") == 0).select(
        "region", "channel", pl.col("_n").alias("households"), pl.col("_len").cast(pl.UInt32).alias("contacts_last_year"))
        if as_is else last.group_by("region", pl.col("ch_r").alias("channel")).agg(
            hh, pl.len().alias("contacts_last_year")))
    t_last = _shown(t_last, k, "mix_trend", suppressed).drop("households")
    trend = t_now.join(t_last, on=["region", "channel"], how="full", coalesce=True).with_columns(
        pl.col("contacts").fill_null(0), pl.col("contacts_last_year").fill_null(0))
    trend = trend.with_columns(
        (pl.col("contacts") / pl.col("contacts").sum().over("region")).alias("share"),
        (pl.col("contacts_last_year") / pl.col("contacts_last_year").sum().over("region")).alias("share_last_year"),
    ).with_columns((100.0 * (pl.col("share") - pl.col("share_last_year"))).alias("change_pp"))
    tables["mix_trend"] = trend.sort("region", "channel")

    # intent x channel: small needs merged first, then small channels within each need
    ic_rows = cur.select("_hh", "intent", "channel")
    ic_rows = _apply(ic_rows, merge_small(ic_rows, "intent", k), "intent", "intent_r")
    ic_rows = _apply(ic_rows, merge_small(ic_rows, "channel", k, within=["intent_r"]), "channel", "ch_i",
                     ["intent_r"])
    ic = _shown(ic_rows.group_by(pl.col("intent_r").alias("intent"), pl.col("ch_i").alias("channel")).agg(
        hh, pl.len().alias("contacts")), k, "intent_channel", suppressed).sort("intent", "channel")
    tables["intent_channel"] = ic.with_columns(
        (pl.col("contacts") / pl.col("contacts").sum().over("intent")).alias("share"))

    # the funnel
    st = cur.select("_hh", "intent", "resolved", "escalated_to", stage_of(pl.col("channel")).alias("stage"))
    st = _apply(st, merge_small(st, "stage", k), "stage", "stage_r")
    fun = _shown(st.group_by(pl.col("stage_r").alias("stage")).agg(
        hh, pl.len().alias("contacts"), pl.col("resolved").sum().alias("resolved"),
        pl.col("escalated_to").is_not_null().sum().alias("escalated")), k, "funnel", suppressed)
    total = max(1, cur.height)
    fun = fun.with_columns(
        (pl.col("resolved") / pl.col("contacts")).alias("resolved_share"),
        (pl.col("escalated") / pl.col("contacts")).alias("escalated_share"),
        (pl.col("resolved") / total).alias("share_of_needs"),
    )
    order = {s: i for i, s in enumerate((*STAGES, MERGED))}
    tables["funnel"] = fun.sort(pl.col("stage").replace_strict(order, default=99))
    comp = st.filter(pl.col("intent") == "complaint").drop("stage_r")
    comp = _apply(comp, merge_small(comp, "stage", k), "stage", "stage_r")
    cm = _shown(comp.group_by(pl.col("stage_r").alias("stage")).agg(hh, pl.len().alias("complaints")), k,
                "complaints", suppressed)
    tables["complaints"] = cm.with_columns((pl.col("complaints") / max(1, comp.height)).alias("share")).sort(
        pl.col("stage").replace_strict(order, default=99))

    # payments: channel mix and delay
    pay = payments if payments is not None else pl.DataFrame(
        schema={"customer_id": pl.Utf8, "bill_month": pl.Utf8, "issued_on": pl.Date, "paid_on": pl.Date,
                "amount_fen": pl.Int64, "channel": pl.Utf8})
    pay = pay.filter(pl.col("bill_month").str.starts_with(f"{year}-")).join(
        groups.select("customer_id", "_hh"), on="customer_id", how="inner").with_columns(
        pl.col("channel").fill_null("other"))
    pay = _apply(pay, merge_small(pay, "channel", k), "channel", "ch_p")
    delay = (pl.col("paid_on") - pl.col("issued_on")).dt.total_days()
    # lateness as diagnostics.kernels.payments_kernel decides it: paid more than late_after_days after
    # issue, or unpaid and issued more than that before Dec 31 (an unpaid bill younger is not known yet)
    overdue = (pl.lit(dt.date(year, 12, 31)) - pl.col("issued_on")).dt.total_days() > p.late_after_days
    late = pl.when(pl.col("paid_on").is_not_null()).then(delay > p.late_after_days).otherwise(
        pl.when(overdue).then(True))
    pm = _shown(pay.group_by(pl.col("ch_p").alias("channel")).agg(
        hh, pl.len().alias("payments"), delay.mean().alias("delay_days_mean"), late.mean().alias("late_share")),
        k, "payment_mix", suppressed).sort("channel")
    tables["payment_mix"] = pm.with_columns((pl.col("payments") / pl.col("payments").sum()).alias("share"))

    # households to guide: the CRM campaign list
    feats = features if features is not None else household_features(interactions, ids["customer_id"], year)
    lab = (assigned if assigned is not None else pl.DataFrame(schema={"customer_id": pl.Utf8, "code": pl.Utf8}))
    camp = (lab.filter(pl.col("code").is_in(list(CAMPAIGNS))).select("customer_id", pl.col("code").alias("segment"))
            .join(gkeys, on="customer_id", how="inner")
            .join(feats, on="customer_id", how="left"))
    moved = pl.lit(0, pl.Int64)
    saved = pl.lit(0, pl.Int64)
    cost = p.cost_fen
    for seg, (to, col) in CAMPAIGNS.items():
        n = pl.col(col).cast(pl.Int64).fill_null(0)
        if seg == "channel_assisted_simple":
            # each simple need moves from its channel (phone or hall) to the app
            hall = pl.col("ch_simple_hall").cast(pl.Int64).fill_null(0)
            save = hall * (cost["hall"] - cost[to]) + (n - hall) * (cost["phone"] - cost[to])
        elif seg == "channel_hall_only":
            save = n * (cost["hall"] - cost[to])
        else:  # an e-bill answers the bill queries the household now makes in the app
            save = n * cost[to]
        moved = pl.when(pl.col("segment") == seg).then(n).otherwise(moved)
        saved = pl.when(pl.col("segment") == seg).then(save).otherwise(saved)
    suggested = pl.col("segment").replace_strict({s: v[0] for s, v in CAMPAIGNS.items()}, return_dtype=pl.Utf8)
    campaign = camp.select(
        "_hh", "customer_id", "region", "segment", suggested.alias("suggested_channel"),
        moved.alias("contacts_moved"), saved.alias("cost_saved_fen"), "ch_contacts", "ch_channel_main",
    ).sort("segment", "customer_id")
    # the CRM lists' counts by region: small segments of a region merged within it
    cs_rows = _apply(campaign, merge_small(campaign, "segment", k, within=["region"]), "segment", "seg_r",
                     ["region"])
    cs = _shown(cs_rows.group_by(pl.col("seg_r").alias("segment"), "region").agg(
        hh, pl.col("contacts_moved").sum().alias("contacts_moved"),
        pl.col("cost_saved_fen").sum().alias("cost_saved_fen")), k, "campaign_summary", suppressed)
    tables["campaign_summary"] = cs.sort("segment", "region")
    campaign = campaign.drop("_hh")

    # labels by region
    lab_rows = lab.join(gkeys, on="customer_id", how="inner")
    lab_rows = _apply(lab_rows, merge_small(lab_rows, "code", k, within=["region"]), "code", "code_r", ["region"])
    lr = _shown(lab_rows.group_by("region", pl.col("code_r").alias("code")).agg(hh), k, "labels_by_region",
                suppressed)
    sizes = groups.group_by("region").agg(pl.len().alias("_n"))
    tables["labels_by_region"] = lr.join(sizes, on="region").with_columns(
        (pl.col("households") / pl.col("_n")).alias("share")).drop("_n").sort("region", "code")

    # data quality by region (contacts of customers not in the customer file: region "unknown")
    allrows = _year_of(inter_all if region is None else inter, year)
    q = quarantine if quarantine is not None else pl.DataFrame(schema={"raw": pl.Utf8})
    qids = q.select(pl.col("raw").str.split(",").list.first().alias("customer_id")) if q.height else pl.DataFrame(
        schema={"customer_id": pl.Utf8})
    qreg = qids.join(gkeys.drop("_hh"), on="customer_id", how="left").with_columns(
        pl.col("region").fill_null("unknown")).group_by("region").agg(pl.len().alias("quarantined"))
    if region is not None:
        qreg = qreg.filter(pl.col("region") != "unknown")
    quality = [
        (pl.col("handle_seconds").is_null().mean().alias("missing_handle_share")),
        pl.col("satisfaction").is_null().mean().alias("missing_satisfaction_share"),
        (pl.col("channel") == "other").mean().alias("other_channel_share"),
    ]
    known = allrows.filter(pl.col("_hh").is_not_null())
    unknown = allrows.filter(pl.col("_hh").is_null())
    qual = pl.concat([
        known.group_by("region").agg(hh, pl.len().alias("contacts"), *quality).with_columns(
            pl.col("region").cast(pl.Utf8)),
        unknown.group_by(pl.lit("unknown").alias("region")).agg(
            pl.col("customer_id").n_unique().alias("households"), pl.len().alias("contacts"), *quality),
    ], how="vertical_relaxed")
    qual = qual.join(qreg, on="region", how="full", coalesce=True).with_columns(
        pl.col("quarantined").fill_null(0), pl.col("contacts").fill_null(0), pl.col("households").fill_null(0))
    tables["quality_by_region"] = qual.sort("region")

    online = cur.select(pl.col("channel").is_in(list(ONLINE)).mean()).item() if cur.height else None
    online_last = last.select(pl.col("channel").is_in(list(ONLINE)).mean()).item() if last.height else None
    headline: dict[str, float | int | None] = {
        "households": groups.height,
        "contacts": cur.height,
        "contacts_last_year": last.height,
        "online_share": online,
        "online_share_last_year": online_last,
        "campaign_households": campaign.height,
        "contacts_moved": int(campaign["contacts_moved"].sum()) if campaign.height else 0,
        "cost_saved_fen": int(campaign["cost_saved_fen"].sum()) if campaign.height else 0,
    }
    if campaign.height < k:  # the totals would single out a few households
        headline.update(campaign_households=None, contacts_moved=None, cost_saved_fen=None)
    tables = {name: df.with_columns(pl.col(pl.Categorical).cast(pl.Utf8)) for name, df in tables.items()}
    campaign = campaign.with_columns(pl.col(pl.Categorical).cast(pl.Utf8))
    merged_regions = sorted(groups.filter(pl.col("region") == OTHER_REGIONS)["region_given"].unique().to_list())
    return ChannelReport(year, region, tables, campaign, headline, suppressed, k, merged_regions)
