"""Live plots (pyqtgraph): output and pulse rate over the last 30 s, and the pulses of the last
second, per channel.

Reads a ``acustim.live.LiveBuffer`` from a GUI timer (about 30 Hz) and never from the IO
thread. Every refresh copies the newest window, decimates it (min/max per pixel column) and
replaces only the y data of curves whose x arrays are fixed; auto-range is off, antialiasing
is off and pens are 1 px wide (../shared/reference/platform.md section 4).

Display only: never touches the engine, a transport or the guard.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QVBoxLayout, QWidget

from acustim.live import (
    FloatArray,
    LiveBuffer,
    decimate_minmax,
    decimated_x,
    drop_flat_runs,
    pulse_train,
)
from gui import theme

WINDOW_S = 30.0
PULSE_WINDOW_S = 1.0
_PLOTTED = ("output_du", "frequency_hz")  # what the 30 s plots copy from the buffer
_GRID = "#e8edf0"


def nice_ceiling(value: float, minimum: float = 10.0) -> float:
    """The next 'round' number at or above ``value`` (1, 2, 2.5, 5 x 10^k), for axis tops."""
    value = max(value, minimum)
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power + 1e-9:
            return step * power
    return 10.0 * power


def _style_plot(plot: pg.PlotItem, left: str, bottom: str | None) -> None:
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.enableAutoRange(x=False, y=False)
    # no pyqtgraph grid: its axis-drawn grid made a full repaint ~30 ms here (see Grid)
    axis_pen = pg.mkPen(theme.FAINT, width=1)
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(axis_pen)
        axis.setTextPen(pg.mkPen(theme.MUTED))
        axis.setStyle(tickLength=4)  # ticks outside the data: the grid lines are inside
    plot.setLabel("left", left, color=theme.MUTED)
    if bottom is not None:
        plot.setLabel("bottom", bottom, color=theme.MUTED)


def _first_samples(n: int, bins: int) -> npt.NDArray[np.int64]:
    """For each point ``decimate_minmax`` makes of ``n`` samples, the index of the first
    sample it covers (so a plot can skip points that cover no data yet)."""
    if n <= 2 * bins:
        return np.arange(n, dtype=np.int64)
    edges = (np.arange(bins, dtype=np.int64) * n) // bins
    return np.repeat(edges, 2)


class Curve(pg.PlotCurveItem):  # type: ignore[misc]
    """A curve whose bounding rectangle is the plot's fixed view range.

    pyqtgraph recomputes a curve's bounds from its data (nanmin/nanmax) after every setData;
    with fixed ranges and auto-range off nobody needs them, and they cost ~1.5 ms per refresh
    of these plots. The view box clips what is drawn, so the fixed rectangle is exact enough
    for the scene's update regions.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._fixed = QRectF()

    def set_bounds(self, x0: float, x1: float, y0: float, y1: float) -> None:
        rect = QRectF(x0, y0, x1 - x0, y1 - y0)
        if rect != self._fixed:
            self.prepareGeometryChange()
            self._fixed = rect

    def boundingRect(self) -> QRectF:
        return self._fixed


