"""The statement service's API and behaviour, in process (Starlette's TestClient) over the demo run.

Figures are checked against ``bills.parquet``, the store's daily rows and the exact ``Decimal``
reference of the tariffs; the page itself is driven in a real Chromium in ``test_web_page.py``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal

import polars as pl
import pytest
from starlette.testclient import TestClient

from tests.app.conftest import Demo
from wattbill.statements import statement_path
from wattbill.tokens import Keys, make_session, make_token
from wattbill.web import WebSettings, create_app
from wattbill.web.security import Limits

SECRET = "test-secret-" + "x" * 24
OLD_SECRET = "old-secret-" + "y" * 24
pytestmark = pytest.mark.slow
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


@pytest.fixture(scope="module")
def client(demo: Demo) -> TestClient:
    # generous limits: the tests below send many failing tokens on purpose (limits: see the rate limit test)
    generous = WebSettings(limits=Limits("10000/minute", "10000/minute", "10000/minute"))
    return TestClient(create_app(str(demo.store), demo.out, Keys(SECRET, OLD_SECRET), generous))


@pytest.fixture(scope="module")
def bills(demo: Demo) -> pl.DataFrame:
    return pl.read_parquet(demo.out / "bills.parquet").sort("customer_id")


@pytest.fixture(scope="module")
def two_customers(bills: pl.DataFrame) -> tuple[str, str]:
    ids = bills["customer_id"].to_list()
    return ids[0], ids[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _daily(demo: Demo, customer: str, year: int) -> pl.DataFrame:
    from wattbill.store import open_store

    st = open_store(str(demo.store))
    try:
        return st.load_daily(year, [customer])
    finally:
        st.close()


# --- statements ---------------------------------------------------------------------------------


def test_own_statement_is_the_runs_pdf_of_the_newest_version(client: TestClient, two_customers, demo: Demo,
                                                              bills: pl.DataFrame) -> None:
    me, _ = two_customers
    r = client.get("/api/statements/2025.pdf", headers=bearer(make_token(me, SECRET)))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    version = int(bills.filter(pl.col("customer_id") == me)["version"][0])
    assert r.content == statement_path(demo.out, 2025, me, version).read_bytes()
    assert r.headers["x-statement-version"] == str(version)
    for name, value in SECURITY_HEADERS.items():
        assert r.headers[name] == value


def test_statement_in_another_language_is_rendered_once_then_cached(client: TestClient, two_customers,
                                                                     bills: pl.DataFrame) -> None:
    """Concurrent first requests render once; the PDF shows the bill's charge (pdftotext)."""
    import subprocess

    _, other = two_customers
    row = bills.filter(pl.col("customer_id") == other).row(0, named=True)
    lang = "zh" if client.app.state.service.account(other).customer.get("language") == "en" else "en"
    token = make_token(other, SECRET)
    before = client.app.state.statements.renders
    results: list[tuple[int, str, bytes, float]] = []

    def fetch() -> None:
        t0 = time.perf_counter()
        r = client.get(f"/api/statements/2025.pdf?lang={lang}", headers=bearer(token))
        results.append((r.status_code, r.headers.get("x-statement-source", ""), r.content, time.perf_counter() - t0))

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [s for s, *_ in results] == [200] * 6
    assert sorted(src for _, src, *_ in results) == ["memory"] * 5 + ["rendered"]
    assert client.app.state.statements.renders == before + 1
    assert len({body for _, _, body, _ in results}) == 1
    text = subprocess.run(["pdftotext", "-", "-"], input=results[0][2], capture_output=True, check=True).stdout
    from wattbill.bills import fmt

    assert fmt.yuan(int(row["charge_fen"])) in text.decode()
    again = client.get(f"/api/statements/2025.pdf?lang={lang}", headers=bearer(token))
    assert again.headers["x-statement-source"] == "memory" and again.content == results[0][2]


def test_no_statement_for_a_year_without_bills(client: TestClient, two_customers) -> None:
    me, _ = two_customers
    r = client.get("/api/statements/2019.pdf", headers=bearer(make_token(me, SECRET)))
    assert r.status_code == 404


def test_statements_list(client: TestClient, two_customers, bills: pl.DataFrame) -> None:
    me, _ = two_customers
    data = client.get("/api/statements", headers=bearer(make_token(me, SECRET))).json()
    version = bills.filter(pl.col("customer_id") == me)["version"][0]
    assert data == {"customer_id": me, "statements": [{"year": 2025, "version": version,
                                                        "url": "/api/statements/2025.pdf"}]}


