"""The page's daily-use chart: one bar per day, estimated days hatched (server-side SVG).

Drawn with the bill's chart pieces (``bills.charts``: canvas, grid, hatching, legend) and colours
(``bills.palette``), so the page's charts look like the PDF's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from markupsafe import Markup, escape

from wattbill.bills import charts, palette

_W = 640


def daily_bars(
    *,
    days: Sequence[tuple[dt.date, int, bool]],
    title: str,
    desc: str,
    unit: str,
    estimated_label: str,
    tick_labels: Sequence[tuple[int, str]],
    prefix: str = "db",
) -> Markup:
    """Daily kWh as bars.

    Parameters
    ----------
    days : sequence of (day, wh [Wh], estimated)
        Consecutive days, oldest first (a missing day is a gap).
    title, desc : str
        The SVG's ``<title>`` and ``<desc>`` (its alt text).
    unit : str
        The unit shown above the axis (kWh).
    estimated_label : str
        The legend entry of the hatched bars.
    tick_labels : sequence of (index into ``days``, text)
        Labels under the x axis.
    """
    height = 236
    x0, x1, y_top, y_bot = 56.0, float(_W - 22), 46.0, 196.0
    values = [wh / 1000 for _d, wh, _e in days]
    ticks = charts.nice_ticks(max(values, default=0.0))
    ymax = ticks[-1] or 1.0
    n = max(len(days), 1)
    slot = (x1 - x0) / n
    bw = max(slot * (0.7 if n <= 62 else 1.0), 0.6)

    def y(v: float) -> float:
        return y_bot - (y_bot - y_top) * (v / ymax)

    parts = [charts._open(prefix, height, title, desc), charts._grid(ticks, x0, x1, y)]
    parts.append(f'<text x="{x0 - 6:.1f}" y="{y_top - 16:.1f}" text-anchor="end" '
                 f'fill="{palette.MUTED}">{escape(unit)}</text>')
    measured: list[str] = []
    estimated: list[str] = []
    hatched: list[tuple[float, float, float, float]] = []
    for i, (_day, _wh, est) in enumerate(days):
        v = values[i]
        if v <= 0:
            continue
        rect = (x0 + slot * i + (slot - bw) / 2, y(v), bw, y(0) - y(v))
        d = f"M{rect[0]:.2f} {rect[1]:.2f}h{rect[2]:.2f}v{rect[3]:.2f}h{-rect[2]:.2f}z"
        (estimated if est else measured).append(d)
        if est:
            hatched.append(rect)
    if measured:
        parts.append(f'<path d="{"".join(measured)}" fill="{palette.SERIES["total"]}"/>')
    if estimated:
        parts.append(f'<path d="{"".join(estimated)}" fill="{palette.SERIES["flat"]}"/>')
        parts.append(charts._hatch(hatched, 3.0))
    for i, text in tick_labels:
        cx = x0 + slot * (i + 0.5)
        parts.append(f'<text x="{cx:.1f}" y="{y_bot + 24:.1f}" text-anchor="middle" '
                     f'fill="{palette.MUTED}">{escape(text)}</text>')
    if estimated:
        parts.append(charts._legend(prefix, [("flat", estimated_label)], 14, x0=x0))
    parts.append("</svg>")
    return Markup("".join(parts))
