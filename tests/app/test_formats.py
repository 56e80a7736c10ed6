"""One formatter (wattbill.formats) for money, kWh, shares and dates, in both languages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from wattbill import formats


@pytest.mark.parametrize(("fen", "grouping", "text"), [
    (0, True, "0.00"), (5, True, "0.05"), (-50, True, "-0.50"), (123456789, True, "1,234,567.89"),
    (123456789, False, "1234567.89"), (-100, False, "-1.00"),
])
def test_yuan_by_integer_arithmetic(fen, grouping, text):
    assert formats.format_yuan(fen, grouping) == text
    assert formats.yuan(fen, grouping=grouping) == text


@pytest.mark.parametrize("bad", [12.5, Decimal("1.00"), True])
def test_money_is_never_a_float(bad):
    with pytest.raises(TypeError):
        formats.format_yuan(bad)


@pytest.mark.parametrize(("wh", "places", "text"), [
    (3456749, 1, "3,456.7"), (3456750, 1, "3,456.8"), (499, 0, "0"), (500, 0, "1"), (-500, 0, "-1"),
    (None, 1, "–"),
])
def test_kwh_half_up(wh, places, text):
    assert formats.kwh_from_wh(wh, places) == text


@pytest.mark.parametrize(("wh", "text"), [(310000, "310"), (3500, "3.5"), (1, "0.001"), (-2500, "-2.5"), (0, "0")])
def test_kwh_exact(wh, text):
    assert formats.kwh_exact(wh) == text


def test_dates_in_both_languages():
    d = dt.date(2025, 3, 5)
    assert formats.date(d, "zh") == "2025年3月5日" and formats.date(d, "en") == "5 Mar 2025"
    assert formats.day_month(d, "zh") == "3月5日" and formats.day_month("2025-03-05", "en") == "5 March"
    assert formats.month_short(12, "zh") == "12月" and formats.month_short(12, "en") == "Dec"


def test_numbers_and_shares():
    assert formats.number(86.5) == "87" and formats.number(-0.25, 1) == "-0.3" and formats.number(1234) == "1234"
    assert formats.share(0.355) == "36%" and formats.pct(12.345, 1) == "12.3%"


def test_every_part_formats_through_it():
    """The bills, the label cards and the command line use these functions, not copies."""
    from wattbill.bills import fmt
    from wattbill.labels import format_yuan
    from wattbill.labels.cards import _Formatter

    assert fmt.yuan is formats.yuan and format_yuan is formats.format_yuan
    f = _Formatter("zh")
    assert f.format("{v:kwh}", v=3456750) == "3,457" and f.format("{v:date}", v=dt.date(2025, 3, 5)) == "3月5日"
    assert _Formatter("en").format("{v:date}", v=dt.date(2025, 3, 5)) == "5 March"


def test_points_are_signed_and_missing_is_a_dash() -> None:
    """A year-on-year change in points (the channel report's trend): signed, half-up; no last year -> '–'."""
    from wattbill import formats

    assert [formats.points(v) for v in (1.25, -3.0, 0, None, float("nan"))] == ["+1.3", "-3.0", "+0.0", "–", "–"]
    assert formats.share(float("nan")) == "–" and formats.number(None) == "–"


def test_day_runs_in_iso_and_as_the_statement_says_them() -> None:
    import datetime as dt

    from wattbill.formats import day_runs

    runs = [(dt.date(2025, 2, 1), dt.date(2025, 2, 1)), ("2025-03-15", "2025-04-02"), ("2025-05-01", "2025-05-01"),
            ("2025-06-01", "2025-06-30")]
    assert day_runs(runs[:2]) == "2025-02-01, 2025-03-15 to 2025-04-02"
    assert day_runs(runs) == "2025-02-01, 2025-03-15 to 2025-04-02, 2025-05-01 and 1 more"
    assert day_runs(runs[1:2], "zh") == "3月15日至4月2日"
    assert day_runs(runs, "zh") == "2月1日、3月15日至4月2日、5月1日等4段"
    assert day_runs(runs, "en") == "1 February, 15 March to 2 April, 1 May and 1 more"
    assert day_runs([]) == ""