# --- who may see what ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["summary", "daily", "running", "statements", "statements/2025.pdf"])
def test_another_customer_and_a_missing_one_get_the_same_403(client: TestClient, two_customers, path) -> None:
    me, other = two_customers
    token = make_token(me, SECRET)
    own = client.get(f"/api/customers/{me}/{path}", headers=bearer(token))
    assert own.status_code == 200
    theirs = client.get(f"/api/customers/{other}/{path}", headers=bearer(token))
    missing = client.get(f"/api/customers/9999999999/{path}", headers=bearer(token))
    assert theirs.status_code == missing.status_code == 403
    assert theirs.content == missing.content
    assert client.get(f"/api/customers/..%2F{other}/{path}", headers=bearer(token)).status_code in (403, 404)


def test_a_token_for_a_customer_the_store_does_not_hold_gets_403(client: TestClient) -> None:
    token = make_token("9999999999", SECRET)
    for path in ("summary", "running", "statements/2025.pdf"):
        assert client.get(f"/api/{path}", headers=bearer(token)).status_code == 403


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer not-a-token"},
                                     {"Authorization": "Bearer "}])
def test_missing_or_malformed_tokens_are_refused(client: TestClient, headers) -> None:
    for path in ("/api/statements/2025.pdf", "/api/summary", "/api/daily", "/api/running", "/statements/2025.pdf"):
        r = client.get(path, headers=headers)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_forged_expired_and_tampered_tokens_are_refused(client: TestClient, two_customers) -> None:
    me, other = two_customers
    forged = make_token(me, "another-secret-" + "y" * 20)
    assert client.get("/api/summary", headers=bearer(forged)).status_code == 401
    expired = make_token(me, SECRET, ttl=60, now=time.time() - 120)
    r = client.get("/api/summary", headers=bearer(expired))
    assert r.status_code == 401 and r.json()["error"] == "token expired"
    good = make_token(me, SECRET)
    tampered = make_token(other, SECRET).split(".")[0] + "." + good.split(".")[1]
    assert client.get("/api/summary", headers=bearer(tampered)).status_code == 401


def test_key_rotation_accepts_the_previous_secret_until_it_is_removed(demo: Demo, client: TestClient,
                                                                      two_customers) -> None:
    me, _ = two_customers
    old = make_token(me, OLD_SECRET)
    assert client.get("/api/statements", headers=bearer(old)).status_code == 200
    new_only = TestClient(create_app(str(demo.store), demo.out, SECRET))
    assert new_only.get("/api/statements", headers=bearer(old)).status_code == 401
    assert new_only.get("/api/statements", headers=bearer(make_token(me, SECRET))).status_code == 200


def test_a_session_is_not_a_token_and_a_token_is_not_a_session(client: TestClient, two_customers) -> None:
    me, _ = two_customers
    session = make_session(me, SECRET, 600)
    assert client.get("/api/summary", headers=bearer(session)).status_code == 401
    token = make_token(me, SECRET)
    fresh = TestClient(client.app)
    fresh.cookies.set("wattbill_session", token)
    assert fresh.get("/api/summary").status_code == 401
    fresh.cookies.set("wattbill_session", session)
    assert fresh.get("/api/summary").json()["customer_id"] == me


# --- the figures --------------------------------------------------------------------------------


def test_summary_is_the_customers_own_bill(client: TestClient, two_customers, bills: pl.DataFrame) -> None:
    me, _ = two_customers
    data = client.get("/api/summary", headers=bearer(make_token(me, SECRET))).json()
    bill = bills.filter(pl.col("customer_id") == me).row(0, named=True)
    assert data["customer_id"] == me
    (b,) = data["bills"]
    assert b["charge_total"] == str(bill["charge_total"])
    assert b["charge_fen"] == bill["charge_fen"]
    assert Decimal(b["kwh_total"]) == Decimal(str(bill["kwh_total"])).quantize(Decimal("0.001"))
    assert [label["code"] for label in b["labels"]] == list(bill["labels"])
    assert all(label["title"] and label["evidence"] and label["what_to_do"] for label in b["labels"])


def test_daily_usage_sums_meters_per_day(client: TestClient, demo: Demo, bills: pl.DataFrame) -> None:
    """(Estimated days: ``test_web_page.test_estimated_days_are_marked``, which adds some.)"""
    ids = bills["customer_id"].to_list()
    rows = pl.concat([_daily(demo, c, 2025) for c in ids[:2]])
    for cid in ids[:2]:
        mine = rows.filter(pl.col("customer_id") == cid)
        expected = mine.filter(pl.col("day").is_between(dt.date(2025, 3, 1), dt.date(2025, 4, 15))).group_by("day").agg(
            pl.col("wh_total").sum(), pl.col("estimated").any()).sort("day")
        r = client.get("/api/daily?from=2025-03-01&to=2025-04-15", headers=bearer(make_token(cid, SECRET)))
        assert r.status_code == 200
        days = r.json()["days"]
        assert [d["day"] for d in days] == [d.isoformat() for d in expected["day"]]
        assert [d["wh"] for d in days] == expected["wh_total"].to_list()
        assert [d["estimated"] for d in days] == expected["estimated"].to_list()
        assert all(Decimal(d["kwh"]) * 1000 == d["wh"] for d in days)
    default = client.get("/api/daily", headers=bearer(make_token(ids[0], SECRET))).json()
    assert default["to"] == "2025-12-31" and default["from"] == "2025-12-02" and len(default["days"]) == 30


