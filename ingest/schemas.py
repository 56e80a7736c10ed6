"""Canonical frame schemas shared by ingest, store and the application.

See ``docs/interfaces.md``. Energy is integer Wh, money integer fen, ids are strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

REGISTERS: tuple[str, ...] = ("sharp", "peak", "flat", "valley")
CHANNELS: tuple[str, ...] = ("app", "wechat", "alipay", "bank", "counter", "other")
#: a payment's channel as Chinese exports name it -> its code in ``CHANNELS`` (compared stripped and
#: lower-cased; the service channels' names are ``ingest.interactions.VALUE_ALIASES``)
CHANNEL_ALIASES: dict[str, str] = {
    "网上国网": "app", "掌上电力": "app", "微信": "wechat", "微信支付": "wechat", "支付宝": "alipay",
    "银行": "bank", "银行代扣": "bank", "代扣": "bank", "银行卡": "bank", "营业厅": "counter", "柜台": "counter",
    "其他": "other",
}
#: service channels of an interaction (design.md, "Service interactions"), in funnel order
SERVICE_CHANNELS: tuple[str, ...] = ("app", "wechat", "alipay", "social", "robot", "phone", "hall", "other")
#: intents (needs) of an interaction
INTENTS: tuple[str, ...] = (
    "bill_query", "payment", "outage", "repair", "application", "complaint", "consultation", "other",
)

DAILY_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(),
    "meter_id": pl.Utf8(),
    "day": pl.Date(),
    "wh_total": pl.Int64(),
    "wh_sharp": pl.Int64(),
    "wh_peak": pl.Int64(),
    "wh_flat": pl.Int64(),
    "wh_valley": pl.Int64(),
    "estimated": pl.Boolean(),
}

CUSTOMER_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(),
    "tariff": pl.Utf8(),
    "household_size": pl.Int32(),
    "region": pl.Utf8(),
    "opened_on": pl.Date(),
    "closed_on": pl.Date(),
    "name": pl.Utf8(),
    "address": pl.Utf8(),
    "language": pl.Utf8(),
}

PAYMENT_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(),
    "bill_month": pl.Utf8(),
    "issued_on": pl.Date(),
    "paid_on": pl.Date(),
    "amount_fen": pl.Int64(),
    "channel": pl.Utf8(),
}

INTERACTION_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(),
    "occurred_at": pl.Datetime("us"),
    "channel": pl.Utf8(),
    "intent": pl.Utf8(),
    "resolved": pl.Boolean(),
    "escalated_to": pl.Utf8(),
    "handle_seconds": pl.Int32(),
    "satisfaction": pl.Int32(),
}
"""One row per contact of a customer with the grid company (local time, no zone); natural key
(customer_id, occurred_at, channel)."""

INTERACTION_KEYS: tuple[str, ...] = ("customer_id", "occurred_at", "channel")

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "file_sha256": pl.Utf8(),
    "file": pl.Utf8(),
    "row": pl.Int64(),
    "column": pl.Utf8(),
    "code": pl.Utf8(),
    "reason": pl.Utf8(),
    "raw": pl.Utf8(),
}

FINDING_SCHEMA: dict[str, pl.DataType] = {
    "file_sha256": pl.Utf8(),
    "customer_id": pl.Utf8(),
    "meter_id": pl.Utf8(),
    "day": pl.Date(),
    "code": pl.Utf8(),
    "description": pl.Utf8(),
    "evidence": pl.Utf8(),
}


REGISTER_STATE_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(),
    "meter_id": pl.Utf8(),
    "day": pl.Date(),
    "wh_total": pl.Int64(),
    "wh_sharp": pl.Int64(),
    "wh_peak": pl.Int64(),
    "wh_flat": pl.Int64(),
    "wh_valley": pl.Int64(),
    "multiplier": pl.Float64(),
    "digits": pl.Int64(),
}
"""The last accepted register read of each meter (register values in Wh, before the multiplier).

The next register file of the meter continues from it, so consecutive files need not overlap."""


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with ``schema``."""
    return pl.DataFrame(schema=schema)


# --- input files: canonical column names and accepted aliases (Chinese export headers) ---------------

