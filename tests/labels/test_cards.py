"""Label cards (final texts, money from integer fen) and the catalogue's consistency."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from wattbill.labels import (
    CatalogueError,
    LabelCard,
    advice,
    format_yuan,
    label_cards,
    load_catalogue,
    parse_catalogue,
)
from wattbill.labels.cards import placeholders
from wattbill.labels.catalogue import CATALOGUE_PATH

REQUIRED = {"peak_heavy", "valley_smart", "summer_cooling", "winter_heating", "high_baseload", "possible_vacancy",
            "tier3_household", "usage_spike", "tou_would_save", "late_payer", "prompt_payer", "counter_payer",
            "online_payer", "auto_debit"}


@pytest.mark.parametrize("fen,text", [(0, "0.00"), (5, "0.05"), (123456, "1,234.56"), (-50, "-0.50"),
                                      (100, "1.00"), (10**12 + 1, "10,000,000,000.01")])
def test_format_yuan_integer_arithmetic(fen, text):
    assert format_yuan(fen) == text


def test_format_yuan_refuses_float():
    with pytest.raises(TypeError):
        format_yuan(12.5)


def test_catalogue_has_the_required_labels_and_both_languages():
    cat = load_catalogue()
    assert REQUIRED <= {d.code for d in cat}
    for d in cat:
        assert d.name["zh"] and d.name["en"] and d.note
        for lang in ("zh", "en"):
            assert d.texts[lang]["why"] and d.texts[lang]["do"]


def test_every_placeholder_is_in_the_evidence():
    """Cards see only the stored evidence: each template's placeholders must be evidence features."""
    for d in load_catalogue():
        for lang, parts in d.texts.items():
            for part, sentences in parts.items():
                for s in sentences:
                    for p in placeholders(s):
                        assert p in d.evidence, f"{d.code}.{lang}.{part}: {p} not in evidence"


def test_saving_feature_is_fen():
    for d in load_catalogue():
        if d.saving:
            assert d.saving.endswith("_fen")


def _row(code, evidence, saving=None):
    return {"customer_id": "x", "code": code, "evidence": json.dumps(evidence), "saving_fen": saving}


def test_peak_heavy_card_zh_with_peer_and_saving():
    ev = {"share_valley": 0.0846, "share_sharp_peak": 0.69, "peer_share_valley_pct": 9.7, "shift10_saving_fen": 4067}
    (c,) = label_cards([_row("peak_heavy", ev, 4067)], "zh")
    assert isinstance(c, LabelCard)
    assert c.evidence_text == "谷段用电占比 8%"
    assert "只占全年的 8%" in c.why and "低于 90% 的同类家庭" in c.why
    assert "约可省 40.67 元" in c.what_to_do
    assert c.saving_fen == 4067


def test_sentences_without_values_are_left_out():
    ev = {"share_valley": 0.0846, "share_sharp_peak": 0.69, "peer_share_valley_pct": None, "shift10_saving_fen": 0}
    (c,) = label_cards([_row("peak_heavy", ev, 0)], "en")
    assert "similar households" not in c.why
    assert "save" not in c.what_to_do and c.what_to_do.startswith("Run the washing machine")
    assert c.saving_fen is None
    assert "{" not in c.why + c.what_to_do + c.title + c.evidence_text


def test_valley_smart_example_sentence():
    ev = {"share_valley": 0.48, "peer_share_valley_pct": 80.0, "shift10_saving_fen": None}
    (c,) = label_cards([_row("valley_smart", ev)], "zh")
    assert c.why == "你的谷段用电占 48%，高于 80% 的同类家庭。"


def test_dates_and_money_in_both_languages():
    ev = {"best_alt_saving_fen": 123456, "best_alt_tariff": "t", "best_alt_name": "峰谷", "best_alt_name_en": "TOU",
          "year_fen": 500000, "best_alt_fen": 376544}
    zh = label_cards([_row("tou_would_save", ev, 123456)], "zh")[0]
    en = label_cards([_row("tou_would_save", ev, 123456)], "en")[0]
    assert zh.title == "改用峰谷电价可省 1,234.56 元"
    assert "“峰谷”电费为 3,765.44 元，比现在的 5,000.00 元少 1,234.56 元" in zh.why
    assert en.title == "Time-of-use pricing would save ¥1,234.56"
    ev = {"tier3_date": "2025-10-18", "tier2_date": "2025-05-31", "wh_year": 5_226_400}
    zh = label_cards([_row("tier3_household", ev)], "zh")[0]
    en = label_cards([_row("tier3_household", ev)], "en")[0]
    assert "10月18日" in zh.why and "5,226 千瓦时" in zh.why
    assert "18 October" in en.why and "31 May" in en.why


def test_cards_follow_catalogue_order_and_unknown_language_falls_back():
    rows = [_row("auto_debit", {"pay_share_bank": 1.0, "pay_count": 12}),
            _row("high_baseload", {"base_load_w": 512.3, "peer_base_load_pct": 96.0, "base100_saving_fen": 44196})]
    cards = label_cards(rows, "fr")
    assert [c.code for c in cards] == ["high_baseload", "auto_debit"]
    assert "512 瓦" in cards[0].why and "约 441.96 元" in cards[0].what_to_do


def test_advice_tuple():
    title, why, todo = advice("counter_payer", {"pay_share_counter": 0.9166, "pay_count": 12}, "en")
    assert title == "You pay at the service hall"
    assert why.startswith("92% of your payments")
    assert "auto-debit" in todo


def test_all_cards_render_for_every_label_with_full_evidence():
    import polars as pl

    from wattbill.diagnostics import FEATURES

    for d in load_catalogue():
        ev = {e: ("2025-06-01" if FEATURES[e] == pl.Date else 1) for e in d.evidence}
        for lang in ("zh", "en"):
            (c,) = label_cards([_row(d.code, ev, 100)], lang)
            text = c.title + c.evidence_text + c.why + c.what_to_do
            assert "{" not in text and "}" not in text
            if lang == "zh":
                assert re.search(r"[\u4e00-\u9fff]", text)


def _doc(**over):
    with open(CATALOGUE_PATH, "rb") as fh:
        data = tomllib.load(fh)
    data["label"] = [dict(data["label"][0], **over)]
    return data


@pytest.mark.parametrize("over,msg", [
    ({"when": [["no_such_feature", "<", 1]]}, "unknown feature"),
    ({"when": [["share_valley", "~", 1]]}, "unknown op"),
    ({"when": []}, "when is empty"),
    ({"evidence": ["nope"]}, "evidence"),
    ({"name": {"zh": "x"}}, "name.en"),
])
def test_catalogue_errors(over, msg):
    with pytest.raises(CatalogueError, match=msg):
        parse_catalogue(_doc(**over))


def test_params_are_exposed():
    d = {x.code: x for x in load_catalogue()}["peak_heavy"]
    assert d.params == {"share_valley <": 0.15, "peer_share_valley_pct <=": 25}
