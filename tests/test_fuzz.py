"""Fuzzing (issue #13): every ingest kind, every command-line argument and both stores. Every run ends
in exit 0, 1 or 2 with rows = loaded + quarantined + duplicates, never a traceback, and a stored value
never differs from the file's (checked against an independent reading of the file's accepted rows)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import fuzz_command_lines, fuzz_ingest_files
from wattbill.cli import main
from wattbill.ingest import ingest_file
from wattbill.ingest.errors import IngestError
from wattbill.store import open_store
from wattbill.tariffs import load_catalog

pytestmark = pytest.mark.slow

KINDS = ("registers", "consumption", "customers", "payments")
TODAY = dt.date(2026, 6, 1)
FUZZ = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


def _file_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _check_stored(kind: str, text: str, store) -> None:
    """Each stored value is one the file holds for that key (never a changed value)."""
    rows = _file_rows(text)
    if kind == "payments":
        for r in store.load_payments().iter_rows(named=True):
            allowed = set()
            for f in rows:
                if (f.get("customer_id") or "").strip() == r["customer_id"] and f.get("bill_month") == r["bill_month"]:
                    try:
                        allowed.add(int(Decimal((f.get("amount") or "").replace(",", "")) * 100))
                    except (InvalidOperation, ValueError):
                        pass
            assert r["amount_fen"] in allowed, (r, rows)
    elif kind == "customers":
        for r in store.load_customers().iter_rows(named=True):
            assert any((f.get("customer_id") or "").strip() == r["customer_id"] and f.get("tariff") == r["tariff"]
                       for f in rows), (r, rows)
            assert r["tariff"] in load_catalog().codes()
    elif kind == "consumption":
        for r in store.load_daily(2025).iter_rows(named=True):
            allowed = set()
            for f in rows:
                if (f.get("customer_id") or "").strip() == r["customer_id"]:
                    try:
                        kwh = float(f.get("kwh_total") or "x")
                    except ValueError:
                        continue
                    if math.isfinite(kwh * 1000):
                        allowed.add(round(kwh * 1000))
            assert r["wh_total"] in allowed, (r, rows)
            assert 0 <= r["wh_total"] <= 316_800
    else:
        d = store.load_daily(2025)
        if d.height:
            assert d["wh_total"].min() >= 0 and d["wh_total"].max() <= 316_800


def _ingest_everywhere(kind: str, text: str, urls: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "in.csv"
        f.write_text(text, encoding="utf-8")
        try:
            rep = ingest_file(f, kind, None, today=TODAY, known_tariffs=load_catalog().codes())
        except IngestError as e:
            assert "\n" not in str(e)
            return
        assert rep.rows == rep.loaded + rep.quarantined + rep.duplicates
        for url in urls or [str(Path(tmp) / "store")]:
            store = open_store(url)
            try:
                rep2 = ingest_file(f, kind, store, today=TODAY, known_tariffs=load_catalog().codes())
                assert (rep2.rows, rep2.loaded, rep2.quarantined, rep2.duplicates) == (
                    rep.rows, rep.loaded, rep.quarantined, rep.duplicates)
                _check_stored(kind, text, store)
                assert store.load_quarantine().height == rep.quarantined
            finally:
                store.close()


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_fuzz_ingest_embedded(kind: str, data: st.DataObject) -> None:
    _ingest_everywhere(kind, data.draw(fuzz_ingest_files(kind)), [])


@pytest.mark.db
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_ingest_both_stores(kind: str, data: st.DataObject, pg_url: str) -> None:
    """The same file into a fresh TimescaleDB database and a fresh embedded store: same counts, and
    every stored value one of the file's."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"wb_fuzz_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(pg_url)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _ingest_everywhere(kind, data.draw(fuzz_ingest_files(kind)), [url, str(Path(tmp) / "store")])
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(args=fuzz_command_lines())
def test_fuzz_command_line(args: list[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    import contextlib

    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "c.csv").write_text("customer_id,tariff\n1,cn-shanghai-res-tier\n")
    full = [a if a != "registers" else str(tmp / "c.csv") for a in args]
    if full[:2] == ["ingest", "quarantine"] and len(full) > 2 and full[2] == "export":
        full.append(str(tmp / "q.csv"))
    full += ["--store", str(tmp / "store")] if len(full) >= 2 and full[0] in ("bill", "ingest", "estimate") else []
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(full)
    text = out.getvalue() + err.getvalue()
    assert rc in (0, 1, 2), (full, rc, text)
    assert "Traceback" not in text and "internal error" not in text, (full, text)
