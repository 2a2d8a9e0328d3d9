"""Charts as inline SVG, drawn on the server: no scripts, no chart service, readable on a phone."""

from __future__ import annotations

from collections.abc import Callable

from markupsafe import Markup, escape

PALETTE = ("#2f6f9f", "#d9822b", "#4f9a5a", "#9b59b6")


def _plain(value: float) -> str:
    return f"{value:.0f}" if value >= 100 or value == int(value) else f"{value:.1f}"


def result_bars(
    rows: list[tuple[str, int]],
    total: int,
    title: str,
    fmt: Callable[[float], str] = lambda v: f"{v:.0f}",
) -> Markup:
    """Horizontal bars, one per option: its label above, the bar, its count and share of `total`."""
    row_h, width, longest = 44, 340, 240
    height = row_h * len(rows)
    top = max((count for _, count in rows), default=0) or 1
    parts = [
        f'<svg class="chart results" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i, (label, count) in enumerate(rows):
        y = i * row_h
        bar = 0 if count == 0 else max(2, round(longest * count / top))
        share = f"{fmt(100 * count / total)} %" if total else "0 %"
        parts.append(
            f'<text x="0" y="{y + 14}" font-size="13">{escape(label[:24])}</text>'
            f'<rect x="0" y="{y + 19}" width="{bar}" height="18" rx="2" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{bar + 5}" y="{y + 33}" font-size="12">{fmt(count)} · {share}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def daily_bars(
    points: list[tuple[str, float | None]],
    title: str,
    colour: str = PALETTE[0],
    fmt: Callable[[float], str] | None = None,
) -> Markup:
    """Vertical bars, one per day (None: no data that day), with the top value and the dates."""
    _num = fmt or _plain
    width, height, left, bottom = 330, 130, 34, 18
    plot_h = height - bottom - 8
    values = [v for _, v in points if v is not None]
    top = max(values, default=0.0) or 1.0
    step = (width - left) / max(len(points), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<line x1="{left}" y1="{8 + plot_h}" x2="{width}" y2="{8 + plot_h}" stroke="#999"/>',
        f'<text x="{left - 3}" y="16" font-size="10" text-anchor="end">{_num(top)}</text>',
        f'<text x="{left - 3}" y="{8 + plot_h}" font-size="10" text-anchor="end">0</text>',
    ]
    for i, (date, value) in enumerate(points):
        x = left + i * step + 1
        if value is None:
            parts.append(
                f'<rect x="{x:.1f}" y="{6 + plot_h}" width="{max(step - 2, 1):.1f}" height="2" '
                f'fill="#ddd"><title>{escape(date)}</title></rect>'
            )
            continue
        h = plot_h * value / top
        parts.append(
            f'<rect x="{x:.1f}" y="{8 + plot_h - h:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>{escape(date)}: {_num(value)}</title></rect>'
        )
    if points:
        parts.append(
            f'<text x="{left}" y="{height - 3}" font-size="10">{escape(points[0][0])}</text>'
            f'<text x="{width}" y="{height - 3}" font-size="10" text-anchor="end">'
            f"{escape(points[-1][0])}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