class Grid:
    """Light grid lines as ONE static curve (``connect="pairs"``) under the data.

    pyqtgraph's own grid (``showGrid``) is drawn by the axes through a QPicture and cost about
    30 ms per full repaint of these plots (offscreen raster); one path of a few dozen segments
    costs well under a millisecond. Redrawn only when a range changes.
    """

    def __init__(self, plot: pg.PlotItem) -> None:
        self.plot = plot
        self.curve = pg.PlotCurveItem(pen=pg.mkPen(_GRID, width=1), connect="pairs")
        self.curve.setZValue(-10)
        plot.addItem(self.curve, ignoreBounds=True)

    def set(self, x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
        x0, x1 = x_range
        y0, y1 = y_range
        xs = _ticks(x0, x1)
        ys = _ticks(y0, y1)
        segments = [((x, y0), (x, y1)) for x in xs] + [((x0, y), (x1, y)) for y in ys]
        if not segments:
            self.curve.setData(np.zeros(0), np.zeros(0))
            return
        points = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
        self.curve.setData(points[:, 0], points[:, 1])


def _ticks(lo: float, hi: float) -> list[float]:
    """About five round positions strictly inside (lo, hi)."""
    span = hi - lo
    if span <= 0:
        return []
    step = nice_ceiling(span / 5.0, 1e-9)
    first = math.floor(lo / step) * step + step
    out = []
    value = first
    while value < hi - step * 1e-6:
        if value > lo + step * 1e-6:
            out.append(round(value, 9))
        value += step
    return out


class LivePlots(QWidget):
    """Output (device units) and pulse rate over 30 s, and a pulse-level view of 1 s."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=False, background=theme.PANEL, foreground=theme.MUTED)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground(theme.PANEL)
        self.view.ci.setContentsMargins(4, 4, 8, 4)
        self.view.ci.setSpacing(6)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.channels: tuple[str, ...] = ()
        self.sample_period_s = 0.025
        self.biphasic = False
        self.output_curves: list[Curve] = []
        self.frequency_curves: list[Curve] = []
        self.pulse_curves: list[Curve] = []
        self.pulse_plots: list[pg.PlotItem] = []
        self.output_plot: pg.PlotItem | None = None
        self.frequency_plot: pg.PlotItem | None = None
        self._bins = 0
        self._n = 0
        self._pulse_n = 0
        self._n_used = 0
        self._first_sample: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._x: FloatArray = np.zeros(0)
        self._y_top = 0.0
        self._pulse_top = 0.0
        self._min_output_top = 10.0
        self._last_total = -1
        #: how many plot rows are laid out (see ``_rows_for_height``), and the last configure
        self.rows = 3
        self._configured: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        #: seconds the last few refreshes took (for the status bar and the bench)
        self.refresh_s: list[float] = []

    def configure(
        self,
        channels: Sequence[str],
        colours: Sequence[str],
        sample_period_s: float,
        *,
        biphasic: bool = False,
        frequency_max_hz: float = 100.0,
        output_top_du: float = 10.0,
    ) -> None:
        """Set up one curve per channel (call when a program or device changes). Lays out as
        many plots as the height allows (``rows``)."""
        self._configured = (
            (channels, colours, sample_period_s),
            {
                "biphasic": biphasic,
                "frequency_max_hz": frequency_max_hz,
                "output_top_du": output_top_du,
            },
        )
        self.rows = self._rows_for_height()
        self.view.clear()
        self.channels = tuple(channels)
        self.sample_period_s = sample_period_s
        self.biphasic = biphasic
        self._n = max(2, round(WINDOW_S / sample_period_s))
        self._pulse_n = max(1, round(PULSE_WINDOW_S / sample_period_s))
        self._bins = 0
        self._last_total = -1
        self._min_output_top = max(10.0, output_top_du)
        span = max(1, len(self.channels))

        out = self.view.addPlot(row=0, col=0, colspan=span)
        _style_plot(out, "output (du)", "seconds" if self.rows == 1 else None)
        out.setTitle(
            "Output: level \N{MULTIPLICATION SIGN} program intensity, last 30 s",
            color=theme.INK,
            size="10pt",
        )
        out.setXRange(-WINDOW_S, 0.0, padding=0.0)
        # a plot the height leaves out is made but not laid out: its curves still take data
        freq = pg.PlotItem()
        if self.rows >= 2:
            self.view.addItem(freq, row=1, col=0, colspan=span)
        _style_plot(freq, "rate (Hz)", "seconds")
        freq.setTitle("Pulse rate", color=theme.INK, size="10pt")
        freq.setXRange(-WINDOW_S, 0.0, padding=0.0)
        freq_top = nice_ceiling(frequency_max_hz * 1.05, 5.0)
        freq.setYRange(0.0, freq_top, padding=0.0)
        freq.setXLink(out)
        self._output_grid = Grid(out)
        Grid(freq).set((-WINDOW_S, 0.0), (0.0, freq_top))
        self.output_plot, self.frequency_plot = out, freq
        legend = out.addLegend(offset=(8, 4), labelTextColor=theme.INK, brush=(255, 255, 255, 200))

        self.output_curves, self.frequency_curves = [], []
        self.pulse_curves, self.pulse_plots = [], []
        self.pulse_grids: list[Grid] = []
        for k, name in enumerate(self.channels):
            pen = pg.mkPen(colours[k % len(colours)], width=1)
            c_out = Curve(pen=pen, skipFiniteCheck=True, name=f"channel {name}")
            c_freq = Curve(pen=pen, skipFiniteCheck=True)
            c_freq.set_bounds(-WINDOW_S, 0.0, 0.0, freq_top)
            # ranges are set by hand: the view boxes need not track the curves' bounds
            out.addItem(c_out, ignoreBounds=True)
            freq.addItem(c_freq, ignoreBounds=True)
            self.output_curves.append(c_out)
            self.frequency_curves.append(c_freq)
            pulses = pg.PlotItem()
            if self.rows >= 3:
                self.view.addItem(pulses, row=2, col=k)
            _style_plot(pulses, "du" if k == 0 else "", "seconds")
            pulses.setTitle(f"{name}: pulses, last second", color=theme.INK, size="10pt")
            pulses.setXRange(-PULSE_WINDOW_S, 0.0, padding=0.0)
            c_pulse = Curve(pen=pen, skipFiniteCheck=True)
            self.pulse_grids.append(Grid(pulses))
            pulses.addItem(c_pulse, ignoreBounds=True)
            self.pulse_plots.append(pulses)
            self.pulse_curves.append(c_pulse)
        legend.setVisible(len(self.channels) > 1)
        for row, stretch in enumerate((5, 3, 4)[: self.rows]):
            self.view.ci.layout.setRowStretchFactor(row, stretch)
        self._set_output_top(self._min_output_top)
        self._set_pulse_top(1.0)

    #: below this height the 1 s pulse views are left out, so the 30 s plots stay legible
    COMPACT_BELOW_PX = 340
    #: below this height the pulse-rate plot is left out too (each channel card says its rate)
    OUTPUT_ONLY_BELOW_PX = 240

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._configured is not None and self._rows_for_height() != self.rows:
            args, kwargs = self._configured
            top = self._min_output_top  # keep the scale the window set
            self.configure(*args, **{**kwargs, "output_top_du": top})  # redrawn from the buffer

    def _rows_for_height(self) -> int:
        """3: output, rate and the pulse views; 2: no pulse views; 1: output only."""
        if self.height() < self.OUTPUT_ONLY_BELOW_PX:
            return 1
        return 2 if self.height() < self.COMPACT_BELOW_PX else 3

    def _set_output_top(self, top: float) -> None:
        self._y_top = top
        if self.output_plot is not None:
            self.output_plot.setYRange(0.0, top, padding=0.0)
            self._output_grid.set((-WINDOW_S, 0.0), (0.0, top))
        for curve in self.output_curves:
            curve.set_bounds(-WINDOW_S, 0.0, 0.0, top)

    def _set_pulse_top(self, top: float) -> None:
        """The pulse views share one scale (their own: the last second's peak), so a small
        output still shows its pulses."""
        self._pulse_top = top
        low = -top if self.biphasic else 0.0
        for plot, grid in zip(self.pulse_plots, self.pulse_grids, strict=True):
            plot.setYRange(low, top, padding=0.0)
            grid.set((-PULSE_WINDOW_S, 0.0), (low, top))
        for curve in self.pulse_curves:
            curve.set_bounds(-PULSE_WINDOW_S, 0.0, low, top)

    def _columns(self) -> int:
        """Pixel columns of the 30 s plots: one min/max pair per column."""
        if self.output_plot is None:
            return 400
        return max(50, int(self.output_plot.vb.width()))

    def clear(self) -> None:
        """Forget the data shown (a new session starts)."""
        self._last_total = -1
        empty = np.zeros(0)
        for curve in (*self.output_curves, *self.frequency_curves, *self.pulse_curves):
            curve.setData(empty, empty)

    def refresh(self, buffer: LiveBuffer | None, *, force: bool = False) -> bool:
        """Redraw from the newest samples; returns False when there was nothing new."""
        if buffer is None or not self.channels or buffer.channels != self.channels:
            return False
        if buffer.total == self._last_total and not force:
            return False
        started = time.perf_counter()
        self._last_total = buffer.total
        n = min(self._n, buffer.capacity)
        bins = self._columns()
        if bins != self._bins or self._x.shape[0] == 0 or n != self._n_used:
            self._bins = bins
            self._n_used = n
            self._x = decimated_x(n, bins, self.sample_period_s)
            self._first_sample = _first_samples(n, bins)
        window = buffer.latest(n, _PLOTTED)
        output_all, frequency_all = window.values[0], window.values[1]
        output = decimate_minmax(output_all, bins)
        frequency = decimate_minmax(frequency_all, bins)
        # nothing is drawn before the first sample of the session (no fake "0" history)
        k0 = int(np.searchsorted(self._first_sample, n - window.valid, side="left"))
        x = self._x[k0:]
        for k in range(len(self.channels)):
            self.output_curves[k].setData(*drop_flat_runs(x, output[k, k0:]))
            self.frequency_curves[k].setData(*drop_flat_runs(x, frequency[k, k0:]))
        m = min(self._pulse_n, n, window.valid)
        widths = buffer.latest(m, ("pulse_width_us",)).values[0] if m else None
        pixel_s = PULSE_WINDOW_S / max(50, int(self.pulse_plots[0].vb.width()))
        for k in range(len(self.channels)):
            if widths is None:
                self.pulse_curves[k].setData(np.zeros(0), np.zeros(0))
                continue
            x_p, y_p = pulse_train(
                frequency_all[k, n - m :],
                output_all[k, n - m :],
                widths[k],
                self.sample_period_s,
                start_s=-m * self.sample_period_s,
                biphasic=self.biphasic,
                min_width_s=pixel_s,
            )
            self.pulse_curves[k].setData(x_p, y_p)
        peak = float(output_all.max()) if output_all.size else 0.0
        top = nice_ceiling(max(peak * 1.1, self._min_output_top))
        if top != self._y_top:
            self._set_output_top(top)
        recent = float(output_all[:, n - m :].max()) if m else 0.0
        pulse_top = nice_ceiling(max(recent * 1.1, 1.0), 1.0)
        if pulse_top != self._pulse_top:
            self._set_pulse_top(pulse_top)
        self.refresh_s.append(time.perf_counter() - started)
        del self.refresh_s[:-120]
        return True

    def set_floor_top(self, top_du: float) -> None:
        """The least the output axis shows (e.g. the largest target level), so a ramp that
        starts from zero does not keep rescaling the axis."""
        self._min_output_top = max(10.0, top_du)
