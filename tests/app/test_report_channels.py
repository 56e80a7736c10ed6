"""The service-channel report end to end: figures recomputed independently from the synthetic input
files (plain polars, written differently from ``diagnostics.channels``) and compared with the Parquet
tables and the PDFs' text (pdftotext); the HTML opened in headless Chromium; small groups merged."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from tests.app.conftest import REPO, Demo, run_cli
from wattbill import synth
from wattbill.diagnostics.channels import MERGED, OTHER_REGIONS, ReportParams, channel_report
from wattbill.ingest import ingest_file
from wattbill.ingest.schemas import INTERACTION_SCHEMA
from wattbill.statements import latest_statement
from wattbill.store import open_store

YEAR = 2025
N = 600
K = 10
ONLINE = {"app", "wechat", "alipay", "robot", "social"}
STAGE = {"app": "self_service", "wechat": "self_service", "alipay": "self_service", "social": "self_service",
         "robot": "robot", "phone": "phone", "hall": "person", "other": "other"}


def ingest_and_report(root: Path, paths, year: int, k: int) -> tuple[Path, str]:
    """Load the synthetic customers, payments and contacts into a store under ``root`` and run
    ``wattbill report channels`` on it (minimum group ``k``): the report folder and the command's output."""
    st = open_store(root / "store")
    for kind, f in (("customers", paths.customers), ("payments", paths.payments),
                    ("interactions", paths.interactions)):
        ingest_file(f, kind, st)
    st.close()
    out = root / "report"
    proc = run_cli("report", "channels", "--year", str(year), "--out", str(out), "--store", str(root / "store"),
                   "--min-group", str(k))
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("channels")
    paths = synth.generate(N, YEAR, 11, root / "input", years=2)
    out, stdout = ingest_and_report(root, paths, YEAR, K)
    return paths, out, stdout


def _input_contacts(path: Path) -> pl.DataFrame:
    """The interactions file as the report should count it, by plain means: the rows whose channel and
    intent are codes, each distinct row once, of the year."""
    raw = pl.read_csv(path, infer_schema=False)
    good = raw.filter(pl.col("channel").is_in(list(STAGE)) & pl.col("intent").is_not_null()).unique()
    return good.filter(pl.col("occurred_at").str.slice(0, 4) == str(YEAR))


def _pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def test_headline_figures_match_an_independent_count(made) -> None:
    paths, out, stdout = made
    contacts = _input_contacts(paths.interactions)
    n = contacts.height
    online = contacts.filter(pl.col("channel").is_in(list(ONLINE))).height / n
    figures = json.loads((out / "figures.json").read_text("utf-8"))
    assert figures["headline"]["contacts"] == n
    assert figures["headline"]["online_share"] == pytest.approx(online, abs=1e-12)
    last = pl.read_csv(paths.interactions, infer_schema=False).filter(
        pl.col("channel").is_in(list(STAGE)) & pl.col("intent").is_not_null()).unique().filter(
        pl.col("occurred_at").str.starts_with(str(YEAR - 1)))
    assert figures["headline"]["contacts_last_year"] == last.height
    # the trend: more online this year than last (the generator's trend)
    assert figures["headline"]["online_share"] > figures["headline"]["online_share_last_year"]
    for lang in ("zh", "en"):
        text = _pdf_text(out / f"channels-{YEAR}.{lang}.pdf")
        assert f"{n:,}" in text and f"{100 * online:.1f}%" in text, lang
    assert "服务渠道分析报告" in _pdf_text(out / f"channels-{YEAR}.zh.pdf")
    assert f"online share {100 * online:.1f}%" in stdout


def test_funnel_matches_an_independent_count(made) -> None:
    paths, out, _ = made
    contacts = _input_contacts(paths.interactions)
    by_stage: dict[str, list[int]] = {}
    for ch, res in contacts.select("channel", "resolved").iter_rows():
        s = by_stage.setdefault(STAGE[ch], [0, 0])
        s[0] += 1
        s[1] += res == "true"
    funnel = pl.read_parquet(out / "tables" / "funnel.parquet")
    got = {r["stage"]: [r["contacts"], r["resolved"]] for r in funnel.iter_rows(named=True)}
    assert got == by_stage
    text = _pdf_text(out / f"channels-{YEAR}.en.pdf")
    for stage, (c, r) in by_stage.items():
        assert f"{100 * r / contacts.height:.1f}%" in text, stage  # share of all needs resolved there
        assert f"{100 * r / c:.1f}%" in text, stage


