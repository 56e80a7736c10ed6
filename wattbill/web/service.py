"""What the statement service knows about one customer, read from the store and the bill run's output.

Everything here is synchronous and runs in Starlette's thread pool (never on the event loop). One
``Service`` per process holds one store, opened without schema statements (``open_store(...,
setup=False)``), and caches, per customer, what a page shows. Every cache entry is keyed by the
store's ``generation()`` and the features file's state, so a recalculation is seen on the next
request.

Nothing is recomputed that the bill run computed: the page and the statements show the bill
document (``wattbill.insight.documents`` -> ``bills.build_document``) built from the stored bill,
its months, the stored labels and the features the run kept (``pipeline.save_features``). The
running charge of the year comes from ``wattbill.estimate`` (the tariff kernels of the bill run).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from wattbill.bills import BillDocument
from wattbill.errors import UnknownCustomer, WattbillError
from wattbill.estimate import Running, running_for_customer
from wattbill.ingest.schemas import REGISTERS
from wattbill.pipeline import features_path

MAX_RANGE_DAYS = 800  # the longest date range the daily API answers


class NotFound(WattbillError):
    """Nothing to show (no bill for that year, no such customer): the service answers 404 or 403."""


@dataclass(frozen=True)
class Day:
    """One day of one customer, meters summed: ``wh`` [Wh] total and per register (None without
    time-of-use registers), ``estimated`` when any meter's value of that day was estimated."""

    day: dt.date
    wh: int
    wh_regs: tuple[int | None, ...]
    estimated: bool


@dataclass(frozen=True)
class YearBill:
    """The newest version of one year's bill (a row of ``Store.load_bills``)."""

    year: int
    version: int
    row: dict[str, Any]


@dataclass(frozen=True)
class Account:
    """One customer as the page sees them: their row, their bills (newest year first)."""

    customer: dict[str, Any]
    bills: list[YearBill]

    def bill(self, year: int) -> YearBill:
        for b in self.bills:
            if b.year == year:
                return b
        raise NotFound(f"no statement for {year}")


