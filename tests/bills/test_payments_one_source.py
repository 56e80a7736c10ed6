"""The bill shows the diagnostics' payment figures: one rule for late payments and channels.

The household below used to get a bill that contradicted itself: it counted three late payments
(the diagnostics' rule: unpaid bills issued more than ``late_after_days`` before 31 December are late)
but listed one late month (the PDF's own rule: paid late only), and mixed the channels of unpaid bills
into its channel split while the diagnostics count paid bills only.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

from tests.bills.sample import sample_inputs
from wattbill import bills
from wattbill.diagnostics import DEFAULT_PARAMS, diagnose, payment_status
from wattbill.ingest.schemas import DAILY_SCHEMA

YEAR = 2025


def _payments() -> pl.DataFrame:
    rows = []
    for m in range(1, 13):
        issued = dt.date(YEAR, m, 8)
        paid = None if m in (11, 12) else issued + dt.timedelta(days=21 if m == 3 else 3)
        channel = "counter" if m in (11, 12) else ("WeChat" if m % 2 else "app")  # unpaid ones at the counter
        rows.append({"customer_id": "C1", "bill_month": f"{YEAR}-{m:02d}", "issued_on": issued, "paid_on": paid,
                     "amount_fen": 10_000 + m, "channel": channel})
    rows.append({"customer_id": "C1", "bill_month": f"{YEAR - 1}-12", "issued_on": dt.date(YEAR - 1, 12, 8),
                 "paid_on": dt.date(YEAR, 1, 30), "amount_fen": 1, "channel": "counter"})  # last year's bill
    return pl.DataFrame(rows, schema={"customer_id": pl.Utf8, "bill_month": pl.Utf8, "issued_on": pl.Date,
                                      "paid_on": pl.Date, "amount_fen": pl.Int64, "channel": pl.Utf8})


def _features(payments: pl.DataFrame) -> dict:
    customers = pl.DataFrame({"customer_id": ["C1"], "tariff": ["cn-zhejiang-res-tou"], "household_size": [3],
                              "region": ["r"], "opened_on": [None], "closed_on": [None]},
                             schema_overrides={"opened_on": pl.Date, "closed_on": pl.Date, "household_size": pl.Int32})
    feats = diagnose(pl.DataFrame(schema=DAILY_SCHEMA), None, customers, payments, None, None, YEAR)
    return feats.row(0, named=True)


def test_payment_status_agrees_with_the_features_kernel():
    payments = _payments()
    f = _features(payments)
    status = payment_status(payments, YEAR)
    assert status.height == 12  # last year's bill is not this year's
    assert f["pay_late_count"] == int(status["late"].sum()) == 3  # March paid late, November and December unpaid
    assert f["pay_unpaid_count"] == int(status["paid_on"].is_null().sum()) == 2
    assert f["pay_delay_days_mean"] == status["delay_days"].drop_nulls().mean()
    paid = status.filter(pl.col("paid_on").is_not_null())
    mix = {c: share for c, share in json.loads(f["pay_channel_mix"]).items() if share}
    assert mix == {c: n / paid.height for c, n in paid.group_by("channel").len().iter_rows()}
    assert "counter" not in mix  # the counter bills are unpaid


def test_the_bill_shows_the_diagnostics_figures():
    payments = _payments()
    f = _features(payments)
    kw = sample_inputs(language="en", year=YEAR)
    kw["features"] = {**kw["features"], **{k: v for k, v in f.items() if k.startswith("pay_")}}
    kw["payments"] = [r for r in payments.iter_rows(named=True) if r["bill_month"].startswith(f"{YEAR}-")]
    doc = bills.build_document(**kw)
    late = next(fact for fact in doc.payment_facts if "late" in fact.label.lower())
    assert str(f["pay_late_count"]) in late.value and str(DEFAULT_PARAMS.late_after_days) in late.value
    for month in ("Mar", "Nov", "Dec"):  # every late bill it counts, and no other
        assert month in late.note
    assert not any(m in late.note for m in ("Jan", "Feb", "Apr", "Oct"))
    assert len(doc.payment_rows) == 12
    assert "counter" not in " ".join(fact.note for fact in doc.payment_facts).lower()
    assert "2" in doc.payment_advice  # two unpaid bills