def test_intent_by_channel_and_trend_match(made) -> None:
    paths, out, _ = made
    contacts = _input_contacts(paths.interactions)
    cells = contacts.group_by("intent", "channel").agg(pl.len().alias("n"), pl.col("customer_id").n_unique().alias("h"))
    table = pl.read_parquet(out / "tables" / "intent_channel.parquet")
    big = cells.filter(pl.col("h") >= K)
    joined = big.join(table, on=["intent", "channel"], how="left")
    assert (joined["n"] == joined["contacts"]).all()
    # small cells were merged, never shown on their own
    assert table["households"].min() >= K
    small = cells.filter(pl.col("h") < K)
    assert not small.join(table, on=["intent", "channel"], how="semi").height
    assert table["contacts"].sum() <= contacts.height


def test_payment_mix_and_delay_match(made) -> None:
    paths, out, _ = made
    pay = pl.read_csv(paths.payments, infer_schema=False).filter(pl.col("bill_month").str.starts_with(f"{YEAR}-"))
    rows: dict[str, list[int]] = {}
    for ch, issued, paid in pay.select("channel", "issued_on", "paid_on").iter_rows():
        r = rows.setdefault(ch, [0, 0, 0])
        r[0] += 1
        if paid:
            r[1] += (dt.date.fromisoformat(paid) - dt.date.fromisoformat(issued)).days
            r[2] += 1
    table = pl.read_parquet(out / "tables" / "payment_mix.parquet")
    for r in table.iter_rows(named=True):
        n, delay_sum, paid = rows[r["channel"]]
        assert r["payments"] == n
        assert r["delay_days_mean"] == pytest.approx(delay_sum / paid)
        assert r["share"] == pytest.approx(n / pay.height)


def test_every_chart_has_its_table_and_campaign_lists(made) -> None:
    _, out, _ = made
    charts = {p.stem for p in (out / "charts").glob("*.svg")}
    tables = {p.stem for p in (out / "tables").glob("*.parquet")}
    assert charts <= tables and {"mix_month_total", "mix_trend", "funnel", "payment_mix", "campaign_summary",
                                 "labels_by_region", "quality_by_region", "intent_channel"} <= charts
    camp = pl.read_parquet(out / "campaign.parquet")
    assert set(camp["segment"]) == {"channel_assisted_simple", "channel_hall_only", "channel_fully_online"}
    assert camp["message_zh"].str.contains("网上国网").all() and camp["message_en"].null_count() == 0
    hall = camp.filter(pl.col("segment") == "channel_hall_only")
    assert (hall["cost_saved_fen"] == hall["contacts_moved"] * (2500 - 30)).all()  # the default costs
    for name in tables:
        df = pl.read_parquet(out / "tables" / f"{name}.parquet")
        if "households" in df.columns and name != "quality_by_region":
            assert df.height == 0 or df["households"].min() >= K, name
    quality = pl.read_parquet(out / "tables" / "quality_by_region.parquet")
    assert quality["quarantined"].sum() > 0  # the generator's bad rows are counted by region


def test_small_groups_are_merged() -> None:
    """Region "tiny" has 3 customers: merged into other regions; nothing is shown that rests on fewer
    households."""
    rows, cust = [], []
    for i in range(40):
        region = "tiny" if i < 3 else "big"
        cust.append((f"C{i:03d}", region))
        ch = "hall" if i == 0 else "app"  # the only hall user is one household
        rows.append((f"C{i:03d}", dt.datetime(YEAR, 3, 1, 9), ch, "bill_query", True, None, 60, None))
    contacts = pl.DataFrame(rows, schema=INTERACTION_SCHEMA, orient="row")
    customers = pl.DataFrame(cust, schema={"customer_id": pl.Utf8, "region": pl.Utf8}, orient="row")
    rep = channel_report(contacts, customers, None, None, None, None, YEAR, params=ReportParams(min_group=5))
    trend = rep.tables["mix_trend"]
    # tiny alone is too small for other regions: big joins it, never the reverse (tiny under "big")
    assert set(trend["region"]) == {OTHER_REGIONS} and rep.merged_regions == ["big", "tiny"]
    assert "hall" not in trend["channel"].to_list()  # one household: merged with app, nothing left out
    assert trend["households"].min() >= 5 and trend["contacts"].sum() == 40 and not rep.suppressed
    ic = rep.tables["intent_channel"]
    assert MERGED not in ic["channel"].to_list() or ic.filter(pl.col("channel") == MERGED)["households"].min() >= 5


