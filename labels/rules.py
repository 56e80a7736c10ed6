"""Rules: the catalogue's conditions applied to the features, vectorised with polars."""

from __future__ import annotations

from typing import Any

import polars as pl

from wattbill.labels.catalogue import Condition, LabelDef, load_catalogue

ASSIGNED_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(),
    "code": pl.Utf8(),
    "evidence": pl.Utf8(),
    "saving_fen": pl.Int64(),
}
WITHHELD_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.Utf8(),
    "code": pl.Utf8(),
    "reason": pl.Utf8(),
}


def _expr(c: Condition) -> pl.Expr:
    col = pl.col(c.feature)
    v = c.value
    match c.op:
        case "<":
            return col < v
        case "<=":
            return col <= v
        case ">":
            return col > v
        case ">=":
            return col >= v
        case "==":
            return col == v
        case "!=":
            return col != v
        case "is_not_null":
            return col.is_not_null()
        case "is_null":
            return col.is_null()
    raise ValueError(c.op)  # pragma: no cover - validated by the catalogue


def _first_failing(conds: tuple[Condition, ...]) -> pl.Expr:
    """Reason of the first failing condition (null when all hold)."""
    out: Any = pl.when(pl.lit(False)).then(pl.lit(None, pl.Utf8))
    for c in conds:
        out = out.when(~_expr(c).fill_null(False)).then(pl.lit(c.reason))
    return out.otherwise(pl.lit(None, pl.Utf8))


def _evidence(d: LabelDef) -> pl.Expr:
    fields = []
    for e in d.evidence:
        col = pl.col(e)
        fields.append(col.round(4).alias(e) if e.endswith(("_pct", "_ratio", "_w", "_wh")) or e.startswith(
            ("share_", "pay_share", "pay_delay_days_mean", "pay_late_share")) else col.alias(e))
    if not fields:
        return pl.lit("{}")
    return pl.struct(fields).struct.json_encode()


def _rule_exprs(d: LabelDef, features: pl.DataFrame) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(assigned: bool, withheld reason: str|null, evidence JSON) for one label."""
    needs_reason = _first_failing(d.needs)
    parts = []
    for c in d.when:
        e = _expr(c)
        parts.append(e.fill_null(False) if c.feature in d.null_means_no else
                     e.fill_null(True) if c.feature in d.null_means_yes else e)
    rule = pl.all_horizontal(parts) if len(parts) > 1 else parts[0]
    missing = [c.feature for c in d.when if c.feature not in d.null_means_no and c.feature not in d.null_means_yes
               and c.op not in ("is_null", "is_not_null")]
    null_reason = pl.concat_str(
        [pl.lit("no data for "),
         pl.concat_str([pl.when(pl.col(f).is_null()).then(pl.lit(f)) for f in missing], separator=", ",
                       ignore_nulls=True)]) if missing else pl.lit("no data")
    deny_reason = _first_failing(d.deny_needs)
    reason = (pl.when(needs_reason.is_not_null()).then(needs_reason)
              .when(rule.is_null()).then(null_reason)
              .when(~rule).then(deny_reason)
              .otherwise(pl.lit(None, pl.Utf8)))
    assigned = needs_reason.is_null() & rule.fill_null(False)
    return assigned, reason, _evidence(d)


def assign_labels(features: pl.DataFrame, catalogue: list[LabelDef] | None = None
                  ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply every label's rule to every household.

    Parameters
    ----------
    features : pl.DataFrame
        The output of ``diagnostics.diagnose`` (columns of ``diagnostics.FEATURES``).
    catalogue : list[LabelDef] or None
        ``load_catalogue()`` by default.

    Returns
    -------
    (assigned, withheld) : (pl.DataFrame, pl.DataFrame)
        ``assigned``: ``customer_id, code, evidence`` (JSON object of the label's evidence features,
        in their units: shares 0..1, Wh, W, fen, dates ISO), ``saving_fen`` (Int64 [fen], null where
        the label has no saving). ``withheld``: ``customer_id, code, reason`` for labels that could
        not be decided (too little data); a household with neither row simply does not have the
        label. Rows are ordered by customer (as in ``features``) and catalogue order.
    """
    cat = catalogue if catalogue is not None else load_catalogue()
    if features.height == 0 or not cat:
        return pl.DataFrame(schema=ASSIGNED_SCHEMA), pl.DataFrame(schema=WITHHELD_SCHEMA)
    base = features.with_row_index("__row")
    assigned_parts = []
    withheld_parts = []
    for k, d in enumerate(cat):
        a, r, ev = _rule_exprs(d, features)
        saving = pl.col(d.saving).cast(pl.Int64) if d.saving else pl.lit(None, pl.Int64)
        frame = base.select(
            "__row", pl.col("customer_id"), a.alias("__a"), r.alias("reason"), ev.alias("evidence"),
            saving.alias("saving_fen"),
        )
        assigned_parts.append(frame.filter(pl.col("__a")).select(
            "__row", pl.lit(k).alias("__k"), "customer_id", pl.lit(d.code).alias("code"), "evidence",
            "saving_fen"))
        withheld_parts.append(frame.filter(~pl.col("__a") & pl.col("reason").is_not_null()).select(
            "__row", pl.lit(k).alias("__k"), "customer_id", pl.lit(d.code).alias("code"), "reason"))
    assigned = pl.concat(assigned_parts).sort("__row", "__k").drop("__row", "__k")
    withheld = pl.concat(withheld_parts).sort("__row", "__k").drop("__row", "__k")
    return (assigned.select([pl.col(c).cast(t) for c, t in ASSIGNED_SCHEMA.items()]),
            withheld.select([pl.col(c).cast(t) for c, t in WITHHELD_SCHEMA.items()]))
