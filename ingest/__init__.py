"""Ingest: readers for reads, customers and payments; VEE; registers -> daily consumption.

``ingest_file(path, kind, store) -> IngestReport`` is the entry point (see docs/interfaces.md);
``kind`` is ``registers`` (cumulative register reads, default), ``consumption`` (daily kWh),
``customers``, ``payments`` or ``interactions`` (service contacts, ``ingest.interactions``). The rules of VEE are in ``ingest.vee``'s docstring; the readers
(formats, header aliases, streaming of large files) in ``ingest.readers``; errors in ``ingest.errors``.

Quarantine codes (``QUARANTINE_SCHEMA.code``; the row is not loaded):
``missing_value``, ``non_numeric``, ``negative_value``, ``impossible_date``, ``implausible_date``,
``bad_multiplier``, ``bad_digits``, ``bad_value`` (customers/payments: household size, language,
bill month, channel; interactions: channel, intent, resolved, escalated_to, satisfaction), ``conflicting_duplicate``, ``negative_consumption`` (a register dip that comes
back: a bad read; the days around it are estimated).

Finding codes (``FINDING_SCHEMA.code``; data, not logs; ``evidence`` is a JSON object):
``gap_estimated``, ``rollover``, ``register_reset``, ``meter_exchange``, ``periods_mismatch``, ``spike``.

Counts: for every file ``rows == loaded + quarantined + duplicates``; ``estimated`` counts the daily
rows flagged ``estimated`` (they keep the flag in the store).
"""

from wattbill.ingest.core import ingest_file
from wattbill.ingest.errors import BadFileError, IngestError
from wattbill.ingest.schemas import IngestBatch, IngestReport

__all__ = ["BadFileError", "IngestBatch", "IngestError", "IngestReport", "ingest_file"]
