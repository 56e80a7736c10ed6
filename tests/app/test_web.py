"""The statement service: tokens checked on every request, each customer sees only their own bill.

The API is tested in-process (Starlette's TestClient); the page is driven in a real headless
Chromium (Debian's ``chromium``, through Playwright) against uvicorn on a loopback port.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time

import polars as pl
import pytest
from starlette.testclient import TestClient

from tests.app.conftest import Demo
from wattbill.statements import statement_path
from wattbill.tokens import make_token
from wattbill.web import create_app

SECRET = "test-secret-" + "x" * 24
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(demo: Demo) -> TestClient:
    return TestClient(create_app(str(demo.store), demo.out, SECRET))


@pytest.fixture(scope="module")
def two_customers(demo: Demo) -> tuple[str, str]:
    ids = pl.read_parquet(demo.out / "bills.parquet").sort("customer_id")["customer_id"].to_list()
    return ids[0], ids[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_own_statement_is_served(client: TestClient, two_customers, demo: Demo) -> None:
    me, _ = two_customers
    r = client.get("/api/statements/2025.pdf", headers=bearer(make_token(me, SECRET)))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert r.content == statement_path(demo.out, 2025, me, 1).read_bytes()
    assert r.headers["cache-control"] == "no-store"


def test_customer_path_needs_the_same_customer(client: TestClient, two_customers) -> None:
    me, other = two_customers
    token = make_token(me, SECRET)
    assert client.get(f"/api/customers/{me}/statements/2025.pdf", headers=bearer(token)).status_code == 200
    assert client.get(f"/api/customers/{other}/statements/2025.pdf", headers=bearer(token)).status_code == 403
    assert client.get("/api/customers/..%2F..%2Fetc/statements/2025.pdf", headers=bearer(token)).status_code in (403, 404)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer not-a-token"},
    ],
)
def test_missing_or_malformed_tokens_are_refused(client: TestClient, headers) -> None:
    assert client.get("/api/statements/2025.pdf", headers=headers).status_code == 401
    assert client.get("/api/summary", headers=headers).status_code == 401


def test_forged_and_expired_tokens_are_refused(client: TestClient, two_customers) -> None:
    me, _ = two_customers
    forged = make_token(me, "another-secret-" + "y" * 20)
    assert client.get("/api/statements/2025.pdf", headers=bearer(forged)).status_code == 401
    expired = make_token(me, SECRET, ttl=60, now=time.time() - 120)
    r = client.get("/api/statements/2025.pdf", headers=bearer(expired))
    assert r.status_code == 401 and r.json()["error"] == "token expired"
    # a token tampered with to name another customer fails its signature
    good = make_token(me, SECRET)
    tampered = good.replace(good.split(".")[0], make_token("0000000002", SECRET).split(".")[0])
    assert client.get("/api/statements/2025.pdf", headers=bearer(tampered)).status_code == 401


def test_summary_is_the_customers_own(client: TestClient, two_customers, demo: Demo) -> None:
    me, _ = two_customers
    data = client.get("/api/summary", headers=bearer(make_token(me, SECRET))).json()
    bill = pl.read_parquet(demo.out / "bills.parquet").filter(pl.col("customer_id") == me).row(0, named=True)
    assert data["customer_id"] == me
    assert data["bills"][0]["charge_total"] == str(bill["charge_total"])
    assert data["bills"][0]["pdf"] is True
    assert [label["code"] for label in data["bills"][0]["labels"]] == list(bill["labels"])
    assert all(label["zh"] and label["en"] for label in data["bills"][0]["labels"])


def test_no_statement_for_a_year_without_bills(client: TestClient, two_customers) -> None:
    me, _ = two_customers
    assert client.get("/api/statements/2019.pdf", headers=bearer(make_token(me, SECRET))).status_code == 404


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.browser
def test_page_in_headless_chromium_shows_summary_and_downloads_pdf(demo: Demo, two_customers, tmp_path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed: scripts/setup.sh installs it")
    import uvicorn
    from playwright.sync_api import sync_playwright

    me, _ = two_customers
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(str(demo.store), demo.out, SECRET), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium,
                args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            )
            page = browser.new_page(accept_downloads=True)
            # a wrong token first: an error, no data
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#token", "forged")
            page.click("button[type=submit]")
            page.wait_for_selector("#error:has-text('Invalid or expired token')")
            assert page.is_hidden("#result")
            # the right one: the summary, then the PDF
            token = make_token(me, SECRET)
            page.goto(f"http://127.0.0.1:{port}/#token={token}")
            page.wait_for_selector("#bills tr")
            assert page.inner_text("#customer") == me
            bill = pl.read_parquet(demo.out / "bills.parquet").filter(pl.col("customer_id") == me).row(0, named=True)
            assert str(bill["charge_total"]) in page.inner_text("#bills")
            page.screenshot(path=str(tmp_path / "page.png"))
            with page.expect_download() as info:
                page.click("#bills button")
            path = info.value.path()
            assert open(path, "rb").read() == statement_path(demo.out, 2025, me, 1).read_bytes()
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
