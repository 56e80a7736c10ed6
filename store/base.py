"""The store interface (both backends implement it) and helpers they share.

Bills are stored generically: whatever columns the pipeline's frames carry are kept, plus
``version`` (Int32), ``reason``, ``created_at`` and ``content_hash``. A bill's content is its row
(without those four columns and without ``year``) together with its month rows; a save whose content
equals the latest version's is not stored again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl

from wattbill.ingest.schemas import DAILY_SCHEMA, IngestBatch

BILL_META = ("version", "reason", "created_at", "content_hash")

#: the columns every stored bill, bill month and label has whatever its tariff: what ``load_bills``,
#: ``load_bill_months`` and ``load_labels`` return, without rows, when there are none (an analyst's query
#: of an empty year then names its columns instead of failing on a frame without any)
BILL_KEYS_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(), "year": pl.Int32(), "tariff": pl.Utf8(), "version": pl.Int32(), "reason": pl.Utf8(),
    "created_at": pl.Datetime("us"), "content_hash": pl.Utf8(),
}
MONTH_KEYS_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(), "year": pl.Int32(), "month": pl.Int8(), "version": pl.Int32(),
}
LABEL_KEYS_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(), "year": pl.Int32(), "version": pl.Int32(), "code": pl.Utf8(), "evidence": pl.Utf8(),
}

#: households a bill run left out, with a namespaced reason code and evidence (JSON), one row per
#: customer, year and code (``wattbill.pipeline.left_out``)
NOT_BILLED_SCHEMA = {
    "customer_id": pl.Utf8, "year": pl.Int32, "code": pl.Utf8, "detail": pl.Utf8, "evidence": pl.Utf8,
}


def daily_columns_schema(columns: Sequence[str] | None) -> dict[str, pl.DataType]:
    """The part of ``DAILY_SCHEMA`` that ``Store.load_daily(..., columns=...)`` returns, in its order.

    Raises
    ------
    ValueError
        A column not in ``DAILY_SCHEMA``, or ``customer_id`` not among them (rows are grouped by it).
    """
    if columns is None:
        return dict(DAILY_SCHEMA)
    unknown = [c for c in columns if c not in DAILY_SCHEMA]
    if unknown or "customer_id" not in columns:
        raise ValueError(f"load_daily columns must be DAILY_SCHEMA columns with customer_id: {list(columns)}")
    return {c: DAILY_SCHEMA[c] for c in DAILY_SCHEMA if c in columns}


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
        self, year: int, customer_ids: Sequence[str] | None = None, *, sort: bool = True,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """``DAILY_SCHEMA`` rows of ``year``, sorted by (customer_id, meter_id, day); ``sort=False``:
        in any order the store finds cheaper, as the bill run asks (its kernels take any order and are
        fastest with each customer's rows together, as both stores return them). ``columns``: only
        these columns (``daily_columns_schema``: with ``customer_id``, in ``DAILY_SCHEMA``'s order),
        e.g. the bill run's last year (``customer_id, day, wh_total``: a third of the memory)."""
        ...

    def load_daily_between(
        self, first: dt.date, last: dt.date, customer_ids: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """``DAILY_SCHEMA`` rows from ``first`` through ``last`` (of ``customer_ids`` when given), in any
        order: what a file's days meet in the store (a re-sent or late day). Its cost follows the days
        asked and the rows found, not the days stored (embedded: only the day segments whose days meet
        the range are read; TimescaleDB: the BRIN index on ``day``, then primary-key probes)."""
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

    def has_interactions(self) -> bool:
        """Whether the store holds any service contact (of any customer, any year): a household without
        contacts in a store that has them has 0 contacts, not unknown (``diagnostics.channels``)."""
        ...

    def load_quarantine(self, file_sha256: str | None = None) -> pl.DataFrame: ...

    def load_findings(self, customer_ids: Sequence[str] | None = None) -> pl.DataFrame: ...

    def load_ledger(self) -> pl.DataFrame: ...

    def list_customer_ids(self) -> list[str]: ...

    def save_bills(
        self, year: int, bills: pl.DataFrame, months: pl.DataFrame, reason: str,
        hashes: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        """Store a new version of each bill whose content changed (``plan_versions``). ``hashes``:
        ``content_hashes(bills, months)`` when the caller has computed them already (the bill run does,
        for the next chunk, while this one is saved)."""
        ...

    def load_bills(
        self, year: int, customer_ids: Sequence[str] | None = None, all_versions: bool = False
    ) -> pl.DataFrame: ...

    def load_bill_months(
        self, year: int, customer_ids: Sequence[str] | None = None, version: int | None = None
    ) -> pl.DataFrame: ...

    def save_labels(self, year: int, version: int | None, labels: pl.DataFrame) -> None:
        """Replace each customer's labels of a bill version with ``labels`` (customer_id, code, evidence,
        ...). The version: ``version``; None: the ``version`` column of ``labels`` where it has one, else
        each customer's latest stored bill (``labels_with_versions``)."""
        ...

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


#: bill columns left out of a bill row's content hash where ``missing_days`` is 0 or absent (a bill with
#: every day read hashes as it did before these columns existed: no new version for the same bill)
HASH_WHEN_MISSING = ("missing_days", "missing_ranges")
#: month columns that the bill row determines (the month's days of ``missing_ranges``): not hashed again
HASH_DERIVED_MONTH = ("missing_days",)


def _json_rows(df: pl.DataFrame, exclude: Sequence[str]) -> pl.Series:
    cols = sorted(c for c in df.columns if c not in exclude)
    if not cols:
        return pl.Series([""] * df.height, dtype=pl.Utf8)
    full = pl.struct([pl.col(c) for c in cols]).struct.json_encode()
    if "missing_days" not in cols:
        return df.select(full.alias("j"))["j"]
    rest = [c for c in cols if c not in HASH_WHEN_MISSING]
    short = pl.struct([pl.col(c) for c in rest]).struct.json_encode() if rest else pl.lit("")
    some = pl.col("missing_days").fill_null(0) != 0
    return df.select(pl.when(some).then(full).otherwise(short).alias("j"))["j"]


def content_hashes_v1(bills: pl.DataFrame, months: pl.DataFrame) -> pl.DataFrame:
    """customer_id -> the first format of the content hash (stores written before ``HASH_PREFIX``): SHA-256 of
    the bill row's JSON and its months' JSON rows, sorted and joined. Kept to compare stored bills of
    that format; about 10x the CPU of :func:`content_hashes`."""
    b = bills.select("customer_id").with_columns(
        _json_rows(bills, (*BILL_META, "year", "customer_id")).alias("_b")
    )
    if months.height and "customer_id" in months.columns:
        m = months.select("customer_id").with_columns(
            _json_rows(months.drop(HASH_DERIVED_MONTH, strict=False), (*BILL_META, "year")).alias("_m"))
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


HASH_PREFIX = "v2:"
"""Prefix of :func:`content_hashes`' values (a stored hash without it is of ``content_hashes_v1``)."""


_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def _column_words(s: pl.Series) -> tuple[str, list[np.ndarray]]:
    """A column as 64-bit words per row: its values, and its validity if it has nulls (kind tag, arrays)."""
    dtype = s.dtype
    if dtype == pl.Boolean or dtype.is_integer() or dtype.is_temporal():
        kind, values = "i", s.to_physical().cast(pl.Int64).fill_null(0).to_numpy().view(np.uint64)
    elif dtype.is_float():
        kind, values = "f", s.cast(pl.Float64).fill_null(0.0).to_numpy().view(np.uint64)
    elif isinstance(dtype, pl.Decimal):  # the unscaled integer (fen for money), the scale in the tag
        kind = f"d{dtype.scale}"
        values = s.to_physical().cast(pl.Int64, strict=True).fill_null(0).to_numpy().view(np.uint64)
    else:  # text and anything else: each distinct value's SHA-256 (its first 8 bytes), once per value
        text = (s.cast(pl.Utf8) if dtype in (pl.Utf8, pl.Categorical) else
                s.to_frame("v").select(pl.struct("v").struct.json_encode())["v"]).fill_null("")
        codes = text.unique()
        digest = [int.from_bytes(hashlib.sha256(v.encode()).digest()[:8], "little") for v in codes.to_list()]
        kind = "s"
        values = text.to_frame("v").join(
            pl.DataFrame({"v": codes, "w": pl.Series(digest, dtype=pl.UInt64)}), on="v", how="left",
            maintain_order="left",
        )["w"].to_numpy()
    if s.null_count():
        return kind + "n", [values, s.is_not_null().to_numpy().astype(np.uint64)]
    return kind, [values]


def content_hashes(bills: pl.DataFrame, months: pl.DataFrame) -> pl.DataFrame:
    """customer_id -> SHA-256 of the bill row and its months (order independent within months), prefixed
    ``HASH_PREFIX``.

    The bill row is hashed as JSON (its columns in name order, without ``BILL_META``, ``year`` and
    ``customer_id``), then the months (without ``BILL_META``, ``year`` and ``customer_id``) as 64-bit
    words: each column in name order as its value (integers and dates as Int64, floats as their Float64
    bits, decimals unscaled, text as the first 8 bytes of the value's SHA-256) and, if the column has
    nulls, its validity; the column names and kinds head them, and each customer's rows are in a
    canonical order (by a mix of their words). Columns and rows in any order, and integer widths, give
    the same hash; every byte of every row goes into the SHA-256.

    Parameters
    ----------
    bills : pl.DataFrame
        One row per customer (``customer_id`` and any columns).
    months : pl.DataFrame
        Any rows per customer (``customer_id`` and any columns), or empty.

    Returns
    -------
    pl.DataFrame
        ``customer_id`` (Utf8), ``content_hash`` (Utf8: ``HASH_PREFIX`` + 64 hex digits), in the order of
        ``bills``.
    """
    b_text = _json_rows(bills, (*BILL_META, "year", "customer_id")).to_list()
    ids = bills["customer_id"].cast(pl.Utf8)
    lo = hi = np.zeros(bills.height, np.int64)
    raw = memoryview(b"")
    header = b""
    if months.height and "customer_id" in months.columns:
        cols = sorted(c for c in months.columns if c not in (*BILL_META, "year", "customer_id", *HASH_DERIVED_MONTH))
        m = months.select(pl.col("customer_id").cast(pl.Utf8), *cols)
        kinds: list[str] = []
        words: list[np.ndarray] = []
        for c in cols:
            kind, arrays = _column_words(m[c])
            kinds.append(f"{c}:{kind}")
            words += arrays
        header = ("\x1f".join(kinds) + "\x1e").encode()
        matrix = np.empty((m.height, len(words)), np.uint64)
        key = np.zeros(m.height, np.uint64)
        with np.errstate(over="ignore"):
            for k, w in enumerate(words):
                matrix[:, k] = w
                z = (w + _MIX[0] * np.uint64(k + 1)) * _MIX[1]  # a row's key: its words mixed (splitmix64)
                key = (key ^ (z ^ (z >> np.uint64(31)))) * _MIX[2]
        group = m.select(pl.col("customer_id").rank("dense").cast(pl.Int64))["customer_id"].to_numpy()
        # each customer's rows together, in the order of their keys (the top bits that the customer's
        # number leaves; rows whose top bits tie stay in their order: at worst a new version of the same
        # content, never a change unseen, since every byte goes into the hash)
        bits = max(1, int(group.max()).bit_length()) if group.size else 1
        order = np.argsort((group.astype(np.uint64) << np.uint64(64 - bits)) | (key >> np.uint64(bits)),
                           kind="stable")
        raw = np.ascontiguousarray(matrix[order]).view(np.uint8).reshape(-1).data
        row_bytes = 8 * len(words)
        g = group[order]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        span = pl.DataFrame({
            "customer_id": m["customer_id"].gather(order[starts]),
            "_lo": starts * row_bytes, "_hi": np.append(starts[1:], m.height) * row_bytes,
        })
        at = ids.to_frame().join(span, on="customer_id", how="left", maintain_order="left")
        lo, hi = at["_lo"].fill_null(0).to_numpy(), at["_hi"].fill_null(0).to_numpy()
    hashes = []
    for t, a, b in zip(b_text, lo.tolist(), hi.tolist(), strict=True):
        h = hashlib.sha256(t.encode())
        h.update(b"\x1e")
        if b > a:
            h.update(header)
            h.update(raw[a:b])
        hashes.append(HASH_PREFIX + h.hexdigest())
    return pl.DataFrame({"customer_id": ids, "content_hash": hashes},
                        schema={"customer_id": pl.Utf8, "content_hash": pl.Utf8})


def plan_versions(
    year: int, bills: pl.DataFrame, months: pl.DataFrame, latest: pl.DataFrame, reason: str,
    hashes: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Assign versions.

    ``latest``: customer_id, version, content_hash of the latest stored version (any rows).
    ``hashes``: ``content_hashes(bills, months)`` computed by the caller (None: computed here); a bill
    without its hash raises ValueError.
    Returns (result: input bills + ``version`` + ``new_version`` (True where this call stores a new
    version), new_bills to store, new_months to store).
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
    if hashes is None:
        h = content_hashes(bills, months)
    else:
        h = bills.select(pl.col("customer_id").cast(pl.Utf8)).join(
            hashes.select(pl.col("customer_id").cast(pl.Utf8), pl.col("content_hash").cast(pl.Utf8)),
            on="customer_id", how="left", maintain_order="left")
        if h["content_hash"].null_count():
            raise ValueError("hashes lack the content hash of a bill")
    old_format = latest.filter(~pl.col("content_hash").cast(pl.Utf8).str.starts_with(HASH_PREFIX))
    if old_format.height:  # bills stored before HASH_PREFIX: compared in their own format
        old_ids = old_format["customer_id"].cast(pl.Utf8).implode()
        v1 = content_hashes_v1(bills.filter(pl.col("customer_id").is_in(old_ids)),
                               months.filter(pl.col("customer_id").is_in(old_ids)) if months.height else months)
        same = v1.join(old_format.select(pl.col("customer_id").cast(pl.Utf8), pl.col("content_hash").alias("_old")),
                       on="customer_id").filter(pl.col("content_hash") == pl.col("_old"))["customer_id"]
        # unchanged content: the stored version stands (as if its hash were the new format's)
        now_hash = h.filter(pl.col("customer_id").is_in(same.implode())).rename({"content_hash": "_now"})
        latest = latest.with_columns(pl.col("customer_id").cast(pl.Utf8)).join(
            now_hash, on="customer_id", how="left"
        ).with_columns(pl.coalesce("_now", "content_hash").alias("content_hash")).drop("_now")
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
    result = bills.join(plan.select("customer_id", "version", pl.col("_new").alias("new_version")), on="customer_id",
                        how="left")
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


def labels_with_versions(
    labels: pl.DataFrame, version: int | None, latest_versions: Callable[[list[str]], pl.DataFrame]
) -> pl.DataFrame:
    """``labels`` with the bill ``version`` (Int32) they belong to, for ``Store.save_labels``: ``version``
    for every row; None: the ``version`` column of ``labels`` where it has one (a bill run knows the
    versions it has just saved), else each customer's latest stored bill by ``latest_versions(ids)``
    (customer_id, version), 0 without one. A ``year`` column is dropped."""
    lab = labels.drop([c for c in ("year",) if c in labels.columns])
    if version is not None:
        return lab.drop("version", strict=False).with_columns(pl.lit(version, pl.Int32).alias("version"))
    if "version" in lab.columns:
        return lab.with_columns(pl.col("version").fill_null(0).cast(pl.Int32))
    v = latest_versions(lab["customer_id"].unique().to_list())
    vv = (v.select("customer_id", pl.col("version").cast(pl.Int32)) if v.height
          else pl.DataFrame(schema={"customer_id": pl.Utf8, "version": pl.Int32}))
    return lab.join(vv, on="customer_id", how="left").with_columns(pl.col("version").fill_null(0).cast(pl.Int32))


def latest_only(df: pl.DataFrame) -> pl.DataFrame:
    if df.height == 0:
        return df
    return df.filter(pl.col("version") == pl.col("version").max().over("customer_id"))
