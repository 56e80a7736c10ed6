"""Scoring: labels against the synthetic generator's ground truth (precision and recall >= 0.9).

A few thousand households are simulated in memory (``wattbill.synth.simulate``, two years), billed
with ``tariffs.bill_households`` under their tariff and its alternatives, diagnosed and labelled.
Recall is strict: a withheld label counts as a miss.
"""

from __future__ import annotations

import polars as pl
import pytest

from wattbill.diagnostics import diagnose, tariff_what_if
from wattbill.labels import assign_labels, label_cards, load_catalogue

N = 4000
YEAR = 2025
MIN_SCORE = 0.9


@pytest.fixture(scope="module")
def scored():
    from wattbill import synth, tariffs

    data = synth.simulate(N, YEAR, seed=20251123, years=2)
    customers = data.customers_frame()
    daily = data.daily_frame(YEAR)
    last = data.daily_frame(YEAR - 1)
    payments = synth.payments(data, 20251123).with_columns(
        # "123.45" yuan -> 12345 fen, exactly
        (pl.col("amount").str.split(".").list.get(0).cast(pl.Int64) * 100
         + pl.col("amount").str.split(".").list.get(1).cast(pl.Int64)).alias("amount_fen")
    ).drop("amount")
    bills, alternatives = tariff_what_if(tariffs.load_catalog(), daily, customers, YEAR)
    features = diagnose(daily, last, customers, payments, bills, alternatives, YEAR)
    assigned, withheld = assign_labels(features, load_catalogue())
    return data.truth_frame(), features, assigned, withheld


def _score(truth: pl.DataFrame, assigned: pl.DataFrame, code: str) -> tuple[float, float, int, int]:
    t = set(truth.filter(pl.col("behaviour") == code)["customer_id"])
    a = set(assigned.filter(pl.col("code") == code)["customer_id"])
    tp = len(t & a)
    return tp / max(1, len(a)), tp / max(1, len(t)), len(t), len(a)


LABELS_WITH_TRUTH = ["peak_heavy", "valley_smart", "summer_cooling", "winter_heating", "high_baseload",
                     "possible_vacancy", "usage_spike", "late_payer", "prompt_payer", "counter_payer",
                     "online_payer", "auto_debit"]


@pytest.mark.slow
def test_every_behaviour_with_truth_has_a_label(scored):
    truth, *_ = scored
    codes = {d.code for d in load_catalogue()}
    behaviours = set(truth["behaviour"]) - {"missing_days", "meter_exchange", "register_rollover"}
    assert behaviours <= codes
    assert set(LABELS_WITH_TRUTH) == behaviours


@pytest.mark.slow
@pytest.mark.parametrize("code", LABELS_WITH_TRUTH)
def test_precision_and_recall(scored, code):
    truth, _, assigned, _ = scored
    precision, recall, n_truth, n_assigned = _score(truth, assigned, code)
    assert n_truth >= 50, f"{code}: too few households with the behaviour to score ({n_truth})"
    assert precision >= MIN_SCORE and recall >= MIN_SCORE, (
        f"{code}: precision {precision:.3f} recall {recall:.3f} (truth {n_truth}, assigned {n_assigned})")


@pytest.mark.slow
def test_tariff_what_if_is_consistent(scored):
    _, features, assigned, _ = scored
    f = features.filter(pl.col("year_fen").is_not_null())
    assert f.height >= N * 0.9
    # moving use to the cheaper valley never costs more on a time-of-use tariff
    tou = f.filter(pl.col("tariff_is_tou"))
    assert tou.height > 0 and tou["shift10_saving_fen"].min() >= 0
    # the saving of a tariff label is the difference of two exact bills
    s = assigned.filter(pl.col("code").is_in(["tou_would_save", "tier_would_save"]))
    if s.height:
        j = s.join(f.select("customer_id", "best_alt_saving_fen"), on="customer_id")
        assert (j["saving_fen"] == j["best_alt_saving_fen"]).all()


@pytest.mark.slow
def test_cards_render_for_every_assigned_label(scored):
    _, _, assigned, _ = scored
    sample = assigned.group_by("code", maintain_order=True).head(3)
    for lang in ("zh", "en"):
        for row in sample.iter_rows(named=True):
            (card,) = label_cards([row], lang)
            text = card.title + card.evidence_text + card.why + card.what_to_do
            assert card.why and card.what_to_do and "{" not in text
