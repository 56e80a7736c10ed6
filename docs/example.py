"""wattbill in a notebook: validate reads, bill a year, diagnose, label, render one bill.

Run it as a script (``python docs/example.py [OUT_DIR]``) or cell by cell in a notebook; the tests run
it (tests/app/test_api.py). Synthetic households stand in for a utility's exports: replace the three
frames with your own (``pl.read_csv(...)``) or pass file paths to ``validate_reads``.
"""

import sys
import tempfile
from pathlib import Path

import polars as pl

import wattbill
from wattbill import synth
from wattbill.errors import MissingExtra

YEAR = 2025
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="wattbill-example-"))
out.mkdir(parents=True, exist_ok=True)

# 1. Inputs: cumulative register reads [kWh], customers, payments [yuan] - as a utility exports them.
data = synth.simulate(30, YEAR, seed=5, years=2)
reads_frame = synth.register_reads(data, seed=5)
customers_frame = data.customers_frame()
payments_frame = synth.payments(data, seed=5)

# 2. Validate: every row is loaded, estimated (flagged), quarantined with a reason, or a duplicate.
reads = wattbill.validate_reads(reads_frame)
customers = wattbill.validate_reads(customers_frame, kind="customers").rows
payments = wattbill.validate_reads(payments_frame, kind="payments").rows
r = reads.report
assert r.rows == r.loaded + r.quarantined + r.duplicates
print(f"reads: {r.rows} rows, {r.loaded} loaded ({r.estimated} estimated), {r.quarantined} quarantined, "
      f"{r.duplicates} duplicates, {reads.findings.height} findings")
print(reads.daily.head(3))

# 3. Bill the year: exact charges in integer fen, per household and month.
daily = reads.daily.filter(pl.col("day").dt.year() == YEAR)
last_year = reads.daily.filter(pl.col("day").dt.year() == YEAR - 1)
year = wattbill.bill_year(daily, customers, YEAR)
print(year.bills.select("customer_id", "tariff", "kwh_total", "charge_fen", "charge_total").head(5))

# 4. Diagnose and label.
features = wattbill.diagnose(daily, customers, YEAR, daily_last_year=last_year, payments=payments)
labels = wattbill.label(features)
print(labels.assigned.group_by("code").len().sort("len", descending=True))

# 5. One household's bill as a document, then as a PDF (the [pdf] extra).
customer_id = year.bills["customer_id"][0]
doc = wattbill.bill_document(customer_id, customers, year, features, labels, payments)
print(f"{customer_id}: {doc.charge_text} yuan; {doc.headline}")
try:
    pdf = wattbill.render_pdf(doc)
except MissingExtra as exc:  # installed without [pdf]
    print(exc)
else:
    path = out / f"{customer_id}.pdf"
    path.write_bytes(pdf)
    print(f"bill: {path} ({len(pdf)} bytes)")