#: canonical name -> aliases (compared after normalising: BOM and spaces stripped, ASCII lower-cased,
#: a trailing unit in brackets such as ``(kWh)`` / ``（千瓦时）`` removed).
ALIASES: dict[str, tuple[str, ...]] = {
    "customer_id": ("户号", "用户编号", "客户编号", "用户号", "户号id"),
    "meter_id": ("表号", "电能表资产号", "电表资产号", "资产编号", "电能表编号", "表计资产号"),
    "read_date": ("日期", "数据日期", "抄表日期", "冻结日期", "day", "date"),
    "total": ("正向有功总", "正向有功总电能", "正向有功电能总", "正向有功总示数", "总"),
    "sharp": ("尖", "正向有功尖", "尖峰", "尖示数"),
    "peak": ("峰", "正向有功峰", "峰示数"),
    "flat": ("平", "正向有功平", "平示数"),
    "valley": ("谷", "正向有功谷", "谷示数"),
    "multiplier": ("倍率", "综合倍率", "ct_ratio"),
    "digits": ("位数", "整数位数", "表位数"),
    "kwh_total": ("用电量", "总电量", "日用电量"),
    "kwh_sharp": ("尖电量",),
    "kwh_peak": ("峰电量",),
    "kwh_flat": ("平电量",),
    "kwh_valley": ("谷电量",),
    "estimated": ("估算", "估计"),
    "tariff": ("电价", "电价代码", "电价码"),
    "household_size": ("家庭人口", "人口", "户人口数"),
    "region": ("区域", "地区", "供电单位"),
    "opened_on": ("立户日期", "开户日期"),
    "closed_on": ("销户日期",),
    "name": ("户名", "姓名", "用户名称"),
    "address": ("地址", "用电地址"),
    "language": ("语言",),
    "bill_month": ("账期", "电费年月", "电费月份"),
    "issued_on": ("出账日期", "发行日期"),
    "paid_on": ("缴费日期", "实收日期"),
    "amount": ("金额", "缴费金额", "应收金额", "电费金额"),
    "channel": ("渠道", "缴费渠道", "缴费方式", "服务渠道", "受理渠道"),
    "occurred_at": ("时间", "发生时间", "受理时间", "联系时间"),
    "intent": ("诉求类型", "业务类型", "诉求"),
    "resolved": ("是否解决", "已解决"),
    "escalated_to": ("转接渠道", "转办渠道"),
    "handle_seconds": ("处理时长", "通话时长"),
    "satisfaction": ("满意度", "满意度评价"),
}

#: per kind: (required columns, optional columns) of the input file, canonical names.
INPUT_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "registers": (
        ("customer_id", "meter_id", "read_date", "total"),
        ("sharp", "peak", "flat", "valley", "multiplier", "digits"),
    ),
    "consumption": (
        ("customer_id", "meter_id", "read_date", "kwh_total"),
        ("kwh_sharp", "kwh_peak", "kwh_flat", "kwh_valley", "multiplier", "estimated"),
    ),
    "customers": (
        ("customer_id", "tariff"),
        ("household_size", "region", "opened_on", "closed_on", "name", "address", "language"),
    ),
    "payments": (
        ("customer_id", "bill_month", "issued_on", "amount"),
        ("paid_on", "channel"),
    ),
    "interactions": (
        ("customer_id", "occurred_at", "channel", "intent", "resolved"),
        ("escalated_to", "handle_seconds", "satisfaction"),
    ),
}

KINDS: tuple[str, ...] = tuple(INPUT_COLUMNS)

#: ingest ledger record (one row per file SHA-256)
LEDGER_SCHEMA: dict[str, pl.DataType] = {
    "sha256": pl.Utf8(),
    "file": pl.Utf8(),
    "kind": pl.Utf8(),
    "rows": pl.Int64(),
    "loaded": pl.Int64(),
    "estimated": pl.Int64(),
    "quarantined": pl.Int64(),
    "duplicates": pl.Int64(),
    "findings": pl.Int64(),
    "loaded_at": pl.Datetime("us", "UTC"),
}


def customer_bucket(ids: pl.Expr | str, n_buckets: int) -> pl.Expr:
    """A stable bucket 0..n_buckets-1 of a customer id (same value across runs and versions).

    A polynomial hash of the id's UTF-8 bytes is not available as a stable polars expression, so the
    bucket is derived from the id's characters that vary most: the last four (ids are usually
    sequential numbers) folded with the length. Stable, cheap, vectorised.
    """
    col = pl.col(ids) if isinstance(ids, str) else ids
    h = col.str.len_bytes().cast(pl.UInt64)
    for i in range(1, 5):
        ch = col.str.slice(-i, 1).str.encode("hex")
        # one byte (two hex digits) of the character is enough for mixing
        byte = ch.str.slice(0, 2).str.to_integer(base=16, strict=False).fill_null(0).cast(pl.UInt64)
        h = h * 131 + byte
    return (h % n_buckets).cast(pl.Int32)


