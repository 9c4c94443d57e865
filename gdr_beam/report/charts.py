"""Inline SVG charts for the report page: plain strings, no library, no script, no network.

Every chart writes its numbers as visible text next to the marks (and as a <title> tooltip),
so the page can be read without hovering, searched with the browser's find, and checked by a
test that parses it. All text is escaped.
"""

from __future__ import annotations

import html
from typing import Optional, Sequence, Tuple

WIDTH = 640
ROW = 22
LABEL_W = 190
VALUE_W = 90
FONT = 'font-family="sans-serif" font-size="12"'
BEFORE, AFTER = "#9aa5b1", "#2a6f97"
VERDICT_COLORS = {"rewritten": "#2a9d8f", "fallback": "#e76f51", "unchanged": "#9aa5b1",
                  "rejected": "#b00020"}
DEFAULT_COLOR = "#2a6f97"


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _svg(height: int, body: str, label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_e(label)}" '
            f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">{body}</svg>')


def empty(note: str) -> str:
    return f'<p class="note">{_e(note)}</p>'


def bar_chart(items: Sequence[Tuple[str, float]], label: str, *, colors=None,
              suffix: Sequence[str] = ()) -> str:
    """Horizontal bars, one per (label, value); `suffix[i]` is extra text after a value
    (e.g. a share)."""
    if not items:
        return empty(f"{label}: none")
    top = max(v for _, v in items) or 1
    span = WIDTH - LABEL_W - VALUE_W
    rows = []
    for i, (name, value) in enumerate(items):
        y = i * ROW
        w = max(1.0, span * value / top) if value else 0.0
        color = (colors or {}).get(name, DEFAULT_COLOR)
        extra = f" {suffix[i]}" if i < len(suffix) and suffix[i] else ""
        rows.append(
            f'<g><title>{_e(name)}: {_e(fmt(value))}{_e(extra)}</title>'
            f'<text x="{LABEL_W - 6}" y="{y + 15}" text-anchor="end" {FONT}>{_e(name)}</text>'
            f'<rect x="{LABEL_W}" y="{y + 3}" width="{w:.1f}" height="{ROW - 6}" '
            f'fill="{color}"/>'
            f'<text x="{LABEL_W + w + 4:.1f}" y="{y + 15}" {FONT}>{_e(fmt(value))}{_e(extra)}'
            f'</text></g>')
    return _svg(len(items) * ROW + 4, "".join(rows), label)


def paired_bar_chart(names: Sequence[str], before: Sequence[float], after: Sequence[float],
                     label: str, legend=("before", "after")) -> str:
    """Two horizontal bars per name (before, after) on one scale."""
    if not names:
        return empty(f"{label}: none")
    top = max(list(before) + list(after)) or 1
    span = WIDTH - LABEL_W - VALUE_W
    rows, y = [_legend(legend)], ROW
    for name, b, a in zip(names, before, after):
        rows.append(f'<text x="{LABEL_W - 6}" y="{y + 19}" text-anchor="end" {FONT}>'
                    f'{_e(name)}</text>')
        for j, (value, color, which) in enumerate(((b, BEFORE, legend[0]),
                                                   (a, AFTER, legend[1]))):
            yy = y + 3 + j * 14
            w = max(1.0, span * value / top) if value else 0.0
            rows.append(f'<g><title>{_e(name)} {_e(which)}: {_e(fmt(value))}</title>'
                        f'<rect x="{LABEL_W}" y="{yy}" width="{w:.1f}" height="12" '
                        f'fill="{color}"/><text x="{LABEL_W + w + 4:.1f}" y="{yy + 10}" '
                        f'{FONT}>{_e(fmt(value))}</text></g>')
        y += 34
    return _svg(y + 4, "".join(rows), label)


