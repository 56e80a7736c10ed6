"""Server-side SVG charts for the bill (no JavaScript, no external references).

Each builder returns ``markupsafe.Markup`` holding one ``<svg>`` with a ``<title>`` and ``<desc>``
(the alt text) and ``role="img"``. All text placed in the SVG goes through ``escape``. Series are
told apart in greyscale by luminance and hatching (see ``palette.HATCHED``) and are labelled in a
legend, so the charts read on a black-and-white printout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from wattbill.bills import palette

_W = 640
TABLE_FIRST_COL = 0.15  # share of the width taken by the row headers of the monthly table


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def nice_ticks(top: float, n: int = 4) -> list[float]:
    """0 and round steps up to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    count = math.ceil(top / step - 1e-9)
    return [i * step for i in range(count + 1)]


def _tick_label(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 or v == 0 else _num(v)


def _defs(prefix: str, series: Sequence[str]) -> str:
    return ""  # hatching is drawn as one path per chart (see _hatch), not with <pattern>s


def _fill(prefix: str, name: str) -> str:
    return palette.SERIES[name]


HATCH_SPACING = 5.0


def _hatch(rects: Sequence[tuple[float, float, float, float]], spacing: float = HATCH_SPACING) -> str:
    """One white path of 45-degree lines clipped to each rectangle (x, y, w, h).

    One path for a whole chart instead of a <pattern> per rectangle: WeasyPrint makes a pattern
    object for every element filled with a pattern, which cost time and bytes in every PDF."""
    d = []
    for x, y, w, h in rects:
        if w <= 0 or h <= 0:
            continue
        k = x + y + spacing / 2  # lines x + y = k, from the top-left corner down to the bottom-right
        while k < x + w + y + h:
            x_start = max(x, k - (y + h))
            x_end = min(x + w, k - y)
            if x_end > x_start:
                d.append(f"M{_num(x_start)} {_num(k - x_start)}L{_num(x_end)} {_num(k - x_end)}")
            k += spacing
    if not d:
        return ""
    return f'<path d="{"".join(d)}" stroke="{palette.WHITE}" stroke-width="1.3" fill="none"/>'


def _grid(ticks: Sequence[float], x0: float, x1: float, y) -> str:
    """Horizontal grid lines (one path; the zero line heavier) and the tick labels."""
    light = "".join(f"M{_num(x0)} {_num(y(t))}H{_num(x1)}" for t in ticks if t)
    out = [f'<path d="{light}" stroke="{palette.RULE}" stroke-width="0.4" fill="none"/>' if light else "",
           f'<path d="M{_num(x0)} {_num(y(0))}H{_num(x1)}" stroke="{palette.RULE}" stroke-width="1"/>']
    out += [f'<text x="{_num(x0 - 6)}" y="{_num(y(t) + 4)}" text-anchor="end" fill="{palette.MUTED}">'
            f"{_tick_label(t)}</text>" for t in ticks]
    return "".join(out)


def _open(prefix: str, height: int, title: str, desc: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height}" width="{_W}" height="{height}" '
        f'role="img" aria-labelledby="{prefix}-t {prefix}-d" '
        f'font-family="{palette.FONT_FAMILY}" font-size="11" fill="{palette.INK}">'
        f'<title id="{prefix}-t">{escape(title)}</title><desc id="{prefix}-d">{escape(desc)}</desc>'
    )


def _legend(prefix: str, items: Sequence[tuple[str, str]], y: float, x0: float = 48) -> str:
    """items: (series name, label). 'last_year' is drawn as a dashed line sample."""
    out = []
    x = x0
    for name, label in items:
        if name == "last_year":
            out.append(
                f'<line x1="{_num(x)}" y1="{_num(y - 4)}" x2="{_num(x + 18)}" y2="{_num(y - 4)}" '
                f'stroke="{palette.SERIES[name]}" stroke-width="1.6" stroke-dasharray="4 2"/>'
                f'<circle cx="{_num(x + 9)}" cy="{_num(y - 4)}" r="2.4" fill="{palette.WHITE}" '
                f'stroke="{palette.SERIES[name]}" stroke-width="1.2"/>'
            )
            sw = 22
        else:
            out.append(
                f'<rect x="{_num(x)}" y="{_num(y - 10)}" width="12" height="12" '
                f'fill="{_fill(prefix, name)}" stroke="{palette.WHITE}" stroke-width="0.5"/>'
            )
            if name in palette.HATCHED:
                out.append(_hatch([(x, y - 10, 12, 12)], 4.0))
            sw = 16
        out.append(f'<text x="{_num(x + sw)}" y="{_num(y)}">{escape(label)}</text>')
        x += sw + 9 + 11.5 * _text_width(label) + 14
    return "".join(out)


def _text_width(label: str) -> float:
    """Rough width in em of a label: CJK full width, Latin about half."""
    return sum(1.0 if ord(ch) > 0x2E80 else 0.55 for ch in label)


