"""One contract for both stores: the embedded Parquet store and the TimescaleDB store.

Every test runs against both backends; the TimescaleDB side is marked ``db`` and uses a fresh database
on the project's cluster (``tests/conftest.py``: ``pg_store_url``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from wattbill.ingest import ingest_file
from wattbill.ingest.schemas import (
    CUSTOMER_SCHEMA,
    DAILY_SCHEMA,
    FINDING_SCHEMA,
    PAYMENT_SCHEMA,
    QUARANTINE_SCHEMA,
    IngestBatch,
)
from wattbill.store import StoreUnavailable, open_store
from wattbill.store.base import Store, content_hashes


def _daily(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=DAILY_SCHEMA, orient="row")


def _batch(sha: str, daily: pl.DataFrame | None = None, **kw) -> IngestBatch:
    ledger = {
        "sha256": sha,
        "file": f"{sha}.csv",
        "kind": kw.pop("kind", "registers"),
        "rows": 0,
        "loaded": 0,
        "estimated": 0,
        "quarantined": 0,
        "duplicates": 0,
        "findings": 0,
        "loaded_at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    }
    return IngestBatch(ledger=ledger, kind=ledger["kind"], daily=daily, **kw)


D = dt.date
ROWS = [
    ("0001", "m01", D(2023, 12, 31), 5000, 1000, 1000, 2000, 1000, False),
    ("0001", "m01", D(2024, 1, 1), 6000, 1000, 2000, 2000, 1000, True),
    ("0001", "m01", D(2024, 12, 31), 7000, None, None, None, None, False),
    ("0002", "m02", D(2024, 6, 1), 8000, None, None, None, None, False),
    ("00003", "m03", D(2025, 1, 1), 9000, None, None, None, None, False),
]


def test_is_a_store(store) -> None:
    assert isinstance(store, Store)


def test_daily_roundtrip_schema_years_and_customers(store) -> None:
    store.save_ingest(_batch("a" * 64, _daily(ROWS)))
    d24 = store.load_daily(2024)
    assert dict(d24.schema) == DAILY_SCHEMA
    assert d24.height == 3
    assert d24["customer_id"].to_list() == ["0001", "0001", "0002"]
    assert d24["estimated"].to_list() == [True, False, False]  # estimated flags survive
    assert d24["wh_sharp"].to_list()[1:] == [None, None]  # nulls stay nulls, never zero
    assert store.load_daily(2023)["wh_total"].to_list() == [5000]
    assert store.load_daily(2025)["customer_id"].to_list() == ["00003"]  # leading zeros kept
    only = store.load_daily(2024, ["0002"])
    assert only["customer_id"].to_list() == ["0002"]
    assert store.load_daily(2024, []).height == 0
    assert store.load_daily(2030).height == 0
    assert sorted(store.list_customer_ids()) == ["00003", "0001", "0002"]


def test_daily_unsorted_has_the_same_rows_each_customer_together(store) -> None:
    rows = [(f"{c:04d}", f"m{c % 3}", D(2024, 1, 1) + dt.timedelta(days=d), 100 * c + d, None, None, None, None,
             False) for c in range(60) for d in (3, 1, 2)]
    store.save_ingest(_batch("c" * 64, _daily(rows)))
    keys = ["customer_id", "meter_id", "day"]
    for ids in (None, [f"{c:04d}" for c in range(0, 60, 7)]):
        ordered = store.load_daily(2024, ids)
        loose = store.load_daily(2024, ids, sort=False)
        assert loose.sort(keys).equals(ordered) and ordered.equals(ordered.sort(keys))
        runs = loose["customer_id"].rle()
        assert runs.len() == loose["customer_id"].n_unique()  # each customer's rows together


def test_daily_upsert_on_natural_key(store) -> None:
    store.save_ingest(_batch("a" * 64, _daily(ROWS)))
    store.save_ingest(
        _batch("b" * 64, _daily([("0002", "m02", D(2024, 6, 1), 1234, None, None, None, None, True)]))
    )
    d = store.load_daily(2024, ["0002"])
    assert d["wh_total"].to_list() == [1234]
    assert d["estimated"].to_list() == [True]
    assert store.load_daily(2024).height == 3


def test_daily_streamed_chunks(store) -> None:
    chunks = [_daily(ROWS[:2]), _daily(ROWS[2:])]
    store.save_ingest(_batch("c" * 64, iter(chunks)))
    assert store.load_daily(2024).height == 3


def test_failed_write_leaves_previous_state(store) -> None:
    store.save_ingest(_batch("a" * 64, _daily(ROWS)))
    before = store.load_daily(2024)

    def boom():
        yield _daily([("0009", "m09", D(2024, 2, 2), 1, None, None, None, None, False)])
        raise RuntimeError("crash in the middle of a file")

    with pytest.raises(RuntimeError):
        store.save_ingest(_batch("d" * 64, boom()))
    assert store.load_daily(2024).equals(before)
    assert store.ledger_get("d" * 64) is None


def test_ledger(store) -> None:
    assert store.ledger_get("e" * 64) is None
    b = _batch("e" * 64, _daily(ROWS[:1]))
    b.ledger.update(rows=3, loaded=1, quarantined=1, duplicates=1)
    store.save_ingest(b)
    rec = store.ledger_get("e" * 64)
    assert rec is not None
    assert (rec["rows"], rec["loaded"], rec["quarantined"], rec["duplicates"]) == (3, 1, 1, 1)
    # a second save of the same file changes nothing
    store.save_ingest(
        _batch("e" * 64, _daily([("0001", "m01", D(2023, 12, 31), 1, None, None, None, None, False)]))
    )
    assert store.load_daily(2023)["wh_total"].to_list() == [5000]
    assert store.load_ledger().height == 1


def test_customers_and_payments(store) -> None:
    cust = pl.DataFrame(
        [
            ("0001", "t1", 3, "hz", D(2020, 1, 1), None, "张三", "杭州", "zh"),
            ("0002", "t2", 1, "hz", None, D(2024, 6, 30), None, None, "en"),
        ],
        schema=CUSTOMER_SCHEMA,
        orient="row",
    )
    pay = pl.DataFrame(
        [
            ("0001", "2024-01", D(2024, 2, 1), D(2024, 2, 5), 12345, "app"),
            ("0001", "2023-12", D(2024, 1, 1), None, 100, "bank"),
            ("0002", "2024-02", D(2024, 3, 1), D(2024, 3, 30), 99, "counter"),
        ],
        schema=PAYMENT_SCHEMA,
        orient="row",
    )
    store.save_ingest(_batch("f" * 64, kind="customers", customers=cust))
    store.save_ingest(_batch("g" * 64, kind="payments", payments=pay))
    c = store.load_customers()
    assert dict(c.schema) == CUSTOMER_SCHEMA
    assert c.equals(cust.sort("customer_id"))
    assert store.load_customers(["0002"])["language"].to_list() == ["en"]
    p = store.load_payments(2024)
    assert dict(p.schema) == PAYMENT_SCHEMA
    assert p["bill_month"].to_list() == ["2024-01", "2024-02"]
    assert store.load_payments()["paid_on"].to_list()[0] is None
    assert store.load_payments(None, ["0002"])["amount_fen"].to_list() == [99]
    # upsert of a customer
    store.save_ingest(
        _batch("h" * 64, kind="customers", customers=cust.head(1).with_columns(pl.lit("t9").alias("tariff")))
    )
    assert store.load_customers(["0001"])["tariff"].to_list() == ["t9"]
    assert store.load_customers().height == 2


def test_quarantine_and_findings(store) -> None:
    q = pl.DataFrame(
        [("q" * 64, "x.csv", 7, "total", "non_numeric", "total is not a number", "0001,m,2024-01-01,abc")],
        schema=QUARANTINE_SCHEMA,
        orient="row",
    )
    f = pl.DataFrame(
        [("q" * 64, "0001", "m01", D(2024, 1, 5), "gap_estimated", "gap", '{"days": 3}')],
        schema=FINDING_SCHEMA,
        orient="row",
    )
    store.save_ingest(_batch("q" * 64, _daily(ROWS[:1]), quarantine=q, findings=f))
    got = store.load_quarantine()
    assert dict(got.schema) == QUARANTINE_SCHEMA
    assert got.equals(q)
    assert store.load_quarantine("q" * 64).height == 1
    assert store.load_quarantine("z" * 64).height == 0
    fs = store.load_findings(["0001"])
    assert fs["code"].to_list() == ["gap_estimated"]
    import json

    assert json.loads(fs["evidence"][0]) == {"days": 3}
    assert store.load_findings(["0002"]).height == 0


def _bills(kwh: float = 1.0) -> tuple[pl.DataFrame, pl.DataFrame]:
    bills = pl.DataFrame(
        {
            "customer_id": ["0001", "0002"],
            "year": [2024, 2024],
            "tariff": ["t1", "t2"],
            "kwh_total": [kwh, 2.5],
            "charge_total": [Decimal("12.34"), Decimal("0.50")],
            "labels": [["peak_heavy"], []],
            "estimated_days": [3, 0],
            "charge_fen": [1234, 50],
        },
        schema_overrides={"charge_total": pl.Decimal(14, 2)},
    )
    months = pl.DataFrame(
        {
            "customer_id": ["0001", "0001", "0002"],
            "month": [1, 2, 1],
            "kwh_total": [kwh / 2, kwh / 2, 2.5],
            "charge_fen": [617, 617, 50],
        }
    )
    return bills, months


def test_bills_versions_and_idempotency(store) -> None:
    bills, months = _bills()
    r1 = store.save_bills(2024, bills, months, "first run")
    assert r1.sort("customer_id")["version"].to_list() == [1, 1]
    assert r1.sort("customer_id")["new_version"].to_list() == [True, True]
    r2 = store.save_bills(2024, bills, months, "same again")
    assert r2.sort("customer_id")["version"].to_list() == [1, 1]
    assert r2.sort("customer_id")["new_version"].to_list() == [False, False]
    assert store.load_bills(2024, all_versions=True).height == 2
    b3, m3 = _bills(kwh=9.0)
    r3 = store.save_bills(2024, b3, m3, "meter correction")
    assert r3.sort("customer_id")["version"].to_list() == [2, 1]
    assert r3.sort("customer_id")["new_version"].to_list() == [True, False]
    latest = store.load_bills(2024)
    assert latest.height == 2
    row = latest.filter(pl.col("customer_id") == "0001").row(0, named=True)
    assert row["version"] == 2 and row["kwh_total"] == 9.0 and row["reason"] == "meter correction"
    assert row["charge_total"] == Decimal("12.34")
    assert row["labels"] == ["peak_heavy"]
    allv = store.load_bills(2024, ["0001"], all_versions=True)
    assert allv["version"].to_list() == [1, 2]
    assert store.load_bills(2023).height == 0
    m_latest = store.load_bill_months(2024, ["0001"])
    assert m_latest["kwh_total"].to_list() == [4.5, 4.5]
    m_v1 = store.load_bill_months(2024, ["0001"], version=1)
    assert m_v1["kwh_total"].to_list() == [0.5, 0.5]
    assert store.load_bill_months(2024)["customer_id"].to_list() == ["0001", "0001", "0002"]


def test_labels(store) -> None:
    bills, months = _bills()
    store.save_bills(2024, bills, months, "first")
    labels = pl.DataFrame(
        {
            "customer_id": ["0001", "0001"],
            "code": ["peak_heavy", "late_payer"],
            "evidence": ["{}", '{"n": 2}'],
            "saving_fen": [100, None],
        }
    )
    store.save_labels(2024, 1, labels)
    got = store.load_labels(2024)
    assert sorted(got["code"].to_list()) == ["late_payer", "peak_heavy"]
    assert set(got["version"].to_list()) == {1}
    # labels saved again for the same version replace the old ones
    store.save_labels(2024, 1, labels.head(1))
    assert store.load_labels(2024, ["0001"])["code"].to_list() == ["peak_heavy"]
    assert store.load_labels(2024, ["0002"]).height == 0


def test_labels_take_the_versions_they_are_given(store) -> None:
    """``save_labels(year, None, labels)``: the ``version`` column where the labels have one (a bill run
    knows the versions it has just saved), else each customer's latest stored bill."""
    bills, months = _bills()
    store.save_bills(2024, bills, months, "first")
    b2, m2 = _bills(kwh=9.0)
    store.save_bills(2024, b2, m2, "correction")  # 0001 now at version 2, 0002 still at 1
    given = pl.DataFrame({"customer_id": ["0001", "0002"], "code": ["peak_heavy", "late_payer"],
                          "evidence": ["{}", "{}"], "version": [1, 1]})
    store.save_labels(2024, None, given)
    got = store.load_labels(2024).sort("customer_id")
    assert got.select("customer_id", "version").rows() == [("0001", 1), ("0002", 1)]
    store.save_labels(2024, None, given.drop("version"))  # the latest stored bill of each
    got = store.load_labels(2024).sort("customer_id")
    assert got.select("customer_id", "version").rows() == [("0001", 2), ("0002", 1)]


