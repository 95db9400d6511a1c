"""Inline SVG charts drawn on the server (no script, no front-end package). Every mark carries its
number in a ``<title>`` (read on hover and by screen readers) and in ``data-*`` attributes; each chart
sits next to a table of the same numbers, so nothing is told by colour alone."""

from __future__ import annotations

from typing import Any, Sequence

from markupsafe import Markup, escape

POSITIVE = ("new", "expansion", "reactivation")
NEGATIVE = ("contraction", "churn")


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def sparkline(values: Sequence[float | None], label: str, width: int = 120, height: int = 28) -> Markup:
    """A small line of ``values`` (None skipped), labelled for assistive technology."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if not points:
        return Markup(f'<span class="muted">{escape(label)}: no data</span>')
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = (high - low) or 1
    step = width / max(len(values) - 1, 1)
    coords = " ".join(f"{_num(i * step)},{_num(height - 2 - (v - low) / span * (height - 4))}" for i, v in points)
    last = points[-1][1]
    summary = f"{label}: {len(points)} points, from {_num(points[0][1])} to {_num(last)} (low {_num(low)}, high {_num(high)})"
    return Markup(f'<svg class="spark" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
                  f'aria-label="{escape(summary)}"><title>{escape(summary)}</title>'
                  f'<polyline fill="none" points="{coords}"/></svg>')


def movements(periods: Sequence[dict[str, Any]], fmt: Any, width: int = 760, height: int = 280) -> Markup:
    """MRR movements per period as bars: gains stacked above the zero line, losses below (hatched)."""
    if not periods:
        return Markup('<p class="muted">No periods in this range.</p>')
    pad_left, pad_bottom, pad_top = 70, 30, 10
    ups = [sum(p["movements"][k] for k in POSITIVE) for p in periods]
    downs = [sum(p["movements"][k] for k in NEGATIVE) for p in periods]
    top, bottom = max(ups + [1]), max(downs + [0])
    plot_h = height - pad_bottom - pad_top
    scale = plot_h / (top + bottom)
    zero = pad_top + top * scale
    band = (width - pad_left) / len(periods)
    bar = max(band * 0.6, 2)
    out = [f'<svg class="chart" id="movements-chart" role="img" viewBox="0 0 {width} {height}" '
           f'aria-labelledby="movements-title"><title id="movements-title">MRR movements per period '
           f'(gains above the line, losses below; the table below lists every value)</title>',
           '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="6" height="6" class="hatch-bg"/>'
           '<line x1="0" y1="0" x2="0" y2="6" class="hatch-line"/></pattern></defs>',
           f'<line class="axis" x1="{pad_left}" x2="{width}" y1="{_num(zero)}" y2="{_num(zero)}"/>',
           f'<text class="tick" x="{pad_left - 6}" y="{_num(pad_top + 10)}" text-anchor="end">{escape(fmt(top))}</text>',
           f'<text class="tick" x="{pad_left - 6}" y="{_num(zero + 4)}" text-anchor="end">0</text>']
    if bottom:
        out.append(f'<text class="tick" x="{pad_left - 6}" y="{_num(height - pad_bottom)}" text-anchor="end">'
                   f'-{escape(fmt(bottom))}</text>')
    label_every = max(1, len(periods) // 12)
    for i, p in enumerate(periods):
        x = pad_left + i * band + (band - bar) / 2
        y_up, y_down = zero, zero
        for kind in POSITIVE + NEGATIVE:
            value = p["movements"][kind]
            if not value:
                continue
            h = value * scale
            if kind in POSITIVE:
                y_up -= h
                y = y_up
            else:
                y = y_down
                y_down += h
            out.append(f'<rect class="m-{kind}" x="{_num(x)}" y="{_num(y)}" width="{_num(bar)}" height="{_num(h)}" '
                       f'data-period="{p["start"]}" data-kind="{kind}" data-value="{value}">'
                       f'<title>{p["start"]} {kind}: {escape(fmt(value))}</title></rect>')
        if i % label_every == 0:
            out.append(f'<text class="tick" x="{_num(x + bar / 2)}" y="{height - 10}" text-anchor="middle">'
                       f'{p["start"][:7] if len(periods) > 14 else p["start"][5:]}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def line(periods: Sequence[dict[str, Any]], key: str, label: str, fmt: Any, width: int = 760,
         height: int = 200) -> Markup:
    """One figure per period as a line with a marked point each."""
    values = [p.get(key) for p in periods]
    known = [v for v in values if v is not None]
    if not known:
        return Markup(f'<p class="muted">{escape(label)}: no data in this range.</p>')
    pad_left, pad_bottom, pad_top = 70, 30, 10
    low, high = min(known + [0]), max(known)
    span = (high - low) or 1
    step = (width - pad_left - 10) / max(len(values) - 1, 1)
    ident = f"{key}-chart"
    out = [f'<svg class="chart" id="{ident}" role="img" viewBox="0 0 {width} {height}" aria-labelledby="{ident}-t">'
           f'<title id="{ident}-t">{escape(label)} per period (the table below lists every value)</title>',
           f'<text class="tick" x="{pad_left - 6}" y="{pad_top + 10}" text-anchor="end">{escape(fmt(high))}</text>',
           f'<text class="tick" x="{pad_left - 6}" y="{height - pad_bottom}" text-anchor="end">{escape(fmt(low))}</text>',
           f'<line class="axis" x1="{pad_left}" x2="{width}" y1="{height - pad_bottom}" y2="{height - pad_bottom}"/>']
    coords = []
    marks = []
    for i, (p, v) in enumerate(zip(periods, values)):
        if v is None:
            continue
        x = pad_left + i * step
        y = pad_top + (high - v) / span * (height - pad_top - pad_bottom)
        coords.append(f"{_num(x)},{_num(y)}")
        if i % max(1, len(periods) // 12) == 0:
            out.append(f'<text class="tick" x="{_num(x)}" y="{height - 10}" text-anchor="middle">'
                       f'{p["start"][:7] if len(periods) > 14 else p["start"][5:]}</text>')
        marks.append(f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3" data-period="{p["start"]}" data-value="{v}">'
                     f'<title>{p["start"]} {escape(label)}: {escape(fmt(v))}</title></circle>')
    out.append(f'<polyline class="series" fill="none" points="{" ".join(coords)}"/>')
    out.extend(marks)
    out.append("</svg>")
    return Markup("".join(out))