def monthly_bars(
    *,
    month_labels: Sequence[str],
    stacks: Sequence[tuple[str, str, Sequence[float]]],
    last_year: Sequence[float | None] | None,
    last_year_label: str,
    title: str,
    desc: str,
    unit: str,
    prefix: str = "mb",
    label_months: bool = False,
) -> Markup:
    """Monthly kWh as stacked bars (bottom first) with last year's line.

    stacks: (series name in palette.SERIES, legend label, 12 values). The plot area spans the last
    85% of the width, so that the 12 month columns of a table below (first column 15%) line up with
    the bars and serve as the x axis; ``label_months=True`` draws the month names in the chart instead.
    """
    height = 236 if not label_months else 250
    x0, x1, y_top, y_bot = _W * TABLE_FIRST_COL, float(_W), 34.0, 226.0 if not label_months else 214.0
    totals = [sum(s[2][m] or 0 for s in stacks) for m in range(12)]
    ly = list(last_year) if last_year is not None else [None] * 12
    top = max([*totals, *(v for v in ly if v is not None), 0.0])
    ticks = nice_ticks(top)
    ymax = ticks[-1] or 1.0
    slot = (x1 - x0) / 12
    bw = slot * 0.58

    def y(v: float) -> float:
        return y_bot - (y_bot - y_top) * (v / ymax)

    parts = [_open(prefix, height, title, desc), _defs(prefix, [s[0] for s in stacks])]
    # grid and axis. Marks of one kind are drawn as one <path> each (a rect or a line per element
    # costs WeasyPrint a style and state computation every time: bars were most of a chart's time).
    parts.append(_grid(ticks, x0, x1, y))
    parts.append(f'<text x="{_num(x0 - 6)}" y="{_num(y_top - 10)}" text-anchor="end" '
                 f'fill="{palette.MUTED}">{escape(unit)}</text>')
    hatched: list[tuple[float, float, float, float]] = []
    bars: dict[str, list[str]] = {name: [] for name, _l, _v in stacks}
    for m in range(12):
        cx = x0 + slot * (m + 0.5)
        base = 0.0
        for name, _label, values in stacks:
            v = values[m] or 0.0
            if v <= 0:
                continue
            rect = (cx - bw / 2, y(base + v), bw, y(base) - y(base + v))
            bars[name].append(f"M{_num(rect[0])} {_num(rect[1])}h{_num(rect[2])}v{_num(rect[3])}"
                              f"h{_num(-rect[2])}z")
            if name in palette.HATCHED:
                hatched.append(rect)
            base += v
        if label_months:
            parts.append(
                f'<text x="{_num(cx)}" y="{_num(y_bot + 15)}" text-anchor="middle">{escape(month_labels[m])}</text>'
            )
    for name, d in bars.items():
        if d:
            parts.append(f'<path d="{"".join(d)}" fill="{_fill(prefix, name)}" stroke="{palette.WHITE}" '
                         f'stroke-width="0.6"/>')
    parts.append(_hatch(hatched))
    # last year's line
    pts = [(x0 + slot * (m + 0.5), ly[m]) for m in range(12)]
    run: list[str] = []
    points: list[tuple[float, float | None]] = [*pts, (0.0, None)]
    for px, lv in points:
        if lv is None:
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{palette.SERIES["last_year"]}" '
                    f'stroke-width="1.6" stroke-dasharray="4 2"/>'
                )
            run = []
            continue
        run.append(f"{_num(px)},{_num(y(lv))}")
    dots = "".join(f"M{_num(px - 2.4)} {_num(y(v))}a2.4 2.4 0 1 0 4.8 0a2.4 2.4 0 1 0 -4.8 0z"
                   for px, v in pts if v is not None)
    if dots:
        parts.append(f'<path d="{dots}" fill="{palette.WHITE}" stroke="{palette.SERIES["last_year"]}" '
                     f'stroke-width="1.2"/>')
    legend = [(name, label) for name, label, _ in stacks]
    if any(v is not None for v in ly):
        legend.append(("last_year", last_year_label))
    parts.append(_legend(prefix, legend, 14, x0=x0))
    parts.append("</svg>")
    return Markup("".join(parts))