def test_ingest_file_into_store(store, tmp_path: Path) -> None:
    f = tmp_path / "reads.csv"
    f.write_text(
        "customer_id,meter_id,read_date,total\n"
        "0042,m1,2024-03-01,10.0\n0042,m1,2024-03-02,12.5\n0042,m1,2024-03-04,13.5\n",
        encoding="utf-8",
    )
    rep = ingest_file(f, "registers", store)
    assert (rep.rows, rep.loaded, rep.estimated) == (3, 3, 2)
    d = store.load_daily(2024, ["0042"])
    assert d["wh_total"].to_list() == [2500, 500, 500]
    assert d["estimated"].to_list() == [False, True, True]
    again = ingest_file(f, "registers", store)
    assert again.already_loaded and again.rows == 3
    assert store.load_daily(2024).equals(d)


def test_embedded_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable):
        open_store(blocker / "store")


@pytest.mark.db
def test_timescale_unreachable(pg_url: str) -> None:
    bad = pg_url.replace("port=", "port=1") if "port=" in pg_url else pg_url + "?port=1"
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        open_store(bad)


@pytest.mark.db
def test_timescale_refuses_without_extension_rights(pg_store_url: str) -> None:
    """A role that cannot create the extension gets StoreUnavailable, never plain tables."""
    import psycopg

    role = "wb_noext"
    with psycopg.connect(pg_store_url, autocommit=True) as conn:
        conn.execute(
            f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(pg_store_url)
    url = urlunsplit((p.scheme, f"{role}@{p.hostname or ''}", p.path, p.query, p.fragment))
    with pytest.raises(StoreUnavailable, match="TimescaleDB"):
        open_store(url)
    with psycopg.connect(pg_store_url, autocommit=True) as conn:
        n = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'daily'").fetchone()
    assert n == (0,)


# --- consecutive register files ---------------------------------------------------------------


def _register_file(path: Path, rows: list[tuple[str, float, float]]) -> Path:
    """A register file of one TOU meter: (day, total, valley) with peak = total - valley."""
    lines = ["customer_id,meter_id,read_date,total,sharp,peak,flat,valley"]
    for day, total, valley in rows:
        lines.append(f"0042,M42,{day},{total:.2f},0.00,{total - valley:.2f},0.00,{valley:.2f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_consecutive_register_files_need_no_overlap(store, tmp_path: Path) -> None:
    """The second file's first day is differenced against the first file's last read."""
    jan = _register_file(tmp_path / "jan.csv", [("2025-01-29", 100.0, 40.0), ("2025-01-30", 110.0, 44.0),
                                                ("2025-01-31", 121.5, 48.0)])
    feb = _register_file(tmp_path / "feb.csv", [("2025-02-01", 130.0, 50.0), ("2025-02-02", 141.0, 55.0)])
    r1 = ingest_file(jan, "registers", store)
    r2 = ingest_file(feb, "registers", store)
    assert (r1.rows, r1.loaded, r2.rows, r2.loaded) == (3, 3, 2, 2)  # the anchor is no row of feb.csv
    daily = store.load_daily(2025).sort("day")
    assert daily["day"].to_list() == [dt.date(2025, 1, d) for d in (30, 31)] + [dt.date(2025, 2, d) for d in (1, 2)]
    assert daily["wh_total"].to_list() == [10_000, 11_500, 8_500, 11_000]
    assert daily["wh_valley"].to_list() == [4_000, 4_000, 2_000, 5_000]
    assert not daily["estimated"].any()
    state = store.load_register_state()
    assert state.select("day", "wh_total").row(0) == (dt.date(2025, 2, 2), 141_000)


def test_a_gap_between_files_is_estimated_and_an_old_file_does_not_move_the_state_back(store, tmp_path: Path) -> None:
    first = _register_file(tmp_path / "a.csv", [("2025-03-01", 200.0, 80.0), ("2025-03-02", 210.0, 84.0)])
    later = _register_file(tmp_path / "b.csv", [("2025-03-05", 240.0, 96.0), ("2025-03-06", 250.0, 100.0)])
    ingest_file(first, "registers", store)
    ingest_file(later, "registers", store)
    daily = store.load_daily(2025).sort("day")
    gap = daily.filter(pl.col("day").is_between(dt.date(2025, 3, 3), dt.date(2025, 3, 5)))
    assert gap["estimated"].all() and gap["wh_total"].sum() == 30_000  # the register difference is kept
    older = _register_file(tmp_path / "old.csv", [("2025-02-20", 150.0, 60.0), ("2025-02-21", 155.0, 62.0)])
    ingest_file(older, "registers", store)
    assert store.load_register_state().select("day").item() == dt.date(2025, 3, 6)


def _contacts(rows: list[tuple]) -> pl.DataFrame:
    from wattbill.ingest.schemas import INTERACTION_SCHEMA

    return pl.DataFrame(rows, schema=INTERACTION_SCHEMA, orient="row")


T = dt.datetime


def test_interactions_roundtrip_years_customers_and_upsert(store) -> None:
    from wattbill.ingest.schemas import INTERACTION_SCHEMA

    rows = [
        ("0002", T(2025, 3, 1, 9, 30, 5), "phone", "bill_query", True, None, 300, 4),
        ("0001", T(2024, 12, 31, 23, 59, 59), "app", "payment", False, "robot", None, None),
        ("0001", T(2025, 1, 1, 0, 0, 0), "hall", "complaint", True, None, 1800, 1),
        ("0001", T(2025, 1, 1, 0, 0, 0), "app", "bill_query", True, None, 60, 5),  # same time, other channel
    ]
    store.save_ingest(_batch("i" * 64, kind="interactions", interactions=_contacts(rows)))
    y25 = store.load_interactions(2025)
    assert dict(y25.schema) == INTERACTION_SCHEMA
    assert y25.select("customer_id", "channel").rows() == [("0001", "app"), ("0001", "hall"), ("0002", "phone")]
    assert y25["occurred_at"].to_list()[2] == T(2025, 3, 1, 9, 30, 5)  # seconds kept, no time zone shift
    y24 = store.load_interactions(2024)
    assert y24.rows() == [rows[1]]  # nulls stay nulls; the last second of the year stays in its year
    assert store.load_interactions(None, ["0002"]).height == 1
    assert store.load_interactions().height == 4
    # a later file with the same (customer, time, channel) replaces the row
    fix = [("0002", T(2025, 3, 1, 9, 30, 5), "phone", "bill_query", False, "hall", 320, 2)]
    store.save_ingest(_batch("j" * 64, kind="interactions", interactions=_contacts(fix)))
    got = store.load_interactions(2025, ["0002"])
    assert got.rows() == fix


def test_ingest_interactions_file_into_store(store, tmp_path: Path) -> None:
    f = tmp_path / "contacts.csv"
    f.write_text(
        "户号,时间,渠道,诉求类型,是否解决,转接渠道,处理时长(秒),满意度\n"
        "0001,2025-02-03 10:00:00,营业厅,bill_query,是,,600,5\n"
        "0001,2025-02-03 10:00:00,hall,bill_query,是,,600,5\n",
        encoding="utf-8",
    )
    rep = ingest_file(f, "interactions", store)
    # 营业厅 is the export's name of the hall: the two rows are one contact
    assert (rep.rows, rep.loaded, rep.quarantined, rep.duplicates) == (2, 1, 0, 1)
    assert store.load_interactions(2025)["channel"].to_list() == ["hall"]
    assert store.load_interactions(2025)["handle_seconds"].to_list() == [600]
    assert ingest_file(f, "interactions", store).already_loaded


def test_generation_changes_with_every_write(store) -> None:
    """``generation()`` (the statement service's cache key) changes when bills or labels are saved."""
    before = store.generation()
    assert store.generation() == before
    bills, months = _bills()
    store.save_bills(2025, bills, months, "test")
    after_bills = store.generation()
    assert after_bills != before
    store.save_labels(2025, None, pl.DataFrame({"customer_id": ["0001"], "code": ["x"], "evidence": ["{}"],
                                                "saving_fen": [None]}, schema_overrides={"saving_fen": pl.Int64}))
    assert store.generation() != after_bills


def test_long_lists_of_customers_read_the_same_rows_as_a_filter(store) -> None:
    """A bill run asks for a chunk of thousands of customers (the embedded store then scans the ids'
    range and looks them up once per customer: ``SCAN_IS_IN_MAX``): the rows are those of a plain
    filter of what was written, for a block of consecutive ids, a sparse list, ids with no rows and a
    short list, from daily rows written in several streamed pieces, payments and bills."""
    n = 2_600
    ids = [f"{c:05d}" for c in range(n)]
    daily = _daily([(cid, f"m{cid}", D(2024, 3, 1) + dt.timedelta(days=d), 10 * k + d, None, None, None, None,
                     d == 1) for k, cid in enumerate(ids) for d in range(3)])
    store.save_ingest(_batch("d" * 64, iter([daily.slice(0, 2_000), daily.slice(2_000, 3_000),
                                            daily.slice(5_000)])))
    pay = pl.DataFrame([(cid, "2024-03", D(2024, 4, 1), None, k, "app") for k, cid in enumerate(ids)],
                       schema=PAYMENT_SCHEMA, orient="row")
    store.save_ingest(_batch("e" * 64, kind="payments", payments=pay))
    bills = pl.DataFrame({"customer_id": ids, "tariff": "t1", "kwh_total": [float(k) for k in range(n)],
                          "charge_fen": list(range(n))})
    store.save_bills(2024, bills, pl.DataFrame(), "run")
    asks = {
        "block": ids[700:2_300],
        "sparse": ids[::2][::-1],  # every other id, in reverse order
        "with unknown ids": ids[1_000:2_200] + [f"x{c}" for c in range(300)] + ["00000"],
        "short": [ids[5], ids[2_500], "nobody"],
        "none known": [f"y{c}" for c in range(1_500)],
    }
    keys = ["customer_id", "meter_id", "day"]
    for what, ask in asks.items():
        want = daily.filter(pl.col("customer_id").is_in(ask))
        got = store.load_daily(2024, ask)
        assert got.equals(want.sort(keys)), what
        assert store.load_daily(2024, ask, sort=False).sort(keys).equals(want.sort(keys)), what
        assert store.load_payments(customer_ids=ask)["customer_id"].to_list() == sorted(set(ask) & set(ids)), what
        got_bills = store.load_bills(2024, ask)  # (a frame without columns when none is stored)
        billed = got_bills["customer_id"].to_list() if got_bills.height else []
        assert sorted(billed) == sorted(set(ask) & set(ids)), what


def test_daily_columns_are_the_full_rows_columns(store) -> None:
    """``load_daily(columns=...)`` (the bill run's last year) gives the same rows as the full read,
    with only those columns in ``DAILY_SCHEMA``'s order; a column without ``customer_id`` or not in
    the schema is refused."""
    store.save_ingest(_batch("a" * 64, _daily(ROWS)))
    cols = ["wh_total", "day", "customer_id"]
    for ids in (None, ["0002", "0001"]):
        full = store.load_daily(2024, ids)
        got = store.load_daily(2024, ids, columns=cols)
        assert got.columns == ["customer_id", "day", "wh_total"]
        assert got.equals(full.select("customer_id", "day", "wh_total"))
        loose = store.load_daily(2024, ids, sort=False, columns=cols)
        assert loose.sort("customer_id", "day").equals(got)
    assert store.load_daily(2030, columns=cols).columns == ["customer_id", "day", "wh_total"]
    for bad in (["day", "wh_total"], ["customer_id", "kwh"]):
        with pytest.raises(ValueError, match="customer_id"):
            store.load_daily(2024, columns=bad)


def test_bills_saved_with_hashes_the_caller_computed(store) -> None:
    """``save_bills(..., hashes=)`` (the bill run hashes the next chunk while one is saved) stores the same
    versions as hashing in the store; hashes that lack a bill are refused and store nothing."""
    bills, months = _bills()
    hashes = content_hashes(bills, months)
    r1 = store.save_bills(2024, bills, months, "first run", hashes)
    assert r1.sort("customer_id")["new_version"].to_list() == [True, True]
    assert store.save_bills(2024, bills, months, "same again")["new_version"].to_list() == [False, False]
    b3, m3 = _bills(kwh=9.0)
    assert store.save_bills(2024, b3, m3, "correction", content_hashes(b3, m3).reverse()).sort(
        "customer_id")["version"].to_list() == [2, 1]
    with pytest.raises(ValueError, match="content hash"):
        store.save_bills(2024, b3, m3, "half", content_hashes(b3, m3).head(1))
    assert store.load_bills(2024, all_versions=True).height == 3
    stored = store.load_bills(2024).sort("customer_id")
    assert stored["content_hash"].to_list() == content_hashes(b3, m3).sort("customer_id")["content_hash"].to_list()


def test_a_year_without_bills_still_names_its_columns(store) -> None:
    """``load_bills``, ``load_bill_months`` and ``load_labels`` of a year without any return their key
    columns without rows, as every other ``load_*`` does (a frame without columns failed an analyst's first
    ``filter``)."""
    from wattbill.store.base import BILL_KEYS_SCHEMA, LABEL_KEYS_SCHEMA, MONTH_KEYS_SCHEMA

    for all_versions in (False, True):
        empty = store.load_bills(2024, all_versions=all_versions)
        assert empty.height == 0 and dict(empty.schema) == BILL_KEYS_SCHEMA
    assert dict(store.load_bill_months(2024).schema) == MONTH_KEYS_SCHEMA
    assert dict(store.load_labels(2024).schema) == LABEL_KEYS_SCHEMA
    bills, months = _bills()
    store.save_bills(2024, bills, months, "first run")
    assert store.load_bills(2025).filter(pl.col("customer_id") == "0001").height == 0
    assert store.load_bills(2024, ["0009"]).select("customer_id", "version").height == 0
    assert store.load_bill_months(2024, ["0009"]).height == 0 and "month" in store.load_bill_months(2024, ["0009"]).columns
