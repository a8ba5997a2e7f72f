"""Charts drawn on the server as SVG: no JavaScript, nothing to build, readable when printed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from html import escape

PALETTE = {"rest": "#2b6cb0", "socketio": "#2f855a", "facebook": "#6b46c1", "inconnu": "#718096"}
EXTRA_COLOURS = ["#c05621", "#b83280", "#2c7a7b", "#975a16"]


def channel_colours(channels: Sequence[str]) -> dict[str, str]:
    colours, extra = {}, iter(EXTRA_COLOURS * 4)
    for ch in channels:
        colours[ch] = PALETTE.get(ch) or next(extra)
    return colours


def _nice_max(value: int) -> int:
    """The top of the y axis: 4 grid steps of a round whole number."""
    quarter = max(1, math.ceil(value / 4))
    if quarter <= 10:
        return quarter * 4
    magnitude = 10 ** math.floor(math.log10(quarter))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if quarter <= step * magnitude:
            return int(step * magnitude) * 4
    return quarter * 4


def stacked_bars(
    per_day: list[tuple[str, dict[str, int]]], channels: Sequence[str], width: int = 900, height: int = 280
) -> str:
    """Customer messages per day, one colour per channel."""
    colours = channel_colours(channels)
    left, right, top, bottom = 44, 12, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([sum(v.values()) for _, v in per_day] + [0])
    y_max = _nice_max(peak)
    n = max(len(per_day), 1)
    slot = plot_w / n
    bar = max(1.0, slot * 0.75)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="chart-title"><title id="chart-title">Messages clients par jour '
        f"et par canal</title>"
    ]
    for i in range(5):  # horizontal grid and y labels
        value = y_max * i / 4
        y = top + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{value:g}</text>')
    label_every = max(1, math.ceil(n / 12))
    for i, (day, values) in enumerate(per_day):
        x = left + i * slot + (slot - bar) / 2
        y = top + plot_h
        total = sum(values.values())
        for ch in channels:
            count = values.get(ch, 0)
            if not count:
                continue
            h = plot_h * count / y_max
            y -= h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colours[ch]}">'
                f"<title>{escape(day)} · {escape(ch)} : {count}</title></rect>"
            )
        if total == 0:
            out.append(
                f'<rect x="{x:.1f}" y="{top}" width="{bar:.1f}" height="{plot_h}" fill="transparent">'
                f"<title>{escape(day)} : 0</title></rect>"
            )
        if i % label_every == 0:
            d = date.fromisoformat(day)
            out.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                f'class="axis">{d:%d/%m}</text>'
            )
    out.append(
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" class="baseline"/>'
    )
    out.append("</svg>")
    return "".join(out)


def legend(channels: Sequence[str]) -> list[tuple[str, str]]:
    colours = channel_colours(channels)
    return [(ch, colours[ch]) for ch in channels]
