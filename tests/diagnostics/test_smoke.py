"""End-to-end smoke: diagnose -> assign_labels -> label_cards on a few hand-made households."""

from __future__ import annotations

import polars as pl

from wattbill.diagnostics import FEATURES, diagnose
from wattbill.labels import assign_labels, label_cards


def test_pipeline_shapes(hh):
    houses = [
        hh.House("001", hh.flat(6000), payments=hh.pay(2, "app")),
        hh.House("002", hh.add_months(hh.flat(5000), (7, 8), 6000), shares=None, tariff=hh.TIER,
                 payments=hh.pay(30, "counter")),
    ]
    f = diagnose(hh.daily_frame(houses), None, hh.customers_frame(houses), hh.payments_frame(houses), None, None,
                 hh.YEAR)
    assert f.columns == list(FEATURES)
    assert f.schema == pl.Schema(FEATURES)
    assert f["customer_id"].to_list() == ["001", "002"]
    assigned, withheld = assign_labels(f)
    got = set(zip(assigned["customer_id"], assigned["code"], strict=True))
    assert ("001", "online_payer") in got and ("001", "prompt_payer") in got
    assert ("002", "summer_cooling") in got and ("002", "counter_payer") in got and ("002", "late_payer") in got
    assert ("002", "peak_heavy") in set(zip(withheld["customer_id"], withheld["code"], strict=True))
    cards = label_cards(assigned.filter(pl.col("customer_id") == "002"), "zh")
    assert [c.code for c in cards] == ["summer_cooling", "late_payer", "counter_payer"]
    assert all(c.title and c.why and c.what_to_do for c in cards)
