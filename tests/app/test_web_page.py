"""The statement page in a real headless Chromium against uvicorn on a loopback port.

The customer arrives from a portal link (a link on another site), at phone (360x740) and desktop
sizes; the figures on the page are checked against ``bills.parquet``, ``bill_months.parquet``, the
store's daily rows and the exact ``Decimal`` reference; the download gives the PDF. Screenshots are
kept in ``test-artifacts/`` at the top of the repository.
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.app.conftest import REPO, Demo, run_cli
from wattbill.bills import fmt
from wattbill.statements import latest_statement, statement_path
from wattbill.tokens import make_token
from wattbill.web import WebSettings, create_app
from wattbill.web.security import Limits

SECRET = "page-secret-" + "x" * 24
TODAY = dt.date(2025, 6, 30)  # the service's clock: the running charge is of 1 Jan - 30 Jun 2025
ARTIFACTS = REPO / "test-artifacts"
EVIL_NAME = '<script>alert("name")</script>王<b>五</b>'
EVIL_ADDRESS = '<img src=x onerror=alert("address")>人民路1号 & "2"'
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
pytestmark = [pytest.mark.slow, pytest.mark.browser]


@dataclass
class Site:
    base: str
    out: Path
    store: Path
    bills: pl.DataFrame  # bills.parquet of the 2025 run
    months: pl.DataFrame  # bill_months.parquet of the 2025 run
    bills_2024: pl.DataFrame
    ids: list[str]
    app: Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import uvicorn

    out = tmp_path_factory.mktemp("site") / "out"
    shutil.copytree(demo.out, out)
    shutil.rmtree(out / "statements", ignore_errors=True)
    bills = pl.read_parquet(out / "bills.parquet").sort("customer_id")
    months = pl.read_parquet(out / "bill_months.parquet")
    ids = bills["customer_id"].to_list()
    store = out / "store"
    # an untrusted name and address for the third customer
    customers = pl.read_csv(out / "input" / "customers.csv", infer_schema=False).filter(pl.col("customer_id") == ids[2])
    edited = out / "customer-edit.csv"
    customers.with_columns(pl.lit(EVIL_NAME).alias("name"), pl.lit(EVIL_ADDRESS).alias("address")).write_csv(edited)
    proc = run_cli("ingest", "customers", str(edited), "--store", str(store))
    assert proc.returncode == 0, proc.stderr
    # two estimated days in June for the fifth customer (daily consumption flagged estimated)
    estimated = out / "estimated.csv"
    estimated.write_text(
        "customer_id,meter_id,read_date,kwh_total,kwh_sharp,kwh_peak,kwh_flat,kwh_valley,estimated\n"
        + "".join(f"{ids[4]},M{ids[4]},2025-06-{d},9.{d},1.00,4.{d},2.00,2.00,true\n" for d in (20, 21)))
    proc = run_cli("ingest", "reads", str(estimated), "--kind", "consumption", "--store", str(store))
    assert proc.returncode == 0, proc.stderr
    # last year's bills: the page lists previous years
    proc = run_cli("bill", "run", "--year", "2024", "--no-pdf", "--out", str(out), "--store", str(store))
    assert proc.returncode == 0, proc.stderr
    bills_2024 = pl.read_parquet(out / "bills.parquet").filter(pl.col("year") == 2024)  # (it keeps both years)
    generous = WebSettings(limits=Limits("10000/minute", "10000/minute", "10000/minute"))
    app = create_app(str(store), out, SECRET, generous, today=lambda: TODAY)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield Site(f"http://127.0.0.1:{port}", out, store, bills, months, bills_2024, ids, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("Debian's chromium is not installed: scripts/setup.sh installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield b
        b.close()


PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}


def arrive(browser: Any, site: Site, customer: str, size: dict, lang: str = "") -> tuple[Any, Any]:
    """Open the portal link as a customer would: by a click on a page of another site."""
    context = browser.new_context(accept_downloads=True, **size)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    link = f"{site.base}/?token={make_token(customer, SECRET)}{'&lang=' + lang if lang else ''}"
    page.set_content(f'<a id="portal" href="{link}">my statement</a>')
    page.click("#portal")
    page.wait_for_selector("#summary", timeout=60_000)
    return context, page


def _daily(site: Site, customer: str, year: int) -> pl.DataFrame:
    from wattbill.store import open_store

    st = open_store(str(site.store))
    try:
        return st.load_daily(year, [customer])
    finally:
        st.close()


def _reference(site: Site, customer: str, year: int, through: dt.date | None = None) -> Any:
    from tests.app.reference_arrays import customer_arrays, open_span
    from wattbill.store import open_store
    from wattbill.tariffs import load_catalog, reference_bill

    st = open_store(str(site.store))
    try:
        row = st.load_customers([customer]).row(0, named=True)
    finally:
        st.close()
    total, regs = customer_arrays(_daily(site, customer, year), year)
    first, last = open_span(row, year)
    tariff = load_catalog().get(row["tariff"], on=dt.date(year, 1, 1))
    through_day = None if through is None else (through - dt.date(year, 1, 1)).days
    return reference_bill(tariff, year, total[0].tolist(), regs[0].tolist(), first, last,
                          int(row["household_size"] or 1), through_day=through_day)


def _pdf_text(data: bytes) -> str:
    return subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True).stdout.decode()


def test_phone_from_a_portal_link_shows_the_bill_and_downloads_the_pdf(site: Site, browser) -> None:
    me = site.ids[0]
    context, page = arrive(browser, site, me, PHONE)
    try:
        # the token has left the address bar; the session is an HttpOnly SameSite=Strict cookie
        assert page.url == site.base + "/"
        (cookie,) = context.cookies()
        assert cookie["name"] == "wattbill_session" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 360
        page.screenshot(path=str(ARTIFACTS / "page-phone-zh.png"), full_page=True)

        bill = site.bills.filter(pl.col("customer_id") == me).row(0, named=True)
        assert page.inner_text("#customer") == me
        assert page.inner_text("#charge") == fmt.yuan(bill["charge_fen"])
        assert page.inner_text("#kwh") == fmt.kwh_from_wh(round(bill["kwh_total"] * 1000))
        assert page.get_attribute("#version", "data-version") == str(bill["version"])
        # the months, against bill_months.parquet
        months = site.months.filter(pl.col("customer_id") == me).sort("month")
        cells = page.eval_on_selector_all("#monthly tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))")
        assert [c[1] for c in cells] == [fmt.kwh_from_wh(round(k * 1000), 0) for k in months["kwh_total"]]
        assert [c[2] for c in cells] == [fmt.yuan(f) for f in months["charge_fen"]]
        # tier 2 reached on the day the exact reference says
        ref = _reference(site, me, 2025)
        reached = page.eval_on_selector_all("#tiers .tier-row .reached", "cells => cells.map(c => c.innerText)")
        if ref.tier_cross_day[0] >= 0:
            assert reached[1] == fmt.date(dt.date(2025, 1, 1) + dt.timedelta(days=ref.tier_cross_day[0]), "zh")
        # every label with its evidence and advice
        codes = page.eval_on_selector_all(".label-card", "cards => cards.map(c => c.dataset.code)")
        assert codes == list(bill["labels"])
        # the running charge through the service's today, to the fen
        so_far = _reference(site, me, 2025, TODAY)
        assert Decimal(page.get_attribute("#running-charge", "data-yuan")) == so_far.annual
        assert page.inner_text("#running-kwh") == fmt.kwh_from_wh(so_far.wh_so_far)
        # daily use: the days the store holds, estimated days counted
        daily = _daily(site, me, 2025).group_by("day").agg(pl.col("estimated").any())
        last30 = daily.filter(pl.col("day").is_between(TODAY - dt.timedelta(days=29), TODAY))
        assert page.get_attribute("#daily30", "data-days") == str(last30.height)
        assert page.get_attribute("#daily30", "data-estimated") == str(last30["estimated"].sum())
        year = daily.filter(pl.col("day") <= TODAY)
        assert page.get_attribute("#daily-year", "data-days") == str(year.height)
        assert page.get_attribute("#daily-year", "data-estimated") == str(year["estimated"].sum())
        # the download: the run's PDF of that version
        with page.expect_download() as info:
            page.click("#download")
        data = Path(info.value.path()).read_bytes()
        assert data == latest_statement(site.out, 2025, me).read_bytes()
        assert page.dialogs == []
    finally:
        context.close()


def test_desktop_in_english_renders_the_statement_on_demand(site: Site, browser) -> None:
    me = next(c for c in site.ids if site.app.state.service.account(c).customer.get("language") != "en")
    context, page = arrive(browser, site, me, DESKTOP, lang="en")
    try:
        assert page.url == site.base + "/?lang=en"
        assert page.evaluate("document.documentElement.lang") == "en"
        assert "2025" in page.inner_text("#title") and "PDF" in page.inner_text("#download")
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 1280
        page.screenshot(path=str(ARTIFACTS / "page-desktop-en.png"), full_page=True)
        bill = site.bills.filter(pl.col("customer_id") == me).row(0, named=True)
        assert page.inner_text("#charge") == fmt.yuan(bill["charge_fen"])
        t0 = time.perf_counter()
        with page.expect_download() as info:
            page.click("#download")
        data = Path(info.value.path()).read_bytes()
        elapsed = time.perf_counter() - t0
        text = _pdf_text(data)
        assert fmt.yuan(bill["charge_fen"]) in text and "Annual" in text
        print(f"first render of an English statement, click to file: {elapsed:.2f} s")
    finally:
        context.close()


@pytest.mark.parametrize("kind", ["replayed", "tampered", "expired", "forged"])
def test_bad_links_open_nothing(site: Site, browser, kind: str) -> None:
    me, other = site.ids[0], site.ids[1]
    token = make_token(me, SECRET)
    context = browser.new_context(**PHONE)
    page = context.new_page()
    try:
        if kind == "replayed":
            first = f"{site.base}/?token={token}"
            page.goto(first)
            page.wait_for_selector("#summary")
            page.context.clear_cookies()
            response = page.goto(first)
            expected = "已经使用过"
        else:
            bad = {
                "tampered": make_token(other, SECRET).split(".")[0] + "." + token.split(".")[1],
                "expired": make_token(me, SECRET, ttl=60, now=time.time() - 120),
                "forged": make_token(me, "not-our-secret-" + "q" * 20),
            }[kind]
            response = page.goto(f"{site.base}/?token={bad}")
            expected = "无效或已过期"
        assert response is not None and response.status == 401
        assert expected in page.inner_text("#message-text")
        assert page.query_selector("#summary") is None
        assert context.cookies() == []
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 360
        page.screenshot(path=str(ARTIFACTS / f"link-{kind}.png"))
        # and the page without a session shows nothing of anyone
        response = page.goto(site.base + "/")
        assert response is not None and response.status == 401 and page.query_selector("#summary") is None
    finally:
        context.close()


def test_untrusted_names_and_addresses_are_shown_as_text(site: Site, browser) -> None:
    context, page = arrive(browser, site, site.ids[2], PHONE)
    try:
        assert page.inner_text("#customer-name") == EVIL_NAME
        assert page.inner_text("#address") == EVIL_ADDRESS
        assert page.evaluate("document.scripts.length") == 0
        assert page.evaluate("document.images.length") == 0
        assert page.dialogs == []
    finally:
        context.close()


def test_estimated_days_are_marked(site: Site, browser) -> None:
    """The page's daily charts and the daily API flag the two estimated days of the store."""
    from wattbill.web.text import words

    cid = site.ids[4]
    context, page = arrive(browser, site, cid, PHONE)
    try:
        assert page.get_attribute("#daily30", "data-estimated") == "2"
        assert page.get_attribute("#daily-year", "data-estimated") == "2"
        lang = page.evaluate("document.documentElement.lang")
        assert words("en" if lang == "en" else "zh")["estimated"] in (page.text_content("#daily30 svg") or "")
        assert "2" in page.inner_text("#daily30 figcaption")
        r = page.request.get(f"{site.base}/api/daily?from=2025-06-19&to=2025-06-22")
        days = {d["day"]: d for d in r.json()["days"]}
        assert [days[f"2025-06-{d}"]["estimated"] for d in (19, 20, 21, 22)] == [False, True, True, False]
        rows = _daily(site, cid, 2025).group_by("day").agg(pl.col("wh_total").sum())
        stored = {d.isoformat(): wh for d, wh in rows.iter_rows()}
        assert {day: d["wh"] for day, d in days.items()} == {day: stored[day] for day in days}
        assert days["2025-06-20"]["wh"] >= 9200 and days["2025-06-21"]["wh"] >= 9210  # ours, plus any other meter
        so_far = _reference(site, cid, 2025, TODAY)
        assert Decimal(page.get_attribute("#running-charge", "data-yuan")) == so_far.annual
        page.screenshot(path=str(ARTIFACTS / "page-estimated-days.png"), full_page=True)
    finally:
        context.close()


