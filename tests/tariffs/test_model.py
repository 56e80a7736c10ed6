"""Tariff files: parsing, validation, and check_tariff_file reporting every problem with its key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import tariff_tomls
from wattbill.tariffs import TariffFileError, check_tariff_file, parse_tariff, read_tariff

GOOD = """
code = "cn-test-res-tou"
name = "测试 峰谷"
name_en = "test"
currency = "CNY"
source = "test"
valid_from = 2024-01-01

[periods]
sharp = "peak"
peak = "peak"
flat = "peak"
valley = "valley"

[prices]
peak = [0.568, 0.618, 0.868]
valley = [0.288, 0.338, 0.588]

[tiers]
cycle = "annual"
thresholds = [2760, 4800]
proration = "months"
household_bonus = { min_size = 5, kwh_per_month = 100 }

[hours]
peak = "8:00-22:00"
valley = "22:00-8:00"
"""


def problems_of(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    path = tmp_path / "t.toml"
    path.write_text(text, "utf-8")
    return [(p.key, p.message) for p in check_tariff_file(path)]


def keys_of(tmp_path: Path, text: str) -> list[str]:
    return [k for k, _ in problems_of(tmp_path, text)]


def test_good_file_parses_into_a_frozen_model(tmp_path: Path):
    assert problems_of(tmp_path, GOOD) == []
    t = parse_tariff(GOOD)
    assert t.period_names == ("peak", "valley")
    assert t.unsplit == "peak"
    assert t.price("valley", 3) == Decimal("0.588")
    assert t.price_scale == 3
    assert t.n_tiers == 3
    assert t.hours_of("peak") == "8:00-22:00"
    with pytest.raises(AttributeError):
        t.code = "other"  # type: ignore[misc]
    assert read_tariff(tmp_path / "t.toml") == t


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        ('valley = "valley"\n\n[prices]', 'valley = "offpeak"\n\n[prices]', "periods.valley", "no price"),
        ('valley = "valley"\n\n[prices]', 'valley = "valley"\nshoulder = "peak"\n\n[prices]', "periods.shoulder", "unknown register"),
        ("thresholds = [2760, 4800]", "thresholds = [4800, 2760]", "tiers.thresholds", "not increasing"),
        ("thresholds = [2760, 4800]", "thresholds = [2760, 2760]", "tiers.thresholds", "not increasing"),
        ("valley = [0.288, 0.338, 0.588]", "valley = [0.288, 0.338]", "prices.valley", "2 prices for 3 tiers"),
        ('cycle = "annual"', 'cycle = "weekly"', "tiers.cycle", "must be one of"),
        ('proration = "months"', 'proration = "hours"', "tiers.proration", "must be one of"),
        ("kwh_per_month = 100", "kwh_per_month = -1", "tiers.household_bonus.kwh_per_month", "kWh >= 0"),
        ("min_size = 5", "min_size = 0", "tiers.household_bonus.min_size", ">= 1"),
        ('peak = "8:00-22:00"', 'shoulder = "8:00-22:00"', "hours.shoulder", "unknown period"),
        ("valid_from = 2024-01-01", 'valid_from = "next year"', "valid_from", "not a date"),
        ('currency = "CNY"', 'currency = "USD"', "currency", "only CNY"),
        ("thresholds = [2760, 4800]", "thresholds = [2760.0001, 4800]", "tiers.thresholds[0]", "whole number of Wh"),
        ("peak = [0.568, 0.618, 0.868]", "peak = [0.568, -0.618, 0.868]", "prices.peak[1]", "not a price"),
        ('source = "test"', "", "source", "missing"),
        ('name_en = "test"', 'name_en = "test"\ncolour = "red"', "colour", "unknown key"),
    ],
)
def test_each_kind_of_problem_is_reported_with_its_key(tmp_path: Path, old, new, key, words):
    assert old in GOOD
    problems = problems_of(tmp_path, GOOD.replace(old, new, 1))
    assert any(k == key and words in m for k, m in problems), problems


def test_register_without_a_price(tmp_path: Path):
    text = GOOD.replace("valley = [0.288, 0.338, 0.588]\n", "")
    assert ("periods.valley", "register 'valley' maps to period 'valley', which has no price in [prices]") in problems_of(
        tmp_path, text
    )


def test_priced_period_no_register_maps_to(tmp_path: Path):
    text = GOOD.replace("valley = [0.288, 0.338, 0.588]", "valley = [0.288, 0.338, 0.588]\nsharp = [1, 1, 1]")
    assert "prices.sharp" in keys_of(tmp_path, text)


def test_missing_unsplit_period(tmp_path: Path):
    text = GOOD.replace('flat = "peak"\n', "")
    assert "periods.unsplit" in keys_of(tmp_path, text)
    assert keys_of(tmp_path, text.replace('valley = "valley"\n\n', 'valley = "valley"\nunsplit = "valley"\n\n')) == []


SEASONAL = GOOD.replace('cycle = "annual"', 'cycle = "monthly"').replace(
    "thresholds = [2760, 4800]", 'thresholds_by_month = { "5-10" = [260, 600], "1-4,11-12" = [200, 400] }'
)


def test_seasonal_thresholds_valid(tmp_path: Path):
    assert problems_of(tmp_path, SEASONAL) == []
    t = parse_tariff(SEASONAL)
    assert t.month_thresholds_kwh(5) == (Decimal(260), Decimal(600))
    assert t.month_thresholds_kwh(12) == (Decimal(200), Decimal(400))


def test_seasonal_thresholds_overlapping_months(tmp_path: Path):
    problems = problems_of(tmp_path, SEASONAL.replace('"1-4,11-12"', '"1-5,11-12"'))
    assert ('tiers.thresholds_by_month."1-5,11-12"', 'month 5 overlaps with "5-10"') in problems


def test_seasonal_thresholds_missing_months(tmp_path: Path):
    problems = problems_of(tmp_path, SEASONAL.replace('"1-4,11-12"', '"1-3,12"'))
    assert ("tiers.thresholds_by_month", "months missing: 4, 11") in problems


def test_seasonal_thresholds_bad_month_spec_and_annual_cycle(tmp_path: Path):
    keys = keys_of(tmp_path, SEASONAL.replace('"5-10"', '"10-5"').replace('cycle = "monthly"', 'cycle = "annual"'))
    assert 'tiers.thresholds_by_month."10-5"' in keys
    assert "tiers.thresholds_by_month" in keys


def test_both_threshold_kinds(tmp_path: Path):
    text = SEASONAL.replace('proration = "months"', 'proration = "months"\nthresholds = [1, 2]')
    assert "tiers" in keys_of(tmp_path, text)


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path):
    text = GOOD.replace('cycle = "annual"', 'cycle = "weekly"').replace("[2760, 4800]", "[4800, 2760]")
    text = text.replace('valley = "valley"\n\n[prices]', 'valley = "offpeak"\n\n[prices]')
    assert {"tiers.cycle", "tiers.thresholds", "periods.valley"} <= set(keys_of(tmp_path, text))


def test_toml_syntax_error_has_its_line(tmp_path: Path):
    text = GOOD.replace("thresholds = [2760, 4800]", "thresholds = [2760, 4800")
    path = tmp_path / "t.toml"
    path.write_text(text, "utf-8")
    (problem,) = check_tariff_file(path)
    assert problem.line is not None and problem.line >= text.splitlines().index("thresholds = [2760, 4800") + 1
    assert "TOML syntax error" in problem.message
    assert f"t.toml:{problem.line}" in str(problem)


def test_parse_tariff_raises_with_all_problems():
    with pytest.raises(TariffFileError) as err:
        parse_tariff(GOOD.replace('cycle = "annual"', 'cycle = "weekly"').replace('proration = "months"', 'proration = "x"'), "f.toml")
    assert err.value.file == "f.toml" and err.value.key == "tiers.cycle"
    assert len(err.value.problems) == 2
    assert str(err.value).startswith("f.toml: tiers.cycle: ")


def test_unreadable_file(tmp_path: Path):
    (problem,) = check_tariff_file(tmp_path / "missing.toml")
    assert "cannot read" in problem.message
    with pytest.raises(TariffFileError):
        read_tariff(tmp_path / "missing.toml")


WRONG_VALUES = ['"text"', "true", "-1", "0", "1.5", "[]", '["a", 1]', "{}", '{ x = 1 }', "2024-01-01T00:00:00", "[[1, 2]]"]
VALUE_LINES = [i for i, line in enumerate(GOOD.splitlines()) if " = " in line]


@settings(max_examples=300, deadline=None)
@given(line=st.sampled_from(VALUE_LINES), value=st.sampled_from(WRONG_VALUES))
def test_any_wrong_value_is_a_problem_never_a_crash(line, value):
    lines = GOOD.splitlines()
    key = lines[line].split(" = ")[0]
    lines[line] = f"{key} = {value}"
    text = "\n".join(lines)
    try:
        parse_tariff(text, "fuzz.toml")
    except TariffFileError as err:
        assert err.problems and all(p.file == "fuzz.toml" for p in err.problems)


@settings(max_examples=100, deadline=None)
@given(text=tariff_tomls())
def test_generated_tariffs_are_valid(text):
    t = parse_tariff(text)
    assert 1 <= t.n_tiers <= 3 and all(len(p) == t.n_tiers for _, p in t.prices)