@pytest.mark.parametrize("query", ["from=2025-13-01", "to=yesterday", "from=2020-01-01&to=2025-01-01",
                                   "from=2025-05-01&to=2025-04-01"])
def test_daily_rejects_bad_ranges_with_a_clear_error(client: TestClient, two_customers, query) -> None:
    me, _ = two_customers
    r = client.get(f"/api/daily?{query}", headers=bearer(make_token(me, SECRET)))
    assert r.status_code == 422
    assert "\n" not in r.json()["error"] and "Traceback" not in r.text


@pytest.mark.parametrize("through", ["2025-01-01", "2025-06-30", "2025-09-24", "2025-12-31"])
def test_running_charge_equals_the_exact_reference(client: TestClient, demo: Demo, bills: pl.DataFrame,
                                                   through: str) -> None:
    """The API's running charge is the Decimal reference's year-to-date bill, to the fen."""
    from tests.app.reference_arrays import customer_arrays, open_span
    from wattbill.store import open_store
    from wattbill.tariffs import load_catalog, reference_bill

    catalog = load_catalog()
    day = dt.date.fromisoformat(through)
    st = open_store(str(demo.store))
    try:
        customers = st.load_customers(bills["customer_id"].to_list()[:4])
    finally:
        st.close()
    for c in customers.iter_rows(named=True):
        total, regs = customer_arrays(_daily(demo, c["customer_id"], 2025), 2025)
        first, last = open_span(c, 2025)
        ref = reference_bill(catalog.get(c["tariff"], on=day), 2025, total[0].tolist(), regs[0].tolist(), first, last,
                             int(c["household_size"] or 1), through_day=(day - dt.date(2025, 1, 1)).days)
        data = client.get(f"/api/running?through={through}", headers=bearer(make_token(c["customer_id"], SECRET))).json()
        assert Decimal(data["charge"]) == sum((m.charge for m in ref.months), Decimal(0)), c["customer_id"]
        assert data["wh"] == ref.wh_so_far
        if through == "2025-12-31":
            assert data["charge_fen"] == bills.filter(pl.col("customer_id") == c["customer_id"])["charge_fen"][0]


def test_running_charge_is_the_one_of_wattbill_estimate(client: TestClient, demo: Demo, two_customers) -> None:
    from tests.app.conftest import run_cli

    me, _ = two_customers
    proc = run_cli("estimate", "--customer", me, "--through", "2025-08-15", "--store", str(demo.store))
    assert proc.returncode == 0, proc.stderr
    data = client.get("/api/running?through=2025-08-15", headers=bearer(make_token(me, SECRET))).json()
    assert f"{data['charge']} yuan, tier {data['tier']}" in proc.stdout


# --- behaviour ----------------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(client: TestClient, two_customers) -> None:
    me, _ = two_customers
    token = make_token(me, SECRET)
    for path, headers in [("/", {}), ("/static/page.css", {}), ("/openapi.json", {}), ("/api/summary", bearer(token)),
                          ("/api/summary", {}), ("/api/statements/2019.pdf", bearer(token)), ("/nowhere", {})]:
        r = client.get(path, headers=headers)
        for name, value in SECURITY_HEADERS.items():
            assert r.headers.get(name) == value, (path, name)
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp


def test_rate_limits_answer_429_with_retry_after(demo: Demo, two_customers) -> None:
    me, other = two_customers
    app = create_app(str(demo.store), demo.out, SECRET, WebSettings(limits=Limits(
        per_address="8/minute", failed_auth_per_address="3/minute", per_customer="4/minute")))
    c = TestClient(app)
    # forged tokens: the fourth failure from the address is 429 with Retry-After
    forged = bearer(make_token(me, "forged-secret-" + "z" * 20))
    codes = [c.get("/api/statements", headers=forged).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    r = c.get("/api/statements", headers=forged)
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 60
    # ... and a valid token from the same address (another phone behind the same NAT) still works
    assert c.get("/api/statements", headers=bearer(make_token(me, SECRET))).status_code == 200

    c = TestClient(create_app(str(demo.store), demo.out, SECRET, WebSettings(limits=Limits(
        per_address="8/minute", failed_auth_per_address="3/minute", per_customer="4/minute"))))
    token = bearer(make_token(me, SECRET))
    codes = [c.get("/api/statements", headers=token).status_code for _ in range(5)]
    assert codes == [200] * 4 + [429]  # per customer
    assert c.get("/api/statements", headers=bearer(make_token(other, SECRET))).status_code == 200
    codes = [c.get("/static/page.css").status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]  # per address: 8 requests in the minute
    assert int(c.get("/").headers["retry-after"]) > 0


def test_openapi_describes_every_api_route(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    routes = {r.path.replace("{year:int}", "{year}") for r in client.app.routes if r.path.startswith("/api/")}
    assert set(doc["paths"]) == routes
    for path, item in doc["paths"].items():
        responses = item["get"]["responses"]
        assert {"200", "401", "403", "429"} <= set(responses), path
        for ref in [c["schema"]["$ref"] for r in responses.values() for c in r.get("content", {}).values() if "schema" in c]:
            assert ref.split("/")[-1] in doc["components"]["schemas"]


@pytest.mark.db
def test_the_service_on_timescaledb_runs_no_schema_statement(pg_store_url: str, demo: Demo, tmp_path) -> None:
    """One store per process, opened without schema statements: no DDL reaches the server while the
    service answers (an event trigger records every DDL command), and the figures are the same."""
    import psycopg

    from tests.app.conftest import run_cli
    from wattbill.store import StoreUnavailable, open_store

    with pytest.raises(StoreUnavailable, match="extension is not installed"):
        open_store(pg_store_url, setup=False)  # an empty database: nothing is created
    for kind, name in (("customers", "customers.csv"), ("reads", "reads.csv"), ("payments", "payments.csv")):
        proc = run_cli("ingest", kind, str(demo.out / "input" / name), "--store", pg_store_url)
        assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    proc = run_cli("bill", "run", "--year", "2025", "--no-pdf", "--out", str(out), "--store", pg_store_url)
    assert proc.returncode == 0, proc.stderr
    with psycopg.connect(pg_store_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE ddl_log (tag text, at timestamptz DEFAULT now())")
        conn.execute("CREATE FUNCTION log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN INSERT INTO ddl_log (tag) VALUES (tg_tag); END $$")
        conn.execute("CREATE EVENT TRIGGER log_ddl ON ddl_command_start EXECUTE FUNCTION log_ddl()")
    bills = pl.read_parquet(out / "bills.parquet").sort("customer_id")
    me = bills["customer_id"][0]
    with TestClient(create_app(pg_store_url, out, SECRET)) as c:
        token = bearer(make_token(me, SECRET))
        for _ in range(3):
            data = c.get("/api/summary", headers=token).json()
            assert data["bills"][0]["charge_fen"] == bills["charge_fen"][0]
            assert c.get("/api/running?through=2025-12-31", headers=token).json()["charge_fen"] == bills["charge_fen"][0]
        r = c.get("/api/statements/2025.pdf", headers=token)
        assert r.status_code == 200 and r.headers["x-statement-source"] == "rendered"
        assert c.get("/?token=" + make_token(me, SECRET)).status_code == 200
        assert c.get("/").status_code == 200
    with psycopg.connect(pg_store_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM ddl_log").fetchone() == (0,)
    open_store(pg_store_url).close()  # the trigger does see the schema statements of a setup
    with psycopg.connect(pg_store_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM ddl_log").fetchone()[0] > 0


def test_wattbill_serve_keeps_tokens_out_of_the_access_log(demo: Demo) -> None:
    """``wattbill serve`` (the real command): a portal link works; the token never reaches the log."""
    import os
    import socket
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from tests.app.conftest import REPO

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "WATTBILL_SECRET": SECRET, "WATTBILL_SECRET_PREVIOUS": OLD_SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "wattbill.cli", "serve", "--port", str(port), "--out", str(demo.out),
                             "--store", str(demo.store)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(600):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        me = pl.read_parquet(demo.out / "bills.parquet")["customer_id"].sort()[0]
        token = make_token(me, OLD_SECRET)  # signed with the previous secret: still accepted
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?token={token}", timeout=60) as r:
            assert r.status == 200 and "wattbill_session=" in r.headers["set-cookie"]
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/?token={token}x", timeout=60)
        assert bad.value.code == 401
    finally:
        proc.terminate()
        log, _ = proc.communicate(timeout=30)
    assert "token=[redacted]" in log
    assert token not in log and token.split(".")[0] not in log
