"""Canonical frame schemas shared by ingest, store and the application.

See ``docs/interfaces.md``. Energy is integer Wh, money integer fen, ids are strings.
"""

from __future__ import annotations

import polars as pl

REGISTERS: tuple[str, ...] = ("sharp", "peak", "flat", "valley")
CHANNELS: tuple[str, ...] = ("app", "wechat", "alipay", "bank", "counter", "other")

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


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with ``schema``."""
    return pl.DataFrame(schema=schema)
