"""The notebook API: wattbill's stages on polars frames, without a store or a command line.

Each function is the path the bill run itself takes (``wattbill.ingest``'s VEE, ``densify``, the
tariff kernels, ``diagnose``, the label rules, the bill document), called on frames you hold::

    import wattbill
    reads = wattbill.validate_reads(frame_or_path)           # .daily, .quarantine, .findings, .report
    customers = wattbill.validate_reads(path, kind="customers").rows
    year = wattbill.bill_year(reads.daily, customers, 2025)  # .bills, .months, .not_billed
    features = wattbill.diagnose(reads.daily, customers, 2025, payments=payments)
    labels = wattbill.label(features)                        # .assigned, .withheld
    doc = wattbill.bill_document("0000000001", customers, year, features, labels, payments)
    pdf = wattbill.render_pdf(doc)                           # bytes; needs the [pdf] extra

Frames follow ``docs/interfaces.md``: ``DAILY_SCHEMA``, ``CUSTOMER_SCHEMA``, ``PAYMENT_SCHEMA``; money
is integer fen, energy integer Wh. Nothing here prints, reads the environment, or writes outside a
temporary folder. Errors are :class:`wattbill.errors.WattbillError` (one line).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from wattbill.errors import UnknownCustomer

__all__ = [
    "LabelSet",
    "Validated",
    "YearBills",
    "bill_document",
    "bill_year",
    "diagnose",
    "label",
    "render_pdf",
    "validate_reads",
]


@dataclass
class Validated:
    """What validation made of one input (a frame or a file).

    Attributes
    ----------
    rows : pl.DataFrame
        The accepted rows: ``DAILY_SCHEMA`` for reads (``registers``, ``consumption``) [Wh],
        ``CUSTOMER_SCHEMA`` for customers, ``PAYMENT_SCHEMA`` for payments [fen].
    quarantine : pl.DataFrame
        ``QUARANTINE_SCHEMA``: each refused row with its ``code`` (namespaced) and ``reason``.
    findings : pl.DataFrame
        ``FINDING_SCHEMA``: what VEE noticed and kept (estimated gaps, meter exchanges, spikes).
    report : wattbill.ingest.IngestReport
        The counts; ``rows == loaded + quarantined + duplicates``.
    """

    rows: pl.DataFrame
    quarantine: pl.DataFrame
    findings: pl.DataFrame
    report: Any

    @property
    def daily(self) -> pl.DataFrame:
        """The accepted daily rows (``DAILY_SCHEMA``) of reads; the same frame as ``rows``."""
        return self.rows


class _Collect:
    """The store side of ``ingest_file`` for validation only: nothing loaded before, keep the batch."""

    def __init__(self) -> None:
        self.batch: Any = None

    def ledger_get(self, sha256: str) -> None:
        return None

    def load_register_state(self, customer_ids: Any = None) -> None:
        return None

    def load_daily_between(self, first: Any, last: Any, customer_ids: Any = None) -> pl.DataFrame:
        from wattbill.ingest.schemas import DAILY_SCHEMA

        return pl.DataFrame(schema=DAILY_SCHEMA)

    def load_findings(self, customer_ids: Any = None) -> pl.DataFrame:
        from wattbill.ingest.schemas import FINDING_SCHEMA

        return pl.DataFrame(schema=FINDING_SCHEMA)

    def load_customers(self, customer_ids: Any = None) -> pl.DataFrame:
        from wattbill.ingest.schemas import CUSTOMER_SCHEMA

        return pl.DataFrame(schema=CUSTOMER_SCHEMA)

    def load_payments(self, year: Any = None, customer_ids: Any = None) -> pl.DataFrame:
        from wattbill.ingest.schemas import PAYMENT_SCHEMA

        return pl.DataFrame(schema=PAYMENT_SCHEMA)

    def load_interactions(self, year: Any = None, customer_ids: Any = None) -> pl.DataFrame:
        from wattbill.ingest.schemas import INTERACTION_SCHEMA

        return pl.DataFrame(schema=INTERACTION_SCHEMA)

    def save_ingest(self, batch: Any) -> None:
        self.batch = batch


def validate_reads(source: pl.DataFrame | str | Path, kind: str = "registers", *,
                   today: dt.date | None = None) -> Validated:
    """Validate, estimate and edit (VEE) one input: meter reads, customers or payments.

    The same path as ``wattbill ingest`` (``wattbill.ingest.ingest_file``): a frame is written to a
    temporary Parquet file first, so its columns may use any of the accepted headers (``total`` or
    ``正向有功总``, ``read_date`` or ``日期``, ...) and any types that the file readers accept.

    Parameters
    ----------
    source : pl.DataFrame or str or pathlib.Path
        The rows, or a CSV / Parquet file.
    kind : {"registers", "consumption", "customers", "payments"}
        Cumulative register reads [kWh] (default), daily consumption [kWh], customers or payments
        [yuan].
    today : datetime.date, optional
        Reads dated after this day are quarantined (default: today).

    Returns
    -------
    Validated
        ``rows`` (``daily`` for reads), ``quarantine``, ``findings`` and the ``report``.

    Raises
    ------
    wattbill.errors.IngestError
        An input that cannot be read at all (missing columns, not CSV or Parquet, empty).

    References
    ----------
    The VEE rules are those of ``wattbill.ingest.vee`` (``docs/interfaces.md``, "ingest").
    """
    from wattbill.ingest import ingest_file
    from wattbill.ingest.schemas import (
        CUSTOMER_SCHEMA,
        DAILY_SCHEMA,
        FINDING_SCHEMA,
        PAYMENT_SCHEMA,
        QUARANTINE_SCHEMA,
    )

    sink = _Collect()
    with tempfile.TemporaryDirectory(prefix="wattbill-validate-") as tmp:
        if isinstance(source, pl.DataFrame):
            path = Path(tmp) / "frame.parquet"
            source.write_parquet(path)
        else:
            path = Path(source)
        report = ingest_file(path, kind, sink, today=today)
        batch = sink.batch
        if kind in ("registers", "consumption"):
            daily = batch.daily
            rows = daily if isinstance(daily, pl.DataFrame) else pl.concat(list(daily), how="vertical_relaxed") \
                if daily is not None else pl.DataFrame(schema=DAILY_SCHEMA)
        elif kind == "customers":
            rows = batch.customers if batch.customers is not None else pl.DataFrame(schema=CUSTOMER_SCHEMA)
        else:
            rows = batch.payments if batch.payments is not None else pl.DataFrame(schema=PAYMENT_SCHEMA)
        quarantine = batch.quarantine if batch.quarantine is not None else pl.DataFrame(schema=QUARANTINE_SCHEMA)
        findings = batch.findings if batch.findings is not None else pl.DataFrame(schema=FINDING_SCHEMA)
    return Validated(rows, quarantine, findings, report)


@dataclass
class YearBills:
    """The bills of a year.

    Attributes
    ----------
    bills : pl.DataFrame
        One row per billed customer: ``customer_id``, ``year``, ``tariff``, ``kwh_total``,
        ``kwh_<register>`` and ``kwh_tier<k>`` (Decimal [kWh]), ``charge_fen`` [fen], ``charge_total``
        (Decimal [yuan]), ``estimated_days``, ``missing_days`` (open days without a read, which the bill
        cannot price [days]) and ``missing_ranges`` (JSON ``[[first, last], ...]`` of those days).
    months : pl.DataFrame
        The same per month (``month`` 1..12).
    not_billed : pl.DataFrame
        ``NOT_BILLED_SCHEMA`` (``customer_id``, ``year``, ``code``, ``detail``, ``evidence``): households
        that could not be billed (a day beyond what a connection can draw, more than
        ``max_missing_days`` days without a read, an unknown tariff, a register without a price), each with its reason code and evidence, as the bill run reports them; the
        others are billed.
    year : int
    """

    bills: pl.DataFrame
    months: pl.DataFrame
    not_billed: pl.DataFrame
    year: int


def _catalog(catalog: Any) -> Any:
    if catalog is not None:
        return catalog
    from wattbill.tariffs import load_catalog

    return load_catalog()


def bill_year(
    daily: pl.DataFrame, customers: pl.DataFrame, year: int, *, catalog: Any = None, max_missing_days: int | None = None,
) -> YearBills:
    """Bill ``year`` for every customer of ``customers`` under their tariff (exact, integer fen).

    Parameters
    ----------
    daily : pl.DataFrame
        ``DAILY_SCHEMA`` rows [Wh] (other years and unknown customers are ignored).
    customers : pl.DataFrame
        ``CUSTOMER_SCHEMA`` rows, one per customer (``tariff``, ``household_size``, ``opened_on``,
        ``closed_on`` are used).
    year : int
        The bill year.
    catalog : wattbill.tariffs.Catalog, optional
        The tariffs (default: the shipped catalogue).
    max_missing_days : int, optional
        The most open days without a read a bill may leave out [days] (default: the setting
        ``bill_max_missing_days``, 31); a household with more is in ``not_billed``
        (``wattbill.bill.incomplete_reads``), as in the bill run.

    Returns
    -------
    YearBills

    Raises
    ------
    wattbill.errors.NothingToBill
        ``customers`` is empty.

    References
    ----------
    The tier split follows NREL SAM's Utilityrate5 and the tariff notices cited in each tariff file;
    every charge equals ``wattbill.tariffs.reference`` (exact ``Decimal``) to the fen.
    """
    from wattbill.diagnostics import densify
    from wattbill.errors import NothingToBill
    from wattbill.pipeline import bill_chunk, not_billed_frame, screen_daily

    if customers.height == 0:
        raise NothingToBill("no customers to bill")
    daily, failures = screen_daily(daily, year)  # the bill run's rule: a day no connection can draw
    if failures:
        customers = customers.filter(~pl.col("customer_id").is_in([f["customer_id"] for f in failures]))
    dense = densify(daily, customers, year, with_regs=True)
    chunk = bill_chunk(customers, dense, _catalog(catalog), year, max_missing_days)
    return YearBills(chunk.bills, chunk.months, not_billed_frame(failures + chunk.failures), year)


def diagnose(daily: pl.DataFrame, customers: pl.DataFrame, year: int, *,
             daily_last_year: pl.DataFrame | None = None, payments: pl.DataFrame | None = None,
             catalog: Any = None) -> pl.DataFrame:
    """The usage diagnosis of every customer: ``diagnostics.FEATURES``, with peers and the tariff what-if.

    Parameters
    ----------
    daily : pl.DataFrame
        ``DAILY_SCHEMA`` rows of ``year`` [Wh].
    customers : pl.DataFrame
        ``CUSTOMER_SCHEMA`` rows; peer groups are formed among them.
    year : int
    daily_last_year : pl.DataFrame, optional
        ``DAILY_SCHEMA`` rows of ``year - 1`` (for the year-over-year features).
    payments : pl.DataFrame, optional
        ``PAYMENT_SCHEMA`` rows (for the payment features: late payments, channels).
    catalog : wattbill.tariffs.Catalog, optional
        The tariffs (default: the shipped catalogue).

    Returns
    -------
    pl.DataFrame
        One row per customer, in the order of ``customers``; columns ``diagnostics.FEATURES``
        (units in ``diagnostics.features.FEATURE_DOCS``).

    References
    ----------
    The rules and their constants are ``diagnostics.features.Params`` (each with its source).
    """
    from wattbill import diagnostics, insight
    from wattbill.diagnostics import densify
    from wattbill.ingest.schemas import DAILY_SCHEMA, PAYMENT_SCHEMA

    dense = densify(daily, customers, year, with_regs=True)
    last = daily_last_year if daily_last_year is not None else pl.DataFrame(schema=DAILY_SCHEMA)
    pays = payments if payments is not None else pl.DataFrame(schema=PAYMENT_SCHEMA)
    features = insight.diagnose_chunk(customers, daily, last, dense, pays, _catalog(catalog), year)
    return diagnostics.add_peers(features)


@dataclass
class LabelSet:
    """Behaviour labels of every household.

    Attributes
    ----------
    assigned : pl.DataFrame
        ``labels.ASSIGNED_SCHEMA``: ``customer_id``, ``code``, ``evidence`` (JSON), ``saving_fen`` [fen].
    withheld : pl.DataFrame
        ``labels.WITHHELD_SCHEMA``: ``customer_id``, ``code``, ``reason`` where too little data decides.
    """

    assigned: pl.DataFrame
    withheld: pl.DataFrame

    def of(self, customer_id: str) -> list[str]:
        """The label codes of one household, in catalogue order."""
        return self.assigned.filter(pl.col("customer_id") == customer_id)["code"].to_list()


def label(features: pl.DataFrame) -> LabelSet:
    """Apply the label catalogue's rules (``wattbill/labels/labels.toml``) to :func:`diagnose`'s features.

    Parameters
    ----------
    features : pl.DataFrame
        The output of :func:`diagnose`.

    Returns
    -------
    LabelSet
    """
    from wattbill.labels import assign_labels

    assigned, withheld = assign_labels(features)
    return LabelSet(assigned, withheld)


def bill_document(customer_id: str, customers: pl.DataFrame, bills: YearBills, features: pl.DataFrame,
                  labels: LabelSet, payments: pl.DataFrame | None = None, *, language: str | None = None,
                  catalog: Any = None) -> Any:
    """The annual bill of one household as a document (every figure formatted; no PDF yet).

    Parameters
    ----------
    customer_id : str
    customers : pl.DataFrame
        ``CUSTOMER_SCHEMA`` rows (holding ``customer_id``).
    bills : YearBills
        From :func:`bill_year`.
    features : pl.DataFrame
        From :func:`diagnose`.
    labels : LabelSet
        From :func:`label`.
    payments : pl.DataFrame, optional
        ``PAYMENT_SCHEMA`` rows (the payments table of the bill).
    language : {"zh", "en"}, optional
        Default: the customer's ``language``, else Chinese.

    Returns
    -------
    wattbill.bills.BillDocument

    Raises
    ------
    wattbill.errors.UnknownCustomer
        ``customer_id`` has no bill in ``bills`` (see ``bills.not_billed`` for why).
    """
    from wattbill import insight
    from wattbill.ingest.schemas import PAYMENT_SCHEMA

    bill = bills.bills.filter(pl.col("customer_id") == customer_id)
    if bill.height == 0:
        raise UnknownCustomer(f"customer {customer_id!r} has no bill for {bills.year}")
    cust = customers.filter(pl.col("customer_id") == customer_id)
    if language is not None:
        cust = cust.with_columns(pl.lit(language).alias("language"))
    pays = payments.filter(pl.col("customer_id") == customer_id) if payments is not None \
        else pl.DataFrame(schema=PAYMENT_SCHEMA)
    docs = insight.documents(cust, bill, bills.months, features, labels.assigned, pays, _catalog(catalog),
                             bills.year)
    return docs[0]


def render_pdf(document: Any) -> bytes:
    """The PDF of one bill document (needs the ``[pdf]`` extra: WeasyPrint).

    Parameters
    ----------
    document : wattbill.bills.BillDocument
        From :func:`bill_document`.

    Returns
    -------
    bytes
        A PDF/UA-1 file, fonts subset and embedded.

    Raises
    ------
    wattbill.errors.MissingExtra
        WeasyPrint is not installed.
    """
    from wattbill.bills.render import render_pdf as _render

    return _render(document)

