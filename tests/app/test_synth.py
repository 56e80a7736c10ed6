"""The synthetic household generator: seeded, realistic, and truthful about what it injected."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from wattbill import synth


@pytest.fixture(scope="module")
def data() -> synth.SynthData:
    return synth.simulate(3000, 2025, seed=11, years=2)


def test_same_seed_same_households() -> None:
    a = synth.simulate(200, 2025, seed=5)
    b = synth.simulate(200, 2025, seed=5)
    c = synth.simulate(200, 2025, seed=6)
    assert np.array_equal(a.regs[2025], b.regs[2025])
    assert not np.array_equal(a.regs[2025], c.regs[2025])


def test_energy_is_whole_centi_kwh_and_non_negative(data: synth.SynthData) -> None:
    for regs in data.regs.values():
        assert regs.min() >= 0
        assert (regs % 10 == 0).all()


def test_households_are_realistic(data: synth.SynthData) -> None:
    annual_kwh = data.total(2025).sum(axis=1) / 1000
    # Chinese urban households: a few thousand kWh a year on average
    assert 1500 < np.median(annual_kwh) < 4500
    assert set(np.unique(data.households.household_size)) == {1, 2, 3, 4, 5, 6}
    assert len(set(data.households.region)) == len(synth.REGIONS)


def test_truth_marks_every_behaviour(data: synth.SynthData) -> None:
    truth = data.truth_frame()
    counts = dict(truth.group_by("behaviour").len().iter_rows())
    for behaviour in (
        "peak_heavy", "valley_smart", "summer_cooling", "winter_heating", "high_baseload",
        "possible_vacancy", "usage_spike", "late_payer", "prompt_payer", "counter_payer",
        "online_payer", "auto_debit", "missing_days", "meter_exchange", "register_rollover",
    ):
        assert counts.get(behaviour, 0) > 0, behaviour


def test_injected_behaviours_show_in_the_data(data: synth.SynthData) -> None:
    h = data.households
    truth = data.truth_frame()
    total = data.total(2025)
    ids = h.customer_id

    def who(behaviour: str) -> np.ndarray:
        return np.isin(ids, truth.filter(pl.col("behaviour") == behaviour)["customer_id"].to_numpy())

    regs = data.regs[2025]
    valley_share = regs[:, :, 3].sum(axis=1) / np.maximum(total.sum(axis=1), 1)
    assert valley_share[who("valley_smart")].min() > valley_share[who("peak_heavy")].max()
    vac = who("possible_vacancy")
    low_days = (total < 500).sum(axis=1)
    always_open = np.array([o is None for o in h.opened_on])
    assert (low_days[vac] >= 25).all() and (low_days[~vac & always_open] == 0).all()
    jul_aug = total[:, 181:243].mean(axis=1)
    spring = total[:, 90:151].mean(axis=1)
    cool = who("summer_cooling") & always_open & ~vac
    assert np.median(jul_aug[cool] / spring[cool]) > 2


def test_register_reads_difference_back_to_consumption(data: synth.SynthData) -> None:
    reads = synth.register_reads(data)
    h = data.households
    plain = ~(h.rollover | h.missing | (h.exchange_day >= 0)) & np.array([o is None for o in h.opened_on]) & h.has_tou
    cid = str(h.customer_id[np.nonzero(plain)[0][0]])
    one = reads.filter(pl.col("customer_id") == cid).sort("read_date")
    assert one["read_date"][0] == dt.date(2023, 12, 31)
    diff_wh = (one["valley"].diff().drop_nulls() * 1000).round().cast(pl.Int64).to_numpy()
    i = int(np.nonzero(h.customer_id == cid)[0][0])
    expected = np.concatenate([data.regs[2024][i, :, 3], data.regs[2025][i, :, 3]])
    assert np.array_equal(diff_wh, expected)
    assert reads["customer_id"].dtype == pl.Utf8 and reads["customer_id"][0].startswith("0")


def test_behaviours_fall_inside_the_open_window(data: synth.SynthData) -> None:
    h = data.households
    opened = np.array([o is not None for o in h.opened_on])
    assert opened.any()
    assert (h.vacancy_start[opened] == -1).all() and (h.n_spikes[opened] == 0).all()


def test_some_time_of_use_meters_stay_on_the_tiered_tariff(data: synth.SynthData) -> None:
    h = data.households
    customers = data.customers_frame()
    tou_meter_tier_tariff = customers.filter(pl.Series(h.has_tou) & (pl.col("tariff") == synth.DEFAULT_TIER_TARIFF))
    assert 0 < tou_meter_tier_tariff.height < h.has_tou.sum() // 4
    assert not (customers.filter(pl.Series(~h.has_tou))["tariff"] == synth.DEFAULT_TOU_TARIFF).any()


def test_rollover_wraps_the_total_register(data: synth.SynthData) -> None:
    reads = synth.register_reads(data)
    h = data.households
    cid = str(h.customer_id[np.nonzero(h.rollover)[0][0]])
    total = reads.filter(pl.col("customer_id") == cid).sort("read_date")["total"]
    assert total.max() > 990_000 and (total.diff().drop_nulls() < 0).sum() >= 1


def test_meter_exchange_keeps_the_day(data: synth.SynthData) -> None:
    reads = synth.register_reads(data)
    h = data.households
    i = int(np.nonzero(h.exchange_day >= 0)[0][0])
    cid = str(h.customer_id[i])
    rows = reads.filter(pl.col("customer_id") == cid)
    assert rows["meter_id"].n_unique() == 2
    new = rows.filter(pl.col("meter_id").str.starts_with("N")).sort("read_date")
    old = rows.filter(pl.col("meter_id").str.starts_with("M")).sort("read_date")
    assert old["read_date"][-1] == new["read_date"][0]  # both read on the exchange day
    day = new["read_date"][0]
    d = (day - dt.date(2023, 12, 31)).days - 1  # index into the two simulated years
    all_regs = np.concatenate([data.regs[2024][i], data.regs[2025][i]])
    # old meter's last difference + new meter's first read (from 0) = that day's consumption
    old_last = old["peak"].to_numpy()
    got = round((old_last[-1] - old_last[-2]) * 1000) + round(new["peak"][0] * 1000)
    assert got == all_regs[d, 1]


def test_generate_writes_the_design_formats(tmp_path) -> None:
    paths = synth.generate(50, 2025, seed=3, out_dir=tmp_path)
    reads = pl.read_csv(paths.reads, schema_overrides={"customer_id": pl.Utf8, "meter_id": pl.Utf8})
    assert reads.columns == ["customer_id", "meter_id", "read_date", "total", "sharp", "peak", "flat", "valley"]
    customers = pl.read_csv(paths.customers, schema_overrides={"customer_id": pl.Utf8})
    assert {"customer_id", "tariff", "household_size", "region", "language"} <= set(customers.columns)
    payments = pl.read_csv(paths.payments, schema_overrides={"customer_id": pl.Utf8, "amount": pl.Utf8})
    assert set(payments["channel"].unique()) <= {"app", "wechat", "alipay", "bank", "counter", "other"}
    customers_open_all = customers.filter(pl.col("opened_on").is_null())["customer_id"]
    assert payments.filter(pl.col("customer_id").is_in(customers_open_all.implode())).height == customers_open_all.len() * 24
    assert pl.read_parquet(paths.truth).columns == ["customer_id", "behaviour"]
