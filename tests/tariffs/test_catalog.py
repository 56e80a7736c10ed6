"""The shipped catalogue loads, validates and answers get / codes / alternatives."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from wattbill.tariffs import UnknownTariffError, load_catalog

REQUIRED = [
    "cn-jiangsu-res-tier",
    "cn-jiangsu-res-tou",
    "cn-zhejiang-res-tier",
    "cn-zhejiang-res-tou",
    "cn-shanghai-res-tier",
    "cn-shanghai-res-tou",
    "cn-beijing-res-tier",
    "cn-guangdong-res-tier",
]


def test_catalog_has_required_tariffs_each_with_a_source():
    cat = load_catalog()
    for code in REQUIRED:
        t = cat.get(code)
        assert t.source.strip(), code
    assert set(REQUIRED) <= set(cat.codes())


def test_shanghai_adders_differ_between_peak_and_valley():
    t = load_catalog().get("cn-shanghai-res-tou")
    assert [t.price("peak", k) for k in (1, 2, 3)] == [Decimal("0.617"), Decimal("0.677"), Decimal("0.977")]
    assert [t.price("valley", k) for k in (1, 2, 3)] == [Decimal("0.307"), Decimal("0.337"), Decimal("0.487")]


def test_guangdong_has_seasonal_monthly_thresholds():
    t = load_catalog().get("cn-guangdong-res-tier")
    assert t.cycle == "monthly"
    assert t.month_thresholds_kwh(7) == (Decimal(260), Decimal(600))
    assert t.month_thresholds_kwh(1) == (Decimal(200), Decimal(400))


def test_alternatives_are_same_region():
    cat = load_catalog()
    assert [t.code for t in cat.alternatives("cn-zhejiang-res-tou")] == ["cn-zhejiang-res-tier"]
    assert [t.code for t in cat.alternatives("cn-zhejiang-res-tier")] == ["cn-zhejiang-res-tou"]
    assert cat.alternatives("cn-beijing-res-tier") == []


def test_later_valid_from_supersedes(tmp_path: Path):
    src = (Path(__file__).parents[2] / "tariffs" / "catalog" / "cn-zhejiang-res-tou.toml").read_text("utf-8")
    newer = src.replace("valid_from = 2012-07-01", "valid_from = 2025-01-01").replace("0.568", "0.570")
    (tmp_path / "zj-2025.toml").write_text(newer, "utf-8")
    cat = load_catalog([tmp_path])
    assert cat.get("cn-zhejiang-res-tou", on=date(2024, 12, 31)).price("peak", 1) == Decimal("0.568")
    assert cat.get("cn-zhejiang-res-tou", on=date(2025, 1, 1)).price("peak", 1) == Decimal("0.570")
    assert cat.get("cn-zhejiang-res-tou").price("peak", 1) == Decimal("0.570")
    with pytest.raises(UnknownTariffError):
        cat.get("cn-zhejiang-res-tou", on=date(2000, 1, 1))
    with pytest.raises(UnknownTariffError):
        cat.get("no-such-tariff")


def test_shipped_files_are_examples_marked_unverified_with_a_public_notice():
    """Issue 12, item 8: the notice (printed on bills) is separate from the internal note; every
    shipped file is an example whose figures are not checked, and says so in ``verified``."""
    cat = load_catalog()
    for code in cat.codes():
        for t in cat.versions(code):
            assert t.verified is False, t.origin
            assert t.notice.strip() and t.note.strip(), t.origin
            for doubt in ("confirm", "NOT", "example", "widely reported"):
                assert doubt not in t.notice, (t.origin, doubt)


@pytest.mark.parametrize(("line", "key"), [('verified = "yes"', "verified"), ("notice = 3", "notice"),
                                           ("note = []", "note")])
def test_verified_notice_and_note_are_checked(tmp_path: Path, line: str, key: str):
    from wattbill.tariffs import check_tariff_file

    src = (Path(__file__).parents[2] / "tariffs" / "catalog" / "cn-zhejiang-res-tou.toml").read_text("utf-8")
    lines = [ln for ln in src.splitlines() if not ln.startswith(f"{key} ")]
    lines.insert(1, line)
    path = tmp_path / "t.toml"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    assert [p.key for p in check_tariff_file(path)] == [key]


def test_a_file_without_verified_is_unverified(tmp_path: Path):
    from wattbill.tariffs import parse_tariff

    src = (Path(__file__).parents[2] / "tariffs" / "catalog" / "cn-zhejiang-res-tou.toml").read_text("utf-8")
    without = "\n".join(ln for ln in src.splitlines() if not ln.startswith("verified"))
    assert parse_tariff(without).verified is False
    assert parse_tariff(without.replace("[periods]", "verified = true\n[periods]", 1)).verified is True
