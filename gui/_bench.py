"""``python -m gui._bench [--quick]``: GUI figures for ``bench/_gui.py``, printed as JSON.

Measured here, in a process of its own (``bench`` must not import ``gui``):

1. plot refresh: the real ``LivePlots`` at 1200 x 600 px, 4 channels, 30 s windows, fed
   1/30 s of new samples before each refresh. ``refresh_ms`` is copy + decimate + setData;
   ``refresh_paint_ms`` adds the event loop's paint of what changed (offscreen raster, CPU
   only); ``full_repaint_ms`` is a forced repaint of every pixel of every plot (worst case).
   Two sample rates: the Coyote 3's 25 ms (1,200 samples per window) and 1 kHz (30,000 per
   window, so decimation does real work).
2. stream lateness while the GUI refreshes: the real window on a wall-clock engine streams a
   flat program to the Coyote 3 simulator at 20 du on two channels while its 30 Hz timer
   refreshes plots and status; the session's own lateness figures are reported, next to the
   same session with no window at all (``baseline_*``: what the machine gives anyway).

Never asserts; prints figures only. Records nothing.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PySide6.QtWidgets import QApplication

from acustim.engine import Engine
from acustim.live import FIELDS, LiveBuffer
from gui import theme
from gui.app import create_app
from gui.plots import WINDOW_S, LivePlots
from gui.window import MainWindow

FLAT = """
[program]
name = "bench-flat"
title = "Bench: flat 2/100 Hz"
indication = "benchmark"
electrode = "pad"

[[segments]]
kind = "dense_disperse"
duration_s = 600
low_hz = 2
high_hz = 100
low_s = 3
high_s = 3
pulse_width_us = 250
intensity = 1.0

[[channels]]
name = "A"
sites = ["ST7-L", "ST6-L"]

[[channels]]
name = "B"
sites = ["SI19-L", "ST5-L"]
"""


def _percentiles(prefix: str, values_s: list[float]) -> dict[str, float]:
    if not values_s:
        return {f"{prefix}_p50_ms": float("nan"), f"{prefix}_p99_ms": float("nan")}
    data = np.sort(np.asarray(values_s)) * 1000.0
    rank = max(1, int(np.ceil(0.99 * len(data))))
    return {
        f"{prefix}_p50_ms": float(np.median(data)),
        f"{prefix}_p99_ms": float(data[rank - 1]),
        f"{prefix}_max_ms": float(data[-1]),
    }


def plot_refresh(app: QApplication, period_s: float, refreshes: int) -> dict[str, float]:
    plots = LivePlots()
    plots.resize(1200, 600)
    plots.show()
    app.processEvents()
    names = ["A", "B", "C", "D"]
    plots.configure(names, theme.CHANNEL_COLOURS, period_s, frequency_max_hz=100.0)
    buffer = LiveBuffer.for_window(names, sample_period_s=period_s, window_s=WINDOW_S)
    per_refresh = max(1, round(1 / 30 / period_s))
    rng = np.random.default_rng(1)
    # fill the whole window first: every refresh then draws 30 s of data
    n = buffer.capacity
    t = np.arange(n) * period_s
    full = np.zeros((len(FIELDS), len(names), n))
    full[0] = 20 + 10 * np.sin(t)[None, :] + rng.normal(0, 1, (len(names), n))
    full[1] = np.where((t // 3) % 2 == 0, 2.0, 100.0)[None, :]
    full[2] = 250.0
    full[3] = 30.0
    buffer.push(0.0, full)
    data_s: list[float] = []
    paint_s: list[float] = []
    full_s: list[float] = []
    block = full[:, :, :per_refresh].copy()
    for k in range(refreshes + 5):
        buffer.push(k * per_refresh * period_s, block)
        app.processEvents()
        started = time.perf_counter()
        plots.refresh(buffer)
        refreshed = time.perf_counter()
        app.processEvents()  # what the app does next: the event loop paints what changed
        painted = time.perf_counter()
        if k >= 5:  # the first few warm caches up
            data_s.append(refreshed - started)
            paint_s.append(painted - started)
        if k % 10 == 0:  # the worst case now and then: every pixel of every plot again
            plots.refresh(buffer, force=True)
            before = time.perf_counter()
            plots.view.viewport().repaint()
            full_s.append(time.perf_counter() - before)
    points = len(plots.output_curves[0].getData()[0])
    plots.close()
    plots.deleteLater()
    app.processEvents()
    return {
        **_percentiles("refresh", data_s),
        **_percentiles("refresh_paint", paint_s),
        **_percentiles("full_repaint", full_s),
        "points_per_curve": float(points),
        "samples_per_window": float(n),
    }


def stream_while_refreshing(app: QApplication, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        program = Path(tmp) / "bench-flat.toml"
        program.write_text(FLAT, encoding="utf-8")
        engine = Engine(virtual_time=False, records=False)
        window = MainWindow(engine, device="sim:coyote3", program=str(program))
        window.resize(1440, 900)
        window.show()
        end = time.monotonic() + 5.0
        while window.device is None and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.005)
        window.start_session()
        for card in window.channels.cards.values():
            card.slider.setValue(20)
        started = time.monotonic()
        window.plots.refresh_s.clear()
        refresh_s: list[float] = []
        while time.monotonic() - started < seconds:
            app.processEvents()
            refresh_s.extend(window.plots.refresh_s)
            window.plots.refresh_s.clear()
            time.sleep(0.002)
        session = window.session
        status = session.status() if session is not None else None
        window.close()
    if status is None:
        return {"stream_lateness_p99_ms": float("nan")}
    return {
        "stream_lateness_p99_ms": status.lateness_p99_ms,
        "stream_frames_sent": float(status.frames_sent),
        "stream_frames_skipped": float(status.frames_skipped),
        "stream_seconds": seconds,
        "window_refreshes": float(len(refresh_s)),
        **_percentiles("window_refresh", refresh_s),
    }


def stream_without_gui(seconds: float) -> dict[str, float]:
    """The same session with no window: what the machine gives without the GUI's load."""
    with tempfile.TemporaryDirectory() as tmp:
        program = Path(tmp) / "bench-flat.toml"
        program.write_text(FLAT, encoding="utf-8")
        with Engine(virtual_time=False, records=False) as engine:
            device = engine.connect("sim:coyote3")
            session = device.start(str(program), levels={"A": 20, "B": 20})
            time.sleep(seconds)
            status = session.status()
            session.stop("bench done")
            session.wait(5.0)
    return {
        "baseline_stream_lateness_p99_ms": status.lateness_p99_ms,
        "baseline_stream_frames_skipped": float(status.frames_skipped),
    }


def measure(quick: bool) -> dict[str, float]:
    app = create_app()
    refreshes = 30 if quick else 300
    figures: dict[str, float] = {}
    for label, period_s in (("coyote3", 0.025), ("1khz", 0.001)):
        for key, value in plot_refresh(app, period_s, refreshes).items():
            figures[f"{label}_{key}"] = value
    figures.update(stream_while_refreshing(app, 3.0 if quick else 30.0))
    figures.update(stream_without_gui(3.0 if quick else 30.0))
    return figures


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(json.dumps(measure("--quick" in args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
