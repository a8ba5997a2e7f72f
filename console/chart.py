"""Charts drawn on the server as SVG: no JavaScript, nothing to build, readable when printed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from html import escape
from typing import Any

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


# the two daily rates of the insights: a solid line with dots, a dashed one with squares
# (told apart without colour too); the dots drawn last, over a square of the same value
RATE_SERIES = (
    ("containment", "Autonomie", "#2b6cb0", "6 4"),
    ("satisfaction", "Satisfaction", "#2f855a", ""),
)


def _percent(value: float) -> str:
    return f"{value * 100:.0f} %"


def rate_lines(per_day: list[dict[str, Any]], width: int = 900, height: int = 240) -> str:
    """Satisfaction and containment per day (console/feedback.py stats), 0 to 100 %. A day
    without feedback (or without conversations) has no point: the line stops there."""
    left, right, top, bottom = 44, 12, 12, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(per_day), 1)
    slot = plot_w / n
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="rates-title rates-desc"><title id="rates-title">Satisfaction et '
        f'autonomie par jour</title><desc id="rates-desc">En pourcentage, de 0 à 100 %. Satisfaction : '
        f"part des réponses jugées utiles parmi les avis du jour (trait plein). Autonomie : part des "
        f"conversations commencées ce jour-là sans conseiller ni réponse jugée inutile (tirets). Un jour "
        f"sans donnée n'a pas de point.</desc>"
    ]
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{25 * i} %</text>')
    label_every = max(1, math.ceil(n / 12))
    for i, item in enumerate(per_day):
        if i % label_every == 0:
            d = date.fromisoformat(item["day"])
            out.append(
                f'<text x="{left + (i + 0.5) * slot:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                f'class="axis">{d:%d/%m}</text>'
            )
    for key, name, colour, dash in RATE_SERIES:
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        segment: list[str] = []
        marks = []
        for i, item in enumerate(per_day + [{"day": "", key: None}]):  # the sentinel ends a segment
            value = item.get(key)
            if value is None:
                if len(segment) > 1:
                    out.append(
                        f'<polyline points="{" ".join(segment)}" fill="none" stroke="{colour}" '
                        f'stroke-width="2"{dashes}/>'
                    )
                segment = []
                continue
            x, y = left + (i + 0.5) * slot, top + plot_h - plot_h * value
            segment.append(f"{x:.1f},{y:.1f}")
            d = date.fromisoformat(item["day"])
            if key == "satisfaction":
                detail = f"{item['utile']} utile(s) sur {item['utile'] + item['inutile']} avis"
                shape = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">'
                end = "</circle>"
            else:
                detail = f"{item['contained']} sur {item['conversations']} conversation(s)"
                shape = f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}">'
                end = "</rect>"
            marks.append(
                f"{shape}<title>{d:%d/%m} · {name} : {_percent(value)} ({escape(detail)})</title>{end}"
            )
        out.extend(marks)
    out.append(
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" class="baseline"/>'
    )
    out.append("</svg>")
    return "".join(out)
