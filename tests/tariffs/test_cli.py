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


def _load_estimate_case(store_url: str, tmp_path: Path) -> None:
    """Customer 007 (Shanghai time-of-use, 3 persons) using 10 kWh a day in 2025, 60 % peak, 40 % valley,
    ingested through the real path (CSV files -> ingest -> the store)."""
    from wattbill.ingest import ingest_file
    from wattbill.store import open_store

    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(365)]
    pl.DataFrame({
        "customer_id": ["007"] * 365, "meter_id": ["m"] * 365, "read_date": [d.isoformat() for d in days],
        "kwh_total": ["10"] * 365, "kwh_sharp": ["0"] * 365, "kwh_peak": ["6"] * 365, "kwh_flat": ["0"] * 365,
        "kwh_valley": ["4"] * 365,
    }).write_csv(tmp_path / "use.csv")
    pl.DataFrame({"customer_id": ["007"], "tariff": ["cn-shanghai-res-tou"], "household_size": [3]}).write_csv(
        tmp_path / "customers.csv")
    st = open_store(store_url)
    try:
        ingest_file(tmp_path / "customers.csv", "customers", st)
        rep = ingest_file(tmp_path / "use.csv", "consumption", st)
        assert rep.loaded == 365 and rep.quarantined == 0
    finally:
        st.close()


def _check_estimate(store_url: str, capsys) -> None:
    from wattbill.errors import UnknownCustomer

    cmd.estimate("007", date(2025, 1, 31), store=store_url)  # type: ignore[arg-type]  # a plain call may pass a date
    out = capsys.readouterr().out
    # January: 310 kWh, 60 % peak: 310 x (0.6 x 0.617 + 0.4 x 0.307) = 310 x 0.4930 = 152.83
    assert "310 kWh, 152.83 yuan, tier 1" in out
    cmd.estimate("007", "2025-12-31", store=store_url)
    out = capsys.readouterr().out
    # the year: 3650 kWh, above the first threshold (3120 kWh/year): tier 2
    assert "3650 kWh" in out and "tier 2" in out
    with pytest.raises(UnknownCustomer):
        cmd.estimate("008", "2025-03-01", store=store_url)


def test_estimate_prints_running_charge_embedded(tmp_path: Path, capsys):
    url = str(tmp_path / "store")
    _load_estimate_case(url, tmp_path)
    _check_estimate(url, capsys)


@pytest.mark.db
def test_estimate_prints_running_charge_timescale(pg_store_url: str, tmp_path: Path, capsys):
    _load_estimate_case(pg_store_url, tmp_path)
    _check_estimate(pg_store_url, capsys)


def test_estimate_through_december_equals_the_bill_run(tmp_path: Path, capsys):
    """The estimate through 31 December is the year's bill (one densify, one kernel for both)."""
    from wattbill.pipeline import run_bills
    from wattbill.store import open_store

    url = str(tmp_path / "store")
    _load_estimate_case(url, tmp_path)
    st = open_store(url)
    try:
        run_bills(st, load_catalog(), 2025, out_dir=tmp_path / "out", pdf=False)
        bill = st.load_bills(2025, ["007"]).row(0, named=True)
    finally:
        st.close()
    cmd.estimate("007", "2025-12-31", store=url)
    out = capsys.readouterr().out
    fen = int(bill["charge_fen"])
    assert fen > 0 and f"{fen // 100}.{fen % 100:02d} yuan" in out
