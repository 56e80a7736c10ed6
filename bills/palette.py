"""Colours of the bill and the WCAG 2.x contrast arithmetic used to check them.

Every colour in ``assets/bill.css`` and in the charts comes from here (a test checks it). Chart
series are told apart in greyscale by luminance *and* by hatching (``HATCHED``), not by hue alone.
"""

from __future__ import annotations

FONT_FAMILY = "'Wattbill Sans', 'Noto Sans CJK SC', 'Noto Sans CJK', sans-serif"  # charts: fixed texts only

WHITE = "#ffffff"
INK = "#1f2937"  # body text
MUTED = "#4b5563"  # secondary text, axes, thresholds
ACCENT = "#0b5d57"  # header band, section rules (white text on it)
PANEL = "#eef4f3"  # summary tiles
CARD = "#f4f6f8"  # label cards, tables
RULE = "#9ca3af"  # hairlines (decorative only, no text on it)
UP = "#9a3412"  # "more than last year"
DOWN = "#166534"  # "less than last year"

SERIES = {
    "sharp": "#7f1d1d",
    "peak": "#d9661f",
    "flat": "#4f7f2a",
    "valley": "#1e3a8a",
    "total": ACCENT,
    "last_year": INK,
}
HATCHED = frozenset({"sharp", "flat"})

# (foreground, background) pairs that carry text, with the minimum ratio they must reach.
TEXT_PAIRS: list[tuple[str, str, float]] = [
    (INK, WHITE, 4.5),
    (MUTED, WHITE, 4.5),
    (INK, PANEL, 4.5),
    (MUTED, PANEL, 4.5),
    (INK, CARD, 4.5),
    (MUTED, CARD, 4.5),
    (WHITE, ACCENT, 4.5),
    (ACCENT, WHITE, 4.5),
    (ACCENT, PANEL, 4.5),
    (UP, WHITE, 4.5),
    (UP, PANEL, 4.5),
    (DOWN, WHITE, 4.5),
    (DOWN, PANEL, 4.5),
    (WHITE, SERIES["sharp"], 4.5),  # percent labels inside the TOU bar
    (WHITE, SERIES["valley"], 4.5),
    (WHITE, SERIES["flat"], 4.5),
    (INK, SERIES["peak"], 3.0),  # large bold label only
]
# Non-text contrast (WCAG 1.4.11): chart marks against the page.
GRAPHIC_PAIRS: list[tuple[str, str, float]] = [
    *((c, WHITE, 3.0) for c in SERIES.values()),
    (MUTED, WHITE, 3.0),
]

ALL_COLOURS = frozenset(
    {WHITE, INK, MUTED, ACCENT, PANEL, CARD, RULE, UP, DOWN, *SERIES.values()}
)


def _channel(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(colour: str) -> float:
    """WCAG relative luminance of '#rrggbb' (or '#rgb')."""
    h = colour.lstrip("#")
    if len(h) == 3:
        h = "".join(ch * 2 for ch in h)
    r, g, b = (int(h[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)
