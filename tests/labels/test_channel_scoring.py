"""Channel labels against the generator's ground truth (``wattbill.synth_channels``), on a plain
population made differently (no label may appear), and one household worked by hand."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from wattbill.diagnostics import FEATURES, household_features
from wattbill.ingest.schemas import INTERACTION_SCHEMA
from wattbill.labels import assign_labels, label_cards, load_catalogue
from wattbill.synth_channels import interactions

N = 4000
YEAR = 2025
MIN_SCORE = 0.9
CODES = ["channel_assisted_simple", "channel_hall_only", "channel_fully_online"]


def _typed(rows: pl.DataFrame) -> pl.DataFrame:
    """The generator's text rows as ``INTERACTION_SCHEMA`` (written here, not by ingest)."""
    return rows.select(
        "customer_id",
        pl.col("occurred_at").str.to_datetime("%Y-%m-%dT%H:%M:%S", time_unit="us"),
        "channel", "intent", pl.col("resolved") == "true",
        pl.when(pl.col("escalated_to") != "").then(pl.col("escalated_to")).alias("escalated_to"),
        pl.col("handle_seconds").cast(pl.Int32), pl.col("satisfaction").cast(pl.Int32),
    )


def _labels(contacts: pl.DataFrame | None, ids: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    feats = household_features(contacts, pl.Series(ids, dtype=pl.Utf8), YEAR)
    full = feats.with_columns([pl.lit(None, t).alias(c) for c, t in FEATURES.items() if c not in feats.columns])
    cat = [d for d in load_catalogue() if d.group == "channel"]
    return assign_labels(full, cat)


@pytest.fixture(scope="module")
def scored():
    ids = np.char.zfill(np.arange(1, N + 1).astype(str), 10)
    rows, truth = interactions(ids, YEAR, seed=20251130, years=2)
    assigned, withheld = _labels(_typed(rows), ids.tolist())
    return truth, assigned, withheld


@pytest.mark.parametrize("code", CODES)
def test_precision_and_recall(scored, code: str) -> None:
    truth, assigned, _ = scored
    t = set(truth.filter(pl.col("behaviour") == code)["customer_id"])
    a = set(assigned.filter(pl.col("code") == code)["customer_id"])
    precision, recall = len(t & a) / max(1, len(a)), len(t & a) / max(1, len(t))
    assert len(t) >= 200, f"{code}: too few households to score ({len(t)})"
    assert precision >= MIN_SCORE and recall >= MIN_SCORE, f"{code}: precision {precision:.3f} recall {recall:.3f}"


def test_quiet_households_are_withheld_not_denied(scored) -> None:
    _, assigned, withheld = scored
    assert set(withheld["reason"]) == {"fewer than 3 contacts with the service channels this year"}
    assert not set(withheld["customer_id"]) & set(assigned["customer_id"])


def test_cards_in_both_languages(scored) -> None:
    _, assigned, _ = scored
    for lang in ("zh", "en"):
        for row in assigned.group_by("code", maintain_order=True).head(2).iter_rows(named=True):
            (card,) = label_cards([row], lang)
            assert card.why and card.what_to_do and "{" not in card.title + card.why + card.what_to_do


def _plain_population(n: int) -> pl.DataFrame:
    """Every household: a bill query in the app, a payment in WeChat, an outage by phone, a complaint
    at the hall, a consultation with the robot, at fixed times: a balanced mix, no preference."""
    pattern = [("app", "bill_query"), ("wechat", "payment"), ("phone", "outage"), ("hall", "complaint"),
               ("robot", "consultation")]
    rows = []
    for i in range(n):
        for k, (ch, it) in enumerate(pattern):
            rows.append((f"P{i:05d}", dt.datetime(YEAR, 1 + k * 2, 1 + i % 28, 9, k), ch, it, True, None, 100, None))
    return pl.DataFrame(rows, schema=INTERACTION_SCHEMA, orient="row")


def test_no_channel_label_on_a_plain_population() -> None:
    contacts = _plain_population(300)
    assigned, withheld = _labels(contacts, contacts["customer_id"].unique().sort().to_list())
    assert assigned.height == 0 and withheld.height == 0


def test_no_data_withholds_every_channel_label() -> None:
    assigned, withheld = _labels(None, ["A", "B"])
    assert assigned.height == 0 and withheld.height == 2 * len(CODES)


def test_one_household_worked_by_hand() -> None:
    rows = [
        ("H", dt.datetime(YEAR, 1, 3, 9), "hall", "bill_query", True, None, 900, 4),
        ("H", dt.datetime(YEAR, 2, 3, 9), "phone", "payment", False, "hall", 300, None),
        ("H", dt.datetime(YEAR, 3, 3, 9), "phone", "application", True, None, 600, 5),
        ("H", dt.datetime(YEAR, 4, 3, 9), "app", "outage", True, None, 60, None),
        ("H", dt.datetime(YEAR - 1, 4, 3, 9), "app", "payment", True, None, 60, None),
        ("H", dt.datetime(YEAR - 1, 5, 3, 9), "wechat", "payment", False, "robot", 60, None),
    ]
    contacts = pl.DataFrame(rows, schema=INTERACTION_SCHEMA, orient="row")
    f = household_features(contacts, pl.Series(["H", "none"]), YEAR).row(0, named=True)
    # 4 contacts this year: hall, phone, phone, app; 3 simple needs, all assisted (1 at the hall)
    assert (f["ch_contacts"], f["ch_contacts_last_year"], f["ch_contacts_change_pct"]) == (4, 2, 100.0)
    assert (f["ch_share_hall"], f["ch_share_phone"], f["ch_share_online"]) == (0.25, 0.5, 0.25)
    assert (f["ch_simple_contacts"], f["ch_simple_assisted"], f["ch_simple_hall"]) == (3, 3, 1)
    assert f["ch_simple_assisted_share"] == 1.0 and f["ch_ebill_contacts"] == 1
    assert f["ch_share_online_last_year"] == 1.0 and f["ch_online_change_pp"] == -75.0
    assert f["ch_self_resolved_rate"] == 1.0 and f["ch_escalation_rate"] == 0.25
    assert f["ch_channel_main"] == "phone"
    assert json.loads(f["ch_channel_mix"]) == {"app": 0.25, "hall": 0.25, "phone": 0.5}
    assigned, _ = _labels(contacts, ["H"])
    assert assigned["code"].to_list() == ["channel_assisted_simple"]
    none = household_features(contacts, pl.Series(["none"]), YEAR).row(0, named=True)
    assert none["ch_contacts"] == 0 and none["ch_share_online"] is None
