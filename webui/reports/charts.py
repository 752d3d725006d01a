"""Small server-rendered SVG bar charts (no script, no inline style: CSP-safe).

A chart is a list of bars, each with a label, a value, the text shown for it, and the link to
the documents behind it. The label sits above its bar so the chart stays readable when a phone
scales it down; colours are SVG presentation attributes, which the CSP does not govern.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH = 400
ROW = 44
TOP = 8
BAR = 16
COLOURS = ("#2f6f9f", "#c2410c")


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal | int
    text: str
    href: str | None = None


def bar_chart(key: str, title: str, bars: list[Bar], series: int = 0) -> Markup:
    """A horizontal bar chart as an inline <svg> (also served alone as image/svg+xml)."""
    height = TOP * 2 + max(1, len(bars)) * ROW
    largest = max((Decimal(b.value) for b in bars), default=Decimal(0)) or Decimal(1)
    usable = WIDTH - 90  # room for the value after the longest bar
    colour = COLOURS[series % len(COLOURS)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="chart-{escape(key)}" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" '
        f'aria-labelledby="chart-{escape(key)}-title" '
        f'font-family="system-ui, sans-serif" font-size="14">',
        f'<title id="chart-{escape(key)}-title">{escape(title)}</title>',
    ]
    if not bars:
        parts.append(f'<text x="0" y="{TOP + 18}" fill="#667085">—</text>')
    for index, bar in enumerate(bars):
        y = TOP + index * ROW
        length = int(Decimal(bar.value) / largest * usable) if bar.value else 0
        body = (
            f'<text x="0" y="{y + 14}" fill="#1d2939">{escape(bar.label)}</text>'
            f'<rect x="0" y="{y + 20}" width="{max(length, 2)}" height="{BAR}" fill="{colour}" '
            f'rx="2"><title>{escape(bar.label)}: {escape(bar.text)}</title></rect>'
            f'<text x="{max(length, 2) + 6}" y="{y + 33}" fill="#1d2939">{escape(bar.text)}</text>'
        )
        if bar.href:
            body = f'<a href="{escape(bar.href)}" class="bar">{body}</a>'
        parts.append(f'<g class="bar-row">{body}</g>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above
