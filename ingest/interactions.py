"""VEE of service interactions: raw rows -> ``INTERACTION_SCHEMA`` rows, quarantine, duplicates.

Input format: ``../shared/design.md``, "Service interactions" (one row per contact of a customer
with the grid company; Chinese export headers are aliases, ``ingest.schemas.ALIASES``). The same
discipline as reads: every row ends loaded, quarantined with a reason, or counted as a duplicate.

Rules (tested in ``tests/ingest/test_interactions.py``):

* ``customer_id``, ``occurred_at``, ``channel``, ``intent`` and ``resolved`` are required
  (``missing_value``).
* ``occurred_at`` is a local date-time: ISO ``YYYY-MM-DDTHH:MM[:SS]`` or with a space, also
  ``YYYY/MM/DD HH:MM[:SS]``; a date alone means midnight. With an ISO offset (``+08:00``, ``+0800``,
  ``Z``) it is converted to local time (``LOCAL_TZ``, Asia/Shanghai), as is a typed time zone. Anything else, or a time that does not
  exist, is ``impossible_date``; before 1990 or after tomorrow ``implausible_date``.
* ``channel`` and ``escalated_to`` must be one of ``SERVICE_CHANNELS``, ``intent`` one of ``INTENTS``
  (case-insensitive; ``bad_value``); ``escalated_to`` may be empty. The names contact-centre exports
  use are accepted for them (``VALUE_ALIASES``: 营业厅 -> hall, 95598 -> phone, 网上国网 -> app,
  投诉 -> complaint, ...).
* ``resolved`` is a yes/no value: ``true/false``, ``t/f``, ``1/0``, ``yes/no``, ``y/n``, ``是/否``
  (``bad_value`` otherwise).
* ``handle_seconds`` a non-negative whole number of seconds (``non_numeric``, ``negative_value``),
  ``satisfaction`` a whole number 1..5 (``bad_value``); both optional.
* Duplicates on the natural key (customer, ``occurred_at``, channel): identical rows count once,
  rows that disagree are all quarantined (``conflicting_duplicate``).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from wattbill.ingest.schemas import INTENTS, INTERACTION_KEYS, INTERACTION_SCHEMA, SERVICE_CHANNELS
from wattbill.ingest.vee import (
    VeeResult,
    _Checks,
    _deduped_result,
    _present,
    _split_quarantine,
    _text,
)
from wattbill.years import MIN_DATE, latest_date

#: column -> {value as exported: code}; compared after stripping and lower-casing
VALUE_ALIASES: dict[str, dict[str, str]] = {
    "channel": {
        "电话": "phone", "95598": "phone", "热线": "phone", "营业厅": "hall", "柜台": "hall", "网上国网": "app",
        "掌上电力": "app", "微信": "wechat", "支付宝": "alipay", "智能客服": "robot", "机器人": "robot",
        "在线客服机器人": "robot", "短视频": "social", "抖音": "social", "微博": "social", "社交媒体": "social",
        "其他": "other",
    },
    "intent": {
        "账单查询": "bill_query", "查询账单": "bill_query", "电费查询": "bill_query", "查询": "bill_query",
        "缴费": "payment", "交费": "payment", "停电": "outage", "故障停电": "outage", "报修": "repair",
        "故障报修": "repair", "业务办理": "application", "业扩报装": "application", "新装": "application",
        "过户": "application", "更名": "application", "投诉": "complaint", "咨询": "consultation",
        "其他": "other",
    },
}
VALUE_ALIASES["escalated_to"] = VALUE_ALIASES["channel"]


def _code(df: pl.DataFrame, name: str) -> pl.Expr:
    """A code column: stripped, lower-cased, exported names mapped to codes."""
    t = _text(df, name).str.to_lowercase()
    return t.replace(VALUE_ALIASES[name])


_YES = ("true", "t", "1", "yes", "y", "是", "已解决")
_NO = ("false", "f", "0", "no", "n", "否", "未解决")
_FORMATS = (
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
)


#: the local time of the design's ``occurred_at``: a time written with an offset (or ``Z``) is
#: converted to it (China Standard Time, UTC+8, no daylight saving since 1991)
LOCAL_TZ = "Asia/Shanghai"
_OFFSET = r"([+-]\d\d:?\d\d|[Zz])$"
_OFFSET_FORMATS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z")


def _occurred(df: pl.DataFrame) -> pl.Expr:
    """``occurred_at`` as Datetime(us) local time (``LOCAL_TZ``) or null when it cannot be read.

    A time with an ISO offset (``+08:00``, ``+0800``, ``+08``, ``-05:00``, ``Z``), or a typed time with a time
    zone, is converted to ``LOCAL_TZ``; a time without one is local already."""
    dtype = df.schema["occurred_at"]
    if isinstance(dtype, pl.Datetime):
        e = pl.col("occurred_at")
        if dtype.time_zone is not None:
            e = e.dt.convert_time_zone(LOCAL_TZ).dt.replace_time_zone(None)
        return e.cast(pl.Datetime("us"))
    if dtype == pl.Date:
        return pl.col("occurred_at").cast(pl.Datetime("us"))
    t = (_text(df, "occurred_at").str.replace(r"(:\d\d)\.\d+", "${1}")  # fractions of a second are dropped
         .str.replace(r"(\d\d:\d\d(?::\d\d)?)([+-]\d\d)$", "${1}${2}:00"))  # ISO 8601's hour-only offset (+08)
    iso = (t.str.replace(r"[Zz]$", "+00:00").str.replace(r"^(\d{4})/(\d\d)/(\d\d)", "${1}-${2}-${3}")
           .str.replace(" ", "T", literal=True))
    aware = pl.coalesce(*[iso.str.to_datetime(f, strict=False, time_unit="us") for f in _OFFSET_FORMATS])
    local = aware.dt.convert_time_zone(LOCAL_TZ).dt.replace_time_zone(None)
    naive = pl.coalesce(
        *[t.str.to_datetime(f, strict=False, time_unit="us") for f in _FORMATS],
        t.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")),
        t.str.to_date("%Y/%m/%d", strict=False).cast(pl.Datetime("us")),
    )
    return pl.when(t.str.contains(_OFFSET)).then(local).otherwise(naive)


def _whole(df: pl.DataFrame, name: str) -> pl.Expr:
    """A whole number (Int64) or null; ``12.0`` is 12, ``12.5`` is null."""
    if name not in df.columns:
        return pl.lit(None, pl.Int64)
    if df.schema[name].is_integer():
        return pl.col(name).cast(pl.Int64)
    x = _text(df, name).cast(pl.Float64, strict=False) if df.schema[name] == pl.Utf8 else pl.col(name).cast(
        pl.Float64
    )
    return pl.when(x.is_finite() & (x == x.round(0))).then(x.cast(pl.Int64, strict=False))


def _flag(df: pl.DataFrame) -> pl.Expr:
    if df.schema["resolved"] == pl.Boolean:
        return pl.col("resolved")
    t = _text(df, "resolved").str.to_lowercase()
    return pl.when(t.is_in(list(_YES))).then(True).when(t.is_in(list(_NO))).then(False)


def interactions_frame(raw: pl.DataFrame, today: dt.date | None = None) -> VeeResult:
    """Validate raw interaction rows (``row`` + canonical columns).

    Parameters
    ----------
    raw : pl.DataFrame
        ``row`` (Int64, 1-based data row) and the file's columns under canonical names, values as
        text (CSV) or typed (Parquet).
    today : datetime.date or None
        Dates after ``today + 1 day`` are implausible (default: the system date).

    Returns
    -------
    VeeResult
        ``frame`` in ``INTERACTION_SCHEMA`` sorted by the natural key, the quarantine (row, column,
        code, reason) and the number of duplicates; ``rows == loaded + quarantined + duplicates``.
    """
    today = today or dt.date.today()
    rows = raw.height
    chk = _Checks()
    for c in ("customer_id", "occurred_at", "channel", "intent", "resolved"):
        chk.add(~_present(raw, c), c, "missing_value", f"{c} is missing")
    at = _occurred(raw)
    chk.add(at.is_null(), "occurred_at", "impossible_date", "occurred_at is not a real date and time")
    lo = dt.datetime.combine(MIN_DATE, dt.time())
    hi = dt.datetime.combine(latest_date(today) + dt.timedelta(days=1), dt.time())  # (the next midnight)
    chk.add((at < lo) | (at >= hi), "occurred_at", "implausible_date", f"occurred_at is before {MIN_DATE} or in the future")
    for c, allowed in (("channel", SERVICE_CHANNELS), ("intent", INTENTS)):
        chk.add(
            ~_code(raw, c).is_in(list(allowed)).fill_null(False),
            c,
            "bad_value",
            f"{c} is not one of {', '.join(allowed)}",
        )
    chk.add(_flag(raw).is_null(), "resolved", "bad_value", "resolved is not true or false")
    if "escalated_to" in raw.columns:
        chk.add(
            _present(raw, "escalated_to")
            & ~_code(raw, "escalated_to").is_in(list(SERVICE_CHANNELS)).fill_null(False),
            "escalated_to",
            "bad_value",
            f"escalated_to is not empty or one of {', '.join(SERVICE_CHANNELS)}",
        )
    if "handle_seconds" in raw.columns:
        hs = _whole(raw, "handle_seconds")
        chk.add(
            _present(raw, "handle_seconds") & hs.is_null(),
            "handle_seconds",
            "non_numeric",
            "handle_seconds is not a whole number of seconds",
        )
        chk.add(hs < 0, "handle_seconds", "negative_value", "handle_seconds is negative")
    if "satisfaction" in raw.columns:
        sat = _whole(raw, "satisfaction")
        chk.add(
            _present(raw, "satisfaction") & (sat.is_null() | (sat < 1) | (sat > 5)).fill_null(True),
            "satisfaction",
            "bad_value",
            "satisfaction is not a whole number from 1 to 5",
        )
    # the checks' expressions refer to the raw columns: evaluate them before anything is replaced
    good, q1 = _split_quarantine(raw, chk)
    df = good.select(
        "row",
        _text(good, "customer_id").alias("customer_id"),
        _occurred(good).alias("occurred_at"),
        _code(good, "channel").alias("channel"),
        _code(good, "intent").alias("intent"),
        _flag(good).alias("resolved"),
        _code(good, "escalated_to").alias("escalated_to"),
        _whole(good, "handle_seconds").cast(pl.Int32).alias("handle_seconds"),
        _whole(good, "satisfaction").cast(pl.Int32).alias("satisfaction"),
    )
    return _deduped_result(rows, df, q1, INTERACTION_SCHEMA, list(INTERACTION_KEYS),
                           "this customer, time and channel", by_row=False)