def histogram(buckets: Sequence[str], before: Sequence[int], after: Sequence[int],
              label: str, legend=("inputs", "outputs")) -> str:
    """Vertical paired columns per bucket; empty buckets at either end are left out."""
    used = [i for i in range(len(buckets)) if before[i] or after[i]]
    if not used:
        return empty(f"{label}: no texts")
    idx = list(range(used[0], used[-1] + 1))
    top = max(max(before[i], after[i]) for i in idx) or 1
    plot_h, base = 160, 36 + 160  # the legend above the tallest column's label
    slot = (WIDTH - 20) / len(idx)
    col = min(28.0, slot / 2 - 2)
    parts = [_legend(legend, x=WIDTH - 250)]
    for k, i in enumerate(idx):
        x0 = 10 + k * slot + slot / 2 - col
        for j, (value, color, which) in enumerate(((before[i], BEFORE, legend[0]),
                                                   (after[i], AFTER, legend[1]))):
            h = plot_h * value / top
            x = x0 + j * col
            parts.append(f'<g><title>{_e(buckets[i])} chars, {_e(which)}: {value}</title>'
                         f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{col - 1:.1f}" '
                         f'height="{h:.1f}" fill="{color}"/>'
                         f'<text x="{x + col / 2:.1f}" y="{base - h - 3:.1f}" '
                         f'text-anchor="middle" font-family="sans-serif" font-size="10">'
                         f'{value}</text></g>')
        parts.append(f'<text x="{x0 + col:.1f}" y="{base + 14}" text-anchor="middle" '
                     f'font-family="sans-serif" font-size="10">{_e(buckets[i])}</text>')
    parts.append(f'<line x1="10" y1="{base}" x2="{WIDTH - 10}" y2="{base}" stroke="#555"/>')
    return _svg(base + 22, "".join(parts), label)


def line_chart(xs: Sequence[float], ys: Sequence[float], label: str, *, x_unit: str = "s",
               y_unit: str = "", note: Optional[str] = None) -> str:
    """A line over (x, y) points with its min/max on the axes and each point's value as a
    tooltip (many points: labels would overlap)."""
    if not xs:
        return empty(note or f"{label}: not recorded")
    left, right, top_pad, plot_h = 60, 20, 20, 150
    base = top_pad + plot_h
    x_max = max(xs) or 1
    y_max = max(ys) or 1
    span = WIDTH - left - right

    def px(x):
        return left + span * x / x_max

    def py(y):
        return base - plot_h * y / y_max

    points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
    parts = [f'<line x1="{left}" y1="{base}" x2="{WIDTH - right}" y2="{base}" stroke="#555"/>',
             f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{base}" stroke="#555"/>',
             f'<text x="{left - 4}" y="{top_pad + 4}" text-anchor="end" {FONT}>'
             f'{_e(fmt(y_max))}</text>',
             f'<text x="{left - 4}" y="{base}" text-anchor="end" {FONT}>0</text>',
             f'<text x="{left}" y="{base + 16}" {FONT}>0 {_e(x_unit)}</text>',
             f'<text x="{WIDTH - right}" y="{base + 16}" text-anchor="end" {FONT}>'
             f'{_e(fmt(x_max))} {_e(x_unit)}</text>',
             f'<text x="{left + 6}" y="{top_pad - 6}" {FONT}>{_e(y_unit)}</text>',
             f'<polyline points="{points}" fill="none" stroke="{AFTER}" stroke-width="2"/>']
    for x, y in zip(xs, ys):
        parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{AFTER}">'
                     f'<title>{_e(fmt(x))} {_e(x_unit)}: {_e(fmt(y))} {_e(y_unit)}</title>'
                     f'</circle>')
    return _svg(base + 22, "".join(parts), label)


def _legend(names, x: float = LABEL_W) -> str:
    return (f'<rect x="{x}" y="4" width="12" height="12" fill="{BEFORE}"/>'
            f'<text x="{x + 16}" y="14" {FONT}>{_e(names[0])}</text>'
            f'<rect x="{x + 110}" y="4" width="12" height="12" fill="{AFTER}"/>'
            f'<text x="{x + 126}" y="14" {FONT}>{_e(names[1])}</text>')
