"""Colours pass WCAG contrast; charts are well-formed SVG with alt text and escaped labels."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.bills.sample import sample_document
from wattbill import bills
from wattbill.bills import charts, palette

BILLS_DIR = Path(bills.__file__).parent
SVG = "{http://www.w3.org/2000/svg}"


def test_contrast_formula_matches_known_values():
    assert palette.contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert palette.contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(("fg", "bg", "minimum"), palette.TEXT_PAIRS + palette.GRAPHIC_PAIRS)
def test_colour_pairs_pass_wcag(fg, bg, minimum):
    assert palette.contrast(fg, bg) >= minimum, (fg, bg)


def _hexes(text: str) -> set[str]:
    return {h.lower() for h in re.findall(r"#[0-9a-fA-F]{6}\b", text)}


def test_stylesheet_uses_only_palette_colours():
    css = (BILLS_DIR / "assets" / "bill.css").read_text("utf-8")
    assert _hexes(css) <= palette.ALL_COLOURS


@pytest.mark.parametrize("language", ["zh", "en"])
def test_charts_use_palette_colours_and_have_alt_text(language):
    doc = sample_document(language=language)
    for svg in (doc.monthly_svg, doc.tier_svg, doc.tou_svg):
        root = ET.fromstring(str(svg))
        assert root.get("role") == "img"
        assert root.find(f"{SVG}title").text
        assert root.find(f"{SVG}desc").text
        assert _hexes(str(svg)) <= palette.ALL_COLOURS
    assert doc.monthly_alt and doc.tier_alt and doc.tou_alt


def test_greyscale_separates_adjacent_series():
    """Stacked neighbours differ by luminance or by hatching (legible on a greyscale printout)."""
    order = ["valley", "flat", "peak", "sharp"]
    for a, b in itertools.pairwise(order):
        hatched_differs = (a in palette.HATCHED) != (b in palette.HATCHED)
        assert hatched_differs or palette.contrast(palette.SERIES[a], palette.SERIES[b]) >= 1.5


def test_chart_labels_are_escaped():
    svg = charts.share_bar(segments=[("peak", "<script>x</script>", 0.5), ("valley", "a&b", 0.5)],
                           title="<t>", desc="{{ 7*7 }}")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a&amp;b" in svg
    ET.fromstring(str(svg))


def test_nice_ticks():
    assert charts.nice_ticks(680) == [0, 200, 400, 600, 800]
    assert charts.nice_ticks(0) == [0.0, 1.0]
