"""``wattbill tariffs list|show|check`` and ``wattbill estimate`` (the tariff commands module)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from wattbill.commands import tariffs as cmd
from wattbill.tariffs import TariffFileError, load_catalog

runner = CliRunner()


def test_list_shows_every_code():
    result = runner.invoke(cmd.app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for code in load_catalog().codes():
        assert code in result.output


def test_show_has_periods_hours_tiers_prices():
    result = runner.invoke(cmd.app, ["show", "cn-shanghai-res-tou"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("6:00-22:00", "22:00-6:00", "3120 / 4800 kWh/year", "0.977", "0.487", "source:"):
        assert text in result.output


def test_show_seasonal():
    result = runner.invoke(cmd.app, ["show", "cn-guangdong-res-tier"], env={"COLUMNS": "200"})
    assert "260 / 600 kWh/month" in result.output and "200 / 400 kWh/month" in result.output


def test_check_ok_and_problems(tmp_path: Path):
    good = Path(load_catalog().get("cn-zhejiang-res-tou").origin)
    result = runner.invoke(cmd.app, ["check", str(good)])
    assert result.exit_code == 0 and "ok" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text("utf-8").replace("[2760, 4800]", "[4800, 2760]").replace('cycle = "annual"', 'cycle = "x"'))
    result = runner.invoke(cmd.app, ["check", str(bad)])
    assert result.exit_code != 0
    assert "tiers.thresholds: thresholds not increasing" in result.output
    assert "tiers.cycle" in result.output
    assert isinstance(result.exception, TariffFileError)  # wattbill.cli.main: one line, exit 1


def test_extra_tariffs_folder(tmp_path: Path):
    src = Path(load_catalog().get("cn-zhejiang-res-tou").origin).read_text("utf-8")
    (tmp_path / "x.toml").write_text(src.replace("cn-zhejiang-res-tou", "cn-zhejiang-res-new"), "utf-8")
    result = runner.invoke(cmd.app, ["list", "--tariffs", str(tmp_path)], env={"COLUMNS": "200"})
    assert "cn-zhejiang-res-new" in result.output


class FakeStore:
    def __init__(self, customers: pl.DataFrame, daily: pl.DataFrame):
        self.customers, self.daily = customers, daily

    def load_customers(self, customer_ids=None):
        return self.customers.filter(pl.col("customer_id").is_in(customer_ids or []))

    def load_daily(self, year, customer_ids=None):
        return self.daily.filter(pl.col("customer_id").is_in(customer_ids or []) & (pl.col("day").dt.year() == year))


def test_estimate_prints_running_charge(monkeypatch, capsys):
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(365)]
    daily = pl.DataFrame(
        {
            "customer_id": ["007"] * 365,
            "meter_id": ["m"] * 365,
            "day": days,
            "wh_total": [10_000] * 365,
            "wh_sharp": [None] * 365,
            "wh_peak": [6_000] * 365,
            "wh_flat": [None] * 365,
            "wh_valley": [4_000] * 365,
            "estimated": [False] * 365,
        }
    )
    customers = pl.DataFrame(
        {"customer_id": ["007"], "tariff": ["cn-shanghai-res-tou"], "household_size": [3],
         "opened_on": [None], "closed_on": [None]},
        schema_overrides={"opened_on": pl.Date, "closed_on": pl.Date},
    )
    from wattbill import store
    monkeypatch.setattr(store, "open_store", lambda url=None: FakeStore(customers, daily))
    cmd.estimate("007", date(2025, 1, 31))  # type: ignore[arg-type]  # a plain call may pass a date
    out = capsys.readouterr().out
    # January: 310 kWh, 60 % peak: 310 x (0.6 x 0.617 + 0.4 x 0.307) = 310 x 0.4930 = 152.83
    assert "310 kWh, 152.83 yuan, tier 1" in out
    cmd.estimate("007", "2025-12-31")
    out = capsys.readouterr().out
    assert "3650 kWh" in out and "tier 2" in out
    from wattbill.errors import UnknownCustomer

    with pytest.raises(UnknownCustomer):
        cmd.estimate("008", "2025-03-01")