def customer_buckets(ids: pl.Series, n_buckets: int) -> pl.Series:
    """:func:`customer_bucket` of each id of ``ids``, computed once per run of equal ids.

    Rows of one customer come together (a file lists a customer's reads one after the other; daily
    rows are sorted by customer), so the hash (four string slices per id) is computed for the first
    id of each run and repeated over the run: on a year of daily rows, once per 365 rows instead of
    every row. The same values as :func:`customer_bucket` in any order of ``ids``.

    Parameters
    ----------
    ids : pl.Series
        Customer ids (text; nulls give null buckets).
    n_buckets : int
        Number of buckets.

    Returns
    -------
    pl.Series
        ``Int32`` buckets ``0 .. n_buckets - 1``, one per id, named like ``ids``.
    """
    runs = ids.rle_id()
    firsts = ids.filter(runs.is_first_distinct()).to_frame("c")
    per_run = firsts.select(customer_bucket("c", n_buckets))["c"]
    return per_run.gather(runs).cast(pl.Int32).alias(ids.name)


@dataclass
class IngestBatch:
    """One file's result, handed to ``Store.save_ingest`` and written atomically.

    ``daily`` may be one frame or an iterable of frames (streamed per customer batch so that memory stays
    flat; ``daily_disjoint``: the frames hold disjoint sets of customers, as a large file's buckets do,
    so the embedded store looks for a frame's stored rows only in the files that were there before the
    load); ``customers``/``payments`` are frames or None.
    """

    ledger: dict[str, Any]
    kind: str
    daily: pl.DataFrame | Iterable[pl.DataFrame] | None = None
    daily_disjoint: bool = False
    customers: pl.DataFrame | None = None
    payments: pl.DataFrame | None = None
    interactions: pl.DataFrame | None = None  # INTERACTION_SCHEMA: upserted on INTERACTION_KEYS
    quarantine: pl.DataFrame | None = None
    findings: pl.DataFrame | None = None
    register_state: pl.DataFrame | None = None  # REGISTER_STATE_SCHEMA: upserted on (customer_id, meter_id)
    #: REGISTER_STATE_SCHEMA: the first read of each meter that had no earlier read (it only anchored);
    #: upserted on (customer_id, meter_id, day). A file of an earlier period loaded later ends at such a
    #: read, and computes the consumption of its day then (the boundary day is not lost)
    register_heads: pl.DataFrame | None = None


@dataclass
class IngestReport:
    """Counts for one file; ``rows == loaded + quarantined + duplicates``."""

    file: str
    sha256: str
    rows: int
    loaded: int
    estimated: int
    quarantined: int
    duplicates: int
    already_loaded: bool = False
    kind: str = "registers"
    findings: int = 0
    findings_by_code: dict[str, int] = field(default_factory=dict)
    quarantine_by_code: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The CLI's ``--json`` object: the design's keys, ``already_loaded`` (true when the file's
        SHA-256 was in the ledger: nothing was loaded now, the counts are those of its first load), and the
        findings and quarantined rows by code, as the text output shows them (not for a file already
        loaded: the ledger keeps its first load's counts, not their codes)."""
        out = {
            "file": self.file,
            "rows": self.rows,
            "loaded": self.loaded,
            "estimated": self.estimated,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
            "already_loaded": bool(self.already_loaded),
            "findings": self.findings,
        }
        if not self.already_loaded:
            out["findings_by_code"] = dict(self.findings_by_code or {})
            out["quarantine_by_code"] = dict(self.quarantine_by_code or {})
        return out


def halves_of_customers(df: pl.DataFrame, min_rows: int) -> list[pl.DataFrame]:
    """``df`` as two slices of whole customers (every id of the first smaller than every id of the
    second), cut at the first row of the middle row's customer; ``[df]`` when it has fewer than
    ``min_rows`` rows, a missing id, ids not in sorted order, or a single customer in the way."""
    n = df.height
    ids = df["customer_id"]
    if n < max(min_rows, 2) or ids.null_count() or not ids.is_sorted():
        return [df]
    mid = ids[n // 2]
    cut = int(ids.search_sorted(mid, side="left"))
    if cut == 0:
        cut = int(ids.search_sorted(mid, side="right"))
    if cut in (0, n):
        return [df]
    return [df.slice(0, cut), df.slice(cut)]


def is_sorted_by(df: pl.DataFrame, keys: list[str], strict: bool = False) -> bool:
    """Non-decreasing on ``keys`` (lexicographic), checked without sorting; ``strict``: increasing
    (so also no key twice)."""
    if df.height < 2:
        return True
    gt = pl.lit(False)
    eq = pl.lit(True)
    for k in keys:
        gt = gt | (eq & (pl.col(k) > pl.col(k).shift(1)))
        eq = eq & (pl.col(k) == pl.col(k).shift(1))
    ok = gt if strict else (gt | eq)
    return bool(df.select(ok.slice(1).all()).item())
