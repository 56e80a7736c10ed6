"""The document model, formatting and catalogues (fast: no PDF rendering)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from tests.bills.sample import LABEL_CODES, sample_inputs
from wattbill import bills
from wattbill.bills import fmt
from wattbill.bills.document import _by_month_text, tariff_terms
from wattbill.bills.i18n import catalogue, translator
from wattbill.bills.render import render_html

BILLS_DIR = Path(bills.__file__).parent


# --- money and numbers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "text"),
    [(0, "0.00"), (5, "0.05"), (100, "1.00"), (123456789, "1,234,567.89"), (-1999, "-19.99")],
)
def test_yuan_is_integer_arithmetic(fen, text):
    assert fmt.yuan(fen) == text


def test_to_fen_rounds_half_up_without_floats():
    assert fmt.to_fen(Decimal("1234.56")) == 123456
    assert fmt.to_fen("0.005") == 1
    assert fmt.to_fen(0.285) == 29  # via the shortest repr, not the binary value 0.28499999...
    assert fmt.to_fen(None) is None


def test_kwh_rounds_half_up():
    assert fmt.kwh(1234.25) == "1,234.3"
    assert fmt.kwh(Decimal("0.05"), 1) == "0.1"
    assert fmt.kwh_from_wh(4847875) == "4,847.9"
    assert fmt.kwh(None) == "–"


def test_dates_per_language():
    import datetime as dt

    d = dt.date(2024, 8, 4)
    assert fmt.date(d, "zh") == "2024年8月4日"
    assert fmt.date(d, "en") == "4 Aug 2024"


# --- catalogues --------------------------------------------------------------------------------


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"{(\w+)}", text))


def test_catalogues_have_the_same_ids_and_placeholders():
    zh, en = catalogue("zh"), catalogue("en")
    assert set(zh) == set(en)
    for key in zh:
        assert _placeholders(zh[key]) == _placeholders(en[key]), key


def test_every_message_id_used_exists():
    used = set()
    for path in [*BILLS_DIR.glob("templates/*"), BILLS_DIR / "document.py"]:
        used |= set(re.findall(r"""_\(\s*["']([a-z0-9_]+\.[a-z0-9_.]+)["']""", path.read_text("utf-8")))
    assert used, "no message ids found"
    missing = sorted(m for m in used if m not in catalogue("zh"))
    assert not missing


def test_translator_formats_values():
    assert translator("en")("doc.title", year=2024) == "Annual electricity bill 2024"
    assert translator("zh")("doc.title", year=2024) == "2024年度电费账单"


# --- the document --------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("labels", ["all", "none"])
def test_document_numbers_match_the_bill(language, labels):
    kw = sample_inputs(language=language, labels=labels)
    doc = bills.build_document(**kw)
    bill = kw["bill"]
    assert doc.language == language
    assert doc.charge_text == f"{bill['charge_total']:,.2f}"
    assert doc.kwh_total_text == f"{Decimal(repr(bill['kwh_total'])).quantize(Decimal('0.1')):,}"
    assert doc.charge_fen == bill["charge_fen"]
    assert len(doc.cards) == (len(LABEL_CODES) if labels == "all" else 0)
    assert doc.tier_svg is not None and doc.tou_svg is not None
    assert doc.monthly_table[1][1:] == [fmt.kwh(m["kwh_total"], 0) for m in kw["months"]]
    assert doc.headline


def test_document_without_features_or_tou_registers():
    kw = sample_inputs()
    for m in [kw["bill"], *kw["months"]]:
        for r in ("sharp", "peak", "flat", "valley"):
            m[f"kwh_{r}"] = None
    kw["features"] = None
    kw["payments"] = []
    doc = bills.build_document(**kw)
    assert doc.tou_svg is None
    assert doc.diagnosis == []
    html = render_html(doc)
    assert doc.charge_text in html


def test_charge_total_used_when_charge_fen_missing():
    kw = sample_inputs()
    del kw["bill"]["charge_fen"]
    kw["bill"]["charge_total"] = Decimal("1234.50")
    assert bills.build_document(**kw).charge_text == "1,234.50"


def test_tariff_terms_from_the_real_tariff_model():
    from wattbill import tariffs

    catalog = tariffs.load_catalog()
    for code in catalog.codes():
        t = catalog.get(code)
        terms = tariff_terms(t, "zh")
        assert terms.code == code and terms.name == t.name
        assert terms.prices and all(len(v) == t.n_tiers for v in terms.prices.values())
        assert tariff_terms(t, "en").name == t.name_en
        kw = sample_inputs()
        kw["tariff"] = t
        doc = bills.build_document(**kw)
        assert doc.price_rows and doc.notice == t.notice  # the public notice, never source or note


def test_seasonal_monthly_thresholds_are_grouped():
    _ = translator("zh")
    summer, rest = (Decimal(260), Decimal(600)), (Decimal(200), Decimal(400))
    by_month = [rest] * 4 + [summer] * 6 + [rest] * 2
    text = _by_month_text(_, by_month)
    assert "1-4,11-12月: 200 / 400" in text and "5-10月: 260 / 600" in text


# --- untrusted text ----------------------------------------------------------------------------------


def test_customer_text_is_escaped_in_html():
    doc = bills.build_document(**sample_inputs(name="<script>alert(1)</script>",
                                               address="{{ 7*7 }} <img src=x onerror=alert(1)> & co"))
    html = render_html(doc)
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "{{ 7*7 }}" in html
    assert "&amp; co" in html


@pytest.mark.parametrize("language", ["zh", "en"])
def test_versions_within_the_year_each_with_its_prices_and_days(language):
    """A schedule of two versions (from 1 April, +0.02 yuan, lower thresholds): the terms list each
    version's prices with its days, say how the change is billed, and name the latest version."""
    from tests.tariffs.test_versions import ZJ, catalog_of, zj_version

    schedule = catalog_of(ZJ, zj_version("2024-04-01", "0.02", thresholds="[2000, 4000]")).schedule(
        "cn-zhejiang-res-tou", 2024)
    kw = sample_inputs(language=language)
    kw["tariff"] = schedule
    doc = bills.build_document(**kw)
    first = [r for r in doc.price_rows if ("3月31日" in r[0] or "31 Mar 2024" in r[0])]
    second = [r for r in doc.price_rows if ("4月1日起" in r[0] or "from 1 Apr 2024" in r[0])]
    assert len(first) == len(second) == 2  # peak and valley of each version
    assert [r[1] for r in first] == ["0.568", "0.288"] and [r[1] for r in second] == ["0.588", "0.308"]
    text = " ".join(doc.terms)
    assert ("年阶梯电量跨调价连续累计" in text) or ("continues across the change" in text)
    assert "2,760" in text or "2760" in text  # the first version's thresholds, with its days
    assert doc.tariff_name == (schedule.latest.name if language == "zh" else schedule.latest.name_en)
    single = bills.build_document(**{**kw, "tariff": schedule.tariffs[1]})
    assert single.notice == schedule.latest.notice == doc.notice