def test_unknown_region_and_no_interactions_are_one_line_errors(made, tmp_path: Path) -> None:
    _, out, _ = made
    store = out.parent / "store"
    proc = run_cli("report", "channels", "--year", str(YEAR), "--out", str(tmp_path), "--store", str(store),
                   "--region", "Atlantis")
    assert proc.returncode == 1 and "Atlantis" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("report", "channels", "--year", "1999", "--out", str(tmp_path), "--store", str(store))
    assert proc.returncode == 1 and "no service interactions" in proc.stderr
    proc = run_cli("report", "channels", "--year", str(YEAR), "--out", str(tmp_path), "--store", str(store),
                   "--cost", "fax=3")
    assert proc.returncode == 1 and "--cost" in proc.stderr


def test_region_report(made, tmp_path: Path) -> None:
    paths, out, _ = made
    store = out.parent / "store"
    region = pl.read_csv(paths.customers, infer_schema=False)["region"][0]
    proc = run_cli("report", "channels", "--year", str(YEAR), "--out", str(tmp_path), "--store", str(store),
                   "--region", region, "--no-pdf")
    assert proc.returncode == 0, proc.stderr
    ids = pl.read_csv(paths.customers, infer_schema=False).filter(pl.col("region") == region)["customer_id"]
    contacts = _input_contacts(paths.interactions).filter(pl.col("customer_id").is_in(ids.implode()))
    figures = json.loads((tmp_path / "figures.json").read_text("utf-8"))
    assert figures["headline"]["contacts"] == contacts.height and figures["region"] == region


def test_demo_produces_the_report(demo: Demo) -> None:
    report = demo.out / "report"
    for lang in ("zh", "en"):
        assert (report / f"channels-2025.{lang}.pdf").stat().st_size > 10_000
    assert "CRM lists:" in demo.stdout and (report / "tables" / "funnel.parquet").is_file()
    # the channel labels reach the bill: the card's title and advice in the household's PDF
    from wattbill.labels import load_catalogue

    bills = pl.read_parquet(demo.out / "bills.parquet").explode("labels", empty_as_null=True)
    chan = bills.filter(pl.col("labels").str.starts_with("channel_"))
    assert chan.height, "no channel label in the demo's bills"
    customers = pl.read_csv(demo.out / "input" / "customers.csv", infer_schema=False)
    defs = {d.code: d for d in load_catalogue()}
    for cid, code in chan.select("customer_id", "labels").head(3).iter_rows():
        lang = customers.filter(pl.col("customer_id") == cid)["language"][0] or "zh"
        text = " ".join(_pdf_text(latest_statement(demo.out, 2025, cid)).split())
        assert defs[code].texts[lang]["title"][0] in text, (cid, code)


@pytest.mark.browser
def test_html_in_headless_chromium(made) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed: scripts/setup.sh installs it")
    from playwright.sync_api import sync_playwright

    paths, out, _ = made
    n = _input_contacts(paths.interactions).height
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 900, "height": 1400})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        for lang in ("zh", "en"):
            page.goto((out / f"channels-{YEAR}.{lang}.html").as_uri())
            assert page.inner_text("#h-contacts") == f"{n:,}"
            assert page.locator("#funnel svg").count() == 2  # the funnel and where complaints enter
            assert page.locator("#funnel table tr").count() >= 4
            page.screenshot(path=str(artifacts / f"channels-report-{lang}.png"), full_page=True)
        assert all(u.startswith("file://") for u in requests)  # nothing fetched from anywhere else
        browser.close()


@pytest.mark.db
def test_timescale_store_gives_the_same_tables(made, pg_store_url: str, tmp_path: Path) -> None:
    """The same input files in TimescaleDB: every table and the campaign list equal the embedded store's."""
    from wattbill.report_channels import write_report

    paths, out, _ = made
    st = open_store(pg_store_url)
    try:
        for kind, f in (("customers", paths.customers), ("payments", paths.payments),
                        ("interactions", paths.interactions)):
            ingest_file(f, kind, st)
        got = write_report(st, YEAR, tmp_path, params=ReportParams(min_group=K), pdf=False)
    finally:
        st.close()
    for name, f in got.tables.items():
        assert pl.read_parquet(f).equals(pl.read_parquet(out / "tables" / f"{name}.parquet")), name
    assert pl.read_parquet(got.campaign).equals(pl.read_parquet(out / "campaign.parquet"))
