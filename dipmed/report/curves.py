"""Line charts as inline SVG (no plotting library, nothing to load): the fit's misfit
and loss per iteration, with the noise level, the rule's threshold and the stop marked."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import numpy as np

WIDTH, HEIGHT = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 40  # plot margins in pixels
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Line:
    label: str
    y: list[float | None]  # None: no value at that x (drawn around)
    colour: str


@dataclass(frozen=True)
class Mark:
    """A horizontal (value on y) or vertical (value on x) dashed reference line."""

    label: str
    value: float
    colour: str
    vertical: bool = False
    label_left: bool = False  # horizontal marks: label at the left end (close lines stay legible)


@dataclass(frozen=True)
class _Axes:
    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float
    log: bool

    def ty(self, v):
        return np.log10(v) if self.log else v

    def px(self, v) -> float:
        return LEFT + (v - self.x_lo) / (self.x_hi - self.x_lo) * PLOT_W

    def py(self, v) -> float:
        return HEIGHT - BOTTOM - (self.ty(v) - self.y_lo) / (self.y_hi - self.y_lo) * PLOT_H


def chart(
    title: str,
    x: list[float],
    lines: list[Line],
    marks: list[Mark],
    *,
    y_label: str,
    x_label: str = "iteration",
) -> str:
    """An SVG chart of `lines` over `x`; the y axis is logarithmic when the data span more
    than a decade."""
    axes = _axes(x, lines, marks)
    parts = [_frame(title, x_label, y_label, axes.log), *_ticks(axes)]
    parts += [_mark(mark, axes) for mark in marks]
    for n, line in enumerate(lines):
        keep = [(a, b) for a, b in zip(x, line.y, strict=True) if _drawable(b, axes.log)]
        points = " ".join(f"{axes.px(a):.1f},{axes.py(b):.1f}" for a, b in keep)
        parts.append(
            _el("polyline", fill="none", stroke=line.colour, stroke_width=1.6, points=points)
        )
        parts.append(_legend(n, line.label, line.colour))
    return _el(
        "svg",
        "\n".join(parts),
        xmlns="http://www.w3.org/2000/svg",
        width=WIDTH,
        height=HEIGHT,
        viewBox=f"0 0 {WIDTH} {HEIGHT}",
        role="img",
        aria_label=title,
    )


def _axes(x, lines, marks) -> _Axes:
    ys = [v for line in lines for v in line.y if v is not None]  # None: not measured there
    ys += [m.value for m in marks if not m.vertical]
    ys = np.asarray([v for v in ys if np.isfinite(v)], float)
    log = bool(ys.size and ys.min() > 0 and ys.max() / ys.min() > 10)
    y_lo, y_hi = _span(np.log10(ys) if log else ys) if ys.size else (0.0, 1.0)
    x_lo, x_hi = _span(np.asarray(x, float)) if len(x) else (0.0, 1.0)
    return _Axes(x_lo, x_hi, y_lo, y_hi, log)


def _drawable(value: float | None, log: bool) -> bool:
    return value is not None and bool(np.isfinite(value)) and (value > 0 or not log)


def _span(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.04 * (hi - lo)
    return lo - pad, hi + pad


def _frame(title: str, x_label: str, y_label: str, log: bool) -> str:
    bottom, middle = HEIGHT - BOTTOM, TOP + PLOT_H / 2
    return "".join(
        [
            _el("rect", x=0, y=0, width=WIDTH, height=HEIGHT, fill="white"),
            _el("text", title, x=LEFT, y=18, font_size=13, font_weight="bold"),
            _el("line", x1=LEFT, y1=TOP, x2=LEFT, y2=bottom, stroke="#444"),
            _el("line", x1=LEFT, y1=bottom, x2=WIDTH - RIGHT, y2=bottom, stroke="#444"),
            _el("text", x_label, x=LEFT + PLOT_W / 2, y=HEIGHT - 6, **_small("middle")),
            _el(
                "text",
                y_label + (" (log scale)" if log else ""),
                x=12,
                y=middle,
                transform=f"rotate(-90 12 {middle})",
                **_small("middle"),
            ),
        ]
    )


def _ticks(axes: _Axes) -> list[str]:
    out, bottom = [], HEIGHT - BOTTOM
    for v in sorted({round(v) for v in np.linspace(axes.x_lo, axes.x_hi, 6)[1:-1]}):
        out.append(_el("text", f"{v}", x=f"{axes.px(v):.1f}", y=bottom + 14, **_small("middle")))
    for t in np.linspace(axes.y_lo, axes.y_hi, 6)[1:-1]:
        y = bottom - (t - axes.y_lo) / (axes.y_hi - axes.y_lo) * PLOT_H
        value = 10**t if axes.log else t
        out.append(
            _el("line", x1=LEFT - 4, y1=f"{y:.1f}", x2=WIDTH - RIGHT, y2=f"{y:.1f}", stroke="#ddd")
        )
        out.append(_el("text", f"{value:.3g}", x=LEFT - 6, y=f"{y + 3:.1f}", **_small("end")))
    return out


def _mark(mark: Mark, axes: _Axes) -> str:
    dash = {"stroke": mark.colour, "stroke_dasharray": "5,3", "stroke_width": 1.5}
    if mark.vertical:
        x = f"{axes.px(mark.value):.1f}"
        label_x = f"{axes.px(mark.value) + 3:.1f}"
        return _el("line", x1=x, y1=TOP, x2=x, y2=HEIGHT - BOTTOM, **dash) + _el(
            "text", mark.label, x=label_x, y=TOP + 10, fill=mark.colour, **_small("start")
        )
    y = axes.py(mark.value)
    x, anchor = (LEFT + 4, "start") if mark.label_left else (WIDTH - RIGHT - 2, "end")
    return _el("line", x1=LEFT, y1=f"{y:.1f}", x2=WIDTH - RIGHT, y2=f"{y:.1f}", **dash) + _el(
        "text", mark.label, x=x, y=f"{y - 3:.1f}", fill=mark.colour, **_small(anchor)
    )


def _legend(n: int, label: str, colour: str) -> str:
    x, y = WIDTH - RIGHT - 170, TOP + 14 + 14 * n
    return _el("line", x1=x, y1=y - 4, x2=x + 18, y2=y - 4, stroke=colour, stroke_width=2) + _el(
        "text", label, x=x + 22, y=y, **_small("start")
    )


def _small(anchor: str) -> dict:
    return {"font_size": 10, "text_anchor": anchor}


def _el(tag: str, text: str | None = None, **attrs) -> str:
    """An SVG element; attribute names use _ for - (stroke_width -> stroke-width)."""
    rendered = " ".join(f'{k.replace("_", "-")}="{escape(str(v))}"' for k, v in attrs.items())
    if text is None:
        return f"<{tag} {rendered}/>"
    body = text if tag == "svg" else escape(text)
    return f"<{tag} {rendered}>{body}</{tag}>"
