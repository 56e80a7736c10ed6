"""Operators' recalculation: the difference between the bill versions before and after."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from wattbill.formats import format_yuan

COMPARED = ("tariff", "kwh_total", "kwh_sharp", "kwh_peak", "kwh_flat", "kwh_valley", "kwh_tier1", "kwh_tier2",
            "kwh_tier3", "estimated_days", "missing_days", "labels")
#: columns a bill stored before they existed lacks: read as this value
ABSENT_AS = {"missing_days": 0}


def fen_to_text(fen: int) -> str:
    return format_yuan(int(fen), grouping=False)


def diff_versions(before: pl.DataFrame, after: pl.DataFrame) -> Iterator[str]:
    """Lines saying, per customer, which version replaced which and what changed.

    ``before`` and ``after`` are the latest bills (``Store.load_bills``) before and after a run; either
    may be empty (no rows: the store holds no bill of those customers).
    """
    if after.height == 0:
        return
    old = {r["customer_id"]: r for r in before.iter_rows(named=True)} if before.height else {}
    for new in after.sort("customer_id").iter_rows(named=True):
        cid = new["customer_id"]
        prev = old.get(cid)
        if prev is None:
            yield f"{cid}: new bill, version {new['version']}, charge {fen_to_text(new['charge_fen'])} yuan"
            continue
        if prev["version"] == new["version"]:
            yield f"{cid}: unchanged (version {new['version']})"
            continue
        delta = new["charge_fen"] - prev["charge_fen"]
        sign = "+" if delta >= 0 else "-"
        parts = [
            f"charge {fen_to_text(prev['charge_fen'])} -> {fen_to_text(new['charge_fen'])} yuan "
            f"({sign}{fen_to_text(abs(delta))})"
        ]
        for col in COMPARED:
            a, b = (prev.get(col, ABSENT_AS.get(col)), new.get(col, ABSENT_AS.get(col)))
            a, b = (ABSENT_AS.get(col) if a is None else a), (ABSENT_AS.get(col) if b is None else b)
            if a != b:
                if col.startswith("kwh_"):
                    parts.append(f"{col} {a:.3f} -> {b:.3f}")
                else:
                    parts.append(f"{col} {a} -> {b}")
        reason = new.get("reason")
        tail = f" (reason: {reason})" if reason else ""
        yield f"{cid}: version {prev['version']} -> {new['version']}: " + "; ".join(parts) + tail
