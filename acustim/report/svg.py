"""The report's plots as SVG: output over the session (peak mA where calibrated, else device
units; dashed: the level set; dotted markers at pauses, stops, faults and device changes) and
pulse frequency (log scale, only while there is output), drawn from the recorded frames.

Makes SVG text only: every label and event message in it is escaped; it reads no store, never
writes one and never imports Qt (``pdf`` rasterises these plots with Qt itself).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from acustim.records import EventRow, FrameRow
from acustim.report.model import CalibrationInfo, Plot
from acustim.report.text import clock, esc

__all__ = ["session_plots"]

#: event kinds drawn as markers on the output plot
_MARKED_KINDS: Final = frozenset(
    {
        "pause",
        "resume",
        "stop",
        "fault",
        "link_lost",
        "reconnected",
        "electrode_off",
        "device_level",
        "time_limit",
        "limited",
        "density_warning",
    }
)
#: one colour per channel, in channel order (Okabe-Ito: told apart by colour-blind readers)
_CHANNEL_COLOURS: Final = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


@dataclass(frozen=True)
class _Series:
    name: str
    colour: str
    points: tuple[tuple[float, float | None], ...]  # None breaks the line
    dashed: bool = False


#: the plot's size and margins, in px
_W: Final = 720
_H: Final = 250
_LEFT: Final = 60
_RIGHT: Final = 110
_TOP: Final = 26
_BOTTOM: Final = 34


def session_plots(
    frames: Sequence[FrameRow],
    frame_s: float,
    names: Sequence[str],
    cal: CalibrationInfo,
    events: Sequence[EventRow],
) -> tuple[Plot, ...]:
    """The output plot and the frequency plot of channels ``names`` (none without frames)."""
    if not frames:
        return ()
    scale = cal.peak_ma_per_du if cal.calibrated and cal.peak_ma_per_du else None
    unit = "peak mA" if scale else "du"
    output: list[_Series] = []
    frequency: list[_Series] = []
    for k, name in enumerate(names):
        colour = _CHANNEL_COLOURS[k % len(_CHANNEL_COLOURS)]
        out_pts: list[tuple[float, float | None]] = []
        lvl_pts: list[tuple[float, float | None]] = []
        f_pts: list[tuple[float, float | None]] = []
        for frame in frames:
            ch = next((c for c in frame.channels if c.name == name), None)
            level = 0 if ch is None else ch.level_du
            peak = max(ch.intensity, default=0.0) if ch is not None else 0.0
            factor = scale or 1.0
            out_pts.append((frame.t_s, level * peak * factor))
            lvl_pts.append((frame.t_s, level * factor))
            if ch is None:
                continue
            n = len(ch.intensity)
            for j in range(n):
                t = frame.t_s + j * frame_s / n
                on = level * ch.intensity[j] > 0 and j < len(ch.frequency_hz)
                f_pts.append((t, ch.frequency_hz[j] if on else None))
        output.append(_Series(f"{name} output", colour, tuple(out_pts)))
        output.append(_Series(f"{name} level", colour, tuple(lvl_pts), dashed=True))
        frequency.append(_Series(f"{name}", colour, tuple(f_pts)))
    t_end = frames[-1].t_s + frame_s
    marks = [
        (e.t_s, f"{clock(e.t_s)} {e.kind}: {e.message}") for e in events if e.kind in _MARKED_KINDS
    ]
    return (
        Plot(
            f"Output over the session ({unit}; dashed: the level set)",
            _svg(output, t_end, f"output ({unit})", log_y=False, marks=marks),
            _W,
            _H,
        ),
        Plot(
            "Pulse frequency over the session (Hz, while there is output)",
            _svg(frequency, t_end, "frequency (Hz)", log_y=True, marks=()),
            _W,
            _H,
        ),
    )


def _nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= m * power:
            return m * power
    return 10 * power


def _thin(
    points: Sequence[tuple[float, float | None]], x_of: Callable[[float], float]
) -> list[tuple[float, float | None]]:
    """Keep the first, lowest, highest and last point of each pixel column (and every break),
    so a long session draws in a few thousand points and keeps its shape."""
    if len(points) <= 4 * _W:
        return list(points)
    out: list[tuple[float, float | None]] = []
    column: list[tuple[float, float]] = []
    current: int | None = None

    def flush() -> None:
        if not column:
            return
        keep = {0, len(column) - 1}
        keep.add(min(range(len(column)), key=lambda i: column[i][1]))
        keep.add(max(range(len(column)), key=lambda i: column[i][1]))
        out.extend(column[i] for i in sorted(keep))
        column.clear()

    for t, v in points:
        if v is None:
            flush()
            out.append((t, None))
            current = None
            continue
        px = int(x_of(t))
        if px != current:
            flush()
            current = px
        column.append((t, v))
    flush()
    return out


def _svg(
    series: Sequence[_Series],
    t_end: float,
    y_label: str,
    *,
    log_y: bool,
    marks: Sequence[tuple[float, str]],
) -> str:
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM
    minutes = t_end > 180
    t_unit = 60.0 if minutes else 1.0
    t_span = max(t_end, 1e-9)
    values = [v for s in series for _, v in s.points if v is not None]
    if log_y:
        lo = 10.0 ** math.floor(math.log10(max(min(values, default=1.0), 1e-3)))
        hi = 10.0 ** math.ceil(math.log10(max(max(values, default=100.0), lo * 10)))
    else:
        lo = 0.0
        top = max(values, default=0.0)
        step = _nice_step(top or 1.0, 5)
        hi = max(step, math.ceil(top / step) * step)

    def x_of(t: float) -> float:
        return _LEFT + plot_w * min(max(t / t_span, 0.0), 1.0)

    def y_of(v: float) -> float:
        if log_y:
            frac = (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        else:
            frac = (v - lo) / (hi - lo) if hi > lo else 0.0
        return _TOP + plot_h * (1.0 - min(max(frac, 0.0), 1.0))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}"'
        f' viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#ffffff"/>',
    ]
    # grid and axes
    ticks: list[float] = []
    if log_y:
        decade = lo
        while decade <= hi * 1.0001:
            ticks.extend(m * decade for m in (1, 2, 5) if m * decade <= hi * 1.0001)
            decade *= 10
    else:
        step = _nice_step(hi - lo, 5)
        ticks = [lo + i * step for i in range(round((hi - lo) / step) + 1)]
    for v in ticks:
        y = y_of(v)
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}"'
            ' stroke="#e3e8ec" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#5b6873">{v:g}</text>'
        )
    t_step = _nice_step(t_span / t_unit, 8)
    i = 0
    while i * t_step <= t_span / t_unit + 1e-9:
        x = x_of(i * t_step * t_unit)
        parts.append(
            f'<line x1="{x:.1f}" y1="{_TOP + plot_h}" x2="{x:.1f}" y2="{_TOP + plot_h + 4}"'
            ' stroke="#8a96a0" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle" fill="#5b6873">'
            f"{i * t_step:g}</text>"
        )
        i += 1
    parts.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none"'
        ' stroke="#8a96a0" stroke-width="1"/>'
    )
    parts.append(
        f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_H - 4}" text-anchor="middle" fill="#1f2a33">'
        f"time ({'min' if minutes else 's'})</text>"
    )
    parts.append(
        f'<text x="14" y="{_TOP + plot_h / 2:.1f}" text-anchor="middle" fill="#1f2a33"'
        f' transform="rotate(-90 14 {_TOP + plot_h / 2:.1f})">{esc(y_label)}</text>'
    )
    for t, text in marks:
        x = x_of(t)
        parts.append(
            f'<line x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{_TOP + plot_h}" stroke="#b0b8bf"'
            f' stroke-width="1" stroke-dasharray="2,3"><title>{esc(text)}</title></line>'
        )
    # the series
    for k, s in enumerate(series):
        d: list[str] = []
        pen_up = True
        for t, value in _thin(s.points, x_of):
            if value is None:
                pen_up = True
                continue
            d.append(f"{'M' if pen_up else 'L'}{x_of(t):.1f},{y_of(value):.1f}")
            pen_up = False
        dash = ' stroke-dasharray="5,4" stroke-opacity="0.6"' if s.dashed else ""
        if d:
            parts.append(
                f'<path d="{" ".join(d)}" fill="none" stroke="{s.colour}"'
                f' stroke-width="1.5"{dash}/>'
            )
        y = _TOP + 10 + 16 * k
        x = _LEFT + plot_w + 10
        parts.append(
            f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="{s.colour}"'
            f' stroke-width="2"{dash}/>'
        )
        parts.append(f'<text x="{x + 24}" y="{y}" fill="#1f2a33">{esc(s.name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