def test_previous_years_are_listed_and_shown(site: Site, browser) -> None:
    me = site.ids[0]
    context, page = arrive(browser, site, me, PHONE)
    try:
        page.click("#previous a[href*='year=2024']")
        page.wait_for_selector("#summary")
        assert "2024" in page.inner_text("#title")
        bill = site.bills_2024.filter(pl.col("customer_id") == me).row(0, named=True)
        assert page.inner_text("#charge") == fmt.yuan(bill["charge_fen"])
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 360
    finally:
        context.close()


def test_a_recalculation_is_served_at_once(site: Site, browser, tmp_path: Path) -> None:
    """After ``bill recalc --no-pdf`` the page and the download show version 2 (not the run's PDF)."""
    cid = site.ids[3]
    context, page = arrive(browser, site, cid, PHONE)
    try:
        assert page.get_attribute("#version", "data-version") == "1"
        correction = tmp_path / "correction.csv"
        correction.write_text(
            "customer_id,meter_id,read_date,kwh_total,kwh_sharp,kwh_peak,kwh_flat,kwh_valley\n"
            f"{cid},M{cid},2025-03-10,60.00,5.00,25.00,10.00,20.00\n"
        )
        proc = run_cli("ingest", "reads", str(correction), "--kind", "consumption", "--store", str(site.store))
        assert proc.returncode == 0, proc.stderr
        proc = run_cli("bill", "recalc", "--year", "2025", "--customer", cid, "--reason", "meter read corrected",
                       "--out", str(site.out), "--store", str(site.store), "--no-pdf")
        assert proc.returncode == 0, proc.stderr
        assert f"{cid}: version 1 -> 2" in proc.stdout
        new = pl.read_parquet(site.out / "bills.parquet").filter(  # (the file keeps every year's rows)
            (pl.col("customer_id") == cid) & (pl.col("year") == 2025)).row(0, named=True)
        page.reload()
        assert page.get_attribute("#version", "data-version") == "2"
        assert page.inner_text("#charge") == fmt.yuan(new["charge_fen"])
        with page.expect_download() as info:
            page.click("#download")
        data = Path(info.value.path()).read_bytes()
        assert data != statement_path(site.out, 2025, cid, 1).read_bytes()
        assert fmt.yuan(new["charge_fen"]) in _pdf_text(data)
        r = page.request.get(f"{site.base}/statements/2025.pdf")
        assert r.headers["x-statement-version"] == "2"
        page.screenshot(path=str(ARTIFACTS / "page-after-recalc.png"))
    finally:
        context.close()
