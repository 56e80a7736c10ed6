"""Ingest: readers for reads, customers and payments; VEE; registers -> daily consumption.

``ingest_file(path, kind, store) -> IngestReport`` is the entry point (see docs/interfaces.md).
"""

from ingest.core import ingest_file
from ingest.errors import BadFileError, IngestError
from ingest.schemas import IngestBatch, IngestReport

__all__ = ["BadFileError", "IngestBatch", "IngestError", "IngestReport", "ingest_file"]
