"""Glue of the bill run: diagnosis, labels and bill documents.

The computation lives in ``diagnostics``, ``labels`` and ``bills``; this module only feeds each the
frames it asks for (see ``docs/interfaces.md``) and keeps the results together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from wattbill import diagnostics, labels
from wattbill.bills import BillDocument, build_document


def diagnose_chunk(
    customers: pl.DataFrame,
    daily: pl.DataFrame,
    daily_last: pl.DataFrame,
    dense: diagnostics.DenseYear,
    payments: pl.DataFrame,
    catalog: Any,
    year: int,
    interactions: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Features and the tariff what-if for one chunk of customers (peers within the chunk);
    ``interactions`` (service contacts of the year and the year before) give the channel features."""
    bills_df, alternatives = diagnostics.tariff_what_if(catalog, daily, customers, year, dense=dense)
    return diagnostics.diagnose(
        daily, daily_last, customers, payments, bills_df, alternatives, year,
        dense=dense, interactions=interactions,
    )


@dataclass
class Labelled:
    """Labels of every household of a run."""

    features: pl.DataFrame  # diagnostics.FEATURES, peers over the whole run
    assigned: pl.DataFrame  # labels.ASSIGNED_SCHEMA
    withheld: pl.DataFrame  # labels.WITHHELD_SCHEMA
    per_customer: pl.DataFrame  # customer_id, labels: list[str]


def label_run(chunk_features: list[pl.DataFrame], others: pl.DataFrame | None = None) -> Labelled:
    """Peers over all the chunks of a run (and ``others``), then the labels of the run's households.

    Parameters
    ----------
    chunk_features : list of pl.DataFrame
        ``diagnostics.FEATURES`` rows of the run's chunks.
    others : pl.DataFrame or None
        ``FEATURES`` rows of the year's other households, not in this run (a recalculation of some
        customers: the year's stored features, ``pipeline.features_path``). They are peers of the run's
        households and are neither labelled nor returned; rows of the run's customers are ignored.

    Returns
    -------
    Labelled
        The run's households only; peers among the run's and ``others``' households
        (``diagnostics.add_peers``: same region and household size).
    """
    run = pl.concat(chunk_features, how="diagonal_relaxed")
    if others is not None and others.height:
        others = others.filter(~pl.col("customer_id").is_in(run["customer_id"].implode()))
        both = pl.concat([run, others.select([c for c in run.columns if c in others.columns])],
                         how="diagonal_relaxed")
        features = diagnostics.add_peers(both).head(run.height).select(run.columns)
    else:
        features = diagnostics.add_peers(run)
    assigned, withheld = labels.assign_labels(features)
    per_customer = (
        assigned.group_by("customer_id", maintain_order=True).agg(pl.col("code").alias("labels"))
        if assigned.height
        else pl.DataFrame(schema={"customer_id": pl.Utf8, "labels": pl.List(pl.Utf8)})
    )
    return Labelled(features, assigned, withheld, per_customer)


def documents(
    customers: pl.DataFrame,
    bills: pl.DataFrame,
    months: pl.DataFrame,
    features: pl.DataFrame,
    assigned: pl.DataFrame,
    payments: pl.DataFrame,
    catalog: Any,
    year: int,
    on_error: Callable[[str, BaseException], None] | None = None,
) -> list[BillDocument]:
    """One bill document per row of ``bills`` (the other frames may hold more customers).

    ``on_error(customer_id, error)``: called for a document that cannot be built (it is left out);
    without it the error is raised."""
    ids = bills["customer_id"].implode()
    feats = {r["customer_id"]: r for r in features.filter(pl.col("customer_id").is_in(ids)).iter_rows(named=True)}
    cards_of: dict[str, list[dict]] = {}
    for r in assigned.filter(pl.col("customer_id").is_in(ids)).iter_rows(named=True):
        cards_of.setdefault(r["customer_id"], []).append(r)
    month_rows: dict[str, list[dict]] = {}
    for r in months.filter(pl.col("customer_id").is_in(ids)).iter_rows(named=True):
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
        try:
            c = cust[cid]
            code = bill["tariff"]
            if code not in tariffs:
                tariffs[code] = catalog.schedule(code, year)  # every version in force in the year
            language = c.get("language") or "zh"
            cards = labels.label_cards(cards_of.get(cid, []), language)
            docs.append(
                build_document(c, bill, month_rows.get(cid, []), feats.get(cid), cards, pay_rows.get(cid, []),
                               tariffs[code], language)
            )
        except Exception as exc:
            if on_error is None:
                raise
            on_error(cid, exc)
    return docs
