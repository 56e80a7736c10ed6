"""Tariff what-if with the real tariff engine: current bill, 10 % shift, alternatives."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from wattbill import tariffs
from wattbill.diagnostics import densify, diagnose, tariff_what_if


@pytest.fixture(scope="module")
def catalog():
    return tariffs.load_catalog()


def test_what_if_bills_shift_and_alternatives(hh, catalog):
    houses = [
        hh.House("tou", hh.flat(12_000), shares=(0.05, 0.60, 0.25, 0.10)),
        hh.House("tier", hh.flat(12_000), shares=None, tariff=hh.TIER),
        hh.House("tier-with-registers", hh.flat(12_000), shares=(0.02, 0.30, 0.18, 0.50), tariff=hh.TIER),
        hh.House("unknown", hh.flat(5000), tariff="no-such-tariff"),
    ]
    daily, cust = hh.daily_frame(houses), hh.customers_frame(houses)
    bills, alts = tariff_what_if(catalog, daily, cust, hh.YEAR)
    assert sorted(bills["customer_id"]) == ["tier", "tier-with-registers", "tou"]
    b = {r["customer_id"]: r for r in bills.iter_rows(named=True)}
    # the current bill is the engine's bill of the same arrays
    d = densify(daily, cust, hh.YEAR, with_regs=True)
    ref = tariffs.bill_households(catalog.get(hh.TOU), hh.YEAR, d.total[:1], d.regs[:1], d.open_first[:1],
                                  d.open_last[:1], np.array([3], np.int32))
    assert b["tou"]["year_fen"] == int(ref.year_fen[0]) and b["tou"]["month_fen"] == ref.month_fen[0].tolist()
    assert b["tou"]["is_tou"] is True and b["tier"]["is_tou"] is False
    # moving peak use to the cheaper valley saves on the time-of-use tariff, nothing on the tiered one
    assert b["tou"]["shift10_year_fen"] < b["tou"]["year_fen"]
    assert b["tier"]["shift10_year_fen"] is None
    # alternatives: a tiered household without registers cannot be priced on time-of-use
    a = {(r["customer_id"], r["tariff"]): r for r in alts.iter_rows(named=True)}
    assert ("tou", hh.TIER) in a and a[("tou", hh.TIER)]["is_tou"] is False
    assert ("tier-with-registers", hh.TOU) in a
    assert not any(c == "tier" for c, _ in a)
    f = diagnose(daily, None, cust, None, bills, alts, hh.YEAR)
    r = {x["customer_id"]: x for x in f.iter_rows(named=True)}
    # half of its use in the valley: time-of-use is cheaper for this tiered household
    assert r["tier-with-registers"]["best_alt_tariff"] == hh.TOU
    assert r["tier-with-registers"]["best_alt_saving_fen"] > 0
    assert r["tou"]["shift10_saving_fen"] > 0
    assert r["unknown"]["year_fen"] is None and r["unknown"]["best_alt_tariff"] is None


def test_what_if_reuses_dense(hh, catalog):
    houses = [hh.House("a", hh.flat(8000)), hh.House("b", hh.flat(3000), tariff=hh.TIER)]
    daily, cust = hh.daily_frame(houses), hh.customers_frame(houses)
    one = tariff_what_if(catalog, daily, cust, hh.YEAR)
    two = tariff_what_if(catalog, daily, cust, hh.YEAR, dense=densify(daily, cust, hh.YEAR, with_regs=True))
    assert one[0].equals(two[0]) and one[1].equals(two[1])
    assert isinstance(one[0], pl.DataFrame)
