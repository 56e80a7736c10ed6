"""The bill content hash (``store.base.content_hashes``): order free, sensitive to every value, and bills
stored with the first format's hash are not stored again when their content is unchanged."""

from __future__ import annotations

import polars as pl
import pytest

from wattbill.store.base import HASH_PREFIX, content_hashes, content_hashes_v1, plan_versions


def _bills_months(n: int = 30) -> tuple[pl.DataFrame, pl.DataFrame]:
    ids = [f"{i:010d}" for i in range(n)]
    months = pl.DataFrame({
        "customer_id": [c for c in ids for _ in range(12)],
        "month": [m for _ in ids for m in range(1, 13)],
        "tariff": ["cn-zhejiang-res-tou" if i % 3 else "cn-zhejiang-res-tier" for i in range(n) for _ in range(12)],
        "kwh_total": [round(100 + i * 1.37 + m * 0.11, 3) for i in range(n) for m in range(12)],
        "charge_fen": [5_000 + 7 * i + m for i in range(n) for m in range(12)],
        "estimated_days": [None if (i + m) % 11 == 0 else (i + m) % 3 for i in range(n) for m in range(12)],
    }, schema_overrides={"month": pl.Int8, "estimated_days": pl.Int32}).with_columns(
        (pl.col("charge_fen").cast(pl.Decimal(14, 0)) / 100).cast(pl.Decimal(14, 2)).alias("charge_total"))
    bills = months.group_by("customer_id", maintain_order=True).agg(
        pl.col("tariff").first(), pl.col("kwh_total").sum(), pl.col("charge_fen").sum(),
    ).with_columns(pl.lit(["wattbill.label.a"]).alias("labels"))
    return bills, months


def test_rows_and_columns_in_any_order_give_the_same_hash() -> None:
    bills, months = _bills_months()
    want = content_hashes(bills, months)
    assert want["content_hash"].str.starts_with(HASH_PREFIX).all() and want["content_hash"].n_unique() == 30
    shuffled = months.sample(fraction=1.0, shuffle=True, seed=5).select(reversed(months.columns))
    got = content_hashes(bills.reverse().select(reversed(bills.columns)), shuffled.with_columns(
        pl.col("month").cast(pl.Int64)))  # a wider integer type: the same content
    assert got.sort("customer_id").equals(want.sort("customer_id"))


@pytest.mark.parametrize("column", ["kwh_total", "charge_fen", "estimated_days", "charge_total", "tariff", "month"])
def test_one_month_value_changed_changes_that_customers_hash_only(column: str) -> None:
    bills, months = _bills_months()
    before = content_hashes(bills, months)
    row = 12 * 7 + 4  # customer 7, May
    value = months[column][row]
    other = {"kwh_total": lambda v: v + 0.001, "charge_fen": lambda v: v + 1,
             "estimated_days": lambda v: None if v is not None else 1, "tariff": lambda v: "cn-other",
             "month": lambda v: 13, "charge_total": lambda v: v + 1}[column](value)
    changed = months.with_row_index("_r").with_columns(
        pl.when(pl.col("_r") == row).then(pl.lit(other, months.schema[column]))
        .otherwise(pl.col(column)).cast(months.schema[column]).alias(column)).drop("_r")
    after = content_hashes(bills, changed)
    differs = before.join(after, on="customer_id").filter(pl.col("content_hash") != pl.col("content_hash_right"))
    assert differs["customer_id"].to_list() == ["0000000007"]


def test_a_changed_label_changes_the_hash() -> None:
    bills, months = _bills_months()
    relabelled = bills.with_columns(pl.when(pl.col("customer_id") == "0000000003").then(pl.lit(["wattbill.label.b"]))
                                    .otherwise(pl.col("labels")).alias("labels"))
    a, b = content_hashes(bills, months), content_hashes(relabelled, months)
    assert (a["content_hash"] != b["content_hash"]).to_list() == [i == 3 for i in range(30)]


def test_bills_stored_with_the_first_format_are_not_stored_again_unless_changed() -> None:
    bills, months = _bills_months()
    latest = content_hashes_v1(bills, months).with_columns(pl.lit(1, pl.Int32).alias("version"))
    result, new_bills, new_months = plan_versions(2025, bills, months, latest, "rerun")
    assert new_bills.height == 0 and new_months.height == 0 and set(result["version"]) == {1}
    changed = months.with_columns(pl.when(pl.col("customer_id") == "0000000002").then(pl.col("kwh_total") + 1)
                                  .otherwise(pl.col("kwh_total")).alias("kwh_total"))
    result, new_bills, new_months = plan_versions(2025, bills, changed, latest, "rerun")
    assert new_bills["customer_id"].to_list() == ["0000000002"] and new_months.height == 12
    assert new_bills["version"].to_list() == [2] and new_bills["content_hash"][0].startswith(HASH_PREFIX)


@pytest.mark.parametrize("hashes", [content_hashes, content_hashes_v1])
def test_a_bill_with_every_day_read_hashes_as_before_missing_days_existed(hashes) -> None:
    """Bills stored before ``missing_days``/``missing_ranges`` existed are not stored again for a bill
    with no missing day; a bill with missing days, or other ranges, is new content."""
    bills, months = _bills_months(4)
    before = hashes(bills, months)
    ranges = ["[]", "[]", '[["2025-12-07", "2025-12-31"]]', '[["2025-12-08", "2025-12-31"]]']
    new_bills = bills.with_columns(pl.Series("missing_days", [0, 0, 25, 24], dtype=pl.Int32),
                                   pl.Series("missing_ranges", ranges))
    new_months = months.with_columns(
        pl.when(pl.col("month") == 12).then(pl.col("customer_id").cast(pl.Int32) * 2).otherwise(0)
        .cast(pl.Int32).alias("missing_days"))  # (determined by the bill's ranges: not hashed again)
    after = hashes(new_bills, new_months)
    same = before["content_hash"] == after["content_hash"]
    assert same.to_list() == [True, True, False, False]
    assert after["content_hash"][2] != after["content_hash"][3]