def tier_progress(
    *,
    cumulative: Sequence[float],
    thresholds: Sequence[float],
    threshold_labels: Sequence[str],
    crossings: Sequence[tuple[int, str] | None],
    month_labels: Sequence[str],
    title: str,
    desc: str,
    unit: str,
    days_in_year: int = 365,
    month_start_days: Sequence[int] | None = None,
    prefix: str = "tp",
) -> Markup:
    """Cumulative kWh through the year against the tier thresholds.

    cumulative: 13 values (0 at 1 January, then the total at the end of each month).
    crossings: per threshold, (day index, label) where the tier began, or None.
    """
    height = 206
    x0, x1, y_top, y_bot = 52.0, 540.0, 26.0, 176.0
    if month_start_days is None:
        month_start_days = [round(days_in_year * m / 12) for m in range(12)]
    days = [*month_start_days, days_in_year]
    top = max([*cumulative, *(t * 1.08 for t in thresholds), 1.0])
    ticks = nice_ticks(top)
    ymax = ticks[-1]

    def x(day: float) -> float:
        return x0 + (x1 - x0) * day / days_in_year

    def y(v: float) -> float:
        return y_bot - (y_bot - y_top) * v / ymax

    parts = [_open(prefix, height, title, desc), _grid(ticks, x0, x1, y)]
    parts.append(f'<text x="{_num(x0 - 6)}" y="{_num(y_top - 14)}" text-anchor="end" '
                 f'fill="{palette.MUTED}">{escape(unit)}</text>')
    for m in range(0, 12, 3):  # quarterly labels at the start of the month, with a tick
        parts.append(
            f'<line x1="{_num(x(days[m]))}" y1="{_num(y_bot)}" x2="{_num(x(days[m]))}" y2="{_num(y_bot + 4)}" '
            f'stroke="{palette.MUTED}" stroke-width="1"/>'
            f'<text x="{_num(x(days[m]))}" y="{_num(y_bot + 15)}" text-anchor="{"start" if m == 0 else "middle"}">'
            f"{escape(month_labels[m])}</text>"
        )
    # area + line of the cumulative usage
    pts = [f"{_num(x(days[i]))},{_num(y(v))}" for i, v in enumerate(cumulative)]
    parts.append(
        f'<polygon points="{_num(x0)},{_num(y_bot)} {" ".join(pts)} {_num(x(days[len(cumulative) - 1]))},'
        f'{_num(y_bot)}" fill="{palette.PANEL}"/>'
        f'<polyline points="{" ".join(pts)}" fill="none" stroke="{palette.ACCENT}" stroke-width="2"/>'
    )
    for t, label, cross in zip(thresholds, threshold_labels, crossings, strict=False):
        parts.append(
            f'<line x1="{_num(x0)}" y1="{_num(y(t))}" x2="{_num(x1)}" y2="{_num(y(t))}" '
            f'stroke="{palette.MUTED}" stroke-width="1.2" stroke-dasharray="6 3"/>'
            f'<text x="{_num(x1 + 4)}" y="{_num(y(t) + 4)}" fill="{palette.MUTED}" font-size="10">'
            f"{escape(label)}</text>"
        )
        if cross is not None:
            day, text = cross
            cx = x(day)
            anchor = "end" if cx > (x0 + x1) / 2 else "start"
            dx = -6 if anchor == "end" else 6
            parts.append(
                f'<circle cx="{_num(cx)}" cy="{_num(y(t))}" r="4" fill="{palette.UP}" '
                f'stroke="{palette.WHITE}" stroke-width="1"/>'
                f'<text x="{_num(cx + dx)}" y="{_num(y(t) - 6)}" text-anchor="{anchor}" '
                f'fill="{palette.UP}" font-weight="bold">{escape(text)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def share_bar(
    *,
    segments: Sequence[tuple[str, str, float]],
    title: str,
    desc: str,
    prefix: str = "sb",
) -> Markup:
    """A 100% horizontal bar. segments: (series name, label, share 0..1)."""
    height = 64
    x0, x1 = 4.0, 636.0
    parts = [_open(prefix, height, title, desc), _defs(prefix, [s[0] for s in segments])]
    head = 0
    x = x0
    total = sum(max(s[2], 0.0) for s in segments) or 1.0
    unlabelled = []
    for name, label, value in segments:
        w = (x1 - x0) * max(value, 0.0) / total
        if w <= 0:
            continue
        parts.append(
            f'<rect x="{_num(x)}" y="4" width="{_num(w)}" height="30" fill="{_fill(prefix, name)}" '
            f'stroke="{palette.WHITE}" stroke-width="1"/>'
        )
        if name in palette.HATCHED:
            parts.append(_hatch([(x + 0.5, 4.5, w - 1, 29)]))
        text = f"{label} {round(100 * value / total)}%"
        if w >= 15 + 13 * _text_width(text):
            colour = palette.INK if name == "peak" else palette.WHITE
            if name in palette.HATCHED:  # a solid chip behind the text keeps it legible on hatching
                cw = 9 + 13 * _text_width(text)
                parts.append(f'<rect x="{_num(x + w / 2 - cw / 2)}" y="10" width="{_num(cw)}" height="18" '
                             f'rx="3" fill="{palette.SERIES[name]}"/>')
            parts.append(
                f'<text x="{_num(x + w / 2)}" y="24" text-anchor="middle" font-weight="bold" '
                f'font-size="13" fill="{colour}">{escape(text)}</text>'
            )
        else:
            unlabelled.append((name, text))
        x += w
    if unlabelled:
        parts.append(_legend(prefix, unlabelled, 56, x0=4))
    else:  # no legend row: crop the canvas
        parts[head] = _open(prefix, 38, title, desc)
    parts.append("</svg>")
    return Markup("".join(parts))
