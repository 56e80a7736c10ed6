"""Errors raised by ``ingest`` for files that cannot be loaded at all.

Row-level problems (a bad value, an impossible date, a conflicting duplicate) are *not* errors: those
rows go to the quarantine with a reason and the rest of the file loads. An ``IngestError`` means the
file as a whole is refused and nothing of it is stored.

Hierarchy::

    IngestError(file, row, column, message)      base; str() is one line naming file, row, column
    ├── BadFileError                             the file cannot be read as the kind asked for
    │   ├── UnsupportedFormatError               neither CSV (UTF-8 text) nor Parquet
    │   ├── EmptyFileError                       no header, or a header and no data rows
    │   ├── MissingColumnsError                  required columns absent (column = first missing)
    │   ├── DuplicateColumnsError                two headers map to the same canonical column
    │   └── TruncatedFileError                   the file ends in the middle of a row / footer
    └── UnknownKindError                         ``kind`` is not registers|consumption|customers|payments|interactions

``wattbill.cli.main`` prints ``str(error)`` and exits with code 1.
"""

from __future__ import annotations

from pathlib import Path

from wattbill.errors import WattbillError


class IngestError(WattbillError):
    """A file that cannot be ingested. ``row`` is the 1-based data row (header excluded) or None."""

    def __init__(
        self,
        file: str | Path | None,
        row: int | None,
        column: str | None,
        message: str,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.row = row
        self.column = column
        self.message = message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = [self.file or "<input>"]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        text = " ".join(str(self.message).split())  # always one line
        return f"{', '.join(where)}: {text}"

    def __reduce__(self):  # picklable across processes
        return (type(self), (self.file, self.row, self.column, self.message))


class BadFileError(IngestError):
    """The file cannot be read as the kind of file asked for."""


class UnsupportedFormatError(BadFileError):
    """Neither CSV (UTF-8 text) nor Parquet."""


class EmptyFileError(BadFileError):
    """No header, or a header without data rows."""


class MissingColumnsError(BadFileError):
    """Required columns are absent."""


class DuplicateColumnsError(BadFileError):
    """Two headers map to the same canonical column."""


class TruncatedFileError(BadFileError):
    """The file ends in the middle of a row (CSV) or lacks its footer (Parquet)."""


class UnknownKindError(IngestError):
    """``kind`` is not one of registers, consumption, customers, payments, interactions."""
