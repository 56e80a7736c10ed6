"""Glue of the bill run: diagnosis, labels and bill documents for one chunk of customers.

The computation lives in ``diagnostics``, ``labels`` and ``bills``; this module only feeds each the
frames it asks for (see ``docs/interfaces.md``) and keeps the results together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

import diagnostics
import labels
from bills import BillDocument, build_document


@dataclass
class Insight:
    """What diagnosis and labelling found for a chunk of customers."""

    features: pl.DataFrame  # one row per customer: diagnostics.FEATURES
    assigned: pl.DataFrame  # labels.ASSIGNED_SCHEMA
    withheld: pl.DataFrame  # labels.WITHHELD_SCHEMA
    labels_per_customer: pl.DataFrame  # customer_id, labels: list[str]


def diagnose_and_label(
    customers: pl.DataFrame,
    daily: pl.DataFrame,
    daily_last: pl.DataFrame,
    dense: diagnostics.DenseYear,
    payments: pl.DataFrame,
    catalog: Any,
    year: int,
) -> Insight:
    """Features, the tariff what-if, and labels for ``customers`` (one chunk of a run)."""
    bills_df, alternatives = diagnostics.tariff_what_if(catalog, daily, customers, year, dense=dense)
    features = diagnostics.diagnose(
        daily, daily_last if daily_last.height else None, customers, payments, bills_df, alternatives, year
    )
    assigned, withheld = labels.assign_labels(features)
    per_customer = (
        assigned.group_by("customer_id", maintain_order=True)
        .agg(pl.col("code").alias("labels"))
        if assigned.height
        else pl.DataFrame(schema={"customer_id": pl.Utf8, "labels": pl.List(pl.Utf8)})
    )
    return Insight(features, assigned, withheld, per_customer)


def documents(
    customers: pl.DataFrame,
    bills: pl.DataFrame,
    months: pl.DataFrame,
    insight: Insight,
    payments: pl.DataFrame,
    catalog: Any,
    year: int,
) -> list[BillDocument]:
    """One bill document per billed customer."""
    import datetime as dt

    feats = {r["customer_id"]: r for r in insight.features.iter_rows(named=True)}
    by_customer_labels: dict[str, list[dict]] = {}
    for r in insight.assigned.iter_rows(named=True):
        by_customer_labels.setdefault(r["customer_id"], []).append(r)
    month_rows: dict[str, list[dict]] = {}
    for r in months.iter_rows(named=True):
        month_rows.setdefault(r["customer_id"], []).append(r)
    pay_rows: dict[str, list[dict]] = {}
    prefix = f"{year}-"
    for r in payments.iter_rows(named=True):
        if str(r["bill_month"]).startswith(prefix):
            pay_rows.setdefault(r["customer_id"], []).append(r)
    cust = {r["customer_id"]: r for r in customers.iter_rows(named=True)}
    tariffs: dict[str, Any] = {}
    docs = []
    for bill in bills.iter_rows(named=True):
        cid = bill["customer_id"]
        c = cust[cid]
        code = bill["tariff"]
        if code not in tariffs:
            tariffs[code] = catalog.get(code, on=dt.date(year, 1, 1))
        language = c.get("language") or "zh"
        cards = labels.label_cards(by_customer_labels.get(cid, []), language)
        docs.append(
            build_document(c, bill, month_rows.get(cid, []), feats.get(cid), cards, pay_rows.get(cid, []),
                           tariffs[code], language)
        )
    return docs
