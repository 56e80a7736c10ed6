"""Where a customer's statement (the bill PDF) lives in an output folder: one rule, used by the bill run,
recalculation, the demo and the statement service.

``<out>/pdf/<year>/<shard>/<customer_id>_v<version>.pdf``, where ``shard`` is the first three hex digits
of the SHA-256 of the customer id: 4,096 folders, so 40M households put about 10,000 files in a folder
(no folder holds millions of files), and a customer's folder is computed, never listed. The bill version
is in the name: a statement is rendered once per version, a recalculation's new version gets its own file
(the older one is removed when the new one is written), and a PDF never shows another version's figures.
Files are written under ``<out>/pdf/<year>/.partial/`` and renamed into their shard, so a process killed
mid-write leaves its debris in that one folder, which the next run empties.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

SHARD_DIGITS = 3
_SAFE_ID = re.compile(r"^[0-9A-Za-z_.-]{1,64}$")


def shard_of(customer_id: str) -> str:
    """The shard folder of ``customer_id``: the first three hex digits of its SHA-256."""
    return hashlib.sha256(customer_id.encode()).hexdigest()[:SHARD_DIGITS]


def year_dir(out_dir: Path, year: int) -> Path:
    """``<out>/pdf/<year>``."""
    return Path(out_dir) / "pdf" / str(int(year))


def statement_path(out_dir: Path, year: int, customer_id: str, version: int) -> Path:
    """The PDF of ``customer_id``'s bill of ``year`` at bill ``version``.

    Raises
    ------
    ValueError
        ``customer_id`` is not a plain identifier (never a path built from unchecked input).
    """
    if not _SAFE_ID.match(customer_id) or customer_id in (".", ".."):
        raise ValueError(f"not a customer id: {customer_id!r}")
    return year_dir(out_dir, year) / shard_of(customer_id) / f"{customer_id}_v{int(version)}.pdf"


def partial_dir(out_dir: Path, year: int) -> Path:
    """Where statements are written before they are renamed into their shard."""
    return year_dir(out_dir, year) / ".partial"


def clear_partial(out_dir: Path, year: int) -> int:
    """Remove what an interrupted run left half-written; returns how many files."""
    folder = partial_dir(out_dir, year)
    n = 0
    if folder.is_dir():
        for f in folder.iterdir():
            f.unlink(missing_ok=True)
            n += 1
        folder.rmdir()
    return n


def write_statement(out_dir: Path, year: int, customer_id: str, version: int, data: bytes) -> Path:
    """Write a statement atomically (``.partial`` then rename) and remove the customer's older versions."""
    target = statement_path(out_dir, year, customer_id, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = partial_dir(out_dir, year)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{target.name}.{os.getpid()}"
    tmp.write_bytes(data)
    os.replace(tmp, target)
    for older in range(1, int(version)):
        statement_path(out_dir, year, customer_id, older).unlink(missing_ok=True)
    return target


def latest_statement(out_dir: Path, year: int, customer_id: str) -> Path | None:
    """The statement of ``customer_id``'s newest rendered bill version of ``year``, or None."""
    folder = statement_path(out_dir, year, customer_id, 1).parent
    found = [(int(p.stem.rsplit("_v", 1)[1]), p) for p in folder.glob(f"{customer_id}_v*.pdf")
             if p.stem.rsplit("_v", 1)[1].isdigit()]
    return max(found)[1] if found else None


def statement_years(out_dir: Path) -> list[int]:
    """The years that have a statement folder, newest first."""
    root = Path(out_dir) / "pdf"
    return sorted((int(p.name) for p in root.glob("*") if p.name.isdigit()), reverse=True) if root.is_dir() else []


def all_statements(out_dir: Path, year: int) -> list[Path]:
    """Every statement of ``year`` (for tests and tools; walks the shards)."""
    return sorted(year_dir(out_dir, year).glob("[0-9a-f][0-9a-f][0-9a-f]/*.pdf"))