class Service:
    """Store access and caches of the statement service (one per process).

    Parameters
    ----------
    store_url : str or None
        ``open_store``'s argument (a folder or a ``postgresql://`` URL).
    out_dir : Path
        The bill run's output folder: ``features/<year>.parquet``, ``pdf/<year>/``.
    catalog : tariffs.Catalog or None
        The tariffs (``load_catalog()`` by default).
    today : callable returning a date, optional
        The clock of the running charge (tests pin it).
    """

    def __init__(self, store_url: str | None, out_dir: Path | str, catalog: Any = None,
                 today: Any = None, cache_size: int = 4096) -> None:
        from wattbill.store import open_store

        self.store = open_store(store_url, setup=False, create=False)
        self.out = Path(out_dir)
        if catalog is None:
            from wattbill.tariffs import load_catalog

            catalog = load_catalog()
        self.catalog = catalog
        self.today = today or dt.date.today
        self._cache: OrderedDict[tuple, tuple[str, Any]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def close(self) -> None:
        self.store.close()

    def warm(self) -> None:
        """Load what a first request would otherwise wait for: the PDF renderer (fonts, CSS) and
        the compiled running-charge kernel. Run once at start-up, in a background thread."""
        from wattbill.bills.render import default_renderer

        default_renderer()
        codes = list(self.catalog.codes())
        if codes:
            day = self.today()
            try:
                running_for_customer(self.catalog, {"customer_id": "", "tariff": codes[0]},
                                     pl.DataFrame(schema={"day": pl.Date, "wh_total": pl.Int64,
                                                          **{f"wh_{r}": pl.Int64 for r in REGISTERS}}), day)
            except (WattbillError, KeyError, ValueError):
                pass

    # --- cache -----------------------------------------------------------------------------------

    def generation(self) -> str:
        """Changes whenever the store or a features file changes."""
        try:  # features files are replaced by rename, which changes the folder's mtime
            features = str((self.out / "features").stat().st_mtime_ns)
        except FileNotFoundError:
            features = "-"
        return f"{self.store.generation()}|{features}"

    def cached(self, key: tuple, gen: str, make: Any) -> Any:
        """``make()``'s value for ``key``, kept while the generation is ``gen`` (LRU bounded)."""
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == gen:
                self._cache.move_to_end(key)
                return hit[1]
        value = make()
        with self._lock:
            self._cache[key] = (gen, value)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return value

    # --- reads -----------------------------------------------------------------------------------

    def bill_years(self) -> list[int]:
        """Years the bill run has written output for (features or PDFs), newest first."""
        years: set[int] = set()
        for p in (self.out / "features").glob("*.parquet"):
            if p.stem.isdigit():
                years.add(int(p.stem))
        for p in (self.out / "pdf").glob("*"):
            if p.name.isdigit():
                years.add(int(p.name))
        return sorted(years, reverse=True)

    def account(self, customer_id: str, gen: str | None = None) -> Account:
        """The customer and the newest version of each of their bills.

        Raises
        ------
        UnknownCustomer
            When the store does not hold the customer.
        """
        gen = gen or self.generation()
        return self.cached(("account", customer_id), gen, lambda: self._account(customer_id))

    def _account(self, customer_id: str) -> Account:
        customers = self.store.load_customers([customer_id])
        if customers.height == 0:
            raise UnknownCustomer("unknown customer")
        bills = []
        for year in self.bill_years():
            rows = self.store.load_bills(year, [customer_id])
            if rows.height:
                row = rows.row(rows.height - 1, named=True)
                bills.append(YearBill(year, int(row["version"]), row))
        return Account(customers.row(0, named=True), bills)

    def _features_of(self, year: int, customer_id: str) -> pl.DataFrame:
        """The customer's row of the run's features (sorted file: row groups pruned by statistics)."""
        path = features_path(self.out, year)
        if not path.exists():
            return pl.DataFrame(schema={"customer_id": pl.Utf8})
        return pl.scan_parquet(path).filter(pl.col("customer_id") == customer_id).collect()

    def document(self, customer_id: str, year: int, language: str, gen: str | None = None) -> BillDocument:
        """The bill document of the newest version of ``year`` in ``language`` (page and PDF).

        Raises
        ------
        NotFound
            No bill of ``year`` for the customer.
        """
        gen = gen or self.generation()
        acct = self.account(customer_id, gen)
        bill = acct.bill(year)
        return self.cached(("doc", customer_id, year, bill.version, language), gen,
                            lambda: self._document(acct, bill, language))

    def _document(self, acct: Account, bill: YearBill, language: str) -> BillDocument:
        from wattbill import insight

        cid, year = acct.customer["customer_id"], bill.year
        customers = pl.DataFrame([{**acct.customer, "language": language}])
        bills = pl.DataFrame([bill.row])
        months = self.store.load_bill_months(year, [cid], version=bill.version)
        labels = self.store.load_labels(year, [cid])
        if labels.height and "version" in labels.columns:
            labels = labels.filter(pl.col("version") == bill.version)
        if labels.height == 0:
            labels = pl.DataFrame(schema={"customer_id": pl.Utf8, "code": pl.Utf8, "evidence": pl.Utf8,
                                          "saving_fen": pl.Int64})
        features = self._features_of(year, cid)
        if "version" in features.columns:
            features = features.filter(pl.col("version") == bill.version)
        payments = self.store.load_payments(customer_ids=[cid])
        (doc,) = insight.documents(customers, bills, months, features, labels, payments, self.catalog, year)
        return doc

    def days(self, customer_id: str, first: dt.date, last: dt.date) -> list[Day]:
        """The customer's days from ``first`` through ``last`` (days without a read are absent)."""
        if last < first:
            raise WattbillError("the range ends before it starts")
        if (last - first).days >= MAX_RANGE_DAYS:
            raise WattbillError(f"at most {MAX_RANGE_DAYS} days at a time")
        frames = [self.store.load_daily(y, [customer_id]) for y in range(first.year, last.year + 1)]
        frames = [f for f in frames if f.height]
        if not frames:
            return []
        daily = pl.concat(frames).filter(pl.col("day").is_between(first, last))
        return _days(daily)

    def year_days(self, customer_id: str, year: int, gen: str | None = None) -> list[Day]:
        """Every day of ``year`` the store holds for the customer (cached per generation)."""
        gen = gen or self.generation()
        return self.cached(("days", customer_id, year), gen,
                            lambda: _days(self.store.load_daily(year, [customer_id])))

    def running(self, customer_id: str, through: dt.date, gen: str | None = None) -> Running:
        """The running charge from 1 January of ``through.year`` through ``through``.

        Raises
        ------
        UnknownCustomer
            Unknown customer.
        NothingToBill
            The account is not open that year.
        """
        gen = gen or self.generation()
        acct = self.account(customer_id, gen)

        def make() -> Running:
            daily = self.store.load_daily(through.year, [customer_id])
            return running_for_customer(self.catalog, acct.customer, daily, through)

        return self.cached(("running", customer_id, through), gen, make)

    def current_year(self, customer_id: str, gen: str | None = None) -> tuple[int, dt.date] | None:
        """The year the page's running charge is for and its last day with a read.

        This year if the store holds reads of it, else the newest year with a bill; ``None`` when
        the customer has neither.
        """
        gen = gen or self.generation()
        acct = self.account(customer_id, gen)
        today = self.today()
        years = [today.year] + [b.year for b in acct.bills if b.year != today.year]
        for year in years:
            days = self.year_days(customer_id, year, gen)
            last = max((d.day for d in days if d.day <= today), default=None)
            if last is not None:
                return year, last
        return None


def _days(daily: pl.DataFrame) -> list[Day]:
    if daily.height == 0:
        return []
    per_day = (
        daily.group_by("day")
        .agg(
            pl.col("wh_total").sum(),
            *(pl.when(pl.col(f"wh_{r}").is_null().all()).then(None).otherwise(pl.col(f"wh_{r}").sum())
              .alias(f"wh_{r}") for r in REGISTERS),
            pl.col("estimated").any(),
        )
        .sort("day")
    )
    return [
        Day(r["day"], int(r["wh_total"]), tuple(None if r[f"wh_{k}"] is None else int(r[f"wh_{k}"]) for k in REGISTERS),
            bool(r["estimated"]))
        for r in per_day.iter_rows(named=True)
    ]
