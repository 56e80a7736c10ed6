"""The store interface (both backends implement it) and helpers they share.

Bills are stored generically: whatever columns the pipeline's frames carry are kept, plus
``version`` (Int32), ``reason``, ``created_at`` and ``content_hash``. A bill's content is its row
(without those four columns and without ``year``) together with its month rows; a save whose content
equals the latest version's is not stored again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import polars as pl

from wattbill.ingest.schemas import IngestBatch

BILL_META = ("version", "reason", "created_at", "content_hash")

#: households a bill run left out, with a namespaced reason code and evidence (JSON), one row per
#: customer, year and code (``wattbill.pipeline.left_out``)
NOT_BILLED_SCHEMA = {
    "customer_id": pl.Utf8, "year": pl.Int32, "code": pl.Utf8, "detail": pl.Utf8, "evidence": pl.Utf8,
}


@runtime_checkable
class Store(Protocol):
    """Persistence of ingest results, bills and labels. See docs/interfaces.md."""

    url: str

    def ledger_get(self, sha256: str) -> dict | None: ...

    def save_ingest(self, batch: IngestBatch) -> None: ...

    def load_register_state(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame: ...

    def load_register_heads(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """``REGISTER_STATE_SCHEMA``: first reads of meters that had no earlier read when loaded."""
        ...

    def ingest_lock(self) -> AbstractContextManager[None]:
        """Held by a register load from reading the meters' stored reads to saving its own (across
        processes), so that two loads at once give the rows of two loads one after the other."""
        ...

    def load_daily(
        self, year: int, customer_ids: Sequence[str] | None = None, *, sort: bool = True
    ) -> pl.DataFrame:
        """``DAILY_SCHEMA`` rows of ``year``, sorted by (customer_id, meter_id, day); ``sort=False``:
        in any order the store finds cheaper, as the bill run asks (its kernels take any order and are
        fastest with each customer's rows together, as both stores return them)."""
        ...

    def load_customers(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame: ...

    def load_payments(
        self, year: int | None = None, customer_ids: Sequence[str] | None = None
    ) -> pl.DataFrame: ...

    def load_interactions(
        self, year: int | None = None, customer_ids: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """``INTERACTION_SCHEMA`` rows (of ``year`` of ``occurred_at`` when given), sorted by
        (customer_id, occurred_at, channel)."""
        ...

    def load_quarantine(self, file_sha256: str | None = None) -> pl.DataFrame: ...

    def load_findings(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame: ...

    def load_ledger(self) -> pl.DataFrame: ...

    def list_customer_ids(self) -> list[str]: ...

    def save_bills(
        self, year: int, bills: pl.DataFrame, months: pl.DataFrame, reason: str
    ) -> pl.DataFrame: ...

    def load_bills(
        self, year: int, customer_ids: Sequence[str] | None = None, all_versions: bool = False
    ) -> pl.DataFrame: ...

    def load_bill_months(
        self, year: int, customer_ids: Sequence[str] | None = None, version: int | None = None
    ) -> pl.DataFrame: ...

    def save_labels(self, year: int, version: int | None, labels: pl.DataFrame) -> None: ...

    def load_labels(self, year: int, customer_ids: Sequence[str] | None = None) -> pl.DataFrame: ...

    def save_not_billed(self, year: int, customer_ids: Sequence[str], not_billed: pl.DataFrame) -> None:
        """Replace the households left out of ``year``'s run among ``customer_ids`` (the run's
        customers) with ``not_billed`` (``NOT_BILLED_SCHEMA``: customer_id, year, code, detail,
        evidence). A household billed now loses its earlier record."""
        ...

    def load_not_billed(self, year: int, customer_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """``NOT_BILLED_SCHEMA`` rows of ``year``, sorted by customer and code."""
        ...

    def generation(self) -> str:
        """A cheap token that changes whenever the store's contents change (for caches)."""
        ...

    def close(self) -> None: ...


def _json_rows(df: pl.DataFrame, exclude: Sequence[str]) -> pl.Series:
    cols = sorted(c for c in df.columns if c not in exclude)
    if not cols:
        return pl.Series([""] * df.height, dtype=pl.Utf8)
    return df.select(pl.struct([pl.col(c) for c in cols]).struct.json_encode().alias("j"))["j"]


def content_hashes(bills: pl.DataFrame, months: pl.DataFrame) -> pl.DataFrame:
    """customer_id -> SHA-256 of the bill row and its months (order independent within months)."""
    b = bills.select("customer_id").with_columns(
        _json_rows(bills, (*BILL_META, "year", "customer_id")).alias("_b")
    )
    if months.height and "customer_id" in months.columns:
        m = months.select("customer_id").with_columns(_json_rows(months, (*BILL_META, "year")).alias("_m"))
        m = m.group_by("customer_id").agg(pl.col("_m").sort().str.join("\n"))
        b = b.join(m, on="customer_id", how="left")
    else:
        b = b.with_columns(pl.lit(None, pl.Utf8).alias("_m"))
    text = (pl.col("_b") + pl.lit("\x1e") + pl.col("_m").fill_null("")).alias("_t")
    texts = b.select(text)["_t"].to_list()
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    return pl.DataFrame(
        {"customer_id": b["customer_id"], "content_hash": hashes},
        schema={"customer_id": pl.Utf8, "content_hash": pl.Utf8},
    )


def plan_versions(
    year: int, bills: pl.DataFrame, months: pl.DataFrame, latest: pl.DataFrame, reason: str
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Assign versions.

    ``latest``: customer_id, version, content_hash of the latest stored version (any rows).
    Returns (result: input bills + version, new_bills to store, new_months to store).
    """
    if "customer_id" not in bills.columns:
        raise ValueError("bills need a customer_id column")
    if bills["customer_id"].is_duplicated().any():
        raise ValueError("bills have more than one row for a customer")
    bills = bills.drop([c for c in BILL_META if c in bills.columns])
    months = months.drop([c for c in BILL_META if c in months.columns])
    if "year" not in bills.columns:
        bills = bills.with_columns(pl.lit(year, pl.Int32).alias("year"))
    if months.height and "year" not in months.columns:
        months = months.with_columns(pl.lit(year, pl.Int32).alias("year"))
    h = content_hashes(bills, months)
    lt = latest.select(
        pl.col("customer_id").cast(pl.Utf8),
        pl.col("version").cast(pl.Int32).alias("_lv"),
        pl.col("content_hash").alias("_lh"),
    )
    plan = h.join(lt, on="customer_id", how="left").with_columns(
        pl.when(pl.col("_lh") == pl.col("content_hash"))
        .then(pl.col("_lv"))
        .otherwise(pl.col("_lv").fill_null(0) + 1)
        .cast(pl.Int32)
        .alias("version"),
        (pl.col("_lh").is_null() | (pl.col("_lh") != pl.col("content_hash"))).alias("_new"),
    )
    result = bills.join(plan.select("customer_id", "version"), on="customer_id", how="left")
    new_ids = plan.filter(pl.col("_new")).select("customer_id", "version", "content_hash")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    new_bills = bills.join(new_ids, on="customer_id", how="inner").with_columns(
        pl.lit(reason, pl.Utf8).alias("reason"), pl.lit(now, pl.Datetime("us")).alias("created_at")
    )
    if months.height:
        new_months = months.join(new_ids.select("customer_id", "version"), on="customer_id", how="inner")
    else:
        new_months = months.with_columns(pl.lit(None, pl.Int32).alias("version")) if months.width else months
    return result, new_bills, new_months


def latest_only(df: pl.DataFrame) -> pl.DataFrame:
    if df.height == 0:
        return df
    return df.filter(pl.col("version") == pl.col("version").max().over("customer_id"))
